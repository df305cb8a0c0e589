"""The ops under XLA (jit_compile=True): each lowering against the CPU kernel, bit for bit.

Also: the gradients, the registration orders (each in a fresh process), Keras ``fit`` with
``jit_compile``, the update op in a jitted step under MirroredStrategy, and the library built
without lowerings. The device tests run on the CPU, and again on the GPU where TensorFlow sees
one (``gpu`` marker); the reference is always the CPU kernel run eagerly.

Tolerance of the update's statistics: the counts (and so the two fractions) are exact and must
equal the CPU kernel's; the three float64 sums are reduced in an order XLA chooses, so, like the
CPU kernel's, they are checked against the exactly summed reference within the summation bound
of ``stats_reference.assert_sums_close`` (n * 2**-52 * sum|terms| plus float32 rounding). The
variable itself must be bit-identical.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tensorflow_kappa as tk
from references.fixed_point import quantize_reference, same_bits
from references.stats import UpdateReference, assert_sums_close, rail_stats_reference
from tensorflow_kappa import _ops, cli
from tensorflow_kappa.quantization import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    FixedPoint,
    composite_ops,
    quantize_tensor,
    rail_stats,
    update_quantize_store,
)
from references.op_cases import MODE_PAIRS, edge_values, formats_for, inputs

REPO = Path(__file__).resolve().parents[2]
DEVICES = ["CPU", pytest.param("GPU", marks=pytest.mark.gpu)]
DTYPES = [tf.float32, tf.float64]
SEED = (-(2**62) + 7, 2**63 - 11)  # both words' high halves in play


def jit(fn, device):
    """fn compiled by XLA and run on ``device``; also checks that it calls a custom op."""
    compiled = tf.function(fn, jit_compile=True)

    def run(*args):
        with tf.device(f"/{device}:0"):
            graph = compiled.get_concrete_function(*args).graph
            assert any(op.type.startswith("Kappa>") for op in graph.get_operations()), \
                "no custom op in the jitted graph"
            return compiled(*args)

    return run


def on_cpu(fn, *args):
    """fn run eagerly on the CPU: the CPU kernels, the reference of every test here."""
    with tf.device("/CPU:0"):
        return fn(*args)


def subnormals(dtype):
    tiny = np.finfo(dtype.as_numpy_dtype).tiny
    return np.array([tiny / 2, -tiny / 2, tiny / 1024, -tiny / 1024, tiny, -tiny,
                     np.nextafter(tiny, 0), -np.nextafter(tiny, 0)], dtype.as_numpy_dtype)


def quantize_inputs(fmt, dtype, seed):
    rng = np.random.default_rng(seed)
    random = rng.normal(0, 4 * max(fmt.max_value, 1), 3000) * 2.0 ** rng.integers(-30, 4, 3000)
    return np.concatenate([edge_values(fmt, dtype), subnormals(dtype),
                           random.astype(dtype.as_numpy_dtype)])


# Kappa>Quantize ---------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_quantize_matrix_matches_cpu_kernel_bit_for_bit(device, rounding, overflow, dtype):
    """Every format of the quantize tests' matrix, on edge values (ties, rails, +-0, NaN,
    +-Inf, subnormals, huge values) and scaled random values, one XLA program per mode pair."""
    formats = formats_for(dtype, rounding, overflow)
    xs = [tf.constant(quantize_inputs(f, dtype, i)) for i, f in enumerate(formats)]

    def all_formats(*xs):
        return [quantize_tensor(x, f, seed=SEED) for x, f in zip(xs, formats)]

    lowered = jit(all_formats, device)(*xs)
    kernel = on_cpu(all_formats, *xs)
    for fmt, x, got, want in zip(formats, xs, lowered, kernel):
        assert same_bits(got.numpy(), want.numpy()), f"{fmt} {dtype.name} on {device}"
        np.testing.assert_array_equal(got.numpy(), quantize_reference(x.numpy(), fmt, SEED),
                                      err_msg=str(fmt))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [[7, 11, 13], [1000, 3], [2, 1, 4099], [3, 0, 2], []])
def test_stochastic_element_indices_follow_the_flat_index(device, shape):
    """RandomBits' counter is the row-major flat index, whatever the rank."""
    x = tf.random.stateless_uniform(shape, seed=(4, 2), minval=-9, maxval=9)
    fmt = "s8.3:stochastic:wrap"
    got = jit(lambda x: quantize_tensor(x, fmt, seed=(5, 6)), device)(x)
    want = on_cpu(lambda x: quantize_tensor(x, fmt, seed=(5, 6)), x)
    assert same_bits(got.numpy(), want.numpy())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ste", [True, "clipped", False])
def test_straight_through_gradients_under_xla(device, ste):
    x = tf.constant(np.linspace(-12, 12, 97), tf.float32)
    dy = tf.constant(np.random.default_rng(3).normal(size=97), tf.float32)

    def value_and_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantize_tensor(x, "s8.4:stochastic", ste=ste, seed=(1, 2))
        grad = tape.gradient(y, x, output_gradients=dy)
        return y, (tf.zeros_like(x) if grad is None else grad)

    (y, grad), (want_y, want_grad) = jit(value_and_grad, device)(x), on_cpu(value_and_grad, x)
    assert same_bits(y.numpy(), want_y.numpy())
    # The gradient is TensorFlow's own ops (dy times the mask): as values, since XLA may
    # give +0 where dy * 0 is -0.
    np.testing.assert_array_equal(grad.numpy(), want_grad.numpy())


@pytest.mark.parametrize("device", DEVICES)
def test_half_types_under_xla(device):
    for dtype in (tf.float16, tf.bfloat16):
        x = tf.cast(tf.random.stateless_normal([500], seed=(2, 9)) * 5, dtype)
        got = jit(lambda x: quantize_tensor(x, "s7.3:nearest_away", seed=(1, 1)), device)(x)
        want = on_cpu(lambda x: quantize_tensor(x, "s7.3:nearest_away", seed=(1, 1)), x)
        assert got.dtype == dtype
        assert same_bits(got.numpy().astype(np.float32), want.numpy().astype(np.float32))


def test_lowering_is_plain_hlo_fused_with_its_producer():
    """The op becomes ordinary HLO (no custom call) that XLA fuses into the producer's loop."""
    x = tf.random.stateless_normal([64, 32], seed=(1, 1))
    w = tf.random.stateless_normal([32, 48], seed=(1, 2))
    b = tf.random.stateless_normal([48], seed=(1, 3))
    f = tf.function(lambda x: quantize_tensor(tf.matmul(x, w) + b, "s8.4"), jit_compile=True)
    hlo = f.experimental_get_compiler_ir(x)(stage="hlo")
    assert "round-nearest-even" in hlo and "custom-call" not in hlo
    optimized = f.experimental_get_compiler_ir(x)(stage="optimized_hlo")
    fusions = [c for c in optimized.split("\n\n") if "round-nearest-even" in c]
    assert len(fusions) == 1 and " add(" in fusions[0], optimized


# Kappa>RailStats ---------------------------------------------------------------------------

RAIL_FORMATS = ["s8.4", "u8.8", "s4.-2", "u1.0", "s16.20", "s2.0", "u6.2"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("near_rail", [0.0, 0.5, 0.9, 1.0])
def test_rail_stats_matches_cpu_kernel_exactly(device, dtype, near_rail):
    formats = [FixedPoint.parse(f) for f in RAIL_FORMATS]
    xs = [tf.constant(quantize_inputs(f, dtype, i)) for i, f in enumerate(formats)]

    def all_formats(*xs):
        return [tuple(rail_stats(x, f, near_rail)) for x, f in zip(xs, formats)]

    lowered = jit(all_formats, device)(*xs)
    kernel = on_cpu(all_formats, *xs)
    for fmt, x, got, want in zip(formats, xs, lowered, kernel):
        got = [float(v) for v in got]
        assert got == [float(v) for v in want], f"{fmt} {dtype.name} near_rail={near_rail}"
        assert got == [float(v) for v in rail_stats_reference(x.numpy(), fmt, near_rail)]


@pytest.mark.parametrize("device", DEVICES)
def test_rail_stats_of_empty_and_all_nan_under_xla(device):
    def stats(x):
        return tuple(rail_stats(x, "s8.4"))

    for x in (tf.zeros([0]), tf.fill([5], float("nan")), tf.zeros([3, 0, 2], tf.float64)):
        got = jit(stats, device)(x)
        assert [float(v) for v in got] == [float(v) for v in on_cpu(stats, x)]


# Kappa>UpdateQuantizeStore -----------------------------------------------------------------

def run_update(variable, g, lr, uf, sf, seed, runner):
    def step(g, lr):
        return tuple(update_quantize_store(variable, g, lr, uf, sf, seed=seed))

    return runner(step, tf.constant(g), tf.constant(lr, g.dtype))


def variables(w, device):
    """Two variables holding w: one on ``device`` for the lowering, one on the CPU for the
    kernel (an op on a resource runs on the resource's device)."""
    with tf.device(f"/{device}:0"):
        lowered = tf.Variable(w)
    with tf.device("/CPU:0"):
        kernel = tf.Variable(w)
    return lowered, kernel


def check_update_against_kernel(w, g, lr, uf, sf, seed, device):
    """One step by the lowering and by the CPU kernel from the same weights: the variables
    bit-identical, the fractions equal, the sums within the bound of the reference."""
    lowered_var, kernel_var = variables(w, device)
    lowered = run_update(lowered_var, g, lr, uf, sf, seed, lambda f, *a: jit(f, device)(*a))
    kernel = run_update(kernel_var, g, lr, uf, sf, seed, on_cpu)
    assert same_bits(lowered_var.numpy(), kernel_var.numpy()), f"{uf} {sf} {w.dtype}"
    assert [float(v) for v in lowered[3:]] == [float(v) for v in kernel[3:]]
    ref = UpdateReference(w, g, lr, uf, sf, seed)
    assert_sums_close(tk.quantization.UpdateStats(*lowered), ref, w.size)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("update_fmt, storage_fmt", MODE_PAIRS)
def test_update_matches_cpu_kernel(device, update_fmt, storage_fmt, dtype):
    """Every rounding and overflow mode in either step, both steps absent (the inexact product
    -lr * grad then reaches the sum directly: no fused multiply-add may skip its rounding)."""
    uf = None if update_fmt is None else FixedPoint.parse(update_fmt)
    sf = None if storage_fmt is None else FixedPoint.parse(storage_fmt)
    w, g = inputs(30_011, dtype, 5, sf)
    check_update_against_kernel(w.reshape(30_011, 1), g.reshape(30_011, 1), 0.375, uf, sf,
                                (11, -4), device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_update_special_values_and_learning_rates(device, dtype):
    info = np.finfo(dtype)
    w = np.array([0.0, -0.0, 1.0, -1.0, info.tiny / 4, 7.9, -8.0, 1e30, np.nan, np.inf,
                  2.0, 3.0], dtype)
    g = np.array([1.0, -1.0, np.nan, np.inf, -np.inf, info.tiny / 8, info.tiny, 1e-30,
                  0.5, 0.25, info.max, -info.max], dtype)
    for lr in (0.1, float(info.tiny) / 2, 3.0, 1e30):
        for uf, sf in [(None, None), ("s8.6:stochastic", "s8.4:nearest_away:wrap"),
                       ("u8.8:truncate", None)]:
            uf_ = None if uf is None else FixedPoint.parse(uf)
            sf_ = None if sf is None else FixedPoint.parse(sf)
            lowered_var, kernel_var = variables(w, device)
            lowered = run_update(lowered_var, g, lr, uf_, sf_, (8, 9),
                                 lambda f, *a: jit(f, device)(*a))
            kernel = run_update(kernel_var, g, lr, uf_, sf_, (8, 9), on_cpu)
            assert same_bits(lowered_var.numpy(), kernel_var.numpy()), (lr, uf, sf)
            # Every statistic, sums included: NaN/Inf propagate the same way.
            for a, b in zip(lowered, kernel):
                a, b = float(a), float(b)
                assert a == b or (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 2e-7 * abs(b)


def test_lowering_checks_what_the_kernel_checks():
    """Graphs built without the Python wrappers, with shapes unknown when traced (so the
    shape functions pass them), reach the lowering's own checks at compile time."""
    lib = _ops.load_library()
    v = tf.Variable(tf.zeros([4]))
    v64 = tf.Variable(tf.zeros([4], tf.float64))
    formats = dict(update_bits=8, update_frac_bits=4, storage_bits=8, storage_frac_bits=4)

    def update(var, g, lr, seed, **attrs):
        return lib.kappa_update_quantize_store(var.handle, g, lr, seed, **{**formats, **attrs})

    seed = tf.zeros([2], tf.int64)
    cases = [
        (lambda g, lr, s: update(v, g, lr, s), (tf.ones([5]), 0.1, seed),
         "variable shape \\[4\\] and grad shape f32\\[5\\] differ"),
        (lambda g, lr, s: update(v, g, lr, s), (tf.ones([4]), [0.1, 0.2], seed),
         "learning_rate must be a scalar"),
        (lambda g, lr, s: update(v, g, lr, s), (tf.ones([4]), 0.1, tf.zeros([3], tf.int64)),
         "seed must be an int64 vector of 2 elements"),
        (lambda g, lr, s: update(v64, g, lr, s), (tf.ones([4]), 0.1, seed), "dtype"),
        (lambda g, lr, s: update(v, g, lr, s, has_storage_format=True, storage_bits=40),
         (tf.ones([4]), 0.1, seed), "storage_bits=40 is out of range"),
        (lambda x, s: lib.kappa_quantize(x, s, bits=8, frac_bits=4),
         (tf.ones([3]), tf.zeros([3], tf.int64)), "seed must be an int64 vector of 2 elements"),
        (lambda x, s: lib.kappa_quantize(x, s, bits=8, frac_bits=200), (tf.ones([3]), seed),
         "frac_bits=200 is out of range"),
        (lambda x: lib.kappa_rail_stats(x, bits=8, frac_bits=4, near_rail=1.5), (tf.ones([3]),),
         "near_rail=1.5 is out of range"),
    ]
    for fn, args, message in cases:
        args = [tf.convert_to_tensor(a) for a in args]
        signature = [tf.TensorSpec(None, a.dtype) for a in args]
        compiled = tf.function(fn, jit_compile=True, input_signature=signature)
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            compiled(*args)


# Registration orders, each in a fresh process ----------------------------------------------

def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    env.pop(_ops.FALLBACK_ENV, None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)


ORDERS = {
    # The library loads while XLA's kernel registry is still empty.
    "register_all first": """
        import tensorflow_kappa as tk
        tk.register_all()
        import tensorflow as tf
        f = tf.function(lambda x: tk.quantize_tensor(x, "s8.4"), jit_compile=True)
        print(f(tf.constant([0.1, 0.3, 100.0])).numpy().tolist())
    """,
    # The op is the first thing under XLA; the library loads while tracing it.
    "jit first": """
        import tensorflow_kappa as tk
        import tensorflow as tf
        f = tf.function(lambda x: tk.quantize_tensor(x, "s8.4"), jit_compile=True)
        print(f(tf.constant([0.1, 0.3, 100.0])).numpy().tolist())
    """,
    # Eager ops and another XLA program first: XLA's registry is filled without the ops.
    "other jit and eager ops first": """
        import tensorflow as tf
        print(float(tf.constant(2.0) * 3.0))
        print(float(tf.function(lambda x: x * 2.0, jit_compile=True)(tf.constant(1.5))))
        import tensorflow_kappa as tk
        f = tf.function(lambda x: tk.quantize_tensor(x, "s8.4"), jit_compile=True)
        print(f(tf.constant([0.1, 0.3, 100.0])).numpy().tolist())
        g = tf.function(lambda x: tuple(tk.rail_stats(x, "s8.4")), jit_compile=True)
        print([float(v) for v in g(tf.constant([0.01, 7.9, 8.5, -9.0]))])
        v = tf.Variable([1.0, 1.0])
        u = tf.function(lambda: tk.update_quantize_store(v, [1.0, 0.0], 0.5, "s8.4")[0],
                        jit_compile=True)
        print(float(u()), v.numpy().tolist())
    """,
    # Keras fit with jit_compile=True is the first XLA program.
    "keras fit first": """
        import numpy as np, keras, tensorflow as tf
        import tensorflow_kappa as tk
        inputs = keras.Input((3,))
        h = keras.layers.Dense(4)(inputs)
        outputs = keras.layers.Lambda(lambda t: tk.quantize_tensor(t, "s8.4"))(h)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer="sgd", loss="mse", jit_compile=True)
        x = np.ones((8, 3), np.float32)
        h = model.fit(x, np.zeros((8, 4), np.float32), epochs=1, verbose=0)
        print(np.isfinite(h.history["loss"][0]))
    """,
}
ORDER_OUTPUTS = {
    "register_all first": ["[0.125, 0.3125, 7.9375]"],
    "jit first": ["[0.125, 0.3125, 7.9375]"],
    "other jit and eager ops first": ["6.0", "3.0", "[0.125, 0.3125, 7.9375]",
                                      "[0.5, 0.75, 0.25]", "0.5 [0.5, 1.0]"],
    "keras fit first": ["True"],
}


@pytest.mark.parametrize("order", list(ORDERS))
def test_every_loading_order_compiles(order):
    result = run_python(ORDERS[order])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:-1] == ORDER_OUTPUTS[order]


# Keras -------------------------------------------------------------------------------------

class QuantizedActivation(keras.layers.Layer):
    """A user layer whose call is quantize_tensor (a new user's first quantized model)."""

    def __init__(self, fmt="s8.6", **kwargs):
        super().__init__(**kwargs)
        self.fmt = fmt

    def call(self, x):
        return tk.quantize_tensor(x, self.fmt)

    def get_config(self):
        return {**super().get_config(), "fmt": self.fmt}


def fit_losses(jit_compile, device="CPU"):
    """Losses of three epochs of a small model with quantized activations (computed in float64,
    so that XLA's different but valid roundings cannot move an activation across a step)."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6))
    y = np.sin(x[:, :2] @ np.array([[1.0], [-0.5]]))
    with tf.device(f"/{device}:0"):
        model = keras.Sequential([
            keras.Input((6,), dtype="float64"),
            keras.layers.Dense(16, dtype="float64"),
            QuantizedActivation("s8.6", dtype="float64"),
            keras.layers.Dense(16, activation="tanh", dtype="float64"),
            QuantizedActivation("s6.4:nearest_away", dtype="float64"),
            keras.layers.Dense(1, dtype="float64"),
        ])
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", jit_compile=jit_compile)
        history = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    return model, np.array(history.history["loss"])


@pytest.mark.parametrize("device", DEVICES)
def test_keras_fit_with_jit_compile_matches_plain_fit(device):
    model, jitted = fit_losses(True, device)
    assert model.jit_compile is True
    assert all(layer.supports_jit for layer in model.layers)
    _, plain = fit_losses(False, device)
    assert np.all(np.isfinite(jitted)) and jitted[-1] < jitted[0]
    # Keras averages the loss in float32: equal up to its rounding.
    np.testing.assert_allclose(jitted, plain, rtol=1e-6)


def test_keras_auto_jit_compile_trains_on_cpu():
    """Keras turns "auto" into True only where a GPU is visible (the GPU test checks that)."""
    model, auto = fit_losses("auto")
    _, plain = fit_losses(False)
    assert model.jit_compile is False
    np.testing.assert_array_equal(auto, plain)


@pytest.mark.gpu
def test_keras_auto_jit_compile_is_xla_on_gpu():
    model, auto = fit_losses("auto", "GPU")
    _, plain = fit_losses(False, "GPU")
    assert model.jit_compile is True
    np.testing.assert_allclose(auto, plain, rtol=1e-6)


# MirroredStrategy --------------------------------------------------------------------------

def test_update_in_jitted_train_step_under_mirrored_strategy(mirrored_strategy):
    """Each replica runs an XLA-compiled step that computes its gradient and updates its copy
    of the mirrored variable with the op; the copies end equal to the CPU kernel's step.

    The jitted function is made inside the replica function, so that each replica traces
    it with its own copy of the variable: one jitted function handed to ``strategy.run``
    inside a ``tf.function`` is traced once and then reaches the other replica's copy on
    another device, which XLA refuses for any variable update (``assign_sub`` too)."""
    strategy = mirrored_strategy
    uf, sf = FixedPoint.parse("s8.12:stochastic"), FixedPoint.parse("s8.5")
    w0 = np.random.default_rng(4).normal(size=[64]).astype(np.float32)
    x = tf.random.stateless_normal([16, 64], seed=(3, 3))
    with strategy.scope():
        v = tf.Variable(w0)

    def replica_step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.linalg.matvec(x, v) - 1.0))
        grad = tape.gradient(loss, v)
        stats = update_quantize_store(v, grad, 0.05, uf, sf, seed=(5, 5))
        return loss, grad, stats.update_underflow_fraction

    @tf.function
    def train_step(x):
        return strategy.run(lambda x: tf.function(replica_step, jit_compile=True)(x), args=(x,))

    graph = train_step.get_concrete_function(x).graph
    calls = [op for op in graph.get_operations() if op.type == "StatefulPartitionedCall"]
    assert len(calls) == 2 and all(op.get_attr("_XlaMustCompile") for op in calls)
    loss, grad, underflow = train_step(x)
    grads = strategy.experimental_local_results(grad)
    reference = tf.Variable(w0)
    want = on_cpu(lambda: update_quantize_store(reference, grads[0], 0.05, uf, sf, seed=(5, 5)))
    for copy in strategy.experimental_local_results(v):
        assert same_bits(copy.numpy(), reference.numpy())
    assert all(float(u) == float(want.update_underflow_fraction)
               for u in strategy.experimental_local_results(underflow))


# The build without lowerings ---------------------------------------------------------------

def test_configure_without_xla_builds_the_ops_without_lowerings(monkeypatch, tmp_path, capsys):
    """A TensorFlow wheel without XLA's headers/symbols: configure says so and writes empty
    XLA flags (the op library then links xla_unavailable instead of the lowerings)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kappa_configure_xla", REPO / "configure.py")
    configure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(configure)
    monkeypatch.setattr(configure, "OUTPUT", tmp_path / "generated.bazelrc")
    assert configure.main(["--cuda=no"]) == 0
    with_xla = configure.OUTPUT.read_text()
    assert "KAPPA_TF_XLA_LINKOPTS=-l:libtensorflow_cc.so.2\n" in with_xla
    assert "KAPPA_TF_XLA_INCLUDES=external/highwayhash,external/farmhash_archive/src" in with_xla
    assert "XLA        yes" in capsys.readouterr().out

    # The wheel without the symbols: the library exports none of them.
    monkeypatch.setattr(configure, "XLA_SYMBOLS", ("_ZN10tensorflow18NoSuchXlaSymbolE",))
    assert configure.main(["--cuda=no"]) == 0
    text = configure.OUTPUT.read_text()
    assert "build --repo_env=KAPPA_TF_XLA_LINKOPTS=\n" in text
    assert "build --repo_env=KAPPA_TF_XLA_INCLUDES=\n" in text
    out = capsys.readouterr().out
    assert "XLA        no: TensorFlow's wheel lacks symbol _ZN10tensorflow18NoSuchXlaSymbolE" in out
    assert "the ops build without XLA lowerings" in out
    assert configure.main(["--cuda=no", "--xla=yes"]) == 1
    assert "--xla=yes but TensorFlow's wheel lacks" in capsys.readouterr().err

    # ... or without the headers.
    include = tmp_path / "include"
    (include / "tensorflow/core/framework").mkdir(parents=True)
    (include / "tensorflow/core/framework/op_kernel.h").write_text("")
    monkeypatch.setattr(tf.sysconfig, "get_include", lambda: str(include))
    assert configure.main(["--cuda=no"]) == 0
    assert "KAPPA_TF_XLA_LINKOPTS=\n" in configure.OUTPUT.read_text()
    assert "lacks tensorflow/compiler/tf2xla/xla_op_kernel.h" in capsys.readouterr().out


@pytest.fixture(scope="module")
def library_without_xla():
    """The op library linked without lowerings (//tensorflow_kappa:_kappa_ops_without_xla.so)."""
    bazel = shutil.which("bazel")
    if bazel is None:
        pytest.skip("needs Bazel to build the op library without XLA lowerings")
    target = "//tensorflow_kappa:_kappa_ops_without_xla.so"
    subprocess.run([bazel, "build", target], cwd=REPO, check=True, capture_output=True)
    return REPO / "bazel-bin" / "tensorflow_kappa" / "_kappa_ops_without_xla.so"


def test_library_without_lowerings_says_so_and_names_composite_ops(library_without_xla, tmp_path):
    package = tmp_path / "site" / "tensorflow_kappa"
    shutil.copytree(Path(tk.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(library_without_xla, package / "_kappa_ops.so")
    # As a build without XLA would record it: the library's own size and checksum.
    record = json.loads((package / "_build_info.json").read_text())
    data = library_without_xla.read_bytes()
    record.update(library_size=len(data), library_sha256=hashlib.sha256(data).hexdigest())
    (package / "_build_info.json").write_text(json.dumps(record))
    code = """
        import tensorflow as tf, tensorflow_kappa as tk
        from tensorflow_kappa import _ops, cli
        print(_ops.has_xla_lowerings(), tk.quantize_tensor([0.3], "s8.4").numpy().tolist())
        for fn in (lambda x: tk.quantize_tensor(x, "s8.4"), lambda x: tk.rail_stats(x, "s8.4")[0]):
            try:
                tf.function(fn, jit_compile=True)(tf.constant([0.3]))
            except tf.errors.UnimplementedError as err:
                print("error:", str(err).splitlines()[0])
        def twin(x):
            with tk.composite_ops():
                return tk.quantize_tensor(x, "s8.4")
        print(tf.function(twin, jit_compile=True)(tf.constant([0.3])).numpy().tolist())
        cli.main(["info"])
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(package.parent)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "False [0.3125]"
    for line, op in zip(lines[1:3], ["Kappa>Quantize", "Kappa>RailStats"]):
        assert line.startswith("error:") and op in line and "composite_ops()" in line, line
    assert lines[3] == "[0.3125]"
    assert "  XLA lowerings  no" in result.stdout


# kappa info ---------------------------------------------------------------------------------

def test_kappa_info_says_the_lowerings_are_in_the_library(capsys):
    assert cli.main(["info"]) == 0
    assert "  XLA lowerings  yes" in capsys.readouterr().out
    assert _ops.library_info()["xla"] is True and _ops.has_xla_lowerings()
    assert json.loads(_ops.BUILD_INFO_PATH.read_text())["xla"] is True

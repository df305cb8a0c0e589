"""update_quantize_store against the NumPy reference; custom op vs twin; variables,
tf.function, XLA, MirroredStrategy, thread-count independence."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from references.fixed_point import same_bits
from references.op_cases import MODE_PAIRS, inputs
from references.stats import UpdateReference, assert_sums_close
from tensorflow_kappa.quantization import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    FixedPoint,
    UpdateStats,
    composite_ops,
    quantize_tensor,
    update_quantize_store,
)


def check(stats, ref, new, n):
    """Against the reference: weights equal as values (the reference quantizer is
    loose about the sign of zero; custom op and twin are compared bit for bit
    elsewhere), fractions exactly, sums within the summation bound."""
    assert isinstance(stats, UpdateStats)
    assert all(s.dtype == tf.float32 and s.shape == [] for s in stats)
    np.testing.assert_array_equal(np.asarray(new), ref.new, "stored weights differ from the reference")
    assert stats.update_underflow_fraction.numpy() == ref.underflow_fraction
    assert stats.storage_saturation_fraction.numpy() == ref.saturation_fraction
    assert_sums_close(stats, ref, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("update_fmt, storage_fmt", MODE_PAIRS)
def test_matches_reference(implementation, update_fmt, storage_fmt, dtype):
    uf = None if update_fmt is None else FixedPoint.parse(update_fmt)
    sf = None if storage_fmt is None else FixedPoint.parse(storage_fmt)
    w, g = inputs(3001, dtype, 5, sf)
    var = tf.Variable(w)
    stats = update_quantize_store(var, g, 0.375, uf, sf, seed=(11, -4))
    check(stats, UpdateReference(w, g, 0.375, uf, sf, (11, -4)), var.numpy(), w.size)


def test_custom_and_twin_agree(execution):
    """Same weights and counts bit for bit; sums within the documented tolerance."""
    uf, sf = FixedPoint.parse("s8.12:stochastic"), FixedPoint.parse("s8.5")
    w, g = inputs(200_003, np.float32, 9, sf)
    a, b = tf.Variable(w), tf.Variable(w)

    def step(var, g, lr):
        return update_quantize_store(var, g, lr, uf, sf, seed=(3, 8))

    custom = execution(lambda g, lr: step(a, g, lr), tf.constant(g), tf.constant(0.02))
    with composite_ops():
        twin = execution(lambda g, lr: step(b, g, lr), tf.constant(g), tf.constant(0.02))
    assert same_bits(a.numpy(), b.numpy())
    ref = UpdateReference(w, g, 0.02, uf, sf, (3, 8))
    for stats in (custom, twin):
        check(stats, ref, a.numpy(), w.size)
    assert custom.update_underflow_fraction.numpy() == twin.update_underflow_fraction.numpy()


def test_hand_computed_step(implementation):
    v = tf.Variable([1.0, 1.0, 1.0, 7.0])
    # raw = -0.5 * g = [-0.5, 0, -5e-7, 1.5]; s8.4 update: delta = [-0.5, 0, 0, 1.5]
    # (1 of 3 nonzero raws underflows); 7 + 1.5 = 8.5 lies beyond s8.4's rail
    # 7.9375 and is stored there.
    s = update_quantize_store(v, [1.0, 0.0, 1e-6, -3.0], 0.5, "s8.4", "s8.4")
    np.testing.assert_array_equal(v.numpy(), [0.5, 1.0, 1.0, 7.9375])
    assert s.update_underflow_fraction.numpy() == np.float32(1 / 3)
    assert s.storage_saturation_fraction.numpy() == np.float32(0.25)
    assert s.actual_update_norm.numpy() == np.float32(np.hypot(0.5, 0.9375))
    assert s.update_dot.numpy() == np.float32(0.25 + 1.5 * 0.9375)


def test_update_delta_is_quantize_tensor(implementation):
    """delta = quantize_tensor(raw, fmt, seed): with a zero weight and no storage format."""
    g = tf.random.stateless_normal([5000], seed=(1, 1))
    v = tf.Variable(tf.zeros([5000]))
    update_quantize_store(v, g, 0.1, "s8.7:stochastic", None, seed=(21, 22))
    want = quantize_tensor(-0.1 * g, "s8.7:stochastic", seed=(21, 22))
    assert same_bits(v.numpy(), want.numpy())


def test_learning_rate_float_or_tensor_without_retracing(implementation):
    v = tf.Variable(tf.ones([4]))

    @tf.function
    def step(lr):
        return update_quantize_store(v, tf.ones([4]), lr, None, "s8.4")

    step(tf.constant(0.25))
    step(tf.constant(0.125))
    np.testing.assert_array_equal(v.numpy(), [0.625] * 4)
    assert step.experimental_get_tracing_count() == 1
    update_quantize_store(v, tf.ones([4]), 0.125, None, None)  # Python float
    np.testing.assert_array_equal(v.numpy(), [0.5] * 4)
    update_quantize_store(v, tf.ones([4]), tf.constant(0.25, tf.float64), None, None)
    np.testing.assert_array_equal(v.numpy(), [0.25] * 4)


def test_unused_result_still_updates_in_function(implementation):
    v = tf.Variable([2.0])

    @tf.function
    def step():
        update_quantize_store(v, [1.0], 1.0)

    step()
    assert v.numpy()[0] == 1.0


def test_reads_taken_before_are_not_changed(implementation):
    v = tf.Variable([1.0, 2.0])
    before = v.read_value()
    update_quantize_store(v, [1.0, 1.0], 1.0)
    np.testing.assert_array_equal(before.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(v.numpy(), [0.0, 1.0])


def test_keras_variable(implementation):
    kv = keras.Variable(np.array([1.0, 2.0, 3.0], np.float32))
    s = update_quantize_store(kv, tf.constant([1.0, 1.0, 1.0]), 0.5, None, "s8.2")
    np.testing.assert_array_equal(kv.numpy(), [0.5, 1.5, 2.5])
    assert float(s.raw_update_norm) == pytest.approx(np.sqrt(0.75))


def test_half_types_use_float32_compute():
    for dtype in (tf.float16, tf.bfloat16):
        w = np.array([1.0, 0.5, -2.0], np.float32)
        g = np.array([1.0, 0.01, 3.0], np.float32)
        v = tf.Variable(tf.constant(w, dtype))
        s = update_quantize_store(v, tf.constant(g, dtype), 0.25, "s8.6", "s6.3")
        w16 = tf.constant(w, dtype).numpy().astype(np.float32)
        g16 = tf.constant(g, dtype).numpy().astype(np.float32)
        ref = UpdateReference(w16, g16, 0.25, FixedPoint.parse("s8.6"), FixedPoint.parse("s6.3"))
        assert v.dtype == dtype
        np.testing.assert_array_equal(v.numpy().astype(np.float32), ref.new)
        assert s.update_underflow_fraction.numpy() == ref.underflow_fraction


def test_empty_variable(implementation):
    v = tf.Variable(tf.zeros([0, 3]))
    s = update_quantize_store(v, tf.zeros([0, 3]), 0.1, "s8.4", "s8.4")
    assert [float(x) for x in s] == [0.0] * 5


def test_bad_arguments(implementation):
    v = tf.Variable(tf.zeros([3]))
    with pytest.raises(ValueError, match="tf.Variable or keras.Variable, got EagerTensor"):
        update_quantize_store(tf.zeros([3]), tf.zeros([3]), 0.1)
    with pytest.raises(ValueError, match="got ndarray"):
        update_quantize_store(np.zeros(3), np.zeros(3), 0.1)
    with pytest.raises(ValueError, match=r"grad shape \(4,\) differs.*shape \(3,\)"):
        update_quantize_store(v, tf.zeros([4]), 0.1)
    with pytest.raises(ValueError, match="grad dtype float64 differs.*float32"):
        update_quantize_store(v, tf.zeros([3], tf.float64), 0.1)
    with pytest.raises(ValueError, match=r"learning_rate must be a scalar, got shape \(2,\)"):
        update_quantize_store(v, tf.zeros([3]), [0.1, 0.2])
    with pytest.raises(ValueError, match="s25.4.*float32"):
        update_quantize_store(v, tf.zeros([3]), 0.1, None, "s25.4")
    with pytest.raises(ValueError, match="int32"):
        update_quantize_store(tf.Variable([1, 2]), [1, 2], 0.1)


def test_dynamic_shape_mismatch_is_reported(implementation):
    v = tf.Variable(tf.zeros([3]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def step(g):
        return update_quantize_store(v, g, 0.1)

    with pytest.raises(tf.errors.InvalidArgumentError, match="shape"):
        step(tf.zeros([5]))


# XLA ----------------------------------------------------------------------------

def test_twin_compiles_under_xla():
    uf, sf = FixedPoint.parse("s8.12:stochastic"), FixedPoint.parse("s8.5")
    w, g = inputs(4099, np.float32, 2, sf)
    v = tf.Variable(w)

    @tf.function(jit_compile=True)
    def step(g, lr):
        with composite_ops():
            return update_quantize_store(v, g, lr, uf, sf, seed=(5, 5))

    stats = step(tf.constant(g), tf.constant(0.05))
    check(stats, UpdateReference(w, g, 0.05, uf, sf, (5, 5)), v.numpy(), w.size)


def test_twin_under_xla_without_update_format_within_product_rounding():
    """XLA may fuse the unquantized var + (-lr * grad) into one multiply-add,
    skipping the rounding of the product: the stored value then differs by at
    most half an ulp of raw plus one ulp of the result."""
    w, g = inputs(4099, np.float32, 3)
    v = tf.Variable(w)

    @tf.function(jit_compile=True)
    def step(g):
        with composite_ops():
            return update_quantize_store(v, g, 0.37)

    stats = step(tf.constant(g))
    ref = UpdateReference(w, g, 0.37, None, None)
    bound = 0.5 * np.spacing(np.abs(ref.raw)) + np.spacing(np.abs(ref.new))
    assert np.all(np.abs(v.numpy() - ref.new) <= bound)
    assert stats.update_underflow_fraction.numpy() == ref.underflow_fraction
    (raw_norm, _, _), _ = ref.sums()
    assert stats.raw_update_norm.numpy() == pytest.approx(raw_norm, rel=2**-22)


# MirroredStrategy (the session's strategy over two logical CPUs, see conftest) ------

def test_mirrored_per_replica_in_strategy_run(implementation, mirrored_strategy):
    strategy = mirrored_strategy
    with strategy.scope():
        v = tf.Variable(tf.fill([6], 1.0))
        kv = keras.Variable(np.full([6], 2.0, np.float32))
    g = tf.random.stateless_normal([6], seed=(1, 3))

    @tf.function
    def step():
        def replica_fn():
            a = update_quantize_store(v, g, 0.5, "s8.6", "s8.4", seed=(1, 2))
            b = update_quantize_store(kv, g, 0.5, None, "s8.4")
            return a.raw_update_norm + b.raw_update_norm

        return strategy.run(replica_fn)

    norms = strategy.experimental_local_results(step())
    want_v = UpdateReference(np.ones(6, np.float32), g.numpy(), 0.5, FixedPoint.parse("s8.6"),
                             FixedPoint.parse("s8.4"), (1, 2)).new
    want_k = UpdateReference(np.full(6, 2.0, np.float32), g.numpy(), 0.5, None,
                             FixedPoint.parse("s8.4")).new
    for copy in strategy.experimental_local_results(v):
        np.testing.assert_array_equal(copy.numpy(), want_v)
    for copy in strategy.experimental_local_results(kv.value):
        np.testing.assert_array_equal(copy.numpy(), want_k)
    assert len(norms) == 2 and norms[0].numpy() == norms[1].numpy()


def test_mirrored_extended_update_and_cross_replica_error(implementation, mirrored_strategy):
    strategy = mirrored_strategy
    with strategy.scope():
        v = tf.Variable(tf.fill([3], 1.0))
        strategy.extended.update(v, lambda c: update_quantize_store(c, tf.ones([3]), 0.25)[0],
                                 group=False)
        with pytest.raises(ValueError, match="cross-replica context.*strategy.run"):
            update_quantize_store(v, tf.ones([3]), 0.25)
    for copy in strategy.experimental_local_results(v):
        np.testing.assert_array_equal(copy.numpy(), [0.75] * 3)


# Properties -----------------------------------------------------------------------

@st.composite
def update_case(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    max_bits = 24 if dtype == np.float32 else 32

    def fmt():
        if draw(st.booleans()):
            return None
        signed = draw(st.booleans())
        return FixedPoint(draw(st.integers(2 if signed else 1, max_bits)),
                          draw(st.integers(-4, 30)), signed,
                          draw(st.sampled_from(ROUNDING_MODES)), draw(st.sampled_from(OVERFLOW_MODES)))

    n = draw(st.integers(0, 60))
    width = 32 if dtype == np.float32 else 64
    # Subnormals included: every device, and the reference, reads them as zeros.
    elements = st.floats(-1e6, 1e6, width=width) | st.sampled_from(
        [0.0, -0.0, 1e-40, -3e-39, 2.0**-126, 5e-324])
    w = np.array(draw(st.lists(elements, min_size=n, max_size=n)), dtype)
    g = np.array(draw(st.lists(elements, min_size=n, max_size=n)), dtype)
    lr = draw(st.sampled_from([1.0, 0.1, 1e-4, 3.0, 1e30]))
    seed = draw(st.tuples(st.integers(-2**40, 2**40), st.integers(0, 2**31)))
    return w, g, lr, fmt(), fmt(), seed


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(update_case())
def test_property_matches_reference_and_twin(case):
    w, g, lr, uf, sf, seed = case
    a, b = tf.Variable(w), tf.Variable(w)
    custom = update_quantize_store(a, g, lr, uf, sf, seed=seed)
    with composite_ops():
        twin = update_quantize_store(b, g, lr, uf, sf, seed=seed)
    ref = UpdateReference(w, g, lr, uf, sf, seed)
    check(custom, ref, a.numpy(), w.size)
    check(twin, ref, b.numpy(), w.size)
    assert same_bits(a.numpy(), b.numpy())
    assert custom.update_underflow_fraction.numpy() == twin.update_underflow_fraction.numpy()
    assert custom.storage_saturation_fraction.numpy() == twin.storage_saturation_fraction.numpy()


# Thread-count independence ----------------------------------------------------------

_THREAD_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf
    sys.path.insert(0, {root!r})
    from tensorflow_kappa.quantization import rail_stats, update_quantize_store

    def run():
        x = tf.random.stateless_normal([1 << 21], seed=(5, 9), stddev=3.0)
        g = tf.random.stateless_normal([1 << 21], seed=(6, 1), stddev=1e-2)
        v = tf.Variable(x)
        up = update_quantize_store(v, g, 0.3, "s8.14:stochastic", "s8.6", seed=(2, 3))
        rs = rail_stats(x, "s6.3", 0.85)
        out = [float(t.numpy()) for t in list(up) + list(rs)]
        digest = float(tf.reduce_sum(tf.cast(v, tf.float64) * tf.range(1 << 21, dtype=tf.float64)))
        return [o.hex() for o in out + [digest]]

    if __name__ == "__main__":
        print(json.dumps({{"threads": tf.config.threading.get_intra_op_parallelism_threads(),
                          "result": run()}}))
""")


def test_results_do_not_depend_on_thread_count(tmp_path):
    """The same stateless inputs give bit-identical statistics and weights with one
    intra-op thread and with three (two subprocesses: the pool size is fixed at
    start-up), and in this process (TensorFlow's default pool, which on a small
    machine with oneDNN may itself be a single thread)."""
    root = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "thread_run.py"
    script.write_text(_THREAD_SCRIPT.format(root=root))
    procs = {}
    for threads in ("1", "3"):
        env = dict(os.environ, TF_NUM_INTRAOP_THREADS=threads, TF_CPP_MIN_LOG_LEVEL="2")
        procs[threads] = subprocess.Popen([sys.executable, str(script)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True)
    results = {}
    for threads, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        results[threads] = json.loads(out.strip().splitlines()[-1])["result"]
    sys.path.insert(0, str(tmp_path))
    try:
        import thread_run  # noqa: PLC0415
    finally:
        sys.path.remove(str(tmp_path))
    assert results["1"] == results["3"]
    assert thread_run.run() == results["1"]

"""tensorflow_kappa.core against the TensorFlow op, the pure-TF twin and the NumPy
references, on the ops' whole format x mode matrix; its argument checks."""
import numpy as np
import pytest
import tensorflow as tf

from references.fixed_point import quantize_reference, same_bits
from references.op_cases import (FRACTION_CASES, MODE_PAIRS, RAIL_FORMATS, edge_values, formats_for,
                      fraction_case, inputs, values_for)
from references.stats import UpdateReference, assert_sums_close, rail_stats_reference
from tensorflow_kappa import core
from tensorflow_kappa.quantization import (OVERFLOW_MODES, ROUNDING_MODES, FixedPoint,
                                           composite_ops, quantize_tensor, rail_stats,
                                           update_quantize_store)

FLOATS = [tf.float32, tf.float64]
# Ordinary seeds and the extremes of both int64 words (all 64 bits count).
SEEDS = [(3, 5), (-2**63, 2**63 - 1)]


def op_and_twin(fn):
    """fn() with the custom op, then with the pure-TF twin."""
    custom = fn()
    with composite_ops():
        twin = fn()
    return custom, twin


@pytest.fixture
def threads():
    """Restores the thread count a test changes."""
    before = core.get_num_threads()
    yield
    core.set_num_threads(before)


# quantize ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_quantize_matches_op_twin_and_reference(rounding, overflow, dtype):
    rng = np.random.default_rng(1)
    for fmt in formats_for(dtype, rounding, overflow):
        x = np.concatenate([edge_values(fmt, dtype),
                            rng.normal(0, 4 * max(fmt.max_value, 1), 3000)]).astype(
                                dtype.as_numpy_dtype)
        for seed in SEEDS:
            got = core.quantize(x, fmt, seed=seed)
            op, twin = op_and_twin(lambda: quantize_tensor(tf.constant(x), fmt, seed=seed).numpy())
            assert got.dtype == x.dtype and got.shape == x.shape
            assert same_bits(got, op), f"{fmt} {dtype.name} seed {seed}: core != op"
            assert same_bits(got, twin), f"{fmt} {dtype.name} seed {seed}: core != twin"
            assert same_bits(got, quantize_reference(x, fmt, seed)), f"{fmt}: core != reference"


def _binding_case(case):
    """The case, marked as the binding's known deviation (docs/rounding.md) where v is a
    positive subnormal: without flush-to-zero the binding rounds it up when u = 0."""
    dtype, fmt, value, _, _ = case
    info = np.finfo(dtype.as_numpy_dtype)
    v = value * 2.0 ** FixedPoint.parse(fmt).frac_bits
    if info.smallest_subnormal <= v < info.tiny:
        return pytest.param(case, marks=pytest.mark.xfail(
            strict=True, reason="known deviation: a positive subnormal v rounds up when u = 0"))
    return case


@pytest.mark.parametrize("case", [_binding_case(c) for c in FRACTION_CASES],
                         ids=lambda c: f"{c[1]}-{c[0].name}-{c[2]:g}")
def test_stochastic_rounding_takes_the_fraction_the_compute_type_holds(case):
    x, seed, element, want = fraction_case(case)
    got = core.quantize(x, case[1], seed=seed)
    assert same_bits(got[element:], np.array([want], x.dtype)), got[element]


def test_quantize_many_blocks_any_thread_count(threads):
    """Arrays of many kernel blocks (2**14 elements each), stochastic: the same bits
    as the op whatever the number of threads."""
    x = np.random.default_rng(2).normal(0, 3, (3, 40_001)).astype(np.float32)
    fmt = "s8.5:stochastic:wrap"
    op = quantize_tensor(tf.constant(x), fmt, seed=(9, -9)).numpy()
    for n in (1, 2, 3, 7):
        core.set_num_threads(n)
        assert core.get_num_threads() == n
        assert same_bits(core.quantize(x, fmt, seed=(9, -9)), op), n


def test_quantize_into_out_and_in_place():
    x = np.random.default_rng(3).normal(0, 2, (64, 33))
    want = core.quantize(x, "s6.3:truncate")
    out = np.full_like(x, np.nan)
    assert core.quantize(x, "s6.3:truncate", out=out) is out
    assert same_bits(out, want)
    assert core.quantize(x, "s6.3:truncate", out=x) is x
    assert same_bits(x, want)


def test_large_results_reuse_freed_memory_and_never_alias_live_arrays():
    """Results of 1 MiB and more come from the binding's cache of freed results."""
    x = np.random.default_rng(7).normal(0, 3, (512, 1024)).astype(np.float32)  # 2 MiB
    want = quantize_reference(x, FixedPoint(8, 4))
    a = core.quantize(x, "s8.4")
    b = core.quantize(x, "s8.4")
    assert not np.may_share_memory(a, b)
    address = a.ctypes.data
    del a
    c = core.quantize(x, "s8.4")
    assert c.ctypes.data == address  # a's buffer, handed out again
    for y in (b, c):
        assert y.flags.c_contiguous and y.flags.writeable and y.shape == x.shape
        assert same_bits(y, want)
    c[:] = 0  # writing one result leaves the other alone
    assert same_bits(b, want)


def test_quantize_shapes_scalars_and_empty():
    for shape in [(), (0,), (3, 0, 2), (2, 3, 4)]:
        x = np.random.default_rng(4).normal(0, 4, shape).astype(np.float32)
        y = core.quantize(x, "s8.4")
        assert type(y) is np.ndarray and y.shape == x.shape and y.dtype == x.dtype
        assert same_bits(y, quantize_reference(x, FixedPoint(8, 4)))


def test_seed_none_draws_from_numpys_global_generator():
    x = np.full(1000, 0.3)
    np.random.seed(5)
    a = core.quantize(x, "s8.2:stochastic")
    b = core.quantize(x, "s8.2:stochastic")
    np.random.seed(5)
    assert same_bits(core.quantize(x, "s8.2:stochastic"), a)
    assert not np.array_equal(a, b)
    # Not stochastic: no seed drawn, none needed.
    state = np.random.get_state()[1].copy()
    core.quantize(x, "s8.2")
    assert np.array_equal(np.random.get_state()[1], state)


# rail_stats -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
def test_rail_stats_matches_op_twin_and_reference(dtype):
    for k, text in enumerate(RAIL_FORMATS):
        fmt = FixedPoint.parse(text)
        if not fmt.fits_dtype(dtype):
            continue
        x = values_for(fmt, dtype, k)
        for near_rail in (0.9, 0.5, 0.0, 1.0):
            got = core.rail_stats(x, fmt, near_rail)
            op, twin = op_and_twin(lambda: [v.numpy() for v in rail_stats(x, fmt, near_rail)])
            want = rail_stats_reference(x, fmt, near_rail)
            assert isinstance(got, core.RailStats)
            assert all(isinstance(v, np.float32) for v in got)
            assert list(got) == op == twin == list(want), f"{text} {dtype.name} {near_rail}"


def test_rail_stats_any_thread_count(threads):
    x = np.random.default_rng(6).normal(0, 5, 200_003)
    want = [v.numpy() for v in rail_stats(x, "s6.2", 0.8)]
    for n in (1, 2, 5):
        core.set_num_threads(n)
        assert list(core.rail_stats(x, "s6.2", 0.8)) == want


# update_quantize_store ------------------------------------------------------------

def core_op_twin_update(w, g, lr, uf, sf, seed):
    """The step by the binding (in place on a copy), the op and the twin (variables)."""
    wc = w.copy()
    stats = core.update_quantize_store(wc, g, lr, uf, sf, seed=seed)
    variables = [tf.Variable(w), tf.Variable(w)]
    op = update_quantize_store(variables[0], g, lr, uf, sf, seed=seed)
    with composite_ops():
        twin = update_quantize_store(variables[1], g, lr, uf, sf, seed=seed)
    return (wc, stats), (variables[0].numpy(), [v.numpy() for v in op]), \
        (variables[1].numpy(), [v.numpy() for v in twin])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("update_fmt, storage_fmt", MODE_PAIRS)
def test_update_matches_op_twin_and_reference(update_fmt, storage_fmt, dtype):
    uf = None if update_fmt is None else FixedPoint.parse(update_fmt)
    sf = None if storage_fmt is None else FixedPoint.parse(storage_fmt)
    w, g = inputs(3001, dtype, 5, sf)
    (wc, stats), (wo, op), (wt, twin) = core_op_twin_update(w, g, 0.375, uf, sf, (11, -4))
    assert isinstance(stats, core.UpdateStats) and all(isinstance(v, np.float32) for v in stats)
    assert same_bits(wc, wo) and same_bits(wc, wt), "stored weights differ"
    # The same functor as the op: every statistic bit for bit. The twin sums in
    # another order: its fractions are equal, its sums within the bound below.
    assert same_bits(np.array(stats), np.array(op))
    assert list(stats)[3:] == twin[3:]
    ref = UpdateReference(w, g, 0.375, uf, sf, (11, -4))
    np.testing.assert_array_equal(wc, ref.new)
    assert stats.update_underflow_fraction == ref.underflow_fraction
    assert stats.storage_saturation_fraction == ref.saturation_fraction
    assert_sums_close(stats, ref, w.size)


def test_update_many_blocks_any_thread_count(threads):
    """Many kernel blocks (2**13 elements each), full-width seeds: weights and all
    five statistics equal the op's whatever the number of threads."""
    sf, uf = FixedPoint.parse("s8.5:stochastic"), FixedPoint.parse("s8.12:stochastic")
    w, g = inputs(5 * 8192 + 7, np.float32, 9, sf)
    seed = (2**63 - 1, -2**63)
    var = tf.Variable(w)
    op = [v.numpy() for v in update_quantize_store(var, g, 0.02, uf, sf, seed=seed)]
    for n in (1, 2, 3):
        core.set_num_threads(n)
        wc = w.copy()
        stats = core.update_quantize_store(wc, g, 0.02, uf, sf, seed=seed)
        assert same_bits(wc, var.numpy()) and same_bits(np.array(stats), np.array(op)), n


def test_update_hand_computed_step():
    w = np.array([1.0, 1.0, 1.0, 7.0], np.float32)
    s = core.update_quantize_store(w, np.array([1.0, 0.0, 1e-6, -3.0], np.float32), 0.5,
                                   "s8.4", "s8.4")
    np.testing.assert_array_equal(w, [0.5, 1.0, 1.0, 7.9375])
    assert s.update_underflow_fraction == np.float32(1 / 3)
    assert s.storage_saturation_fraction == np.float32(0.25)
    assert s.actual_update_norm == np.float32(np.hypot(0.5, 0.9375))


def test_update_learning_rate_rounds_to_the_dtype():
    """0.1 is rounded to float32 for float32 weights, as the op casts it."""
    w, g = np.ones(3, np.float32), np.ones(3, np.float32)
    core.update_quantize_store(w, g, 0.1)
    np.testing.assert_array_equal(w, np.float32(1) - np.float32(0.1))
    for lr in (np.float64(0.25), np.array(0.25), 1):
        w = np.ones(2)
        core.update_quantize_store(w, np.ones(2), lr)
        np.testing.assert_array_equal(w, [1 - float(lr)] * 2)


#: Learning rates around every edge of float32 and float64: subnormal, the largest
#: finite value, just past it (infinite in float32 only), infinities, NaN, signs.
LEARNING_RATES = [0.0, -0.0, 1e-45, 1e-320, 0.1, 3.4e38, 3.5e38, 1e40, 1e300, 1e309,
                  -1e-45, -0.1, float("nan"), np.float64(1e40), np.float32(2.0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lr", LEARNING_RATES, ids=repr)
def test_update_takes_the_learning_rates_the_op_takes(lr, dtype):
    """The binding checks the learning rate in the arrays' dtype, as the op does: it
    refuses what the op refuses (1e40 for float32: zero gradients would make NaN
    weights) and gives the op's weights where both take it."""
    start, grad = np.array([1.0, 0.5, -2.0], dtype), np.array([0.0, 1e-3, -1.0], dtype)
    variable = tf.Variable(start)
    try:
        update_quantize_store(variable, grad, lr, None, "s16.8")
        op = variable.numpy()
    except ValueError:
        op = None
    w = start.copy()
    if op is None:
        with pytest.raises(ValueError, match="learning_rate must be finite and >= 0 in the "
                           f"arrays' dtype \\({np.dtype(dtype)}\\)"):
            core.update_quantize_store(w, grad, lr, None, "s16.8")
        np.testing.assert_array_equal(w, start)
    else:
        core.update_quantize_store(w, grad, lr, None, "s16.8")
        np.testing.assert_array_equal(w, op)
        assert np.all(np.isfinite(w))


def test_update_empty():
    w = np.zeros((0, 3), np.float32)
    assert [float(v) for v in core.update_quantize_store(w, w.copy(), 0.1, "s8.4", "s8.4")] == \
        [0.0] * 5


# Bad input ------------------------------------------------------------------------

def test_quantize_bad_arrays():
    x = np.zeros((4, 4), np.float32)
    read_only = np.zeros_like(x)
    read_only.setflags(write=False)
    cases = [
        (TypeError, "x must be a NumPy array.*got list", lambda: core.quantize([0.1, 0.2], "s8.4")),
        (TypeError, "x must have dtype float32 or float64.*got int64",
         lambda: core.quantize(np.arange(3), "s8.4")),
        (TypeError, "got <f2", lambda: core.quantize(x.astype(np.float16), "s8.4")),
        (TypeError, "got >f4", lambda: core.quantize(x.astype(">f4"), "s8.4")),
        (ValueError, r"x must be C-contiguous.*shape \(4, 2\).*np.ascontiguousarray\(x\)",
         lambda: core.quantize(x[:, ::2], "s8.4")),
        (ValueError, "x must be C-contiguous", lambda: core.quantize(np.asfortranarray(x), "s8.4")),
        (ValueError, "out is read-only", lambda: core.quantize(x, "s8.4", out=read_only)),
        (ValueError, r"out must have the shape of x \(4, 4\), got \(16,\)",
         lambda: core.quantize(x, "s8.4", out=np.zeros(16, np.float32))),
        (TypeError, "out must have the dtype of x \\(float32\\), got float64",
         lambda: core.quantize(x, "s8.4", out=np.zeros((4, 4)))),
    ]
    for error, match, call in cases:
        with pytest.raises(error, match=match):
            call()


def test_overlap_check_sees_views_of_one_buffer():
    buffer = np.zeros(8)
    with pytest.raises(ValueError, match="out overlaps x partly"):
        core.quantize(buffer[:4], "s8.4", out=buffer[2:6])
    core.quantize(buffer[:4], "s8.4", out=buffer[4:])  # disjoint halves: fine


def test_bad_formats_seeds_and_near_rail_name_the_argument():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="fmt: Cannot parse fixed-point format 's8'"):
        core.quantize(x, "s8")
    with pytest.raises(ValueError, match="fmt: Format s25.4 .* not exactly representable in "
                                         "float32; use float64 inputs"):
        core.quantize(x, "s25.4")
    assert core.quantize(x.astype(np.float64), "s25.4").dtype == np.float64
    with pytest.raises(ValueError, match="fmt: Expected a FixedPoint"):
        core.rail_stats(x, 8)
    with pytest.raises(ValueError, match="seed must be two integers.*shape"):
        core.quantize(x, "s8.4:stochastic", seed=(1, 2, 3))
    with pytest.raises(ValueError, match="out of the int64 range"):
        core.quantize(x, "s8.4:stochastic", seed=(2**63, 0))
    with pytest.raises(ValueError, match="near_rail must lie in"):
        core.rail_stats(x, "s8.4", near_rail=1.5)
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        core.set_num_threads(0)


def test_update_bad_input_leaves_the_weights_untouched():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    g = np.ones((2, 3), np.float32)
    read_only = w.copy()
    read_only.setflags(write=False)
    cases = [
        (ValueError, "w is read-only, but it is updated in place",
         lambda: core.update_quantize_store(read_only, g, 0.1)),
        (ValueError, "w must be C-contiguous.*and use that copy",
         lambda: core.update_quantize_store(w.T, g.T.copy(), 0.1)),
        (TypeError, "w must be a NumPy array", lambda: core.update_quantize_store(
            w.tolist(), g, 0.1)),
        (TypeError, "w must have dtype float32 or float64.*int32",
         lambda: core.update_quantize_store(np.zeros((2, 3), np.int32), g, 0.1)),
        (TypeError, r"grad must have the dtype of w \(float32\), got float64",
         lambda: core.update_quantize_store(w, g.astype(np.float64), 0.1)),
        (ValueError, r"grad must have the shape of w \(2, 3\), got \(3, 2\)",
         lambda: core.update_quantize_store(w, g.reshape(3, 2), 0.1)),
        (ValueError, "grad must be C-contiguous", lambda: core.update_quantize_store(
            w, np.ones((2, 6), np.float32)[:, ::2], 0.1)),
        (ValueError, "grad shares memory with w", lambda: core.update_quantize_store(w, w, 0.1)),
        (TypeError, "learning_rate must be a real number, got '0.1'",
         lambda: core.update_quantize_store(w, g, "0.1")),
        (ValueError, r"learning_rate must be finite and >= 0 in the arrays' dtype "
         r"\(float32\), got nan", lambda: core.update_quantize_store(w, g, float("nan"))),
        (ValueError, "storage_format: Format s25.4",
         lambda: core.update_quantize_store(w, g, 0.1, "s8.4", "s25.4")),
        (ValueError, "update_format: Unknown option 'up'",
         lambda: core.update_quantize_store(w, g, 0.1, "s8.4:up")),
    ]
    before = w.copy()
    for error, match, call in cases:
        with pytest.raises(error, match=match):
            call()
        np.testing.assert_array_equal(w, before)


def test_the_extension_checks_memory_safety_on_its_own():
    """Called directly (bypassing the Python checks), the extension still refuses
    what would read or write the wrong memory."""
    ext = core.ops.extension()
    fmt = (8, 4, True, "nearest_even", "saturate")
    x = np.zeros(8, np.float32)
    with pytest.raises(TypeError):
        ext.quantize([0.0] * 8, x, fmt, 0, 0)  # no silent conversion into a temporary
    with pytest.raises(ValueError, match="C-contiguous"):
        ext.quantize(x[::2], np.zeros(4, np.float32), fmt, 0, 0)
    read_only = np.zeros(8, np.float32)
    read_only.setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        ext.quantize(x, read_only, fmt, 0, 0)
    with pytest.raises(ValueError, match="shape"):
        ext.quantize(x, np.zeros(9, np.float32), fmt, 0, 0)
    with pytest.raises(ValueError, match="overlap"):
        ext.update_quantize_store(x, x, 0.1, None, None, 0, 0)
    with pytest.raises(ValueError, match="rounding 'up'"):
        ext.quantize(x, x, (8, 4, True, "up", "saturate"), 0, 0)


# FixedPoint without TensorFlow --------------------------------------------------------

def test_fixed_point_takes_numpy_and_named_dtypes():
    fmt = FixedPoint.parse("s25.4")
    assert not fmt.fits_dtype(np.float32) and fmt.fits_dtype(np.dtype("float64"))
    assert fmt.fits_dtype("float64") and not fmt.fits_dtype("bfloat16")
    assert fmt.fits_dtype(tf.float64) and not fmt.fits_dtype(tf.float32)
    with pytest.raises(ValueError, match="takes float16, bfloat16, float32 or float64.*int8"):
        fmt.check_dtype(np.int8)
    with pytest.raises(ValueError, match="is not a dtype"):
        fmt.check_dtype("fancy")
    with pytest.raises(ValueError, match="float16; use float32 inputs"):
        FixedPoint.parse("s12.4").check_dtype(np.float16)

"""rail_stats against the NumPy float64 reference; custom op and twin agree bit for bit."""
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from references.op_cases import DTYPES, RAIL_FORMATS, values_for
from references.stats import rail_stats_reference
from tensorflow_kappa.quantization import FixedPoint, RailStats, composite_ops, rail_stats


def fits(fmt: str, dtype: tf.DType) -> bool:
    return FixedPoint.parse(fmt).fits_dtype(dtype)


def check(got: RailStats, want):
    assert isinstance(got, RailStats)
    for g, w, name in zip(got, want, RailStats._fields):
        assert g.dtype == tf.float32 and g.shape == []
        assert g.numpy() == w, f"{name}: {g.numpy()!r} != {w!r}"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_matches_reference(implementation, dtype):
    for k, text in enumerate(RAIL_FORMATS):
        if not fits(text, dtype):
            continue
        fmt = FixedPoint.parse(text)
        x = values_for(fmt, dtype, k)
        for near_rail in (0.9, 0.5, 0.0, 1.0):
            got = rail_stats(tf.constant(x, dtype), fmt, near_rail)
            check(got, rail_stats_reference(x, fmt, near_rail))


def test_eager_and_function(implementation, execution):
    x = tf.random.stateless_normal([50_000], seed=(4, 2), stddev=3.0)
    got = execution(lambda x: rail_stats(x, "s6.2", near_rail=0.8), x)
    check(got, rail_stats_reference(x.numpy(), FixedPoint.parse("s6.2"), 0.8))


def test_hand_computed_values(implementation):
    # s4.0: rails -8 and 7; near_rail 0.5: m = 3.75, near at >= 3.25 or <= -4.25.
    x = [np.nan, 8.0, -9.0, 3.5, 0.25, 0.5, -0.5, 0.0, 2.0, np.nan]
    s = rail_stats(x, "s4.0", near_rail=0.5)
    assert (s.saturation_fraction.numpy(), s.near_rail_fraction.numpy()) == (np.float32(0.2),
                                                                             np.float32(0.3))
    # nonzero numbers: 8, -9, 3.5, 0.25, 0.5, -0.5, 2 (NaN excluded); 0.25 and
    # +-0.5 (a tie, to even) round to 0.
    assert s.underflow_fraction.numpy() == np.float32(3 / 7)


def test_format_modes_do_not_matter_and_unsigned_negatives_underflow(implementation):
    x = tf.constant([-3.0, -0.01, 0.2, 100.0])
    plain = rail_stats(x, "u6.2")
    other = rail_stats(x, "u6.2:stochastic:wrap")
    assert [v.numpy() for v in plain] == [v.numpy() for v in other]
    # u6.2 rails 0 and 15.75: -3, -0.01 and 100 lie beyond them; all four
    # are nonzero, and -3 and -0.01 saturate to 0.
    assert plain.saturation_fraction.numpy() == 0.75
    assert plain.underflow_fraction.numpy() == 0.5


def test_empty_all_zero_and_all_nan(implementation):
    for x in [tf.zeros([0]), tf.zeros([3, 0, 2], tf.float64)]:
        assert [float(v) for v in rail_stats(x, "s8.4")] == [0.0, 0.0, 0.0]
    zeros = rail_stats(tf.zeros([100]), "s8.4")
    assert float(zeros.underflow_fraction) == 0.0
    nans = rail_stats(tf.fill([10], np.nan), "s8.4")
    assert [float(v) for v in nans] == [0.0, 0.0, 0.0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="near_rail must lie in"):
        rail_stats([1.0], "s8.4", near_rail=1.5)
    with pytest.raises(ValueError, match="near_rail must be a number"):
        rail_stats([1.0], "s8.4", near_rail="0.9")
    with pytest.raises(ValueError, match="s25.4.*float32"):
        rail_stats(tf.zeros([3]), "s25.4")
    with pytest.raises(ValueError, match="int32"):
        rail_stats(tf.zeros([3], tf.int32), "s8.4")


def test_not_differentiable(implementation):
    x = tf.constant([1.0, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        s = rail_stats(x, "s8.4")
    assert tape.gradient(s.near_rail_fraction, x) is None


@st.composite
def format_values_near_rail(draw):
    dtype = draw(st.sampled_from([tf.float32, tf.float64]))
    signed = draw(st.booleans())
    bits = draw(st.integers(2 if signed else 1, 24 if dtype == tf.float32 else 32))
    fmt = FixedPoint(bits, draw(st.integers(-8, 30)), signed)
    width = 32 if dtype == tf.float32 else 64
    # Subnormals included: they read as zeros on every device and in the reference.
    values = draw(st.lists(st.floats(width=width), max_size=40))
    codes = draw(st.lists(st.integers(-2 * 2**bits, 2 * 2**bits), max_size=20))
    fracs = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75]), min_size=20, max_size=20))
    on_grid = [(k + f) * fmt.lsb for k, f in zip(codes, fracs)]
    near_rail = draw(st.floats(0.0, 1.0))
    return fmt, np.array(values + on_grid, dtype.as_numpy_dtype), near_rail


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(format_values_near_rail())
def test_property_matches_reference_and_twin(case):
    fmt, x, near_rail = case
    custom = rail_stats(x, fmt, near_rail)
    with composite_ops():
        twin = rail_stats(x, fmt, near_rail)
    want = rail_stats_reference(x, fmt, near_rail)
    check(custom, want)
    check(twin, want)


def test_twin_compiles_under_xla():
    x = tf.random.stateless_normal([1 << 16], seed=(7, 1), stddev=5.0)

    @tf.function(jit_compile=True)
    def stats(x):
        with composite_ops():
            return rail_stats(x, "s6.2", 0.9), rail_stats(tf.cast(x, tf.float16), "s6.2", 0.75)

    got32, got16 = stats(x)
    check(got32, rail_stats_reference(x.numpy(), FixedPoint.parse("s6.2"), 0.9))
    x16 = tf.cast(x, tf.float16).numpy()
    check(got16, rail_stats_reference(x16, FixedPoint.parse("s6.2"), 0.75))

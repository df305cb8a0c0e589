"""quantize_tensor and FixedPoint against the NumPy reference, TF's own op, and each other."""
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from references.fixed_point import quantize_reference, same_bits
from references.op_cases import DTYPES, FRACTION_CASES, edge_values, formats_for, fraction_case
from tensorflow_kappa.quantization import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    FixedPoint,
    composite_ops,
    quantize_tensor,
)


# FixedPoint -----------------------------------------------------------------

def test_parse_and_str_round_trip():
    for text in ["s8.4", "u8.8", "s8.-2", "u1.0", "s32.40", "s8.4:stochastic",
                 "u6.2:truncate:wrap", "s4.1:wrap"]:
        assert str(FixedPoint.parse(text)) == text
    fmt = FixedPoint(5, 3, signed=False, rounding="toward_zero", overflow="wrap")
    assert FixedPoint.parse(str(fmt)) == fmt
    assert FixedPoint.parse("s8.4:wrap:nearest_away") == FixedPoint(8, 4, True, "nearest_away", "wrap")


def test_format_properties():
    fmt = FixedPoint.parse("s8.4")
    assert (fmt.lsb, fmt.min_value, fmt.max_value) == (2**-4, -8.0, 8.0 - 2**-4)
    fmt = FixedPoint.parse("u8.8")
    assert (fmt.code_min, fmt.code_max, fmt.min_value, fmt.max_value) == (0, 255, 0.0, 255 / 256)
    fmt = FixedPoint.parse("s4.-2")
    assert (fmt.lsb, fmt.min_value, fmt.max_value) == (4.0, -32.0, 28.0)
    assert hash(fmt) == hash(FixedPoint(4, -2))
    with pytest.raises(dataclasses_frozen_error()):
        fmt.bits = 3


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize("bad, match", [
    ("s8", "Cannot parse"), ("x8.4", "Cannot parse"), ("s8.4:fancy", "fancy"),
    ("s1.0", "bits=1 is impossible"), ("u33.0", "bits=33"), ("s0.0", "bits=0"),
])
def test_parse_errors_name_the_value(bad, match):
    with pytest.raises(ValueError, match=match):
        FixedPoint.parse(bad)


@pytest.mark.parametrize("text, kind", [
    ("s8.4:stochastic:truncate", "rounding"), ("s8.4:truncate:nearest_even", "rounding"),
    ("s8.4:saturate:wrap", "overflow"), ("u8.8:wrap:wrap", "overflow"),
])
def test_conflicting_options_are_an_error_not_the_last_one_silently(text, kind):
    with pytest.raises(ValueError, match=rf"gives two {kind} modes"):
        FixedPoint.parse(text)


def test_formats_beyond_every_dtype_say_so_without_overflowing():
    """s8.-2000 has rails near 2**2007: the message gives them as powers of two
    (Python floats would overflow) and frac_bits beyond the ops' int32 is rejected."""
    with pytest.raises(ValueError, match=r"s8\.-2000 \(codes -128..127 times an lsb of "
                                         r"2\*\*2000\) is not exactly representable in float64"):
        quantize_tensor(tf.zeros([2], tf.float64), FixedPoint(8, -2000))
    with pytest.raises(ValueError, match="frac_bits=2147483648 is out of range"):
        FixedPoint(8, 2**31)
    with pytest.raises(ValueError, match="digits"):
        FixedPoint.parse("s8." + "9" * 5000)


def test_constructor_errors_name_the_value():
    with pytest.raises(ValueError, match="'up'.*nearest_even"):
        FixedPoint(8, 4, rounding="up")
    with pytest.raises(ValueError, match="'clip'.*saturate"):
        FixedPoint(8, 4, overflow="clip")
    with pytest.raises(ValueError, match="bits must be an integer"):
        FixedPoint(8.0, 4)
    with pytest.raises(ValueError, match="format string"):
        FixedPoint.coerce(8)


def test_format_too_wide_for_dtype_suggests_float64():
    with pytest.raises(ValueError, match="s25.4.*float32.*use float64"):
        quantize_tensor(tf.zeros([3]), "s25.4")
    with pytest.raises(ValueError, match="float16.*use float32"):
        quantize_tensor(tf.zeros([3], tf.float16), "s12.4")
    with pytest.raises(ValueError, match="not exactly representable"):
        quantize_tensor(tf.zeros([3]), "s8.160")  # lsb below float32's subnormals
    with pytest.raises(ValueError, match="int32"):
        quantize_tensor(tf.zeros([3], tf.int32), "s8.4")
    assert quantize_tensor(tf.zeros([3], tf.float64), "s25.4").dtype == tf.float64


def test_bad_ste_and_seed():
    with pytest.raises(ValueError, match="ste='straight'"):
        quantize_tensor([1.0], "s8.4", ste="straight")
    with pytest.raises(ValueError, match="shape"):
        quantize_tensor([1.0], "s8.4:stochastic", seed=(1, 2, 3))


# Against the reference, both implementations --------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_edge_values_match_reference(implementation, rounding, overflow, dtype):
    for fmt in formats_for(dtype, rounding, overflow):
        x = edge_values(fmt, dtype)
        got = quantize_tensor(tf.constant(x, dtype), fmt, seed=(7, 11)).numpy()
        want = quantize_reference(x, fmt, seed=(7, 11))
        # Bit for bit, signed zeros included (through float64 for bfloat16,
        # which NumPy's comparisons do not cover).
        assert same_bits(got.astype(np.float64), want.astype(np.float64)), \
            f"{fmt} {dtype.name}: {got} != {want}"


@st.composite
def format_and_values(draw):
    dtype = draw(st.sampled_from([tf.float32, tf.float64]))
    signed = draw(st.booleans())
    max_bits = 24 if dtype == tf.float32 else 32
    bits = draw(st.integers(2 if signed else 1, max_bits))
    frac = draw(st.integers(-8, 40))
    fmt = FixedPoint(bits, frac, signed, draw(st.sampled_from(ROUNDING_MODES)),
                     draw(st.sampled_from(OVERFLOW_MODES)))
    width = 32 if dtype == tf.float32 else 64
    values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=width),
                           min_size=0, max_size=40))
    scaled = draw(st.lists(st.integers(-2 * 2**bits, 2 * 2**bits), max_size=20))
    halves = [(k + 0.5) * fmt.lsb for k in scaled]  # exact ties, in and beyond range
    x = np.array(values + halves, dtype=dtype.as_numpy_dtype)
    seed = draw(st.tuples(st.integers(-2**40, 2**40), st.integers(0, 2**31)))
    return fmt, x, seed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(format_and_values())
def test_property_matches_reference_and_twin(case):
    fmt, x, seed = case
    custom = quantize_tensor(x, fmt, seed=seed).numpy()
    with composite_ops():
        twin = quantize_tensor(x, fmt, seed=seed).numpy()
    np.testing.assert_array_equal(custom, quantize_reference(x, fmt, seed), err_msg=str(fmt))
    assert same_bits(custom, twin), str(fmt)


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=lambda d: d.name)
def test_custom_op_and_twin_agree_bit_for_bit(execution, rounding, overflow, dtype):
    rng = np.random.default_rng(0)
    for fmt in formats_for(dtype, rounding, overflow):
        x = np.concatenate([edge_values(fmt, dtype),
                            rng.normal(0, 4 * max(fmt.max_value, 1), 5000).astype(dtype.as_numpy_dtype)])
        x = tf.constant(x)

        def run(x, fmt=fmt):
            return quantize_tensor(x, fmt, seed=(3, 5))

        custom = execution(run, x).numpy()
        with composite_ops():
            twin = execution(run, x).numpy()
        assert same_bits(custom, twin), f"{fmt} {dtype.name}"


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_subnormal_inputs_read_as_signed_zeros(implementation, rounding):
    # TensorFlow's CPU kernels flush denormals; the package does so on every
    # device, so truncating a negative subnormal gives -0, not -lsb.
    for dtype, values in [(tf.float64, [-5e-324, 5e-324, -1e-310, 2e-309]),
                          (tf.float32, [-1e-45, 1e-45, -1e-39, 3e-39])]:
        got = quantize_tensor(tf.constant(values, dtype), FixedPoint(4, 0, rounding=rounding),
                              seed=(1, 1)).numpy()
        assert np.all(got == 0), (dtype, rounding, got)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(values))


@pytest.mark.parametrize("case", FRACTION_CASES, ids=lambda c: f"{c[1]}-{c[0].name}-{c[2]:g}")
def test_stochastic_rounding_takes_the_fraction_the_compute_type_holds(implementation, case):
    """docs/rounding.md: u is compared with frac(v) rounded into the compute type, a
    subnormal read as 0; eagerly and under XLA, and in the reference."""
    x, seed, element, want = fraction_case(case)
    fmt = FixedPoint.parse(case[1])

    def run(x):
        return quantize_tensor(x, fmt, seed=seed)

    for got in (run(tf.constant(x)), tf.function(run, jit_compile=True)(tf.constant(x))):
        assert same_bits(got.numpy()[element:], np.array([want], x.dtype)), got.numpy()[element]
    assert same_bits(quantize_reference(x, fmt, seed)[element:], np.array([want], x.dtype))


def test_grids_reaching_into_subnormals_are_rejected():
    assert FixedPoint(8, 126).fits_dtype(tf.float32)  # lsb 2**-126, the smallest normal
    with pytest.raises(ValueError, match="not exactly representable in float32"):
        quantize_tensor(tf.zeros([2]), FixedPoint(8, 127))


def test_shapes_scalars_and_empty(implementation):
    for shape in [[], [0], [3, 0, 2], [2, 3, 4]]:
        x = tf.random.normal(shape)
        y = quantize_tensor(x, "s8.4")
        assert y.shape == x.shape and y.dtype == x.dtype
        np.testing.assert_array_equal(y.numpy(), quantize_reference(x.numpy(), FixedPoint(8, 4)))


def test_large_tensor_agrees(implementation):
    x = tf.random.stateless_normal([1 << 20], seed=(1, 2))
    fmt = FixedPoint(8, 5, rounding="stochastic")
    got = quantize_tensor(x, fmt, seed=(9, 9)).numpy()
    np.testing.assert_array_equal(got, quantize_reference(x.numpy(), fmt, seed=(9, 9)))


# TensorFlow's own fake-quant op ----------------------------------------------

@pytest.mark.parametrize("bits, frac", [(8, 4), (4, 0), (6, -1), (10, 12), (16, 8)])
def test_nearest_even_saturate_matches_quantize_and_dequantize_v4(implementation, bits, frac):
    x = np.concatenate([edge_values(FixedPoint(bits, frac), tf.float32)[:-5],
                        np.random.default_rng(bits).normal(0, 2.0 ** (bits - 1 - frac), 4000)]
                       ).astype(np.float32)
    x = tf.constant(x)
    low = -(2.0 ** (bits - 1 - frac))
    high = 2.0 ** (bits - 1 - frac) - 2.0**-frac
    theirs = tf.raw_ops.QuantizeAndDequantizeV4(
        input=x, input_min=low, input_max=high, signed_input=True, num_bits=bits,
        range_given=True, round_mode="HALF_TO_EVEN", narrow_range=False)
    ours = quantize_tensor(x, FixedPoint(bits, frac))
    assert same_bits(ours.numpy(), theirs.numpy())


def test_clipped_ste_matches_quantize_and_dequantize_v4_grad(implementation):
    x = tf.constant(np.linspace(-10, 10, 801), tf.float32)
    dy = tf.constant(np.random.default_rng(1).normal(size=801), tf.float32)
    fmt = FixedPoint(8, 4)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantize_tensor(x, fmt, ste="clipped")
    ours = tape.gradient(y, x, output_gradients=dy)
    theirs = tf.raw_ops.QuantizeAndDequantizeV4Grad(
        gradients=dy, input=x, input_min=fmt.min_value, input_max=fmt.max_value)[0]
    assert same_bits(ours.numpy(), theirs.numpy())


def test_straight_through_and_no_gradient(implementation, execution):
    x = tf.constant([-100.0, -1.3, 0.2, 7.0, 100.0])

    def grads(x, ste):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantize_tensor(x, "s6.2", ste=ste)
            loss = tf.reduce_sum(y * tf.range(1.0, 6.0))
        return tape.gradient(loss, x)

    np.testing.assert_array_equal(execution(lambda x: grads(x, True), x).numpy(), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(execution(lambda x: grads(x, "clipped"), x).numpy(), [0, 2, 3, 4, 0])
    assert grads(x, False) is None


def test_half_types_gradient_flows(implementation):
    for dtype in (tf.float16, tf.bfloat16):
        x = tf.constant([0.3, -2.0, 50.0], dtype)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantize_tensor(x, "s6.3", ste="clipped")
        assert y.dtype == dtype
        np.testing.assert_array_equal(tape.gradient(y, x).numpy().astype(np.float32), [1, 1, 0])


# Stochastic rounding ------------------------------------------------------------

def test_stochastic_rounding_is_unbiased_and_local(implementation):
    fmt = FixedPoint(8, 2, rounding="stochastic")
    n = 200_000
    for value in [0.3, -1.1, 2.125, 0.0625, -0.2]:
        x = tf.fill([n], value)
        q = quantize_tensor(x, fmt, seed=(17, 4)).numpy()
        low = np.floor(value / fmt.lsb) * fmt.lsb
        assert set(np.unique(q)) <= {low, low + fmt.lsb}
        p = (value - low) / fmt.lsb
        sigma = fmt.lsb * np.sqrt(p * (1 - p))
        assert abs(q.mean() - value) < 3 * sigma / np.sqrt(n) + 1e-7


def test_stochastic_seed_reproducible_and_distinct(implementation):
    x = tf.random.stateless_uniform([10_000], seed=(0, 1), minval=-4, maxval=4)
    fmt = "s8.3:stochastic"
    a = quantize_tensor(x, fmt, seed=(5, 6)).numpy()
    b = quantize_tensor(x, fmt, seed=(5, 6)).numpy()
    c = quantize_tensor(x, fmt, seed=(5, 7)).numpy()
    assert same_bits(a, b)
    assert not np.array_equal(a, c)


def test_stochastic_without_seed_varies():
    x = tf.fill([1000], 0.3)
    a = quantize_tensor(x, "s8.2:stochastic").numpy()
    b = quantize_tensor(x, "s8.2:stochastic").numpy()
    assert not np.array_equal(a, b)


# XLA -------------------------------------------------------------------------------

def test_twins_compile_under_xla():
    x = tf.random.stateless_normal([4096], seed=(3, 3))

    @tf.function(jit_compile=True)
    def step(x):
        with composite_ops():
            return (quantize_tensor(x, "s8.4"), quantize_tensor(x, "s8.4:stochastic", seed=(1, 2)),
                    quantize_tensor(x, "u6.2:truncate:wrap"))

    for got, fmt, seed in zip(step(x), ["s8.4", "s8.4:stochastic", "u6.2:truncate:wrap"],
                              [(0, 0), (1, 2), (0, 0)]):
        np.testing.assert_array_equal(
            got.numpy(), quantize_reference(x.numpy(), FixedPoint.parse(fmt), seed=seed))

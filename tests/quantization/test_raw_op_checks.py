"""The op library's own attr checks, called through the raw ops.

Graphs can be built without the Python wrappers (which check first, with
their own messages), so the C++ kernels must reject every attr value on their
own: an int attr is int64 in a graph and may hold any value, and a check
computed in int32 can overflow into accepting it (frac_bits = -2**31 + 1 once
gave NaN, and storage_frac_bits = -2**31 once zeroed the variable). Each bad
value must raise InvalidArgumentError naming the attr and its range, and a
variable the op would have updated must stay bit for bit as it was.

The allowed ranges are derived here from NumPy's float facts, independently
of the C++ code: a format fits a dtype when its codes are exact integers
(bits <= significand bits, at most 32), its rails are finite
(bits - frac_bits <= maxexp) and its step is a normal number
(frac_bits <= -minexp).
"""
import numpy as np
import pytest
import tensorflow as tf

from references.fixed_point import quantize_reference, same_bits
from tensorflow_kappa import _ops
from tensorflow_kappa.quantization import FixedPoint

DTYPES = [np.float32, np.float64]
# Values an int64 attr can hold that overflow int32 arithmetic, and beyond.
EXTREMES = [-2**31, -2**31 + 1, 2**31 - 1, -2**63, 2**63 - 1]


def bits_range(dtype, signed):
    """(lowest, highest) bits a format of `dtype` takes."""
    return (2 if signed else 1), min(32, np.finfo(dtype).nmant + 1)


def frac_bits_range(dtype, bits):
    """(lowest, highest) frac_bits a format of `bits` bits and `dtype` takes."""
    info = np.finfo(dtype)
    return bits - info.maxexp, -info.minexp


def bad_bits(dtype, signed):
    low, high = bits_range(dtype, signed)
    return sorted({0, -1, 33, low - 1, high + 1, *EXTREMES})


def bad_frac_bits(dtype, bits):
    low, high = frac_bits_range(dtype, bits)
    return sorted({low - 1, high + 1, *EXTREMES})


@pytest.fixture(scope="module")
def lib():
    return _ops.load_library()


def _x(dtype):
    rng = np.random.default_rng(3)
    return tf.constant(rng.normal(0, 4, 257).astype(dtype))


SEED = tf.constant([1, 2], tf.int64)


def _quantize(lib, x, **attrs):
    attrs = {"bits": 8, "frac_bits": 4, **attrs}
    return lib.kappa_quantize(x, SEED, **attrs)


def _rail_stats(lib, x, **attrs):
    attrs = {"bits": 8, "frac_bits": 4, **attrs}
    return lib.kappa_rail_stats(x, **attrs)


def _update(lib, var, **attrs):
    dtype = var.dtype
    g = tf.ones_like(var) * tf.constant(0.3, dtype)
    formats = dict(has_update_format=True, update_bits=10, update_frac_bits=8,
                   has_storage_format=True, storage_bits=8, storage_frac_bits=4)
    return lib.kappa_update_quantize_store(
        var.handle, g, tf.constant(0.5, dtype), SEED, **{**formats, **attrs})


def _raises_naming(attr, value):
    return pytest.raises(tf.errors.InvalidArgumentError,
                         match=rf"\b{attr}={value} is out of range")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("signed", [True, False])
def test_quantize_and_rail_stats_reject_bits(lib, execution, dtype, signed):
    x = _x(dtype)
    for bits in bad_bits(dtype, signed):
        with _raises_naming("bits", bits):
            execution(lambda: _quantize(lib, x, bits=bits, signed=signed))
        with _raises_naming("bits", bits):
            execution(lambda: _rail_stats(lib, x, bits=bits, signed=signed))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bits", [1, 8, 24])
def test_quantize_and_rail_stats_reject_frac_bits(lib, execution, dtype, bits):
    x = _x(dtype)
    for frac in bad_frac_bits(dtype, bits):
        with _raises_naming("frac_bits", frac):
            execution(lambda: _quantize(lib, x, bits=bits, frac_bits=frac, signed=False))
        with _raises_naming("frac_bits", frac):
            execution(lambda: _rail_stats(lib, x, bits=bits, frac_bits=frac, signed=False))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("signed", [True, False])
def test_edges_of_the_ranges_are_accepted_and_exact(lib, dtype, signed):
    """The last values inside each range run, and match the NumPy reference."""
    x = _x(dtype)
    low, high = bits_range(dtype, signed)
    for bits in (low, high):
        for frac in frac_bits_range(dtype, bits):
            fmt = FixedPoint(bits, frac, signed=signed)
            got = _quantize(lib, x, bits=bits, frac_bits=frac, signed=signed).numpy()
            assert same_bits(got, quantize_reference(x.numpy(), fmt)), str(fmt)
            _rail_stats(lib, x, bits=bits, frac_bits=frac, signed=signed)


@pytest.mark.parametrize("value", [float("nan"), -0.1, 1.5, float("inf"), -float("inf")])
def test_rail_stats_rejects_near_rail_outside_unit_interval(lib, execution, value):
    x = _x(np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"near_rail=\S+ is out of range: it takes a number in \[0, 1\]"):
        execution(lambda: _rail_stats(lib, x, near_rail=value))


def test_rail_stats_accepts_the_ends_of_the_unit_interval(lib):
    x = tf.constant([7.9375, -8.0, 0.0, 1.0], tf.float32)  # s8.4's rails, 0, 1
    at_zero = [float(v) for v in _rail_stats(lib, x, near_rail=0.0)]
    at_one = [float(v) for v in _rail_stats(lib, x, near_rail=1.0)]
    assert at_zero[1] == 1.0  # near_rail 0: every value is near a rail
    assert at_one[1] == 0.5  # near_rail 1: only the two rails themselves


@pytest.mark.parametrize("attr,value", [("rounding", "round"), ("overflow", "clip"),
                                        ("ste", "straight")])
def test_quantize_rejects_unknown_mode_names(lib, attr, value):
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"attr '{attr}'.*{value}"):
        _quantize(lib, _x(np.float32), **{attr: value})


def _update_cases(dtype):
    for prefix in ("update_", "storage_"):
        for signed in (True, False):
            for bits in bad_bits(dtype, signed):
                yield {f"{prefix}bits": bits, f"{prefix}signed": signed}, f"{prefix}bits", bits
        for frac in bad_frac_bits(dtype, 8):
            yield ({f"{prefix}bits": 8, f"{prefix}frac_bits": frac}, f"{prefix}frac_bits",
                   frac)


@pytest.mark.parametrize("dtype", DTYPES)
def test_update_rejects_bad_formats_and_leaves_the_variable(lib, execution, dtype):
    w0 = np.random.default_rng(5).normal(0, 2, 64).astype(dtype)
    var = tf.Variable(w0)
    cases = list(_update_cases(dtype))
    assert len(cases) > 40
    for attrs, attr, value in cases:
        with _raises_naming(attr, value):
            execution(lambda: _update(lib, var, **attrs))
        assert same_bits(var.numpy(), w0), attrs
    # The same variable then updates normally: the checks, not a broken
    # variable, stopped the calls.
    _update(lib, var)
    assert not same_bits(var.numpy(), w0)


def test_update_rejects_unknown_mode_names_and_leaves_the_variable(lib):
    w0 = np.linspace(-3, 3, 16, dtype=np.float32)
    var = tf.Variable(w0)
    for attr in ("update_rounding", "storage_rounding", "update_overflow", "storage_overflow"):
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"attr '{attr}'"):
            _update(lib, var, **{attr: "bogus"})
        assert same_bits(var.numpy(), w0)

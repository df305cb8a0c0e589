"""An independent NumPy reference of fixed-point quantization, for tests.

Written from the specification (docs/rounding.md), not from the kernels:
values are scaled and rounded in extended precision (np.longdouble: 64-bit
significand, 15-bit exponent), where multiplying any float32 or float64 by
2**frac_bits is exact, so no underflow special cases are needed; only
stochastic rounding's fraction is taken as the compute type holds it, as the
specification says.
"""
import numpy as np

from references.random import stochastic_uniforms
from tensorflow_kappa.quantization import FixedPoint
from references.rounding import round_scaled

LD = np.longdouble


def flush_subnormal(x):
    """Values subnormal in the compute type (float32 for half types and float32,
    float64 for float64) as the zero of their sign, as the package specifies
    (TensorFlow's CPU kernels read them so)."""
    x = np.asarray(x)
    tiny = np.finfo(np.float64 if x.dtype == np.float64 else np.float32).tiny
    wide = x.astype(np.float64)
    return np.where(np.abs(wide) < float(tiny), np.copysign(0.0, wide), wide).astype(x.dtype)


def _round(v, rounding, seed, compute):
    """The rounding of docs/rounding.md (references.rounding); stochastic rounding
    takes the fraction of v as the compute type holds it (a subnormal read as 0)."""
    if rounding != "stochastic":
        return round_scaled(v, rounding)
    frac = flush_subnormal((v - np.floor(v)).astype(compute)).astype(LD)
    return round_scaled(v, rounding, stochastic_uniforms(seed, v.size), fraction=frac)


# How each overflow mode brings the integers r into the code range of a format.

def _saturate(r, fmt):
    return np.clip(r, LD(fmt.code_min), LD(fmt.code_max))


def _wrap(r, fmt):
    low, modulus = LD(fmt.code_min), LD(2.0) ** fmt.bits
    # Reduce r first (fmod is exact), so that shifting by low loses nothing.
    return np.mod(np.mod(r, modulus) - low, modulus) + low


#: The overflow modes of the specification, by name.
OVERFLOWS = {"saturate": _saturate, "wrap": _wrap}


def quantize_reference(x, fmt, seed=(0, 0)):
    """Quantize a NumPy array by ``fmt`` (a FixedPoint or its string form); returns
    x's dtype."""
    fmt = FixedPoint.coerce(fmt) if isinstance(fmt, str) else fmt
    x = np.asarray(x)
    dtype = x.dtype
    flat = flush_subnormal(x.reshape(-1)).astype(LD)
    finite = np.isfinite(flat)
    v = np.where(finite, flat, 0) * LD(2.0) ** fmt.frac_bits
    compute = np.float64 if dtype == np.float64 else np.float32
    r = _round(v, fmt.rounding, seed, compute)
    code = OVERFLOWS[fmt.overflow](r, fmt)
    low, high = LD(fmt.code_min), LD(fmt.code_max)
    rail = np.where(flat > 0, high, low)
    code = np.where(np.isinf(flat), rail, code)
    y = (code * LD(2.0) ** -fmt.frac_bits).astype(np.float64)
    y = np.where(np.isnan(flat), np.nan, y)
    return y.astype(dtype).reshape(x.shape)


def assert_on_grid(x, fmt, what=""):
    """Every entry of ``x`` is a code of the fixed-point ``fmt`` within its range."""
    fmt = FixedPoint.coerce(fmt) if isinstance(fmt, str) else fmt
    codes = np.asarray(x, np.float64) * 2.0**fmt.frac_bits
    assert np.array_equal(codes, np.rint(codes)), f"{what}: off the {fmt} grid"
    assert codes.min() >= fmt.code_min and codes.max() <= fmt.code_max, f"{what}: beyond rails"


def same_bits(a, b):
    """Bitwise equality of two float arrays (any NaN == any NaN, +0 != -0)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    view = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    nan = np.isnan(a) & np.isnan(b)
    return bool(np.all((a.view(view) == b.view(view)) | nan))

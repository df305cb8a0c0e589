"""An independent NumPy reference of fixed-point quantization, for tests.

Written from the specification (docs/rounding.md), not from the kernels:
values are scaled and rounded in extended precision (np.longdouble: 64-bit
significand, 15-bit exponent), where multiplying any float32 or float64 by
2**frac_bits is exact, so no underflow special cases are needed; only
stochastic rounding's fraction is taken as the compute type holds it, as the
specification says.
"""
import numpy as np

LD = np.longdouble


def mix32(x):
    """The lowbias32 hash, on uint32 arrays."""
    x = np.asarray(x, np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = (x * np.uint32(0x7FEB352D)).astype(np.uint32)
        x = x ^ (x >> np.uint32(15))
        x = (x * np.uint32(0x846CA68B)).astype(np.uint32)
        return x ^ (x >> np.uint32(16))


def mix64(v):
    """The documented 64-bit seed mixing, on a Python int's 64 bits (lo, hi):
    hi ^= H(lo ^ 0x9E3779B9); lo ^= H(hi ^ 0x85EBCA6B); hi ^= H(lo ^ 0xC2B2AE35)."""
    lo, hi = int(v) & 0xFFFFFFFF, (int(v) >> 32) & 0xFFFFFFFF
    hi ^= int(mix32(lo ^ 0x9E3779B9))
    lo ^= int(mix32(hi ^ 0x85EBCA6B))
    hi ^= int(mix32(lo ^ 0xC2B2AE35))
    return (hi << 32) | lo


def stochastic_uniforms(seed, n):
    """The uniforms the package's counter-based generator gives elements 0..n-1:
    key = mix64(mix64(seed0) ^ seed1) over all 64 bits of each seed word."""
    s0, s1 = (int(s) & 0xFFFFFFFFFFFFFFFF for s in seed)
    key = mix64(mix64(s0) ^ s1)
    k0, k1 = np.uint32(key & 0xFFFFFFFF), np.uint32(key >> 32)
    index = np.arange(n, dtype=np.uint64)
    lo = (index & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (index >> np.uint64(32)).astype(np.uint32)
    bits = mix32(mix32(lo ^ k0) ^ hi ^ k1)
    return (bits >> np.uint32(8)).astype(np.float64) * 2.0**-24


def flush_subnormal(x):
    """Values subnormal in the compute type (float32 for half types and float32,
    float64 for float64) as the zero of their sign, as the package specifies
    (TensorFlow's CPU kernels read them so)."""
    x = np.asarray(x)
    tiny = np.finfo(np.float64 if x.dtype == np.float64 else np.float32).tiny
    wide = x.astype(np.float64)
    return np.where(np.abs(wide) < float(tiny), np.copysign(0.0, wide), wide).astype(x.dtype)


# How each rounding mode maps the exact scaled values v (longdouble; element i
# of a tensor at v[i]) to integers; seed keys stochastic rounding, which takes
# the fraction of v as the compute type holds it.

def _nearest_even(v, seed, compute):
    return np.rint(v)


def _nearest_away(v, seed, compute):
    # |v| + 0.5 is exact in longdouble below 2**62; above, v is integral.
    r = np.where(np.signbit(v), -np.floor(-v + LD(0.5)), np.floor(v + LD(0.5)))
    return np.where(np.abs(v) >= LD(2.0) ** 62, v, r)


def _truncate(v, seed, compute):
    return np.floor(v)


def _toward_zero(v, seed, compute):
    return np.trunc(v)


def _stochastic(v, seed, compute):
    f = np.floor(v)
    # The fraction rounded into the compute type, a subnormal read as 0.
    frac = flush_subnormal((v - f).astype(compute)).astype(LD)
    return np.where(stochastic_uniforms(seed, v.size).astype(LD) < frac, f + 1, f)


#: The rounding modes of the specification (docs/rounding.md), by name.
ROUNDINGS = {"nearest_even": _nearest_even, "nearest_away": _nearest_away,
             "truncate": _truncate, "toward_zero": _toward_zero, "stochastic": _stochastic}


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
    """Quantize a NumPy array by ``fmt`` (a FixedPoint); returns x's dtype."""
    x = np.asarray(x)
    dtype = x.dtype
    flat = flush_subnormal(x.reshape(-1)).astype(LD)
    finite = np.isfinite(flat)
    v = np.where(finite, flat, 0) * LD(2.0) ** fmt.frac_bits
    compute = np.float64 if dtype == np.float64 else np.float32
    r = ROUNDINGS[fmt.rounding](v, seed, compute)
    code = OVERFLOWS[fmt.overflow](r, fmt)
    low, high = LD(fmt.code_min), LD(fmt.code_max)
    rail = np.where(flat > 0, high, low)
    code = np.where(np.isinf(flat), rail, code)
    y = (code * LD(2.0) ** -fmt.frac_bits).astype(np.float64)
    y = np.where(np.isnan(flat), np.nan, y)
    return y.astype(dtype).reshape(x.shape)


def same_bits(a, b):
    """Bitwise equality of two float arrays (any NaN == any NaN, +0 != -0)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    view = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    nan = np.isnan(a) & np.isnan(b)
    return bool(np.all((a.view(view) == b.view(view)) | nan))

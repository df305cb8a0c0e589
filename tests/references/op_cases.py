"""The format x mode x input matrix the op tests run, shared by every binding's tests.

Formats per dtype and rounding/overflow mode with edge inputs (quantize), formats
with inputs around their thresholds (rail_stats), and weights, gradients and
format pairs covering every mode (update_quantize_store). Used by
tests/quantization (the TensorFlow ops and their twins) and tests/core (the
NumPy binding), so both are held to the same cases.
"""
import numpy as np
import tensorflow as tf

from references.fixed_point import quantize_reference
from tensorflow_kappa.quantization import OVERFLOW_MODES, ROUNDING_MODES, FixedPoint

DTYPES = [tf.float16, tf.bfloat16, tf.float32, tf.float64]


def edge_values(fmt: FixedPoint, dtype: tf.DType) -> np.ndarray:
    """Ties, rails, values beyond the rails, signed zeros, NaN, Inf, tiny and huge values."""
    np_dtype = dtype.as_numpy_dtype
    lsb = fmt.lsb
    ks = np.array([0, 1, 2, 3, fmt.code_min, fmt.code_max, fmt.code_min + 1, fmt.code_max - 1],
                  dtype=np.float64)
    ties = np.concatenate([(ks + 0.5) * lsb, (-ks - 0.5) * lsb])
    near = np.concatenate([ks * lsb, ks * lsb + lsb / 4, ks * lsb - lsb / 4, -ks * lsb])
    rails = np.array([fmt.min_value, fmt.max_value, fmt.min_value - lsb, fmt.max_value + lsb,
                      fmt.min_value * 3, fmt.max_value * 3 + lsb / 2])
    info = np.finfo(np.float32 if dtype == tf.bfloat16 else np_dtype)
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, float(info.tiny),
                        -float(info.tiny), float(info.max), -float(info.max),
                        float(info.tiny) * 2.0**-3])
    values = np.concatenate([ties, near, rails, special])
    with np.errstate(over="ignore"):
        return values.astype(np_dtype)


def formats_for(dtype: tf.DType, rounding: str, overflow: str) -> list:
    candidates = [(8, 4, True), (6, 0, True), (4, -2, True), (8, 10, True), (8, 8, False),
                  (3, 1, False), (2, 0, True), (1, 0, False), (12, 3, True), (16, 20, True),
                  (24, 12, True), (24, 30, False), (32, 16, True)]
    out = []
    for bits, frac, signed in candidates:
        fmt = FixedPoint(bits, frac, signed, rounding, overflow)
        if fmt.fits_dtype(dtype):
            out.append(fmt)
    return out


# rail_stats ---------------------------------------------------------------------

RAIL_FORMATS = ["s8.4", "u8.8", "s4.-2", "s6.0", "u3.1", "s2.0", "s12.10", "s24.12", "s32.16"]


def values_for(fmt: FixedPoint, dtype: tf.DType, seed: int) -> np.ndarray:
    """Rails, one step either side, the near-rail thresholds, ties around 0, specials, random."""
    lsb, lo, hi = fmt.lsb, fmt.min_value, fmt.max_value
    near = []
    for nr in (0.9, 0.5, 0.75):
        m = (1 - float(np.float32(nr))) * (hi - lo) / 2
        near += [hi - m, lo + m]
    base = np.array([lo, hi, lo - lsb, hi + lsb, lo + lsb / 2, hi - lsb / 2, 0.0, -0.0,
                     lsb / 2, -lsb / 2, lsb / 4, -lsb / 4, lsb, -lsb, 0.75 * lsb, np.nan,
                     np.inf, -np.inf, 3 * hi, 3 * lo - 1] + near)
    rng = np.random.default_rng(seed)
    spread = max(hi - lo, 4 * lsb)
    rand = np.concatenate([rng.uniform(lo - spread / 4, hi + spread / 4, 3000),
                           rng.normal(0, lsb, 1000)])
    x = np.concatenate([base, rand])
    np_dtype = dtype.as_numpy_dtype
    with np.errstate(over="ignore"):
        x = x.astype(np_dtype)
    # Values next to the thresholds in this dtype too.
    x64 = x.astype(np.float64)
    return x[np.isnan(x64) | (np.abs(x64) < 1e300)]


# update_quantize_store -------------------------------------------------------------

def inputs(n, dtype, seed, storage=None):
    """Weights (on the storage grid and off it, some beyond the rails) and gradients."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 2, n)
    if storage is not None:
        w[: n // 2] = quantize_reference(w[: n // 2], storage)
        w[:8] = [storage.max_value, storage.min_value, storage.max_value - storage.lsb, 0.0,
                 -0.0, storage.lsb, -storage.lsb, storage.max_value + 1]
    g = rng.normal(0, 1, n) * 2.0 ** rng.integers(-16, 6, n)
    g[:4] = [0.0, -0.0, 1e-30, 3.0]
    return w.astype(dtype), g.astype(dtype)


MODE_PAIRS = ([(None, None)]
              + [(f"s10.14:{r}:{o}", "s8.6") for r in ROUNDING_MODES for o in OVERFLOW_MODES]
              + [("s10.14", f"s8.6:{r}:{o}") for r in ROUNDING_MODES for o in OVERFLOW_MODES]
              + [(None, "u8.7:stochastic"), ("s6.20:toward_zero", None)])


# stochastic rounding's fraction ------------------------------------------------------

# (seed, element) whose draw u is 0, and one whose draw is the largest, 1 - 2**-24.
U_ZERO = ((0, 26080), 229)
U_TOP = ((0, 6084), 110)

# Where stochastic rounding's fraction as the compute type holds it differs from
# frac(v) (docs/rounding.md): (dtype, format, x at the element, (seed, element), the
# result there). A positive v below the smallest normal number (subnormal, or zero in
# the compute type) has fraction 0 and stays 0 even where u = 0; a negative v just above
# -2**-24, whose fraction 1 - |v| rounds down onto the draw 1 - 2**-24, goes to -1.
FRACTION_CASES = [
    (tf.float32, "s8.-2:stochastic", 2.0**-126, U_ZERO, 0.0),
    (tf.float64, "s8.-2:stochastic", 2.0**-1022, U_ZERO, 0.0),
    (tf.float32, "s8.-30:stochastic", 2.0**-126, U_ZERO, 0.0),
    (tf.float32, "s8.0:stochastic", -3 * 2.0**-26, U_TOP, -1.0),
    (tf.float64, "s8.0:stochastic", -(2.0**-24 - 2.0**-60), U_TOP, -1.0),
]


def fraction_case(case) -> tuple:
    """(x, seed, element, want) of a FRACTION_CASES entry: zeros up to the element."""
    dtype, _, value, (seed, element), want = case
    x = np.zeros(element + 1, dtype.as_numpy_dtype)
    x[element] = value
    return x, seed, element, want

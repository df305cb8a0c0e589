"""Pure-TensorFlow twins of the custom ops, written from the same definitions.

Each function here computes, with ordinary TensorFlow ops, exactly what the
corresponding C++ functor computes (the arithmetic is specified once, in
``docs/rounding.md``, and defined for C++ in ``cc/core/formats/``; this module
mirrors it step by step). Tests hold the two bit-for-bit equal. The twins are used when the op library is not
wanted (``KAPPA_PY_OPS=1``), inside ``tensorflow_kappa.composite_ops()``
(the fallback for XLA where the library was built without its XLA
lowerings), or to compare an op with its twin; they fuse well under XLA.

Inputs are float32 or float64 (the compute types); callers cast half types.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tensorflow_kappa.quantization.fixed_point import (NEAREST_AWAY, NEAREST_EVEN, SATURATE,
                                                       STOCHASTIC, TOWARD_ZERO, TRUNCATE, WRAP,
                                                       FixedPoint)

_U32 = tf.uint32


def _mix32(x: tf.Tensor) -> tf.Tensor:
    """The lowbias32 integer hash, as in formats/random.h's Mix32."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, _U32)))
    x = x * tf.constant(0x7FEB352D, _U32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(15, _U32)))
    x = x * tf.constant(0x846CA68B, _U32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, _U32)))


def _halves(word: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The low and high 32 bits of an int64 scalar, as uint32."""
    low = tf.cast(word, _U32)  # keeps the low 32 bits, as the C++ cast does
    high = tf.cast(tf.bitwise.right_shift(word, tf.constant(32, tf.int64)), _U32)
    return low, high


def _mix64(low: tf.Tensor, high: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mix64: a bijection of 64 bits, three Feistel rounds of _mix32."""
    xor = tf.bitwise.bitwise_xor
    high = xor(high, _mix32(xor(low, tf.constant(0x9E3779B9, _U32))))
    low = xor(low, _mix32(xor(high, tf.constant(0x85EBCA6B, _U32))))
    high = xor(high, _mix32(xor(low, tf.constant(0xC2B2AE35, _U32))))
    return low, high


def _random_key(seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """MakeRandomKey: the 64-bit key Mix64(Mix64(seed0) ^ seed1) from an int64[2] seed.

    All 128 seed bits count. For a fixed seed0 the map seed1 -> key is a
    bijection (and seed0 -> key for a fixed seed1), so seed pairs that share
    either word never share a key; there are 2**64 distinct keys. One key's
    stream is indexed by a 64-bit counter (the element's flat index), so it
    runs 2**64 numbers before repeating; within each aligned run of 2**32
    indices its 32-bit numbers are all distinct.
    """
    s0_low, s0_high = _halves(seed[0])
    s1_low, s1_high = _halves(seed[1])
    p_low, p_high = _mix64(s0_low, s0_high)
    xor = tf.bitwise.bitwise_xor
    return _mix64(xor(p_low, s1_low), xor(p_high, s1_high))


def uniform(seed: tf.Tensor, shape: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """The per-element uniforms of stochastic rounding (UniformFromBits(RandomBits))."""
    k0, k1 = _random_key(seed)
    index = tf.range(tf.reduce_prod(shape), dtype=tf.int64)
    lo = tf.cast(tf.bitwise.bitwise_and(index, tf.constant(0xFFFFFFFF, tf.int64)), _U32)
    hi = tf.cast(tf.bitwise.right_shift(index, tf.constant(32, tf.int64)), _U32)
    bits = _mix32(tf.bitwise.bitwise_xor(
        tf.bitwise.bitwise_xor(_mix32(tf.bitwise.bitwise_xor(lo, k0)), hi), k1))
    top24 = tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, _U32)), tf.int32)
    u = tf.cast(top24, dtype) * tf.constant(2.0**-24, dtype)
    return tf.reshape(u, shape)


def flush_subnormal(x: tf.Tensor) -> tf.Tensor:
    """FlushSubnormal: a subnormal value becomes the zero of its sign."""
    tiny = tf.constant(np.finfo(x.dtype.as_numpy_dtype).tiny, x.dtype)
    return tf.where(tf.abs(x) < tiny, x * tf.constant(0, x.dtype), x)


def _trunc(v: tf.Tensor) -> tf.Tensor:
    return tf.where(v < 0, tf.math.ceil(v), tf.math.floor(v))


# RoundScaled, one function per rounding mode: v = x * 2**frac_bits to an
# integer-valued tensor (x for its sign, seed for stochastic rounding).

def _round_nearest_even(v: tf.Tensor, x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    return tf.math.rint(v)


def _round_nearest_away(v: tf.Tensor, x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    one = tf.constant(1.0, v.dtype)
    t = _trunc(v)
    d = v - t
    step = tf.where(v < 0, -one, one)
    return tf.where((d >= 0.5) | (d <= -0.5), t + step, t)


def _round_truncate(v: tf.Tensor, x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    # A negative x whose scaled value underflowed to -0 still floors to -1.
    one = tf.constant(1.0, v.dtype)
    zero = tf.constant(0.0, v.dtype)
    return tf.math.floor(v) - tf.where((v == 0) & (x < 0), one, zero)


def _round_toward_zero(v: tf.Tensor, x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    return _trunc(v)


def _round_stochastic(v: tf.Tensor, x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    # A negative x whose scaled value underflowed to -0 lies just below 0 and
    # rounds up to +0: -2**-30 stands in, as in the kernel.
    dtype = v.dtype
    w = tf.where((v == 0) & (x < 0), tf.constant(-(2.0**-30), dtype), v)
    f = tf.math.floor(w)
    u = uniform(seed, tf.shape(v, out_type=tf.int64), dtype)
    return tf.where(u < w - f, f + tf.constant(1.0, dtype), f)


#: RoundScaled by rounding mode: exactly the modes of ROUNDING_MODES (tested).
_ROUND_SCALED = {
    NEAREST_EVEN: _round_nearest_even,
    NEAREST_AWAY: _round_nearest_away,
    TRUNCATE: _round_truncate,
    TOWARD_ZERO: _round_toward_zero,
    STOCHASTIC: _round_stochastic,
}


# OverflowCode, one function per overflow mode: an integer-valued r into the
# code range.

def _saturate(r: tf.Tensor, fmt: FixedPoint) -> tf.Tensor:
    code_min = tf.constant(float(fmt.code_min), r.dtype)
    code_max = tf.constant(float(fmt.code_max), r.dtype)
    return tf.where(r < code_min, code_min, tf.where(r > code_max, code_max, r))


def _wrap(r: tf.Tensor, fmt: FixedPoint) -> tf.Tensor:
    dtype = r.dtype
    code_max = tf.constant(float(fmt.code_max), dtype)
    modulus = tf.constant(math.ldexp(1.0, fmt.bits), dtype)
    k = tf.math.floor(r * tf.constant(math.ldexp(1.0, -fmt.bits), dtype))
    t = r - k * modulus
    t = tf.where(t > code_max, t - modulus, t)
    return tf.where(tf.math.is_inf(r), tf.zeros_like(t), t)


#: OverflowCode by overflow mode: exactly the modes of OVERFLOW_MODES (tested).
_OVERFLOW_CODE = {SATURATE: _saturate, WRAP: _wrap}


def quantize(x: tf.Tensor, fmt: FixedPoint, seed: tf.Tensor) -> tf.Tensor:
    """QuantizeValue over a float32/float64 tensor; ``seed`` is int64[2]."""
    x = flush_subnormal(x)
    dtype = x.dtype
    scale = tf.constant(math.ldexp(1.0, fmt.frac_bits), dtype)
    inv_scale = tf.constant(math.ldexp(1.0, -fmt.frac_bits), dtype)
    rail = tf.where(
        x > 0,
        tf.constant(float(fmt.code_max), dtype),
        tf.constant(float(fmt.code_min), dtype),
    )
    code = _OVERFLOW_CODE[fmt.overflow](_ROUND_SCALED[fmt.rounding](x * scale, x, seed), fmt)
    y = tf.where(tf.math.is_inf(x), rail, code) * inv_scale
    return tf.where(tf.math.is_nan(x), x, y)


# Rail statistics ------------------------------------------------------------

def _round_toward(value: float, dtype: tf.DType, up: bool) -> float:
    """``value`` rounded into ``dtype``, up or down (RoundUpTo / RoundDownTo)."""
    np_type = np.float32 if dtype == tf.float32 else np.float64
    c = np_type(value)
    if up and float(c) < value:
        c = np.nextafter(c, np_type(np.inf))
    elif not up and float(c) > value:
        c = np.nextafter(c, np_type(-np.inf))
    return float(c)


def near_rail_thresholds(fmt: FixedPoint, near_rail: float) -> tuple[float, float]:
    """NearRailThresholds: ``(min_value + m, max_value - m)`` in double."""
    m = (1.0 - near_rail) * (fmt.max_value - fmt.min_value) / 2.0
    return fmt.min_value + m, fmt.max_value - m


def rail_counts(x: tf.Tensor, fmt: FixedPoint, near_rail: float) -> dict:
    """The int64 counts of RailStatsCpu: total, saturated, near_rail, nonzero, underflow.

    The predicates of formats/rails.h on the flushed x (the kernels compare the
    unflushed x with adjusted thresholds instead, which is equivalent).
    """
    dtype = x.dtype
    near_low, near_high = near_rail_thresholds(fmt, near_rail)
    low = tf.constant(fmt.min_value, dtype)
    high = tf.constant(fmt.max_value, dtype)
    near_low = tf.constant(_round_toward(near_low, dtype, up=False), dtype)
    near_high = tf.constant(_round_toward(near_high, dtype, up=True), dtype)
    # Underflows: the nonzero numbers in [zero_low, zero_high], the values that
    # nearest-even saturating quantization sends to 0.
    half_lsb = _round_toward(math.ldexp(1.0, -fmt.frac_bits - 1), dtype, up=False)
    zero_high = tf.constant(half_lsb, dtype)
    zero_low = tf.constant(-half_lsb if fmt.signed else -math.inf, dtype)
    x = flush_subnormal(x)
    nonzero = (x != 0) & (x == x)
    underflow = nonzero & (x >= zero_low) & (x <= zero_high)

    def count(mask):
        return tf.reduce_sum(tf.cast(mask, tf.int64))

    return {
        "total": tf.size(x, out_type=tf.int64),
        "saturated": count((x > high) | (x < low)),
        "near_rail": count((x >= near_high) | (x <= near_low)),
        "nonzero": count(nonzero),
        "underflow": count(underflow),
    }


def count_fraction(count: tf.Tensor, of: tf.Tensor) -> tf.Tensor:
    """CountFraction: float32(double(count) / double(of)); 0 when ``of`` is 0."""
    ratio = tf.cast(count, tf.float64) / tf.cast(tf.maximum(of, 1), tf.float64)
    return tf.where(of > 0, tf.cast(ratio, tf.float32), tf.constant(0.0, tf.float32))


def rail_stats(x: tf.Tensor, fmt: FixedPoint, near_rail: float) -> tuple:
    """The three fractions of Kappa>RailStats (float32 scalars)."""
    c = rail_counts(x, fmt, near_rail)
    return (
        count_fraction(c["saturated"], c["total"]),
        count_fraction(c["near_rail"], c["total"]),
        count_fraction(c["underflow"], c["nonzero"]),
    )


# The fused weight update ----------------------------------------------------

STORAGE_SEED_XOR = 0x2545F491  # kStorageSeedXor


def storage_seed(seed: tf.Tensor) -> tf.Tensor:
    """The storage quantizer's seed: (seed0, seed1 ^ kStorageSeedXor)."""
    return tf.bitwise.bitwise_xor(seed, tf.constant([0, STORAGE_SEED_XOR], tf.int64))


def update_store(
    old: tf.Tensor,
    grad: tf.Tensor,
    learning_rate: tf.Tensor,
    update_fmt: FixedPoint | None,
    storage_fmt: FixedPoint | None,
    seed: tf.Tensor,
    store_dtype: tf.DType | None = None,
) -> tuple:
    """UpdateValue over whole tensors: returns ``(new, stats)``.

    ``new`` is the value to store (in the compute dtype of ``old``; when
    ``store_dtype`` is given, already rounded through it, which is what the
    variable will hold) and ``stats`` the five float32 results of
    Kappa>UpdateQuantizeStore. The counts equal the custom op's exactly; the
    double sums are added in TensorFlow's order, not the kernel's.
    """
    old = flush_subnormal(old)
    raw = flush_subnormal(-flush_subnormal(learning_rate) * flush_subnormal(grad))
    delta = raw if update_fmt is None else quantize(raw, update_fmt, seed)
    total = flush_subnormal(old + delta)
    new = total if storage_fmt is None else quantize(total, storage_fmt, storage_seed(seed))
    if store_dtype is not None and store_dtype != new.dtype:
        new = tf.cast(tf.cast(new, store_dtype), new.dtype)
    raw64 = tf.cast(raw, tf.float64)
    d = tf.cast(new, tf.float64) - tf.cast(old, tf.float64)
    nonzero = (raw != 0) & (raw == raw)

    def count(mask):
        return tf.reduce_sum(tf.cast(mask, tf.int64))

    if storage_fmt is None:
        saturated = tf.constant(0, tf.int64)
    else:
        low = tf.constant(storage_fmt.min_value, total.dtype)
        high = tf.constant(storage_fmt.max_value, total.dtype)
        saturated = count((total > high) | (total < low))
    stats = (
        flush_subnormal(tf.cast(tf.sqrt(tf.reduce_sum(raw64 * raw64)), tf.float32)),
        flush_subnormal(tf.cast(tf.sqrt(tf.reduce_sum(d * d)), tf.float32)),
        flush_subnormal(tf.cast(tf.reduce_sum(raw64 * d), tf.float32)),
        count_fraction(count(nonzero & (delta == 0)), count(nonzero)),
        count_fraction(saturated, tf.size(old, out_type=tf.int64)),
    )
    return new, stats

"""``rail_stats`` and ``update_quantize_store`` for the trainer.

They come from :mod:`tensorflow_kappa.quantization` (the fused ops). Until
that module provides them, this file defines pure-TensorFlow stand-ins with
the same signatures and the same definitions (``cc/kernels/fixed_point.h``):

* ``rail_stats(x, fmt, near_rail=0.9)``: fractions of entries beyond the
  rails, near them (``x >= max - m`` or ``x <= min + m`` with
  ``m = (1 - near_rail)(max - min)/2``), and of nonzero entries that
  nearest-even saturating rounding sends to 0;
* ``update_quantize_store(var, grad, learning_rate, update_format=None,
  storage_format=None, seed=None)``: in place, ``raw = -lr*grad;
  delta = q_update(raw); new = q_storage(var + delta)``, returning the norms
  of ``raw`` and ``new - old``, their dot product, the fraction of nonzero
  ``raw`` whose ``delta`` is 0 and the fraction of entries whose
  ``var + delta`` lay beyond the storage rails.
"""
from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from tensorflow_kappa import quantization as _quantization
from tensorflow_kappa.quantization import FixedPoint, quantize_tensor

__all__ = ["rail_stats", "update_quantize_store", "FUSED"]


class _RailStats(NamedTuple):
    saturation_fraction: tf.Tensor
    near_rail_fraction: tf.Tensor
    underflow_fraction: tf.Tensor


class _UpdateStats(NamedTuple):
    raw_update_norm: tf.Tensor
    actual_update_norm: tf.Tensor
    update_dot: tf.Tensor
    update_underflow_fraction: tf.Tensor
    storage_saturation_fraction: tf.Tensor


def _fraction(mask: tf.Tensor, of: tf.Tensor) -> tf.Tensor:
    count = tf.reduce_sum(tf.cast(mask, tf.float64))
    of = tf.cast(of, tf.float64)
    return tf.cast(tf.where(of > 0, count / tf.maximum(of, 1.0), 0.0), tf.float32)


def _beyond(x: tf.Tensor, fmt: FixedPoint) -> tf.Tensor:
    return (x > fmt.max_value) | (x < fmt.min_value)


def _underflow_format(fmt: FixedPoint) -> FixedPoint:
    return FixedPoint(fmt.bits, fmt.frac_bits, fmt.signed)


def _rail_stats(x, fmt, near_rail: float = 0.9) -> _RailStats:
    fmt = FixedPoint.coerce(fmt)
    x = tf.reshape(tf.convert_to_tensor(x), [-1])
    m = (1.0 - near_rail) * (fmt.max_value - fmt.min_value) / 2.0
    total = tf.size(x)
    nonzero = tf.not_equal(x, 0.0) & tf.equal(x, x)
    q = quantize_tensor(tf.stop_gradient(x), _underflow_format(fmt), ste=False)
    return _RailStats(
        _fraction(_beyond(x, fmt), total),
        _fraction((x >= fmt.max_value - m) | (x <= fmt.min_value + m), total),
        _fraction(nonzero & tf.equal(q, 0.0), tf.reduce_sum(tf.cast(nonzero, tf.int64))),
    )


def _update_quantize_store(var, grad, learning_rate, update_format=None,
                           storage_format=None, seed=None) -> _UpdateStats:
    old = tf.convert_to_tensor(var)
    grad = tf.convert_to_tensor(grad, old.dtype)
    raw = tf.cast(-learning_rate, old.dtype) * grad
    delta = raw
    if update_format is not None:
        delta = quantize_tensor(raw, update_format, ste=False, seed=seed)
    total = old + delta
    new = total
    saturated = tf.constant(0.0, tf.float32)
    if storage_format is not None:
        storage_format = FixedPoint.coerce(storage_format)
        storage_seed = None if seed is None else tf.convert_to_tensor(seed, tf.int64) ^ tf.constant(
            [0, 0x2545F491], tf.int64)
        new = quantize_tensor(total, storage_format, ste=False, seed=storage_seed)
        saturated = _fraction(_beyond(total, storage_format), tf.size(total))
    var.assign(new)
    r64 = tf.cast(tf.reshape(raw, [-1]), tf.float64)
    a64 = tf.cast(tf.reshape(new, [-1]), tf.float64) - tf.cast(tf.reshape(old, [-1]), tf.float64)
    nonzero = tf.not_equal(raw, 0.0) & tf.equal(raw, raw)
    return _UpdateStats(
        tf.cast(tf.sqrt(tf.reduce_sum(r64 * r64)), tf.float32),
        tf.cast(tf.sqrt(tf.reduce_sum(a64 * a64)), tf.float32),
        tf.cast(tf.reduce_sum(r64 * a64), tf.float32),
        _fraction(nonzero & tf.equal(delta, 0.0), tf.reduce_sum(tf.cast(nonzero, tf.int64))),
        saturated,
    )


rail_stats = getattr(_quantization, "rail_stats", _rail_stats)
update_quantize_store = getattr(_quantization, "update_quantize_store", _update_quantize_store)
#: Whether the quantization package's own (fused) ops are in use.
FUSED = hasattr(_quantization, "update_quantize_store")

"""The preamble every quantization op shares, in one place.

Coerce the formats, convert the input, check that every format fits its dtype
and cast half types to the float32 the kernels compute in. (After checking
their other arguments, the ops then ask :func:`tensorflow_kappa._ops.custom_ops`
for the op library or None, the pure-TensorFlow twin; that loads the library on
first use.)
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import tensorflow as tf

from tensorflow_kappa.core.fixed_point import FixedPoint, FormatLike

HALF_TYPES = (tf.float16, tf.bfloat16)


class OpInputs(NamedTuple):
    """What :func:`prepare` returns."""

    x: tf.Tensor                                # the input, converted
    compute: tf.Tensor                          # x in its compute dtype (half types: float32)
    formats: Tuple[Optional[FixedPoint], ...]   # coerced, each fits x's dtype; None stays None


def prepare(x: object, *formats: Optional[FormatLike]) -> OpInputs:
    """The common preamble of ``quantize_tensor``, ``rail_stats`` and ``update_quantize_store``.

    Raises:
        ValueError: a format that does not parse, or that ``x``'s dtype cannot
            hold exactly; a dtype that is not float16, bfloat16, float32 or float64.
    """
    coerced = tuple(None if f is None else FixedPoint.coerce(f) for f in formats)
    x = tf.convert_to_tensor(x)
    for fmt in coerced:
        if fmt is not None:
            fmt.check_dtype(x.dtype)
    return OpInputs(x, to_compute(x), coerced)


def to_compute(x: tf.Tensor) -> tf.Tensor:
    """``x`` in the dtype the kernels compute in: float32 for half types, else as is."""
    return tf.cast(x, tf.float32) if x.dtype in HALF_TYPES else x


def from_compute(y: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """A compute-dtype result back in the input's ``dtype``."""
    return tf.cast(y, dtype) if dtype in HALF_TYPES else y

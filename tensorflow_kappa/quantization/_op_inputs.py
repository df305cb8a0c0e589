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

from tensorflow_kappa import _checks
from tensorflow_kappa.core.fixed_point import FixedPoint, FormatLike

HALF_TYPES = (tf.float16, tf.bfloat16)


class OpInputs(NamedTuple):
    """What :func:`prepare` returns."""

    x: tf.Tensor                                # the input, converted
    compute: tf.Tensor                          # x in its compute dtype (half types: float32)
    formats: Tuple[Optional[FixedPoint], ...]   # coerced, each fits x's dtype; None stays None


def prepare(x: object, name: str = "x", optional: bool = False,
            **formats: Optional[FormatLike]) -> OpInputs:
    """The common preamble of ``quantize_tensor``, ``rail_stats`` and ``update_quantize_store``.

    Args:
        x: the op's tensor argument, called ``name`` in messages.
        optional: whether a format may be None (no quantization).
        **formats: the op's format arguments by name, in order.

    Raises:
        ValueError: a format that does not parse, or that ``x``'s dtype cannot
            hold exactly (the message starts with the format argument's name);
            ``x`` not of dtype float16, bfloat16, float32 or float64.
        TypeError: ``x`` is not a dense tensor.
    """
    coerced = []
    for fmt_name, fmt in formats.items():
        try:
            coerced.append(None if fmt is None and optional else FixedPoint.coerce(fmt))
        except ValueError as err:
            raise ValueError(f"{fmt_name}: {err}") from None
    x = _checks.tensor(name, x)
    if x.dtype not in HALF_TYPES + (tf.float32, tf.float64):
        raise ValueError(f"{name} must be a float16, bfloat16, float32 or float64 tensor, "
                         f"got dtype {x.dtype.name}")
    for fmt_name, fmt in zip(formats, coerced):
        if fmt is not None:
            try:
                fmt.check_dtype(x.dtype)
            except ValueError as err:
                raise ValueError(f"{fmt_name}: {err}") from None
    return OpInputs(x, to_compute(x), tuple(coerced))


def to_compute(x: tf.Tensor) -> tf.Tensor:
    """``x`` in the dtype the kernels compute in: float32 for half types, else as is."""
    return tf.cast(x, tf.float32) if x.dtype in HALF_TYPES else x


def from_compute(y: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """A compute-dtype result back in the input's ``dtype``."""
    return tf.cast(y, dtype) if dtype in HALF_TYPES else y

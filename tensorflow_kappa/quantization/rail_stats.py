"""``rail_stats``: one-pass statistics of how close a tensor runs to the rails of a format."""
from __future__ import annotations

import tensorflow as tf

from tensorflow_kappa import _ops
from tensorflow_kappa.core.ops import check_near_rail
from tensorflow_kappa.core.stats import RailStats
from tensorflow_kappa.quantization import composite
from tensorflow_kappa.quantization._op_inputs import FormatLike, prepare

tf.no_gradient("Kappa>RailStats")


def rail_stats(x: tf.Tensor, fmt: FormatLike, near_rail: float = 0.9) -> RailStats:
    """How close ``x`` runs to the rails of ``fmt``, in one pass over ``x``.

    With ``min_value``/``max_value`` the rails of ``fmt`` and
    ``m = (1 - near_rail) * (max_value - min_value) / 2``:

    * ``saturation_fraction``: the fraction of elements with
      ``x > max_value`` or ``x < min_value``;
    * ``near_rail_fraction``: the fraction with ``x >= max_value - m`` or
      ``x <= min_value + m`` (so it includes the saturated ones);
    * ``underflow_fraction``: among the elements with ``x != 0``, the fraction
      that ``fmt`` rounds to 0 under nearest-even rounding with saturation
      (whatever ``fmt``'s own modes; for an unsigned format that includes
      every negative value, which saturates to 0); 0 when there are none.

    NaN elements count in none of the three: they are never saturated, near a
    rail or underflowing, and they are not among the nonzero elements of the
    underflow fraction (they do count as elements in the first two
    denominators). +-Inf are saturated and near a rail. An empty tensor gives
    zeros. The thresholds are compared exactly as their double-precision
    definition says, whatever the dtype of ``x``.

    Not differentiable. Compiles under XLA (``jit_compile=True``) to the same
    counts, through the op's lowering.

    Args:
        x: a float16, bfloat16, float32 or float64 tensor of any shape (half
            types are measured in float32, exactly).
        fmt: a FixedPoint or its string form, e.g. ``"s8.4"``; it must be
            exactly representable in ``x``'s dtype (as for quantize_tensor).
        near_rail: in [0, 1]; the share of each half-range that is *not* near
            the rail. Held as float32 (an op attribute): 0.9 means
            ``float32(0.9)``.

    Returns:
        RailStats of three float32 scalar tensors.

    Raises:
        ValueError: a bad ``near_rail`` or ``fmt``, or ``fmt`` not exactly
            representable in ``x``'s dtype.

    Example:
    >>> s = rail_stats([0.01, 7.9, 8.5, -9.0], "s8.4")
    >>> [round(float(v), 4) for v in s]
    [0.5, 0.75, 0.25]
    """
    near = check_near_rail(near_rail)
    _, compute, (fmt,) = prepare(x, fmt=fmt)
    lib = _ops.custom_ops()
    if lib is None:
        return RailStats(*composite.rail_stats(compute, fmt, near))
    out = lib.kappa_rail_stats(
        compute, bits=fmt.bits, frac_bits=fmt.frac_bits, signed=fmt.signed, near_rail=near
    )
    return RailStats(*out)

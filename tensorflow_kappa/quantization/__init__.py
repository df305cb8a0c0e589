"""Fixed-point quantization: formats, ``quantize_tensor`` and its pure-TF twin.

Example:
>>> from tensorflow_kappa.quantization import FixedPoint, quantize_tensor
>>> quantize_tensor([0.1, -3.0, 9.0], FixedPoint.parse("s6.2")).numpy()
array([ 0.  , -3.  ,  7.75], dtype=float32)
"""
from tensorflow_kappa._ops import composite_ops
from tensorflow_kappa.quantization.fixed_point import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    FixedPoint,
)
from tensorflow_kappa.quantization.quantize import quantize_tensor

__all__ = [
    "FixedPoint",
    "OVERFLOW_MODES",
    "ROUNDING_MODES",
    "composite_ops",
    "quantize_tensor",
]

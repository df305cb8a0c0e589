"""Fixed-point quantization: formats, ``quantize_tensor``, ``rail_stats``,
``update_quantize_store``, their pure-TF twins, ``PrecisionDict`` (formats per
layer and field) and ``quantize_model`` (a Keras model with ``Quantize`` layers
inserted per a precision dict).

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
from tensorflow_kappa.quantization.precision import PrecisionDict, ensure_precision_dict
from tensorflow_kappa.quantization.quantize import quantize_tensor
from tensorflow_kappa.quantization.quantize_model import quantize_model
from tensorflow_kappa.quantization.rail_stats import RailStats, rail_stats
from tensorflow_kappa.quantization.update_store import UpdateStats, update_quantize_store

__all__ = [
    "FixedPoint",
    "OVERFLOW_MODES",
    "PrecisionDict",
    "ROUNDING_MODES",
    "RailStats",
    "UpdateStats",
    "composite_ops",
    "ensure_precision_dict",
    "quantize_model",
    "quantize_tensor",
    "rail_stats",
    "update_quantize_store",
]

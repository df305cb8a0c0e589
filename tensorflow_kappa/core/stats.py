"""What the rail-statistics and update kernels report: one record each, for every binding.

The TensorFlow ops (:func:`tensorflow_kappa.quantization.rail_stats`,
:func:`~tensorflow_kappa.quantization.update_quantize_store`) fill them with
float32 scalar tensors, the NumPy binding (:mod:`tensorflow_kappa.core`) with
NumPy float32 scalars; the fields and their meaning are the same.

Example:
>>> RailStats(0.25, 0.5, 0.0).near_rail_fraction
0.5
"""
from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["RailStats", "UpdateStats"]


class RailStats(NamedTuple):
    """What ``rail_stats`` measures: three float32 scalars."""

    saturation_fraction: Any
    near_rail_fraction: Any
    underflow_fraction: Any


class UpdateStats(NamedTuple):
    """What ``update_quantize_store`` did to the step: five float32 scalars.

    ``update_cosine = update_dot / (raw_update_norm * actual_update_norm)``
    and ``update_radius_ratio = actual_update_norm / raw_update_norm`` follow.
    """

    raw_update_norm: Any
    actual_update_norm: Any
    update_dot: Any
    update_underflow_fraction: Any
    storage_saturation_fraction: Any

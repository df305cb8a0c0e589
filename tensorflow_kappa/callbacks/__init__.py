"""Callbacks of tensorflow_kappa."""
from tensorflow_kappa.callbacks.in_extrapolation import InExtrapolationEvaluation
from tensorflow_kappa.callbacks.loop_controller import LoopController
from tensorflow_kappa.callbacks.loop_controller import LoopControllerConfigError
from tensorflow_kappa.callbacks.quantization_monitor import (LearningDeathWarning,
                                                             QuantizationMonitor)

__all__ = [
    "InExtrapolationEvaluation",
    "LearningDeathWarning",
    "LoopController",
    "LoopControllerConfigError",
    "QuantizationMonitor",
]

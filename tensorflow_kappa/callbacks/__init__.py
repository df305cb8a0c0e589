"""Callbacks of tensorflow_kappa."""
from tensorflow_kappa.callbacks.in_extrapolation import InExtrapolationEvaluation
from tensorflow_kappa.callbacks.loop_controller import LoopController
from tensorflow_kappa.callbacks.loop_controller import LoopControllerCallback
from tensorflow_kappa.callbacks.loop_controller import LoopControllerConfigError

__all__ = [
    "InExtrapolationEvaluation",
    "LoopController",
    "LoopControllerCallback",
    "LoopControllerConfigError",
]

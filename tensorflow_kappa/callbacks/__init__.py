"""Callbacks of tensorflow_kappa."""
from tensorflow_kappa.callbacks.loop_controller import LoopController
from tensorflow_kappa.callbacks.loop_controller import LoopControllerCallback
from tensorflow_kappa.callbacks.loop_controller import LoopControllerConfigError

__all__ = [
    "LoopController",
    "LoopControllerCallback",
    "LoopControllerConfigError",
]

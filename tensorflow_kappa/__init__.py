"""tensorflow_kappa: fixed-point training, training-loop control and neural arithmetic units.

Importing the package registers the ops' gradients and its Keras serializables;
it does not load the compiled op library. That happens on the first op call
(:func:`quantize_tensor`, :func:`rail_stats`, :func:`update_quantize_store`)
or through :func:`register_all`, so layers, callbacks, datasets and models that
never call an op work without a built library.

Example:
>>> import tensorflow_kappa as tk
>>> tk.quantize_tensor([0.1, 0.3], "s8.4").numpy()
array([0.125 , 0.3125], dtype=float32)
"""
import importlib

from tensorflow_kappa import (
    callbacks,
    datasets,
    evaluation,
    layers,
    models,
    quantization,
    recipes,
)
from tensorflow_kappa._ops import composite_ops, register_all
from tensorflow_kappa.callbacks import LoopController
from tensorflow_kappa.datasets import BaseDataset, TeacherStudentDataset
from tensorflow_kappa.layers import INALU
from tensorflow_kappa.models import BaseModel, FitHistory, LinearBlockModel, TrainConfig
from tensorflow_kappa.quantization import (
    FixedPoint,
    PrecisionDict,
    ensure_precision_dict,
    quantize_tensor,
    rail_stats,
    update_quantize_store,
)

__version__ = "0.1.0"

# Old module paths, imported (with a DeprecationWarning) only when used.
_DEPRECATED_MODULES = ("history", "precision", "utils")


def __getattr__(name: str):
    if name in _DEPRECATED_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BaseDataset",
    "BaseModel",
    "FitHistory",
    "FixedPoint",
    "INALU",
    "LinearBlockModel",
    "LoopController",
    "PrecisionDict",
    "TeacherStudentDataset",
    "TrainConfig",
    "__version__",
    "callbacks",
    "composite_ops",
    "datasets",
    "ensure_precision_dict",
    "evaluation",
    "layers",
    "models",
    "quantization",
    "quantize_tensor",
    "rail_stats",
    "recipes",
    "register_all",
    "update_quantize_store",
]

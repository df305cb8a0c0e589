"""tensorflow_kappa: fixed-point training, training-loop control and neural arithmetic units.

Importing the package registers its custom ops with TensorFlow (so SavedModels
that use them load), their gradients, and its Keras serializables.

Example:
>>> import tensorflow_kappa as tk
>>> tk.quantize_tensor([0.1, 0.3], "s8.4").numpy()
array([0.125 , 0.3125], dtype=float32)
"""
from tensorflow_kappa import (
    _ops,
    callbacks,
    datasets,
    evaluation,
    history,
    layers,
    models,
    precision,
    quantization,
    recipes,
    utils,
)
from tensorflow_kappa._ops import composite_ops
from tensorflow_kappa.callbacks import LoopController
from tensorflow_kappa.datasets import BaseDataset, TeacherStudentDataset
from tensorflow_kappa.history import FitHistory
from tensorflow_kappa.layers import INALU
from tensorflow_kappa.models import BaseModel, LinearBlockModel
from tensorflow_kappa.precision import PrecisionDict, ensure_precision_dict
from tensorflow_kappa.quantization import (
    FixedPoint,
    quantize_tensor,
    rail_stats,
    update_quantize_store,
)

__version__ = "0.1.0"


def register_all() -> None:
    """Register tensorflow_kappa's ops, gradients and Keras objects with TensorFlow.

    ``import tensorflow_kappa`` already does this; call it explicitly where a
    SavedModel or ``.keras`` file that uses the package is loaded by code that
    does not otherwise touch it. Raises ImportError if the op library cannot
    be loaded (unless ``KAPPA_PY_OPS=1`` selects the pure-TensorFlow ops).
    """
    if not _ops.fallback_requested():
        _ops.load_library()


register_all()

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
    "__version__",
    "callbacks",
    "composite_ops",
    "datasets",
    "ensure_precision_dict",
    "evaluation",
    "history",
    "layers",
    "models",
    "precision",
    "quantization",
    "quantize_tensor",
    "rail_stats",
    "recipes",
    "register_all",
    "update_quantize_store",
    "utils",
]

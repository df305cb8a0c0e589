"""tensorflow_kappa: fixed-point training, training-loop control and neural arithmetic units.

The package imports its parts on first use (PEP 562): ``import
tensorflow_kappa`` itself imports neither TensorFlow nor Keras, so the
TensorFlow-free parts (the NumPy binding ``tensorflow_kappa.core``, the
``kappa`` command line's argument parsing) stay light, and TensorFlow's
start-up can be configured before it is imported. ``tk.quantize_tensor``,
``tk.INALU`` and every other public name below import their module when first
read.

Registration with TensorFlow and Keras:

* The package's Keras serializables (layers, metrics) and op gradients are
  registered when their modules are imported: on first use, at once by
  ``import tensorflow_kappa`` when Keras or TensorFlow is already imported,
  and by :func:`register_all`.
* The compiled op library loads on the first op call or through
  :func:`register_all`. Before ``keras.models.load_model`` or
  ``tf.saved_model.load`` of a file that uses the package in a process that
  has not touched it yet, call ``tk.register_all()``.

Example:
>>> import tensorflow_kappa as tk
>>> tk.quantize_tensor([0.1, 0.3], "s8.4").numpy()
array([0.125 , 0.3125], dtype=float32)
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

from tensorflow_kappa._version import __version__

#: Public names of the package and the module each one lives in.
_ATTRIBUTES = {
    "composite_ops": "_ops",
    "LoopController": "callbacks",
    "QuantizationMonitor": "callbacks",
    "BaseDataset": "datasets",
    "TeacherStudentDataset": "datasets",
    "INALU": "layers",
    "Quantize": "layers",
    "BaseModel": "models",
    "FitHistory": "models",
    "LinearBlockModel": "models",
    "LowPrecisionOptimizer": "optimizers",
    "TrainConfig": "models",
    "FixedPoint": "quantization",
    "PrecisionDict": "quantization",
    "ensure_precision_dict": "quantization",
    "quantize_model": "quantization",
    "quantize_tensor": "quantization",
    "rail_stats": "quantization",
    "update_quantize_store": "quantization",
}
#: Subpackages and modules reachable as attributes (``tk.layers``).
_SUBMODULES = (
    "callbacks", "core", "datasets", "evaluation", "experiments", "layers", "models",
    "optimizers", "quantization", "recipes",
)
#: The modules whose import registers Keras serializables and op gradients.
_REGISTERING_MODULES = ("quantization", "layers", "optimizers", "recipes")


def _import(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def register_keras_objects() -> None:
    """Import the modules that register the package's Keras objects and op gradients.

    Needed only where a file that uses the package (``.keras``, SavedModel) is
    loaded before anything of the package has been used in the process;
    :func:`register_all` calls it.
    """
    for name in _REGISTERING_MODULES:
        _import(name)


def register_all() -> None:
    """Register everything the package adds to TensorFlow and Keras, now.

    Imports the modules that register the Keras serializables and the ops'
    gradients, then loads the compiled op library (unless ``KAPPA_PY_OPS=1``
    selects the pure-TensorFlow ops). Call it before
    ``keras.models.load_model`` or ``tf.saved_model.load`` of a file that uses
    the package in a process that has not used the package yet.

    Raises:
        ImportError: the op library is missing, was built for another
            TensorFlow or fails to load (the message says which, and how to
            rebuild it).

    Example:
    >>> import tensorflow_kappa as tk
    >>> tk.register_all()
    """
    register_keras_objects()
    _import("_ops").register_ops()


def __getattr__(name: str) -> Any:
    if name in _ATTRIBUTES:
        value = getattr(_import(_ATTRIBUTES[name]), name)
    elif name in _SUBMODULES:
        value = _import(name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))


__all__ = sorted([*_ATTRIBUTES, *_SUBMODULES, "__version__", "register_all",
                  "register_keras_objects"])

# Where Keras or TensorFlow is already imported, importing the package costs
# little more: register its Keras objects now, so a .keras file that uses them
# loads without further ado.
if "keras" in sys.modules or "tensorflow" in sys.modules:
    register_keras_objects()

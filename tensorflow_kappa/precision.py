"""Deprecated alias of :mod:`tensorflow_kappa.quantization.precision`, kept for old imports.

Importing it warns (DeprecationWarning) and re-exports the same objects.
"""
from tensorflow_kappa._deprecation import warn_moved_module
from tensorflow_kappa.quantization.precision import *  # noqa: F401,F403
from tensorflow_kappa.quantization.precision import __all__  # noqa: F401

warn_moved_module("tensorflow_kappa.precision", "tensorflow_kappa.quantization.precision")

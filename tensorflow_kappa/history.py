"""Deprecated alias of :mod:`tensorflow_kappa.models.history`, kept for old imports.

Importing it warns (DeprecationWarning) and re-exports the same objects.
"""
from tensorflow_kappa._deprecation import warn_moved_module
from tensorflow_kappa.models.history import *  # noqa: F401,F403
from tensorflow_kappa.models.history import __all__  # noqa: F401

warn_moved_module("tensorflow_kappa.history", "tensorflow_kappa.models.history")

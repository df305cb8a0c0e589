"""Deprecated alias of :mod:`tensorflow_kappa.models.stability`, kept for old imports.

Importing it warns (DeprecationWarning) and re-exports the same objects.
"""
from tensorflow_kappa._deprecation import warn_moved_module
from tensorflow_kappa.models.stability import *  # noqa: F401,F403
from tensorflow_kappa.models.stability import __all__  # noqa: F401

warn_moved_module("tensorflow_kappa.utils", "tensorflow_kappa.models.stability")

"""Shared pytest configuration for tensorflow_kappa."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

"""Optimizers of tensorflow_kappa: ``LowPrecisionOptimizer``, low-precision training around any
Keras 3 optimizer (gradients, optimizer state, updates and stored weights per a precision dict).

>>> import keras
>>> from tensorflow_kappa.optimizers import LowPrecisionOptimizer
>>> opt = LowPrecisionOptimizer(keras.optimizers.Adam(1e-3), {"*": {"weight": "s16.12"}})
>>> str(opt.precision.format("dense", "weight")), type(opt.inner_optimizer).__name__
('s16.12', 'Adam')
"""
from tensorflow_kappa.optimizers.low_precision import DEFAULT_STATE_FIELDS, LowPrecisionOptimizer

__all__ = ["DEFAULT_STATE_FIELDS", "LowPrecisionOptimizer"]

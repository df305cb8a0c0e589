"""Plain loss callables as distribution-correct :class:`keras.losses.Loss` objects.

:class:`LoopController` accepts a branch ``"loss"`` given as a loss name that
``keras.losses.get`` resolves to a bare function (``"mse"``) or as any
callable ``fn(y_true, y_pred)``.  :class:`FunctionLoss` wraps such a callable
so that it is reduced, weighted and scaled like a built-in Keras loss.
"""
from __future__ import annotations

import re
from typing import Callable, Optional

import keras
import tensorflow as tf

__all__ = ["FunctionLoss"]


def _scope_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", name).strip("_.-")
    return cleaned or "loss"


class FunctionLoss(keras.losses.Loss):
    """A :class:`keras.losses.Loss` around a plain ``fn(y_true, y_pred)``.

    Per-sample values returned by ``fn`` are reduced by Keras
    (``sum_over_batch_size``, sample weights, masks and the
    ``1/num_replicas`` scaling under a distribution strategy).  A function
    that already returns a scalar is taken as the batch mean; it is only
    scaled by ``1/num_replicas`` (which Keras skips for scalars), so that
    summing the per-replica gradients gives the global-batch gradient.
    """

    def __init__(self, fn: Callable, name: Optional[str] = None):
        super().__init__(name=_scope_name(name or getattr(fn, "__name__", "loss")))
        self.fn = fn
        self._returned_scalar = False

    def call(self, y_true, y_pred):
        values = keras.ops.convert_to_tensor(self.fn(y_true, y_pred))
        # Trace-time (static) property of the function's output.
        self._returned_scalar = len(values.shape) == 0
        return values

    def __call__(self, y_true, y_pred, sample_weight=None):
        value = super().__call__(y_true, y_pred, sample_weight=sample_weight)
        if self._returned_scalar and self.reduction not in (None, "none"):
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            if replicas > 1:
                value = value * (1.0 / replicas)
        return value

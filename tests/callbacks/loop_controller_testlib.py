"""Shared helpers for the LoopController tests (not a test module).

Provides tiny models and data, NumPy references for plain SGD steps on a
linear model, and iNALU models (``tensorflow_kappa.layers.INALU``: gate
variable ``g``, ``reinitialize()``, sparsity regulariser through ``add_loss``),
the layer the report's tests trained.
"""
from __future__ import annotations

import keras
import numpy as np

from tensorflow_kappa.layers import INALU


def inalu_model(seed: int = 0, optimizer=None) -> keras.Model:
    """Two stacked iNALU layers on 4 inputs, compiled with mse."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), INALU(2), INALU(1)])
    model.compile(optimizer=optimizer or keras.optimizers.RMSprop(0.01), loss="mse")
    return model


def inalu_data(n: int = 64, seed: int = 0):
    """(x1 - x2) * (x3 + x4) on a small positive range."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 2.0, size=(n, 4)).astype("float32")
    y = ((x[:, 0] - x[:, 1]) * (x[:, 2] + x[:, 3]))[:, None].astype("float32")
    return x, y


def gates(model):
    """The report's get_gates_variables, written as fn(model)."""
    return [layer.g for layer in model.layers if isinstance(layer, INALU)]


def linear_model(seed: int = 0, lr: float = 0.1, loss="mse", l2: float = 0.0,
                 optimizer=None) -> keras.Model:
    """Dense(1) on 3 inputs: simple enough for NumPy reference gradients."""
    keras.utils.set_random_seed(seed)
    reg = keras.regularizers.L2(l2) if l2 else None
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(1, kernel_regularizer=reg,
                                               bias_initializer="ones")]
    )
    model.compile(optimizer=optimizer or keras.optimizers.SGD(lr), loss=loss)
    return model


def linear_data(n: int = 16, seed: int = 1, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (scale * (x @ np.array([[1.0], [-2.0], [0.5]]) + 3.0)).astype("float32")
    return x, y


def np_grads(w, b, x, y, loss: str):
    """Gradients of a mean loss of the linear model x @ w + b, in float64."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    r = x @ w + b - y
    n = len(x)
    if loss == "mse":
        dr = 2.0 * r / n
    elif loss == "mae":
        dr = np.sign(r) / n
    else:
        raise ValueError(loss)
    return x.T @ dr, dr.sum(axis=0)


def np_loss(w, b, x, y, loss: str) -> float:
    r = x.astype(np.float64) @ w + b - y
    return float(np.mean(r**2) if loss == "mse" else np.mean(np.abs(r)))


class WeightRecorder(keras.callbacks.Callback):
    """Copies of all weights after every batch (and the initial ones)."""

    def on_train_begin(self, logs=None):
        self.snapshots = [[w.copy() for w in self.model.get_weights()]]

    def on_train_batch_end(self, batch, logs=None):
        self.snapshots.append([w.copy() for w in self.model.get_weights()])

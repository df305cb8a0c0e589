"""Shared helpers for the LoopController tests (not a test module).

Provides tiny models and data, NumPy references for plain SGD steps on a
linear model, and the NALM layer the report's tests trained: the real
``tensorflow_kappa.layers.INALU`` when it is importable, otherwise a small
stand-in with the same surface (gate variable ``g``, ``reinitialize()``, a
sparsity regulariser through ``add_loss``).
"""
from __future__ import annotations

import keras
import numpy as np

try:  # the layers issue's iNALU, once it has landed
    from tensorflow_kappa.layers import INALU as NALM  # noqa: N811

    HAVE_INALU = True
except ImportError:  # pragma: no cover - depends on the other issue's progress
    HAVE_INALU = False

    class NALM(keras.layers.Layer):
        """Stand-in iNALU (report eq. 2.6-2.13, 2.15) with a scalar-free gate vector."""

        def __init__(self, units, omega=20.0, t=20.0, **kwargs):
            super().__init__(**kwargs)
            self.units, self.omega, self.t = units, omega, t

        def build(self, input_shape):
            shape = (int(input_shape[-1]), self.units)
            init = keras.initializers.RandomNormal(stddev=0.5)
            self.w_a = self.add_weight(shape=shape, initializer=init, name="w_a")
            self.m_a = self.add_weight(shape=shape, initializer=init, name="m_a")
            self.w_m = self.add_weight(shape=shape, initializer=init, name="w_m")
            self.m_m = self.add_weight(shape=shape, initializer=init, name="m_m")
            self.g = self.add_weight(shape=(self.units,), initializer="zeros", name="g")

        def reinitialize(self):
            for v in (self.w_a, self.m_a, self.w_m, self.m_m):
                v.assign(keras.random.normal(v.shape, stddev=0.5))
            self.g.assign(keras.ops.zeros_like(self.g))

        def _sparsity(self, w):
            return keras.ops.mean(keras.ops.maximum(keras.ops.minimum(-w, w) + self.t, 0.0))

        def call(self, x):
            ops = keras.ops
            wa = ops.tanh(self.w_a) * ops.sigmoid(self.m_a)
            wm = ops.tanh(self.w_m) * ops.sigmoid(self.m_m)
            a = ops.matmul(x, wa)
            log_x = ops.log(ops.maximum(ops.abs(x), 1e-7))
            m = ops.exp(ops.minimum(ops.matmul(log_x, wm), self.omega))
            g = ops.sigmoid(self.g)
            self.add_loss(
                sum(self._sparsity(w) for w in (self.w_a, self.m_a, self.w_m, self.m_m, self.g))
                / self.t
            )
            return g * a + (1.0 - g) * m


def nalm_model(seed: int = 0, optimizer=None) -> keras.Model:
    """Two stacked NALM layers on 4 inputs, compiled with mse."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), NALM(2), NALM(1)])
    model.compile(optimizer=optimizer or keras.optimizers.RMSprop(0.01), loss="mse")
    return model


def nalm_data(n: int = 64, seed: int = 0):
    """(x1 - x2) * (x3 + x4) on a small positive range."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 2.0, size=(n, 4)).astype("float32")
    y = ((x[:, 0] - x[:, 1]) * (x[:, 2] + x[:, 3]))[:, None].astype("float32")
    return x, y


def gates(model):
    """The report's get_gates_variables, written as fn(model)."""
    return [layer.g for layer in model.layers if isinstance(layer, NALM)]


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

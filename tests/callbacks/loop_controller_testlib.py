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


# --------------------------------------------------------------------------
# Distributed runs: one model and one config used by the single-device
# reference, the MirroredStrategy run and the MultiWorkerMirroredStrategy workers.
# --------------------------------------------------------------------------
DIST_BATCH = 16


def dist_data(n: int = 64, packed: bool = False):
    """Features (n, 3) and target (n, 1); ``packed``: one (n, 4) array, target last."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (np.sin(x[:, :1]) + x[:, 1:2] * x[:, 2:3]).astype("float32")
    return np.concatenate([x, y], axis=1) if packed else (x, y)


@keras.saving.register_keras_serializable(package="kappa_tests")
class PackedTargetMLP(keras.Model):
    """The same MLP, reading its target from the last input column.

    Keras 3.15 ``fit`` under a multi-worker MultiWorkerMirroredStrategy fails
    on ``(x, y)`` batches before any step runs (``_maybe_symbolic_build``
    calls ``strategy.reduce`` on the tuple); a single-tensor batch avoids it.
    The public ``compute_loss`` / ``compute_metrics`` hooks take ``y`` from ``x``.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(
            8, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.01))
        self.head = keras.layers.Dense(1)

    def call(self, xy):
        return self.head(self.hidden(xy[:, :3]))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, x[:, 3:], y_pred, sample_weight, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, x[:, 3:], y_pred, sample_weight)


def dist_model(seed: int = 0, packed: bool = False) -> keras.Model:
    """A small MLP with an L2 regulariser; build it inside the strategy scope."""
    keras.utils.set_random_seed(seed)
    if packed:
        model = PackedTargetMLP()
        model(np.zeros((1, 4), "float32"))  # create the weights
    else:
        model = keras.Sequential([
            keras.Input((3,)),
            keras.layers.Dense(8, activation="tanh",
                               kernel_regularizer=keras.regularizers.L2(0.01)),
            keras.layers.Dense(1),
        ])
    model.compile(keras.optimizers.Adam(0.02), loss="mse", metrics=["mae"])
    return model


def _head(model):
    return model.layers[-1].trainable_variables


def _scalar_mae(y_true, y_pred):  # returns the batch mean itself: scaling must be right
    return keras.ops.mean(keras.ops.abs(y_true - y_pred))


def dist_config(own_loss: bool = True) -> dict:
    """Every mechanism at once: flips each batch, subsets, clipping, regulariser,
    zero loss and (``own_loss``) a branch loss that returns a scalar."""
    false_branch = {"variables": _head}
    if own_loss:
        false_branch["loss"] = _scalar_mae
    return {
        "gate": {
            "cond": lambda cb: cb.batches % 2 == 0,
            True: {"excluded_variables": _head, "clipping": (-0.05, 0.05), "regularize": True},
            False: false_branch,
        },
        "reg": {"cond": lambda cb: cb.batches % 3 == 0,
                True: {"loss": None, "regularize": True}},
    }

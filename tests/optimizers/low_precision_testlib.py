"""The model, data and precision of the multi-worker test, shared by the test and its workers."""
import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa.callbacks.controlled_step import multi_worker

from tensorflow_kappa.layers import Quantize

PRECISION = {
    "*": {"weight": "s16.12:stochastic", "bias": "s16.12", "gradient": "s16.13",
          "momentum": "s16.13:stochastic"},
}
BATCH = 16


class PackedQuantizedMLP(keras.Model):
    """A subclassed model with Quantize layers of its own; it reads its target from the
    last input column (Keras 3.15's fit under MultiWorkerMirroredStrategy fails on
    ``(x, y)`` batches before any step runs: see tests/callbacks/loop_controller_testlib)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="tanh", name="hidden")
        self.hidden_q = Quantize("s16.10", "s16.13", name="hidden_quantize")
        self.head = keras.layers.Dense(1, name="head")

    def call(self, xy):
        return self.head(self.hidden_q(self.hidden(xy[:, :3])))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, x[:, 3:], y_pred, sample_weight, training)

    def train_step(self, data):
        """Keras 3.15's multi-worker fit reduces each log with ``strategy.reduce("MEAN",
        v, axis=0)``, which fails on scalars: logs of shape [1] reduce to the right one."""
        logs = super().train_step(data)
        if multi_worker(self.distribute_strategy):
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs


def make_model(seed: int = 0) -> keras.Model:
    from tensorflow_kappa.optimizers import LowPrecisionOptimizer

    keras.utils.set_random_seed(seed)
    model = PackedQuantizedMLP()
    model(np.zeros((1, 4), "float32"))
    model.compile(optimizer=LowPrecisionOptimizer(keras.optimizers.SGD(0.1, momentum=0.9),
                                                PRECISION, seed=7), loss="mse")
    return model


def data() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 3)).astype("float32")
    y = (np.sin(x[:, :1]) + x[:, 1:2] * x[:, 2:3]).astype("float32")
    return np.concatenate([x, y], axis=1)

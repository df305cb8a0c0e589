"""A metric the training-control rules read: the MSE of the last batch."""
from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["BatchMSE"]


@keras.saving.register_keras_serializable(package="Kappa")
class BatchMSE(keras.metrics.Metric):
    """Mean squared error of the most recent batch only (not a running mean).

    Keras averages metrics over the epoch; training-control rules about "the
    loss of a step" want the step's own value.  ``update_state`` overwrites,
    so ``result()`` is the MSE of the last batch seen.

    Example:
    >>> metric = BatchMSE()
    >>> metric.update_state([[0.0], [0.0]], [[3.0], [3.0]])
    >>> metric.update_state([[1.0], [2.0]], [[1.0], [4.0]])
    >>> float(metric.result())  # the second batch's (0 + 4) / 2
    2.0
    """

    def __init__(self, name: str = "batch_mse", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.value = self.add_variable(shape=(), initializer="zeros", name="value")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.cast(y_true, self.dtype)
        y_pred = tf.cast(y_pred, self.dtype)
        error = tf.square(y_pred - tf.reshape(y_true, tf.shape(y_pred)))
        if sample_weight is not None:
            w = tf.cast(sample_weight, self.dtype)
            w = tf.broadcast_to(tf.reshape(w, [-1] + [1] * (error.shape.rank - 1)),
                                tf.shape(error))
            self.value.assign(tf.reduce_sum(error * w) / tf.maximum(tf.reduce_sum(w), 1e-12))
        else:
            self.value.assign(tf.reduce_mean(error))

    def result(self):
        return tf.identity(self.value)

    def reset_state(self):
        self.value.assign(0.0)

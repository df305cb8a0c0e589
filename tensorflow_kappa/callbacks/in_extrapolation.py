"""Interpolation and extrapolation error at the end of training epochs (report appendix D).

:class:`InExtrapolationEvaluation` is the report's
``InExtrapolationEvaluationCallback`` made a good Keras citizen: instead of
keeping its numbers to itself, it writes ``interpolation_mse`` and
``extrapolation_mse`` into the epoch logs, so ``History``, the progress bar,
``EarlyStopping(monitor="extrapolation_mse", mode="min")``, ``ModelCheckpoint`` and any
later callback see them.  The evaluation is one compiled ``tf.function`` per
data set shape (a graph loop over chunks of the data set, squared errors
summed in float64), not a Python loop over ``predict``.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks

__all__ = ["InExtrapolationEvaluation"]


def _as_pair(data, name: str) -> Tuple[np.ndarray, np.ndarray]:
    try:
        x, y = data
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (x, y) of arrays, got {type(data).__name__}"
                         ) from None
    x = _checks.float_array(f"{name} x", x, dtype=None)
    y = _checks.float_array(f"{name} y", y, dtype=None)
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers, got arrays of dtype {x.dtype} and "
                         f"{y.dtype}")
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: x and y need the same number of rows, got shapes "
                         f"{x.shape} and {y.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if y.ndim == 1:
        y = y[:, None]
    return x, y


class InExtrapolationEvaluation(keras.callbacks.Callback):
    """Add ``interpolation_mse`` and ``extrapolation_mse`` to the epoch logs.

    Args:
        interpolation_data: ``(x, y)`` drawn from the training distribution.
        extrapolation_data: ``(x, y)`` drawn from outside it.
        every: evaluate on epochs ``0, every, 2 * every, ...`` (the report's
            ``test_per_epochs``); on other epochs the keys are absent from the
            logs (so monitor them with ``every=1``).
        batch_size: rows per forward pass inside the compiled loop.
        names: the two log keys.

    The MSE is the mean over all rows and outputs of ``(model(x) - y)²``,
    accumulated in float64 from the model's predictions (inference mode, so
    regularisation losses are *not* included, unlike ``evaluate``'s
    ``loss``).  Besides the logs, :attr:`history` keeps
    ``{"epoch": [...], <name>: [...]}`` for the evaluated epochs.

    Example::

        task = tensorflow_kappa.datasets.arithmetic_task(seed=0)
        evaluation = InExtrapolationEvaluation(task.interpolation, task.extrapolation)
        history = model.fit(*task.train, epochs=20, callbacks=[
            evaluation,
            keras.callbacks.EarlyStopping(monitor="extrapolation_mse", mode="min",
                                          patience=5),
        ])
        history.history["extrapolation_mse"]
    """

    def __init__(self, interpolation_data, extrapolation_data, every: int = 1,
                 batch_size: int = 16384,
                 names: Tuple[str, str] = ("interpolation_mse", "extrapolation_mse")):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(names, str) or not isinstance(names, (tuple, list)) or len(names) != 2 \
                or not all(isinstance(n, str) and n for n in names) or names[0] == names[1]:
            raise ValueError(f"names must be two different log keys (strings), got {names!r}")
        names = tuple(names)
        self.every = int(every)
        self.batch_size = int(batch_size)
        self.names = names
        self._data = {
            names[0]: _as_pair(interpolation_data, "interpolation_data"),
            names[1]: _as_pair(extrapolation_data, "extrapolation_data"),
        }
        self._tensors: Dict[str, Tuple[tf.Tensor, tf.Tensor]] = {}
        self._function = None
        self._function_model = None
        self.history: Dict[str, List[float]] = {"epoch": [], names[0]: [], names[1]: []}

    def on_train_begin(self, logs=None) -> None:
        """Check the data sets against the model's input shape before the first epoch
        (not at its end, which would cost the epoch)."""
        try:
            shape = self.model.input_shape
        except (AttributeError, ValueError, TypeError):  # a model not built yet
            return
        if not isinstance(shape, tuple) or any(isinstance(d, (tuple, list)) for d in shape):
            return  # several inputs: the callback's data cannot be one of them
        expected = shape[1:]
        for name, label in zip(self.names, ("interpolation_data", "extrapolation_data")):
            got = tuple(self._data[name][0].shape[1:])
            if len(got) != len(expected) or any(
                    e is not None and e != g for e, g in zip(expected, got)):
                raise ValueError(f"{label}: x has rows of shape {got}; the model takes "
                                 f"{expected}")

    # ------------------------------------------------------------------
    def _build(self) -> None:
        model = self.model
        batch_size = self.batch_size

        x0, y0 = next(iter(self._data.values()))
        dtype = self._input_dtype()
        signature = [tf.TensorSpec((None,) + tuple(x0.shape[1:]), dtype),
                     tf.TensorSpec((None,) + tuple(y0.shape[1:]), tf.as_dtype(y0.dtype))]

        @tf.function(input_signature=signature)  # one trace for both data sets
        def sum_squared_error(x, y):
            n = tf.shape(x)[0]
            total = tf.constant(0.0, tf.float64)
            for start in tf.range(0, n, batch_size):
                end = tf.minimum(start + batch_size, n)
                prediction = model(x[start:end], training=False)
                if isinstance(prediction, (list, tuple, dict)):
                    raise ValueError("InExtrapolationEvaluation supports single-output "
                                     "models only")
                diff = tf.cast(tf.reshape(prediction, tf.shape(y[start:end])), tf.float64) \
                    - tf.cast(y[start:end], tf.float64)
                total += tf.reduce_sum(tf.square(diff))
            return total

        self._function = sum_squared_error
        self._function_model = model

    def _input_dtype(self):
        inputs = getattr(self.model, "inputs", None)
        return tf.as_dtype(inputs[0].dtype if inputs else keras.config.floatx())

    def evaluate(self) -> Dict[str, float]:
        """Compute both MSEs now (also usable outside ``fit``, after ``set_model``)."""
        if self.model is None:
            raise RuntimeError("InExtrapolationEvaluation has no model: pass it to fit, "
                               "or call set_model(model) first")
        if self._function is None or self._function_model is not self.model:
            self._build()
            self._tensors = {}
        results = {}
        for name, (x, y) in self._data.items():
            if name not in self._tensors:
                self._tensors[name] = (tf.convert_to_tensor(x, dtype=self._input_dtype()),
                                       tf.convert_to_tensor(y))
            tx, ty = self._tensors[name]
            total = float(self._function(tx, ty).numpy())
            results[name] = total / float(np.prod(y.shape))
        return results

    def on_epoch_end(self, epoch, logs=None) -> None:
        if epoch % self.every != 0:
            return
        results = self.evaluate()
        self.history["epoch"].append(int(epoch))
        for name, value in results.items():
            self.history[name].append(value)
        if logs is not None:
            logs.update(results)

    # The report's names for the stored results.
    @property
    def int_results(self) -> Dict[int, float]:
        """``{epoch: interpolation MSE}`` (the report's attribute)."""
        return dict(zip(self.history["epoch"], self.history[self.names[0]]))

    @property
    def ext_results(self) -> Dict[int, float]:
        """``{epoch: extrapolation MSE}`` (the report's attribute)."""
        return dict(zip(self.history["epoch"], self.history[self.names[1]]))


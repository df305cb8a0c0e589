"""``QuantizationMonitor``: what fixed-point quantization does to a ``model.fit`` run."""
from __future__ import annotations

import math
import os
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.callbacks.controlled_step import compile_train_function, multi_worker
from tensorflow_kappa.quantization.recording import recording

__all__ = ["LearningDeathWarning", "QuantizationMonitor"]

_PACKED = "__kappa_quantization__"


class LearningDeathWarning(UserWarning):
    """A layer's updates have (almost) all underflowed for a while: it no longer learns."""


def _layer_of(key: str) -> str:
    return key.split("/")[1]


class QuantizationMonitor(keras.callbacks.Callback):
    """Every ``every`` steps, what quantization did to each layer, into the logs.

    On a monitored step the train step runs as usual and also computes, in
    the same compiled function (one extra packed output, fetched once):

    * for each :class:`~tensorflow_kappa.layers.Quantize` layer, the rail
      statistics of its input against its forward format
      (``saturation|near_rail|underflow/<name>/forward``) and of the gradient
      arriving at it against its backward format (``.../backward``); with
      :func:`~tensorflow_kappa.quantization.quantize_model` the layer after
      ``dense_1`` is ``dense_1_quantize``: its activation and its error;
    * with a :class:`~tensorflow_kappa.optimizers.LowPrecisionOptimizer`, per
      layer, everything :meth:`LowPrecisionOptimizer.statistics` gives for a
      monitored step: requested and applied update norms, their cosine,
      ``underflow/<layer>/update`` (the fraction of the step lost to
      underflow), storage saturation, the gradient's rail statistics and how
      near the stored weights run to their rails.

    Under ``tf.distribute`` each replica measures its own share and the
    train function averages the numbers across replicas. Ordinary steps run
    the model's own train function, untouched: under a multi-worker
    ``MultiWorkerMirroredStrategy``, Keras 3.15's own ``fit`` fails on
    scalar logs (it reduces them with ``strategy.reduce("MEAN", v, axis=0)``),
    so such a model's ``train_step`` must return logs of shape ``[1]``
    there; the monitored steps do that themselves.

    Where the numbers go: ``monitor.records`` (``{key: [value per monitored
    step]}``, steps in ``monitor.steps``); the epoch's logs, hence
    ``History`` (the mean of the epoch's monitored steps, e.g.
    ``history.history["underflow/dense_1/update"]``); TensorBoard, when
    ``tensorboard_dir`` is given, as scalars per monitored step and
    histograms of every trainable variable. A :class:`LearningDeathWarning`
    names each layer whose ``underflow/<layer>/update`` stayed at or above
    ``death_threshold`` on every monitored step for at least ``death_steps``
    steps (once, until it recovers); ``monitor.dead_layers`` lists them.

    It replaces ``model.train_function`` on monitored batches, as
    :class:`~tensorflow_kappa.callbacks.LoopController` does on every
    batch: use one of the two per ``fit``.

    Args:
        every: monitor every ``every``-th step (the first step always).
        layers: layer names to report (a Quantize layer ``<name>_quantize``
            counts as ``<name>``); None reports all. Each must be a layer of
            the model (checked when training begins).
        tensorboard_dir: a folder for TensorBoard event files, or None; it
            must be writable (checked, and created, when training begins).
        death_threshold: the update underflow fraction, in (0, 1], at which
            a layer counts as not learning.
        death_steps: how many steps it must stay there before the warning.

    Raises:
        ValueError: bad arguments (named in the message); at the start of
            training, before any step: a model that is not compiled, a name in
            ``layers`` that is no layer of the model (the message lists its
            layers), a ``tensorboard_dir`` where no file can be written.

    Example:
    >>> from tensorflow_kappa.optimizers import LowPrecisionOptimizer
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    >>> model.compile(optimizer=LowPrecisionOptimizer(keras.optimizers.SGD(1e-4),
    ...                                             {"d": {"weight": "s8.4"}}), loss="mse")
    >>> monitor = QuantizationMonitor(every=2, death_steps=2)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     history = model.fit(np.ones((64, 4)), np.ones((64, 2)), batch_size=8, epochs=1,
    ...                         verbose=0, callbacks=[monitor])
    >>> history.history["underflow/d/update"]      # SGD(1e-4) on an s8.4 grid: nothing moves
    [1.0]
    >>> monitor.dead_layers
    ['d']
    """

    def __init__(self, every: int = 100, layers: Optional[Sequence[str]] = None,
                 tensorboard_dir: Optional[str] = None, death_threshold: float = 0.99,
                 death_steps: int = 200):
        super().__init__()
        self.every = _checks.integer("every", every, minimum=1)
        if layers is not None:
            if (isinstance(layers, str) or not isinstance(layers, (list, tuple))
                    or not all(isinstance(n, str) for n in layers)):
                raise ValueError(f"layers must be None or a list of layer names, got "
                                 f"layers={layers!r}")
            layers = list(layers)
        self.layers = layers
        if tensorboard_dir is not None and (
                not isinstance(tensorboard_dir, (str, bytes, os.PathLike))
                or not os.fspath(tensorboard_dir)):
            raise ValueError(f"tensorboard_dir must be a path or None, got {tensorboard_dir!r}")
        self.tensorboard_dir = tensorboard_dir
        self.death_threshold = _checks.number("death_threshold", death_threshold, minimum=0.0,
                                              maximum=1.0, strict_minimum=True)
        self.death_steps = _checks.integer("death_steps", death_steps, minimum=1)
        self.steps: List[int] = []
        self.records: Dict[str, List[float]] = {}
        self.dead_layers: List[str] = []
        self._step = 0  # steps trained under this monitor, over all fits
        self._cache = None  # (model, its train function, our monitored one), across fits
        self._reset_fit_state()

    def _reset_fit_state(self) -> None:
        self._plain: Any = None
        self._monitored: Optional[Callable] = None
        self._keys: List[str] = []
        self._batch_begin = 0
        self._pending_step: Optional[int] = None
        self._epoch_samples: Dict[str, List[float]] = {}
        self._last: Dict[str, float] = {}
        self._dying_since: Dict[str, int] = {}
        self._expect_sample = False
        self._writer = None
        self._warned_replaced = False

    # ------------------------------------------------------------------
    # The monitored train function
    # ------------------------------------------------------------------
    def _wanted(self, key: str) -> bool:
        if self.layers is None:
            return True
        name = _layer_of(key)
        return any(name in (layer, f"{layer}_quantize") for layer in self.layers)

    def _monitored_step(self, original: Callable) -> Callable:
        from tensorflow_kappa.optimizers.low_precision import low_precision_optimizer

        model = self.model
        optimizer = low_precision_optimizer(model.optimizer)  # also inside a LossScaleOptimizer
        # Keras 3.15 reduces every log of a multi-worker step with
        # strategy.reduce("MEAN", v, axis=0): that fails on scalars and would
        # average the packed vector over its keys. A leading axis of 1 makes
        # the reduction the mean across workers, of the right shape.
        vector_logs = multi_worker(model.distribute_strategy)

        def step(data):
            with recording() as recorder:
                logs = original(data)
            stats = dict(recorder.values())
            if optimizer is not None:
                stats.update(optimizer.statistics(monitored=True))
            keys = [k for k in stats if self._wanted(k)]
            self._keys = keys
            logs = dict(logs)
            packed = tf.stack([stats[k] for k in keys]) if keys else tf.zeros([0], tf.float32)
            if vector_logs:
                logs = {k: tf.reshape(v, [1]) if v.shape.rank == 0 else v
                        for k, v in logs.items()}
                packed = packed[None]
            logs[_PACKED] = packed
            return logs

        return step

    def _build_monitored_function(self) -> Callable:
        model = self.model
        compiled = compile_train_function(model, self._monitored_step(model.train_step))

        def monitored_train_function(iterator):
            logs = compiled(iterator)
            packed = logs.pop(_PACKED)
            self._sample(np.asarray(packed))
            return logs

        return monitored_train_function

    # ------------------------------------------------------------------
    # Keras hooks
    # ------------------------------------------------------------------
    def on_train_begin(self, logs=None) -> None:
        model = self.model
        if getattr(model, "optimizer", None) is None:
            raise ValueError("QuantizationMonitor needs a compiled model (model.compile(...))")
        self._check_layers(model)
        if self.tensorboard_dir is not None:  # before any step: a bad folder fails now
            _checks.writable_folder("tensorboard_dir", self.tensorboard_dir)
        self._reset_fit_state()
        if model.train_function is None:
            model.make_train_function()
        self._plain = model.train_function
        cached = self._cache
        if cached is not None and cached[0] is model and cached[1] is self._plain:
            self._monitored = cached[2]  # fit again: no new trace
        else:
            self._monitored = self._build_monitored_function()
            self._cache = (model, self._plain, self._monitored)
        if self.tensorboard_dir is not None:
            self._writer = tf.summary.create_file_writer(str(self.tensorboard_dir))

    def _check_layers(self, model: keras.Model) -> None:
        """Every name of ``layers`` must be a layer of the model (a Quantize layer
        ``<name>_quantize`` or ``<name>`` itself), else ValueError listing them."""
        if self.layers is None:
            return
        known = [layer.name for layer in model._flatten_layers(include_self=False)]
        unknown = [name for name in self.layers if name not in known]
        if unknown:
            raise ValueError(
                f"QuantizationMonitor(layers={self.layers!r}): the model has no layer "
                f"{', '.join(map(repr, unknown))}, so nothing would be reported for it; "
                f"its layers: {', '.join(known)}")

    def on_train_batch_begin(self, batch, logs=None) -> None:
        self._batch_begin = int(batch)
        monitored = self._step % self.every == 0
        current = self.model.train_function
        if current is not self._plain and current is not self._monitored:
            self._warn_replaced()
            return
        self.model.train_function = self._monitored if monitored else self._plain
        self._expect_sample = monitored

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self._expect_sample and self._pending_step is None:
            self._warn_replaced()
        self._expect_sample = False
        self._pending_step = None
        self._step += max(int(batch) - self._batch_begin + 1, 1)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch_samples = {}

    def on_epoch_end(self, epoch, logs=None) -> None:
        if logs is None:
            return
        for key, last in self._last.items():
            values = self._epoch_samples.get(key)
            logs[key] = float(np.mean(values)) if values else last
        if self._writer is not None:
            self._writer.flush()

    def on_train_end(self, logs=None) -> None:
        model = self.model
        if model.train_function is self._monitored or model.train_function is self._plain:
            model.train_function = self._plain
        if self._writer is not None:
            self._writer.close()
        self._plain = self._monitored = None
        self._writer = None

    # ------------------------------------------------------------------
    # A sample
    # ------------------------------------------------------------------
    def _sample(self, values: np.ndarray) -> None:
        step = self._step
        self._pending_step = step
        sample = {k: float(v) for k, v in zip(self._keys, values)}
        self.steps.append(step)
        for key, value in sample.items():
            self.records.setdefault(key, []).append(value)
            self._epoch_samples.setdefault(key, []).append(value)
            self._last[key] = value
        self._check_death(step, sample)
        if self._writer is not None:
            self._write_tensorboard(step, sample)

    def _check_death(self, step: int, sample: Dict[str, float]) -> None:
        for key, value in sample.items():
            stat, layer, field = key.split("/", 2)
            if stat != "underflow" or field != "update":
                continue
            if not value >= self.death_threshold:  # NaN counts as alive
                self._dying_since.pop(layer, None)
                if layer in self.dead_layers:
                    self.dead_layers.remove(layer)
                continue
            since = self._dying_since.setdefault(layer, step)
            if step - since >= self.death_steps and layer not in self.dead_layers:
                self.dead_layers.append(layer)
                warnings.warn(
                    f"QuantizationMonitor: learning has died in layer {layer!r}: "
                    f"{value:.1%} of its update was lost to underflow at step {step}, and at "
                    f"least {self.death_threshold:.0%} on every monitored step since step "
                    f"{since}. Use finer update/storage formats for it (more fractional "
                    "bits), stochastic rounding, or a larger learning rate.",
                    LearningDeathWarning, stacklevel=2)

    def _write_tensorboard(self, step: int, sample: Dict[str, float]) -> None:
        with self._writer.as_default(step=step):
            for key, value in sample.items():
                if math.isfinite(value):
                    tf.summary.scalar(key, value)
            for variable in self.model.trainable_variables:
                tf.summary.histogram(f"weights/{variable.path}", variable)

    def _warn_replaced(self) -> None:
        if not self._warned_replaced:
            self._warned_replaced = True
            warnings.warn(
                "QuantizationMonitor: another callback (LoopController?) replaced "
                "model.train_function, so this fit is not monitored; use one of them per fit",
                RuntimeWarning, stacklevel=3)

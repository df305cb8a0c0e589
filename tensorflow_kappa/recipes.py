"""Training recipes: ready-made :class:`~tensorflow_kappa.callbacks.LoopController` set-ups.

:func:`inalu_controller` is the report's recipe for deep iNALU stacks
(chapter 6, Figures 6.3–6.5) together with the iNALU authors' original
reinitialisation rule (Schlör, Ring & Hotho 2020), every rule an argument::

    model = keras.Sequential([keras.Input((7,)), INALU(3), INALU(2), INALU(1)])
    model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="mse")
    controller = inalu_controller()
    model.fit(x, y, batch_size=64, epochs=60, callbacks=[controller])

What it does, batch by batch and epoch by epoch:

* ``gate`` (Fig. 6.3/6.4): of every ``gate_period`` batches the first
  ``gate_period - gate_batches`` train every variable except the iNALU gates,
  the last ``gate_batches`` train the gates alone (report: 8 and 2 of 10).
  Both branches clip gradients to ``clipping`` (report: ±0.1; Fig. 6.4 and
  C.1 clip the gate branch too, Fig. 4.9 instead trains the gates on MAE
  without clipping: ``gate_loss="mae", gate_clipping=None``).
* ``delay`` (Fig. 6.3/6.4): once more than ``regularization_delay_epochs``
  epochs have passed since the last reinitialisation and the last recorded
  loss is below ``regularization_loss_threshold``, every batch takes one
  extra step on the regularisation loss alone (``model.losses``, i.e. the
  iNALU sparsity regulariser; ``{"loss": False, "regularize": True}``).
* ``reinitialize`` (end of epoch; the iNALU authors' rule): once more than
  ``reinit_min_steps`` step losses are recorded since the last
  reinitialisation, split them (the last ``reinit_window`` of them, default
  all) into halves; if ``mean(first) <= mean(second) + std(second)`` (no
  significant improvement) and ``mean(second) > reinit_loss_threshold``
  (still bad), redraw every iNALU weight (``layer.reinitialize()``).
* ``early_stopping`` (end of epoch; Fig. 6.5): stop ``fit`` when the mean of
  the last ``early_stopping_window`` recorded losses is below
  ``early_stopping_threshold``.

Which loss the rules read: ``loss_key``, a column of the controller's
per-step history.  The default ``"loss_gate"`` is the data loss the ``gate``
action trains (compiled loss without ``model.losses``).  Keras's own
``"loss"`` column includes ``model.losses``, so with the iNALU regulariser
switched on (about 5 at initialisation) "loss below 1" could never hold.
Like every Keras batch log (and the report's ``history[...]["loss"]``) these
are running means within the epoch; compile with
``metrics=[BatchMSE()]`` and pass ``loss_key="batch_mse"`` for per-batch
values (what ``kappa arithmetic`` does).
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa.callbacks.loop_controller import LoopController

__all__ = ["BatchMSE", "inalu_controller", "inalu_layers", "stuck"]


@keras.saving.register_keras_serializable(package="Kappa")
class BatchMSE(keras.metrics.Metric):
    """Mean squared error of the most recent batch only (not a running mean).

    Keras averages metrics over the epoch; training-control rules about "the
    loss of a step" want the step's own value.  ``update_state`` overwrites,
    so ``result()`` is the MSE of the last batch seen.
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


def inalu_layers(model) -> list:
    """Every INALU layer of ``model`` (nested models included), in order."""
    from tensorflow_kappa.layers import INALU
    from tensorflow_kappa.layers.explain import nalm_layers

    return [layer for layer in nalm_layers(model) if isinstance(layer, INALU)]


def _gates(model) -> list:
    return [layer.g for layer in inalu_layers(model)]


def stuck(losses: np.ndarray, min_steps: int = 10000, loss_threshold: float = 1.0,
          window: Optional[int] = None) -> bool:
    """The iNALU authors' reinitialisation test on a sequence of step losses.

    True when more than ``min_steps`` losses are given and, over the last
    ``window`` of them (all by default) split into halves ``a`` and ``b``,
    ``mean(a) <= mean(b) + std(b)`` and ``mean(b) > loss_threshold``.  NaN or
    infinite losses count as stuck once ``min_steps`` is reached.
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.size <= min_steps:
        return False
    if window is not None:
        losses = losses[-int(window):]
    if not np.all(np.isfinite(losses[-1:])):
        return True
    half = losses.size // 2
    first, second = losses[:half], losses[half:]
    with np.errstate(invalid="ignore", over="ignore"):
        m1, m2, s2 = float(np.mean(first)), float(np.mean(second)), float(np.std(second))
    if not (math.isfinite(m1) and math.isfinite(m2) and math.isfinite(s2)):
        return True
    return m1 <= m2 + s2 and m2 > loss_threshold


def _check_int(name: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_number(name: str, value, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a {'positive ' if positive else ''}number, "
                         f"got {value!r}")
    return value


def _check_clip(name: str, value) -> Optional[Tuple[float, float]]:
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be None or a pair (low, high), got {value!r}") from None
    if not low < high:
        raise ValueError(f"{name} needs low < high, got {value!r}")
    return low, high


def inalu_controller(
    *,
    gate_period: int = 10,
    gate_batches: int = 2,
    clipping: Optional[Sequence[float]] = (-0.1, 0.1),
    gate_clipping: Optional[Sequence[float]] = (-0.1, 0.1),
    gate_loss=None,
    regularization: bool = True,
    regularization_delay_epochs: int = 10,
    regularization_loss_threshold: float = 1.0,
    regularization_clipping: Optional[Sequence[float]] = None,
    reinitialization: bool = True,
    reinit_min_steps: int = 10000,
    reinit_window: Optional[int] = None,
    reinit_loss_threshold: float = 1.0,
    max_reinitializations: Optional[int] = None,
    reinit_condition: Optional[Callable[[np.ndarray], bool]] = None,
    early_stopping_threshold: Optional[float] = 1e-10,
    early_stopping_window: int = 3000,
    loss_key: str = "loss_gate",
    layers: Optional[Callable] = None,
    verbose: int = 0,
    max_history: Optional[int] = None,
) -> LoopController:
    """A :class:`LoopController` with the report's iNALU recipe (see the module docstring).

    Args:
        gate_period, gate_batches: of every ``gate_period`` batches (counted
            by the controller's ``batches``), the last ``gate_batches`` train
            only the gates and the others everything else (report: 10, 2).
            ``gate_batches=0`` trains everything but the gates on every batch
            (the gates then stay at their initial values).
        clipping: gradient clip ``(low, high)`` of the non-gate branch
            (report ±0.1); ``None``: no clipping.
        gate_clipping: the same for the gate branch (Fig. 6.4/C.1: ±0.1).
        gate_loss: loss of the gate branch; ``None`` the compiled loss
            (Fig. 6.4), e.g. ``"mae"`` as in Fig. 4.9.
        regularization: include the ``delay`` action at all.
        regularization_delay_epochs: regularise only once more than this many
            epochs have completed since the last reinitialisation (report: 10,
            ``reinit_epochs > 10``).
        regularization_loss_threshold: ... and the last recorded loss is below
            this (report: 1.0).
        regularization_clipping: gradient clip of the regularisation step
            (report: none).
        reinitialization: include the ``reinitialize`` action.
        reinit_min_steps: test only once more than this many step losses are
            recorded since the last reinitialisation (authors: 10 000).
        reinit_window: test the last this many losses (``None``: all since the
            last reinitialisation, as the authors do).
        reinit_loss_threshold: reinitialise only while the recent mean loss is
            above this (authors: 1.0).
        max_reinitializations: stop reinitialising after this many (``None``:
            no limit).
        reinit_condition: ``fn(losses) -> bool`` on the losses recorded since
            the last reinitialisation (a NumPy array), replacing the authors'
            rule and the three ``reinit_*`` values above; e.g. the report's
            Fig. 6.5 rule ``lambda l: len(l) > 10000 and l[-3000:].mean() > 0.2``.
        early_stopping_threshold: stop when the mean of the last
            ``early_stopping_window`` losses is below this (report: 1e-10,
            ``log10(mean) < -10``); ``None`` disables early stopping.
        early_stopping_window: report: 3000.
        loss_key: the history column the rules read (module docstring).
        layers: ``fn(model) -> list`` of the layers whose ``g`` are the gates
            and which ``reinitialize()`` redraws; default: every ``INALU``.
        verbose, max_history: passed to :class:`LoopController` (the history
            is kept whole by default: the reinitialisation test reads it).

    Returns:
        The configured controller.  Besides the controller's own counters it
        carries ``reinitializations`` (list of ``(epoch, batch)`` at which the
        weights were redrawn) and ``regularization_started`` (list of
        ``(epoch, batch)`` where the ``delay`` action first switched on after
        the start or a reinitialisation) for plots.
    """
    gate_period = _check_int("gate_period", gate_period, 1)
    gate_batches = _check_int("gate_batches", gate_batches, 0)
    if gate_batches > gate_period:
        raise ValueError(f"gate_batches ({gate_batches}) cannot exceed gate_period "
                         f"({gate_period})")
    clipping = _check_clip("clipping", clipping)
    gate_clipping = _check_clip("gate_clipping", gate_clipping)
    regularization_clipping = _check_clip("regularization_clipping", regularization_clipping)
    regularization_delay_epochs = _check_int("regularization_delay_epochs",
                                             regularization_delay_epochs, 0)
    regularization_loss_threshold = _check_number("regularization_loss_threshold",
                                                  regularization_loss_threshold)
    reinit_min_steps = _check_int("reinit_min_steps", reinit_min_steps, 0)
    if reinit_window is not None:
        reinit_window = _check_int("reinit_window", reinit_window, 2)
    reinit_loss_threshold = _check_number("reinit_loss_threshold", reinit_loss_threshold)
    if max_reinitializations is not None:
        max_reinitializations = _check_int("max_reinitializations", max_reinitializations, 0)
    if early_stopping_threshold is not None:
        early_stopping_threshold = _check_number("early_stopping_threshold",
                                                 early_stopping_threshold, positive=True)
    early_stopping_window = _check_int("early_stopping_window", early_stopping_window, 1)
    if not isinstance(loss_key, str):
        raise ValueError(f"loss_key must be a history column name, got {loss_key!r}")
    if reinit_condition is not None and not callable(reinit_condition):
        raise ValueError(f"reinit_condition must be fn(losses) -> bool, got {reinit_condition!r}")
    select_layers = inalu_layers if layers is None else layers
    if not callable(select_layers):
        raise ValueError(f"layers must be fn(model) -> list of layers, got {layers!r}")
    open_batches = gate_period - gate_batches

    def gates(model) -> list:
        return [layer.g for layer in select_layers(model)]

    def losses(cb) -> np.ndarray:
        view = cb.reinit_history
        if loss_key not in view:
            if len(cb.history):
                raise ValueError(
                    f"inalu_controller: loss_key {loss_key!r} is not a column of the "
                    f"controller's history (columns: {', '.join(map(str, view.keys()))}); "
                    f"for 'batch_mse' compile the model with metrics=[BatchMSE()]")
            return np.empty(0)  # nothing recorded yet
        return view[loss_key]

    # ------------------------------------------------------------ in-loop rules
    def gate_open(cb) -> bool:
        return cb.batches % gate_period < open_batches

    def delay_reg(cb) -> bool:
        if cb.reinit_epochs <= regularization_delay_epochs:
            return False
        recorded = losses(cb)
        on = bool(recorded.size) and float(recorded[-1]) < regularization_loss_threshold
        if on and not cb._kappa_regularizing:  # first switch-on since the last reinit
            cb.regularization_started.append((cb.epochs, cb.batches))
            cb._kappa_regularizing = True
        return on

    open_branch = {"excluded_variables": gates}
    gate_branch = {"variables": gates}
    if clipping is not None:
        open_branch["clipping"] = clipping
    if gate_clipping is not None:
        gate_branch["clipping"] = gate_clipping
    if gate_loss is not None:
        gate_branch["loss"] = gate_loss
    gate_action = {"cond": gate_open}
    if open_batches > 0:
        gate_action[True] = open_branch
    if gate_batches > 0:
        gate_action[False] = gate_branch
    config = {"gate": gate_action}
    if regularization:
        reg_branch = {"loss": False, "regularize": True}
        if regularization_clipping is not None:
            reg_branch["clipping"] = regularization_clipping
        config["delay"] = {"cond": delay_reg, True: reg_branch}

    # ------------------------------------------------------------ epoch-end rules
    def reinit_cond(cb) -> bool:
        if max_reinitializations is not None and \
                len(cb.reinitializations) >= max_reinitializations:
            return False
        if reinit_condition is not None:
            return bool(reinit_condition(losses(cb)))
        return stuck(losses(cb), reinit_min_steps, reinit_loss_threshold, reinit_window)

    def reinitialise(model) -> None:
        for layer in select_layers(model):
            layer.reinitialize()

    def after_reinit(cb) -> None:
        cb.reinitializations.append((cb.epochs, cb.batches))
        cb._kappa_regularizing = False

    def early_stop(cb) -> bool:
        recorded = losses(cb)
        if not recorded.size:
            return False
        recent = recorded[-early_stopping_window:]
        return bool(np.all(np.isfinite(recent))) and float(np.mean(recent)) < \
            early_stopping_threshold

    def stop_training(cb) -> None:
        cb.model.stop_training = True

    async_config = {}
    if reinitialization:
        async_config["reinitialize"] = {"cond": reinit_cond, "model": reinitialise,
                                        "callback": after_reinit}
    if early_stopping_threshold is not None:
        async_config["early_stopping"] = {"cond": early_stop, "callback": stop_training}

    controller = LoopController(config, async_config or None, verbose=verbose,
                                max_history=max_history)
    controller.reinitializations = []
    controller.regularization_started = []
    controller._kappa_regularizing = False
    controller.recipe = dict(
        gate_period=gate_period, gate_batches=gate_batches, clipping=clipping,
        gate_clipping=gate_clipping, gate_loss=gate_loss, regularization=regularization,
        regularization_delay_epochs=regularization_delay_epochs,
        regularization_loss_threshold=regularization_loss_threshold,
        regularization_clipping=regularization_clipping, reinitialization=reinitialization,
        reinit_min_steps=reinit_min_steps, reinit_window=reinit_window,
        reinit_loss_threshold=reinit_loss_threshold,
        max_reinitializations=max_reinitializations,
        reinit_condition=None if reinit_condition is None else repr(reinit_condition),
        early_stopping_threshold=early_stopping_threshold,
        early_stopping_window=early_stopping_window, loss_key=loss_key)
    return controller


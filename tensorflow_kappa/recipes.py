"""Training recipes: ready-made :class:`~tensorflow_kappa.callbacks.LoopController` set-ups.

The iNALU training recipe is recorded once, as :class:`InaluRecipe` (every
rule a field, every rule a method: ``gate_open``, ``regularize``, ``stuck``,
``converged``, ``family``).  Two paths execute that one record:
:class:`InaluController`, a :class:`LoopController` subclass for
``model.fit`` (one run; what users copy), and
:class:`~tensorflow_kappa.experiments.arithmetic_population.ArithmeticPopulation`
(many seeds × candidates as one vectorised population, ``kappa arithmetic
--seeds/--suite``).  :func:`inalu_controller` builds a controller from
keyword arguments::

    model = keras.Sequential([keras.Input((7,)), INALU(3), INALU(2), INALU(1)])
    model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="mse")
    controller = inalu_controller()
    model.fit(x, y, batch_size=64, epochs=60, callbacks=[controller])

Two records: ``InaluRecipe.report()`` (``inalu_controller(report=True)``,
``kappa arithmetic --report``) is the report's recipe (chapter 6, Figures
6.3–6.5) with the iNALU authors' reinitialisation rule (Schlör, Ring & Hotho
2020), exactly as published.  ``InaluRecipe()`` is the default, which differs
in exactly these fields (the rest is the report's):

==========================  ======================  ==========================
field                       report                  default
==========================  ======================  ==========================
``detector``                ``"authors"`` (halves)  ``"window"`` (:func:`plateau`)
``reinit_min_steps``        10 000                  5 000
``reinit_window``           ``None`` (all)          2 000 (two windows compared)
``init_families``           ``("published",)``      :data:`INIT_FAMILIES` in turn
``candidates``              1                       12 (population path only)
==========================  ======================  ==========================

Why (the diagnosis behind issue 11, 10 seeds, 60 epochs, population trainer):
the report's recipe solves ``(x1 - x2) * (x3 - x4) + x5 * x6`` and
``(x1 - x3) * (x2 - x5) + x4 * x7`` in 10/10 seeds but every sign variant of
the same shape (``... - x5 * x6``, ``(x1 + x2) * (x3 + x4) + ...``,
``(x1 + x2) * (x3 - x4) + ...``, ``x1 * x2 - (x3 - x4) * (x5 + x6)``) in 0/10.
The failed runs fall to a plateau at MSE 8–10 within 5–10 epochs: one product
is learned, another is missing because the first layer's add-path unit that
should form a difference (or a sum) of the other sign never does.  Two causes:

1. The published init ``Ŵ ~ N(1, .1)`` starts every add-path unit at a sum of
   positive weights.  The sign patterns the report's task needs happen to be
   reachable from there; others need a weight to cross zero through the
   saturated ``tanh(Ŵ)·σ(M̂)``, which neither the gradient nor the regulariser
   (eq. 2.15 pushes ``|Ŵ|`` away from 0, i.e. it *keeps* the sign) achieve.
   Per 16-epoch attempt (40 attempts each): published init 0/40 on every sign
   variant; ``Ŵ_a`` with random signs (``"signed_a"``) 2–9/40 on every
   expression; with the output layer also starting in the add path
   (``"lastadd_signed"``) 2–9/40.  No single init family reaches 8/10 seeds on
   every expression in 60 epochs of one run (best: 1–10/10 across the suite).
2. The authors' stuck rule compares the first half of *all* losses since the
   last reinitialisation with the second half; after a steep initial descent
   the first half's mean stays above the plateau's and the rule never fires
   (no reinitialisation in 3 of 5 failed runs in the issue).  And a redraw
   from the same published init lands in the same trap.

Hence the default: a windowed detector (fires on a plateau whatever came
before it), redraws that rotate through init families, and — in the
population path — a portfolio multi-start: each seed's run is ``candidates``
members whose first draws rotate through the families; the seed's result is
its member with the lowest interpolation MSE.  The ``model.fit`` path is one
candidate (candidate 0: its first attempt is the published draw, its
reinitialisations take the next families in turn).

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
* ``reinitialize`` (end of epoch): once more than ``reinit_min_steps`` step
  losses are recorded since the last reinitialisation, ``detector="window"``
  (default, :func:`plateau`) compares the mean of the last ``reinit_window``
  losses with the window before it and fires when it fell by less than
  ``reinit_min_improvement`` (5 %) while above ``reinit_loss_threshold``;
  ``detector="authors"`` (report) splits the losses (the last
  ``reinit_window`` of them, ``None``: all) into halves and fires if
  ``mean(first) <= mean(second) + std(second)`` and ``mean(second) >
  reinit_loss_threshold`` (:func:`stuck`).  Then every iNALU weight is
  redrawn from the attempt's init family (``"published"``:
  ``layer.reinitialize()``).
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

import dataclasses
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.callbacks.loop_controller import LoopController
from tensorflow_kappa.layers import INALU
from tensorflow_kappa.layers.inalu import INIT_FAMILIES, draw_initial_weights
from tensorflow_kappa.layers.explain import nalm_layers

__all__ = ["BatchMSE", "INIT_FAMILIES", "InaluController", "InaluRecipe",
           "draw_initial_weights", "inalu_controller", "inalu_layers", "plateau", "stuck"]


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
    return [layer for layer in nalm_layers(model) if isinstance(layer, INALU)]


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


def plateau(losses: np.ndarray, min_steps: int = 5000, loss_threshold: float = 1.0,
            window: int = 2000, min_improvement: float = 0.05) -> bool:
    """The windowed stuck detector: the loss sits on a plateau above ``loss_threshold``.

    Compares only the last two windows of ``window`` step losses each (whatever
    came before them, e.g. a steep initial descent, does not count): True when
    more than ``min_steps`` losses are given (and at least two windows), the mean
    of the last window is above ``loss_threshold`` and it fell by less than the
    fraction ``min_improvement`` of the previous window's mean.  Non-finite
    losses in the last window count as stuck.

    Example:
    >>> descent_then_flat = np.r_[np.linspace(100, 9, 3000), np.full(6000, 9.0)]
    >>> plateau(descent_then_flat, min_steps=5000, window=2000)
    True
    >>> plateau(np.geomspace(100, 2, 9000), min_steps=5000, window=2000)
    False
    """
    losses = np.asarray(losses, dtype=np.float64)
    window = int(window)
    if losses.size <= min_steps or losses.size < 2 * window:
        return False
    last, previous = losses[-window:], losses[-2 * window:-window]
    if not np.all(np.isfinite(last)):
        return True
    with np.errstate(invalid="ignore", over="ignore"):
        m_last, m_prev = float(np.mean(last)), float(np.mean(previous))
    if m_last <= loss_threshold:
        return False
    if not math.isfinite(m_prev):
        return True
    return (m_prev - m_last) < min_improvement * m_prev


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


def _check_callable(name: str, value, what: str) -> None:
    if value is not None and not callable(value):
        raise ValueError(f"{name} must be {what}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class InaluRecipe:
    """The iNALU training recipe, every rule a field and a method (see the module docstring).

    Construction checks every field (a ValueError names the bad one) and
    normalises it (clips become float pairs). :class:`InaluController` runs it.

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
        detector: ``"window"`` (:func:`plateau`, default) or ``"authors"``
            (:func:`stuck`, the report's).
        reinit_min_steps: test only once more than this many step losses are
            recorded since the last reinitialisation (authors: 10 000;
            default 5 000).
        reinit_window: ``"window"``: the window length (default 2 000);
            ``"authors"``: test the last this many losses (``None``: all since
            the last reinitialisation, as the authors do).
        reinit_min_improvement: ``"window"``: the relative fall between two
            windows below which the loss counts as a plateau (0.05).
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
        init_families: names from :data:`INIT_FAMILIES`; candidate ``c``'s
            attempt ``a`` draws from ``init_families[(c + a) % len]``
            (report: ``("published",)``).
        candidates: members per seed in the population path (report: 1); the
            ``model.fit`` path is always one candidate.

    Example:
    >>> recipe = InaluRecipe(regularization_delay_epochs=5)
    >>> recipe.gate_period, recipe.clipping
    (10, (-0.1, 0.1))
    """

    gate_period: int = 10
    gate_batches: int = 2
    clipping: Optional[Tuple[float, float]] = (-0.1, 0.1)
    gate_clipping: Optional[Tuple[float, float]] = (-0.1, 0.1)
    gate_loss: Any = None
    regularization: bool = True
    regularization_delay_epochs: int = 10
    regularization_loss_threshold: float = 1.0
    regularization_clipping: Optional[Tuple[float, float]] = None
    reinitialization: bool = True
    detector: str = "window"
    reinit_min_steps: int = 5000
    reinit_window: Optional[int] = 2000
    reinit_min_improvement: float = 0.05
    reinit_loss_threshold: float = 1.0
    max_reinitializations: Optional[int] = None
    reinit_condition: Optional[Callable[[np.ndarray], bool]] = None
    early_stopping_threshold: Optional[float] = 1e-10
    early_stopping_window: int = 3000
    loss_key: str = "loss_gate"
    layers: Optional[Callable] = None
    init_families: Tuple[str, ...] = INIT_FAMILIES
    candidates: int = 12

    def __post_init__(self) -> None:
        def put(name, value):
            object.__setattr__(self, name, value)

        for name in ("regularization", "reinitialization"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        put("gate_period", _check_int("gate_period", self.gate_period, 1))
        put("gate_batches", _check_int("gate_batches", self.gate_batches, 0))
        if self.gate_batches > self.gate_period:
            raise ValueError(f"gate_batches ({self.gate_batches}) cannot exceed gate_period "
                             f"({self.gate_period})")
        for name in ("clipping", "gate_clipping", "regularization_clipping"):
            put(name, _check_clip(name, getattr(self, name)))
        for name in ("regularization_delay_epochs", "reinit_min_steps"):
            put(name, _check_int(name, getattr(self, name), 0))
        for name in ("regularization_loss_threshold", "reinit_loss_threshold"):
            put(name, _check_number(name, getattr(self, name)))
        if self.reinit_window is not None:
            put("reinit_window", _check_int("reinit_window", self.reinit_window, 2))
        if self.detector not in ("authors", "window"):
            raise ValueError(f"detector must be 'authors' or 'window', got {self.detector!r}")
        if self.detector == "window" and self.reinit_window is None:
            raise ValueError("detector='window' needs reinit_window (the window length in steps)")
        put("reinit_min_improvement",
            _check_number("reinit_min_improvement", self.reinit_min_improvement))
        families = self.init_families
        if isinstance(families, str) or not families or \
                any(f not in INIT_FAMILIES for f in families):
            raise ValueError(f"init_families must be a non-empty sequence of names from "
                             f"{INIT_FAMILIES}, got {families!r}")
        put("init_families", tuple(families))
        put("candidates", _check_int("candidates", self.candidates, 1))
        if self.max_reinitializations is not None:
            put("max_reinitializations",
                _check_int("max_reinitializations", self.max_reinitializations, 0))
        if self.early_stopping_threshold is not None:
            put("early_stopping_threshold", _check_number(
                "early_stopping_threshold", self.early_stopping_threshold, positive=True))
        put("early_stopping_window",
            _check_int("early_stopping_window", self.early_stopping_window, 1))
        if not isinstance(self.loss_key, str):
            raise ValueError(f"loss_key must be a history column name, got {self.loss_key!r}")
        _check_callable("reinit_condition", self.reinit_condition, "fn(losses) -> bool")
        _check_callable("layers", self.layers, "fn(model) -> list of layers")

    @classmethod
    def report(cls, **changes: Any) -> "InaluRecipe":
        """The report's recipe exactly as published (the authors' stuck rule, the published init).

        Example:
        >>> r = InaluRecipe.report()
        >>> r.detector, r.reinit_min_steps, r.reinit_window, r.init_families, r.candidates
        ('authors', 10000, None, ('published',), 1)
        """
        fields = dict(detector="authors", reinit_min_steps=10000, reinit_window=None,
                      init_families=("published",), candidates=1)
        fields.update(changes)
        return cls(**fields)

    # ------------------------------------------------------------ the rules (both paths)
    def gate_open(self, batch: int) -> bool:
        """``gate``: True on the batches that train everything but the gates."""
        return batch % self.gate_period < self.gate_period - self.gate_batches

    def regularize(self, epochs_since_reinit: int, last_loss: float) -> bool:
        """``delay``: regularise once the delay has passed and the last loss is low."""
        return self.regularization and epochs_since_reinit > self.regularization_delay_epochs \
            and float(last_loss) < self.regularization_loss_threshold

    def stuck(self, losses: np.ndarray, reinitializations: int = 0) -> bool:
        """``reinitialize``: the stuck test on the losses since the last reinitialisation."""
        if not self.reinitialization or (self.max_reinitializations is not None and
                                         reinitializations >= self.max_reinitializations):
            return False
        if self.reinit_condition is not None:
            return _checks.bool_result("reinit_condition", self.reinit_condition(losses))
        if self.detector == "window":
            return plateau(losses, self.reinit_min_steps, self.reinit_loss_threshold,
                           self.reinit_window, self.reinit_min_improvement)
        return stuck(losses, self.reinit_min_steps, self.reinit_loss_threshold,
                     self.reinit_window)

    def converged(self, losses: np.ndarray) -> bool:
        """``early_stopping``: the mean of the recent losses is below the threshold."""
        if self.early_stopping_threshold is None:
            return False
        recent = np.asarray(losses)[-self.early_stopping_window:]
        return bool(recent.size) and bool(np.all(np.isfinite(recent))) and \
            float(np.mean(recent)) < self.early_stopping_threshold

    def family(self, candidate: int, attempt: int) -> str:
        """The init family of a candidate's attempt: the families in turn."""
        return self.init_families[(candidate + attempt) % len(self.init_families)]

    def to_dict(self) -> Dict[str, Any]:
        """The recipe as plain values (callables by their ``repr``), e.g. for a JSON record."""
        return {f.name: (repr(value) if callable(value) else value)
                for f in dataclasses.fields(self) for value in [getattr(self, f.name)]}


class InaluController(LoopController):
    """A :class:`LoopController` that runs an :class:`InaluRecipe`.

    The recipe's rules are this class's methods, and the state they keep is
    declared here (cleared by :meth:`reset` with the controller's counters):

    Attributes:
        recipe: the :class:`InaluRecipe` it runs.
        reinitializations: ``(epoch, batch)`` at which the weights were redrawn.
        regularization_started: ``(epoch, batch)`` where the ``delay`` action
            first switched on after the start or a reinitialisation (for plots).
        regularizing: whether the ``delay`` action is on since the last
            reinitialisation.

    Args:
        recipe: the recipe (default: the report's).
        verbose, max_history: as for :class:`LoopController` (the history is
            kept whole by default: the reinitialisation test reads it).

    Example:
    >>> controller = InaluController(InaluRecipe(early_stopping_threshold=None))
    >>> controller.action_names, controller.reinitializations
    (('gate', 'delay'), [])
    """

    def __init__(self, recipe: Optional[InaluRecipe] = None, verbose: int = 0,
                 max_history: Optional[int] = None, seed: Optional[int] = None):
        self.recipe = InaluRecipe() if recipe is None else recipe
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        if not isinstance(self.recipe, InaluRecipe):
            raise ValueError(f"recipe must be an InaluRecipe, got {recipe!r}")
        self.reinitializations: List[Tuple[int, int]] = []
        self.regularization_started: List[Tuple[int, int]] = []
        self.regularizing = False
        super().__init__(self._config(), self._async_config() or None, verbose=verbose,
                         max_history=max_history)

    def reset(self) -> None:
        """Reset every counter, the history and the recipe's events (not the model)."""
        super().reset()
        self.reinitializations = []
        self.regularization_started = []
        self.regularizing = False
        self._rng = np.random.default_rng(self.seed)

    # ------------------------------------------------------------ configuration
    def _config(self) -> dict:
        r = self.recipe
        open_branch = {"excluded_variables": self.gates}
        gate_branch = {"variables": self.gates}
        if r.clipping is not None:
            open_branch["clipping"] = r.clipping
        if r.gate_clipping is not None:
            gate_branch["clipping"] = r.gate_clipping
        if r.gate_loss is not None:
            gate_branch["loss"] = r.gate_loss
        gate_action = {"cond": type(self).gate_open}
        if r.gate_period > r.gate_batches:
            gate_action[True] = open_branch
        if r.gate_batches > 0:
            gate_action[False] = gate_branch
        config = {"gate": gate_action}
        if r.regularization:
            reg_branch = {"loss": False, "regularize": True}
            if r.regularization_clipping is not None:
                reg_branch["clipping"] = r.regularization_clipping
            config["delay"] = {"cond": type(self).delay_regularization, True: reg_branch}
        return config

    def _async_config(self) -> dict:
        r = self.recipe
        config = {}
        if r.reinitialization:
            config["reinitialize"] = {"cond": type(self).should_reinitialize,
                                      "model": self.reinitialize_layers,
                                      "callback": type(self).after_reinitialization}
        if r.early_stopping_threshold is not None:
            config["early_stopping"] = {"cond": type(self).should_stop,
                                        "callback": type(self).stop}
        return config

    # ------------------------------------------------------------ the rules
    def layers_of(self, model) -> list:
        """The layers the recipe acts on: ``recipe.layers(model)``, else every INALU."""
        return (self.recipe.layers or inalu_layers)(model)

    def gates(self, model) -> list:
        """The gate variables ``g`` of :meth:`layers_of`."""
        return [layer.g for layer in self.layers_of(model)]

    def losses(self) -> np.ndarray:
        """The ``loss_key`` column since the last reinitialisation (empty before any)."""
        view = self.reinit_history
        key = self.recipe.loss_key
        if key not in view:
            if len(self.history):
                raise ValueError(
                    f"inalu_controller: loss_key {key!r} is not a column of the "
                    f"controller's history (columns: {', '.join(map(str, view.keys()))}); "
                    f"for 'batch_mse' compile the model with metrics=[BatchMSE()]")
            return np.empty(0)  # nothing recorded yet
        return view[key]

    def gate_open(self) -> bool:
        """``gate`` action: True on the batches that train everything but the gates."""
        return self.recipe.gate_open(self.batches)

    def delay_regularization(self) -> bool:
        """``delay`` action: regularise once the delay has passed and the loss is low."""
        if self.reinit_epochs <= self.recipe.regularization_delay_epochs:
            return False
        recorded = self.losses()
        on = bool(recorded.size) and self.recipe.regularize(self.reinit_epochs, recorded[-1])
        if on and not self.regularizing:  # first switch-on since the last reinit
            self.regularization_started.append((self.epochs, self.batches))
            self.regularizing = True
        return on

    def should_reinitialize(self) -> bool:
        """End of epoch: :meth:`InaluRecipe.stuck` on the losses since the last reinit."""
        return self.recipe.stuck(self.losses(), len(self.reinitializations))

    def reinitialize_layers(self, model) -> None:
        """Redraw every weight of :meth:`layers_of` from the next attempt's init family.

        ``"published"``: ``layer.reinitialize()`` (the layers' own initializers, as
        the report does); another family: ``layer.reinitialize(family, rng)`` from
        the controller's generator (seeded by ``seed``), layer by layer, the last
        layer the output.
        """
        family = self.recipe.family(0, len(self.reinitializations) + 1)
        layers = self.layers_of(model)
        for k, layer in enumerate(layers):
            if family == "published":
                layer.reinitialize()
            else:
                layer.reinitialize(family, self._rng, output_layer=k == len(layers) - 1)

    def after_reinitialization(self) -> None:
        """Record the redraw; the delay starts over."""
        self.reinitializations.append((self.epochs, self.batches))
        self.regularizing = False

    def should_stop(self) -> bool:
        """End of epoch: the mean of the recent losses is below the threshold."""
        return self.recipe.converged(self.losses())

    def stop(self) -> None:
        """Stop ``fit`` after this epoch."""
        self.model.stop_training = True


def inalu_controller(*, report: bool = False, verbose: int = 0,
                     max_history: Optional[int] = None, seed: Optional[int] = None,
                     **recipe: Any) -> InaluController:
    """An :class:`InaluController` for ``InaluRecipe(**recipe)``.

    Args:
        report: start from :meth:`InaluRecipe.report` (the published recipe)
            instead of the default one.
        verbose, max_history: passed to :class:`LoopController`.
        seed: seeds the redraws from init families other than ``"published"``.
        **recipe: fields of :class:`InaluRecipe`.

    Returns:
        The configured controller; it keeps ``reinitializations`` and
        ``regularization_started`` (lists of ``(epoch, batch)``) for plots.

    Example:
    >>> controller = inalu_controller(loss_key="batch_mse")
    >>> controller.recipe.loss_key
    'batch_mse'
    """
    record = InaluRecipe.report(**recipe) if report else InaluRecipe(**recipe)
    return InaluController(record, verbose=verbose, max_history=max_history, seed=seed)

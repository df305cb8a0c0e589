"""The iNALU training recipe as one record: :class:`InaluRecipe`."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.layers.inalu import INIT_FAMILIES
from tensorflow_kappa.recipes.detectors import plateau, stuck

__all__ = ["InaluRecipe"]

_DETECTORS = ("authors", "window")


@dataclasses.dataclass(frozen=True)
class InaluRecipe:
    """The iNALU training recipe, every rule a field and a method.

    The rules are the methods ``gate_open``, ``regularize``, ``stuck``,
    ``converged`` and ``family``; two paths execute one record:
    :class:`~tensorflow_kappa.recipes.InaluController` (``model.fit``, one run)
    and the population trainer (many seeds x candidates as one vectorised
    population: ``kappa arithmetic --seeds/--suite``, ``kappa nalm-benchmark``).
    Construction checks every field (a ValueError names the bad one) and
    normalises it (clips become float pairs).

    Two records: :meth:`report` is the report's recipe (chapter 6, Figures
    6.3-6.5) with the iNALU authors' reinitialisation rule (Schlör, Ring & Hotho
    2020), exactly as published.  ``InaluRecipe()`` is the default, which differs
    in exactly these fields (the rest is the report's; why: BENCHMARKS.md, "The
    arithmetic task"):

    ==========================  ======================  ==========================
    field                       report                  default
    ==========================  ======================  ==========================
    ``detector``                ``"authors"`` (halves)  ``"window"`` (:func:`plateau`)
    ``reinit_min_steps``        10 000                  5 000
    ``reinit_window``           ``None`` (all)          2 000 (two windows compared)
    ``init_families``           ``("published",)``      :data:`INIT_FAMILIES` in turn
    ``candidates``              1                       12 (population path only)
    ==========================  ======================  ==========================

    The default's redraws rotate through the init families, and in the
    population path each seed's run is ``candidates`` members whose first draws
    rotate through them (the seed's result is its member with the lowest
    interpolation MSE).  The ``model.fit`` path is one candidate (candidate 0:
    its first attempt is the published draw, its reinitialisations take the next
    families in turn).

    What the rules do, batch by batch and epoch by epoch:

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
      iNALU sparsity regulariser).
    * ``reinitialize`` (end of epoch): once more than ``reinit_min_steps`` step
      losses are recorded since the last reinitialisation, ``detector="window"``
      (default, :func:`plateau`) compares the mean of the last ``reinit_window``
      losses with the window before it and fires when it fell by less than
      ``reinit_min_improvement`` (5 %) while above ``reinit_loss_threshold``;
      ``detector="authors"`` (report) splits the losses (the last
      ``reinit_window`` of them, ``None``: all) into halves and fires if
      ``mean(first) <= mean(second) + std(second)`` and ``mean(second) >
      reinit_loss_threshold`` (:func:`stuck`).  Then every iNALU weight is
      redrawn from the attempt's init family (``INALU.reinitialize``).
    * ``early_stopping`` (end of epoch; Fig. 6.5): stop when the mean of the
      last ``early_stopping_window`` recorded losses is below
      ``early_stopping_threshold``.

    Which loss the rules read: ``loss_key``, a column of the controller's
    per-step history.  The default ``"loss_gate"`` is the data loss the ``gate``
    action trains (compiled loss without ``model.losses``).  Keras's own
    ``"loss"`` column includes ``model.losses``, so with the iNALU regulariser
    switched on (about 5 at initialisation) "loss below 1" could never hold.
    Like every Keras batch log (and the report's ``history[...]["loss"]``) these
    are running means within the epoch; compile with ``metrics=[BatchMSE()]``
    and pass ``loss_key="batch_mse"`` for per-batch values (what ``kappa
    arithmetic`` does).  The population trainer reads each member's own step
    MSE.

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
        loss_key: the history column the rules read (see "Which loss the rules
            read" above).
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

        def optional(name, check):
            value = getattr(self, name)
            put(name, None if value is None else check(name, value))

        for name in ("regularization", "reinitialization"):
            put(name, _checks.flag(name, getattr(self, name)))
        put("gate_period", _checks.integer("gate_period", self.gate_period, minimum=1))
        put("gate_batches", _checks.integer("gate_batches", self.gate_batches, minimum=0,
                                            maximum=self.gate_period))
        for name in ("clipping", "gate_clipping", "regularization_clipping"):
            optional(name, _checks.clip_range)
        for name in ("regularization_delay_epochs", "reinit_min_steps"):
            put(name, _checks.integer(name, getattr(self, name), minimum=0))
        for name in ("regularization_loss_threshold", "reinit_loss_threshold",
                     "reinit_min_improvement"):
            put(name, _checks.number(name, getattr(self, name)))
        optional("reinit_window", lambda n, v: _checks.integer(n, v, minimum=2))
        _checks.one_of("detector", self.detector, _DETECTORS)
        if self.detector == "window" and self.reinit_window is None:
            raise ValueError("detector='window' needs reinit_window (the window length in steps)")
        families = self.init_families
        if isinstance(families, str) or not isinstance(families, (tuple, list)) or not families:
            raise ValueError(f"init_families must be a non-empty sequence of names from "
                             f"{INIT_FAMILIES}, got {families!r}")
        put("init_families", tuple(_checks.one_of("init_families", f, INIT_FAMILIES)
                                   for f in families))
        put("candidates", _checks.integer("candidates", self.candidates, minimum=1))
        optional("max_reinitializations", lambda n, v: _checks.integer(n, v, minimum=0))
        optional("early_stopping_threshold",
                 lambda n, v: _checks.number(n, v, minimum=0.0, strict_minimum=True))
        put("early_stopping_window",
            _checks.integer("early_stopping_window", self.early_stopping_window, minimum=1))
        if not isinstance(self.loss_key, str):
            raise ValueError(f"loss_key must be a history column name, got {self.loss_key!r}")
        optional("reinit_condition", lambda n, v: _checks.function(n, v, "fn(losses) -> bool"))
        optional("layers", lambda n, v: _checks.function(n, v, "fn(model) -> list of layers"))

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

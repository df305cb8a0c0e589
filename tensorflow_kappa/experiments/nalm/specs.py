"""What the NALM benchmark runs: the operations, the range pairs and the module kinds.

Example:
>>> str(OPS["mul"]), MODELS["nau"].ops
('x1 * x2', ('add', 'sub'))
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Dict, Optional, Tuple

import keras

from tensorflow_kappa import _checks
from tensorflow_kappa.datasets.expression import Expression, parse_expression
from tensorflow_kappa.layers import INALU, NALU, NAU, NMU
from tensorflow_kappa.recipes import InaluRecipe

__all__ = ["DEFAULT_RANGES", "INALU_RECIPE", "MODELS", "OPS", "OPTIMIZERS", "OP_SYMBOLS",
           "ModelSpec"]

#: The optimizers a module kind can train with (Keras' RMSprop and Adam, element-wise
#: per member: :class:`~tensorflow_kappa.experiments.population.MaskedOptimizer`).
OPTIMIZERS = ("rmsprop", "adam")

#: The four operations, parsed once, as expressions over the two inputs.
OPS: Dict[str, Expression] = {name: parse_expression(text, 2) for name, text in (
    ("add", "x1 + x2"), ("sub", "x1 - x2"), ("mul", "x1 * x2"), ("div", "x1 / x2"))}
#: How the results table writes each operation.
OP_SYMBOLS: Dict[str, str] = {"add": "+", "sub": "−", "mul": "×", "div": "÷"}

#: (training range, extrapolation range) pairs of the default table.
DEFAULT_RANGES: Tuple[Tuple[Any, Any], ...] = (
    ((-1, 1), [(-5, -1), (1, 5)]),
    ((-5, 5), [(-10, -5), (5, 10)]),
    ((1, 2), (2, 6)),
    ((0.1, 0.2), (0.2, 2)),
    ((-2, -1), (-6, -2)),
)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How one module kind is built and trained in the benchmark.

    Attributes:
        name: table label.
        make_layer: ``fn() -> layer`` with one output unit.
        ops: the operations it is benchmarked on (NAU cannot multiply, NMU cannot add).
        optimizer: a name of :data:`OPTIMIZERS`; ``learning_rate``: its constant
            learning rate (:meth:`keras_optimizer`).
        steps: default training steps.
        recipe: train with this :class:`~tensorflow_kappa.recipes.InaluRecipe`
            (gate schedule and clips, the regulariser as its own step, the stuck
            test, the redraw's init family: the record's rule methods, executed per
            member) instead of plain steps on the compiled objective (data loss
            plus the layer's own ``add_loss``); ``None``: plain steps.  The
            benchmark trains one candidate per seed, so ``recipe.candidates``
            must be 1; early stopping is the benchmark's own (every member solved).
        steps_per_epoch: the one unit conversion between the record (epochs) and
            the benchmark's protocol (steps): ``regularization_delay_epochs``
            counts completed epochs of this many steps since the member's last
            (re)initialisation (the report: 1 000 steps of 64 rows).
        relative_thresholds: read the recipe's loss thresholds
            (``regularization_loss_threshold``, ``reinit_loss_threshold``) in
            units of the member's target scale ``mean(y²)`` on its interpolation
            set (the rules see ``loss / scale``), so that "loss below 1" means the
            same on U(0.1, 0.2) as on U(−5, 5).
    """

    name: str
    make_layer: Callable[[], keras.layers.Layer]
    ops: Tuple[str, ...]
    optimizer: str = "adam"
    learning_rate: float = 0.01
    steps: int = 20000
    recipe: Optional[InaluRecipe] = None
    steps_per_epoch: int = 1000
    relative_thresholds: bool = False

    def __post_init__(self) -> None:
        if self.recipe is not None and not isinstance(self.recipe, InaluRecipe):
            raise ValueError(f"recipe must be an InaluRecipe or None, got {self.recipe!r}")
        if self.recipe is not None and self.recipe.candidates != 1:
            raise ValueError(f"recipe.candidates must be 1 in the NALM benchmark (one member "
                             f"per seed), got {self.recipe.candidates}")
        if self.recipe is not None and self.recipe.gate_loss not in (None, "mse", "mae"):
            raise ValueError(f"recipe.gate_loss must be None, 'mse' or 'mae' in the NALM "
                             f"benchmark, got {self.recipe.gate_loss!r}")
        _checks.one_of("optimizer", self.optimizer, OPTIMIZERS)
        _checks.integer("steps_per_epoch", self.steps_per_epoch, minimum=1)

    def keras_optimizer(self) -> keras.optimizers.Optimizer:
        """The Keras optimizer whose rule and constants the members train with (each
        member's step is this optimizer's step on that member alone)."""
        return keras.optimizers.get({"class_name": self.optimizer,
                                     "config": {"learning_rate": self.learning_rate}})

    def settings(self) -> Dict[str, Any]:
        """Every field but ``make_layer`` (the JSON record of the spec)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "make_layer"}
        if self.recipe is not None:
            out["recipe"] = {k: v for k, v in self.recipe.to_dict().items()
                             if k not in ("loss_key", "layers", "candidates")}
        return out


def _warmed_up(layer_class, steps: int) -> Callable[[], keras.layers.Layer]:
    """A one-unit NAU/NMU whose regulariser warms up from 20 % to 35 % of ``steps``."""
    return functools.partial(layer_class, 1, warmup_start=int(0.2 * steps),
                             warmup_end=int(0.35 * steps))


_ALL = tuple(OPS)

#: The iNALU recipe of the benchmark: the report's record (:meth:`InaluRecipe.report`)
#: with the single-module deviations the benchmark has always used, stated here once:
#: the authors' rule looks at the last 5 000 step losses once more than 5 000 are
#: recorded (report: all, more than 10 000) and calls a member stuck above a loss of
#: 1e-5 (report: 1.0; on U(0.1, 0.2) the targets are below 0.04, so "loss above 1"
#: would never reinitialise a stuck member there); and the regulariser waits for more
#: than 20 epochs of 1 000 steps (report: 10): on × over U(0.1, 0.2) a member first
#: sits at a half-open gate (σ(g) ≈ 0.5, MSE ≈ 3e-6), and switched on after 10 epochs
#: the regulariser pushed it out of reach of the solution in most attempts, each
#: ending in a reinitialisation (5–10/10 successes depending on the random stream;
#: 10/10 on both streams measured with 20, BENCHMARKS.md).
INALU_RECIPE = InaluRecipe.report(reinit_min_steps=5000, reinit_window=5000,
                                  reinit_loss_threshold=1e-5, regularization_delay_epochs=20,
                                  early_stopping_threshold=None)

#: The module kinds of the benchmark, by command-line name.
MODELS: Dict[str, ModelSpec] = {
    "inalu": ModelSpec("INALU (separate)", functools.partial(INALU, 1, share_weights=False),
                       _ALL, optimizer="rmsprop", steps=100000, recipe=INALU_RECIPE),
    "inalu-shared": ModelSpec("INALU (shared)", functools.partial(INALU, 1, share_weights=True),
                              _ALL, optimizer="rmsprop", steps=100000,
                              recipe=INALU_RECIPE),
    "nalu": ModelSpec("NALU", functools.partial(NALU, 1), _ALL, optimizer="adam"),
    "nau": ModelSpec("NAU", _warmed_up(NAU, 20000), ("add", "sub"), optimizer="adam"),
    "nmu": ModelSpec("NMU", _warmed_up(NMU, 20000), ("mul",), optimizer="adam"),
}

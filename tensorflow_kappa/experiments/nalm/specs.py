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

from tensorflow_kappa.datasets.expression import Expression, parse_expression
from tensorflow_kappa.layers import INALU, NALU, NAU, NMU

__all__ = ["DEFAULT_RANGES", "MODELS", "OPS", "OP_SYMBOLS", "ModelSpec"]

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
        optimizer: ``"rmsprop"`` or ``"adam"``; ``learning_rate``.
        steps: default training steps.
        recipe: train with the iNALU recipe (gate schedule, clipping, delayed
            regulariser as its own step, reinitialisation) instead of plain steps
            on the compiled objective (data loss plus the layer's own ``add_loss``).
        gate_period, gate_batches, clipping: the recipe's gate schedule and clip
            (recipe only).
        regularization_delay: steps after a (re)initialisation before the regulariser
            may start; ``regularization_loss_threshold``: ... and only while the
            member's last step loss is below it.
        reinit_min_steps, reinit_loss_threshold, reinit_window: the authors' rule
            (:func:`~tensorflow_kappa.recipes.stuck`), checked every ``eval_every``.
        gate_loss: ``"mse"`` (Fig. 6.4) or ``"mae"`` (Fig. 4.9) for the gate steps.
        relative_thresholds: multiply ``regularization_loss_threshold`` and
            ``reinit_loss_threshold`` by the member's target scale ``mean(y²)`` on
            its interpolation set, so that "loss below 1" means the same on
            U(0.1, 0.2) as on U(−5, 5).
    """

    name: str
    make_layer: Callable[[], keras.layers.Layer]
    ops: Tuple[str, ...]
    optimizer: str = "adam"
    learning_rate: float = 0.01
    steps: int = 20000
    recipe: bool = False
    gate_period: int = 10
    gate_batches: int = 2
    clipping: Optional[Tuple[float, float]] = (-0.1, 0.1)
    regularization_delay: int = 10000
    regularization_loss_threshold: float = 1.0
    reinit_min_steps: int = 5000
    reinit_loss_threshold: float = 1e-5
    reinit_window: Optional[int] = 5000
    relative_thresholds: bool = False
    gate_loss: str = "mse"

    def settings(self) -> Dict[str, Any]:
        """Every field but ``make_layer`` (the JSON record of the spec)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "make_layer"}


def _warmed_up(layer_class, steps: int) -> Callable[[], keras.layers.Layer]:
    """A one-unit NAU/NMU whose regulariser warms up from 20 % to 35 % of ``steps``."""
    return functools.partial(layer_class, 1, warmup_start=int(0.2 * steps),
                             warmup_end=int(0.35 * steps))


_ALL = tuple(OPS)

#: The module kinds of the benchmark, by command-line name.
MODELS: Dict[str, ModelSpec] = {
    "inalu": ModelSpec("INALU (separate)", functools.partial(INALU, 1, share_weights=False),
                       _ALL, optimizer="rmsprop", steps=100000, recipe=True),
    "inalu-shared": ModelSpec("INALU (shared)", functools.partial(INALU, 1, share_weights=True),
                              _ALL, optimizer="rmsprop", steps=100000, recipe=True),
    "nalu": ModelSpec("NALU", functools.partial(NALU, 1), _ALL, optimizer="adam"),
    "nau": ModelSpec("NAU", _warmed_up(NAU, 20000), ("add", "sub"), optimizer="adam"),
    "nmu": ModelSpec("NMU", _warmed_up(NMU, 20000), ("mul",), optimizer="adam"),
}

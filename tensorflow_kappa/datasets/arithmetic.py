"""The arithmetic task of the report (chapter 6.1) and of the NALM literature.

:func:`arithmetic_task` draws inputs ``x1 … xN`` uniformly from a range, computes
the target from an arithmetic expression (parsed safely by
:func:`~tensorflow_kappa.datasets.expression.parse_expression`, never ``eval``)
and returns three sets: training, interpolation (an independent draw from the
training range) and extrapolation (drawn from a different range).

The report's task (Madsen & Johansen's arithmetic dataset task, composed):
``y = (x1 - x2) * (x3 - x4) + x5 * x6`` on 7 inputs (``x7`` is a distractor),
64 000 samples per set, training and interpolation on U(−3, 3), extrapolation
on U(10, 15).
"""
from __future__ import annotations

import numbers
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.datasets.expression import Expression, parse_expression

__all__ = ["ARITHMETIC_SUITE", "ArithmeticTask", "REPORT_EXPRESSION", "arithmetic_task", "check_range",
           "sample_range"]

#: The report's task (chapter 6.1.2), on ``num_inputs=7``.
REPORT_EXPRESSION = "(x1 - x2) * (x3 - x4) + x5 * x6"

#: A public suite of expressions over 7 inputs of the report's task's size
#: (two or three products of sums): the report's task, its sign variants, a
#: reordering and a permutation of the inputs.  Use them with the report's
#: ranges (training U(−3, 3), extrapolation U(10, 15)), as ``kappa arithmetic
#: --suite`` does.
ARITHMETIC_SUITE = (
    REPORT_EXPRESSION,
    "(x1 - x2) * (x3 - x4) - x5 * x6",
    "(x1 + x2) * (x3 + x4) + x5 * x6",
    "(x1 + x2) * (x3 - x4) + x5 * x6",
    "x1 * x2 - (x3 - x4) * (x5 + x6)",
    "(x1 - x3) * (x2 - x5) + x4 * x7",
)

Range = Union[Tuple[float, float], Sequence[Tuple[float, float]]]
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class ArithmeticTask(NamedTuple):
    """What :func:`arithmetic_task` returns.

    Attributes:
        train: ``(x, y)``: float32 arrays of shapes ``(n, N)`` and ``(n, 1)``.
        interpolation: ``(x, y)``, an independent draw from the training range.
        extrapolation: ``(x, y)``, drawn from the extrapolation range.
        expression: the parsed :class:`~tensorflow_kappa.datasets.expression.Expression`
            (``str(task.expression)`` is its canonical text; ``.evaluate(x)``
            gives float64 targets).
        input_names: ``("x1", …, "xN")``, in the column order of ``x``.
    """

    train: Tuple[np.ndarray, np.ndarray]
    interpolation: Tuple[np.ndarray, np.ndarray]
    extrapolation: Tuple[np.ndarray, np.ndarray]
    expression: Expression
    input_names: Tuple[str, ...]


def check_range(value: Range, name: str = "range") -> Tuple[Tuple[float, float], ...]:
    """Normalise a range: a pair ``(low, high)`` or a union of such pairs.

    Returns a tuple of ``(low, high)`` pairs with ``low < high``, all finite
    in float32 (the inputs are float32).
    """
    def pair(p) -> Tuple[float, float]:
        try:
            low, high = p
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a pair (low, high) or a list of such pairs, "
                             f"got {value!r}") from None
        if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real)
               for v in (low, high)):  # JSON's true is no 1.0, nor the string "1" a 1
            raise ValueError(f"{name}: each bound must be a real number (not a bool or a "
                             f"string), got the interval {p!r}")
        low, high = float(low), float(high)
        if not (np.isfinite(low) and np.isfinite(high)) or not low < high:
            raise ValueError(f"{name}: each interval needs finite low < high, got {p!r}")
        if max(abs(low), abs(high)) > _FLOAT32_MAX:
            raise ValueError(f"{name}: the inputs are float32, whose largest finite value "
                             f"is {_FLOAT32_MAX:.4g}; got the interval {p!r}")
        return low, high

    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a pair (low, high) or a list of such pairs, "
                         f"got {value!r}")
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"{name} must be a pair (low, high) or a list of such pairs, "
                         f"got {value!r}") from None
    if len(items) == 2 and all(np.isscalar(v) and not isinstance(v, (str, bytes))
                               for v in items):
        return (pair(items),)
    if not items:
        raise ValueError(f"{name} must not be empty")
    return tuple(pair(p) for p in items)


def sample_range(rng: np.random.Generator, value: Range, shape) -> np.ndarray:
    """Draw float64 samples uniformly from a range or a union of intervals.

    A union is sampled uniformly over its total length: an interval is picked
    with probability proportional to its length, then a point uniformly in it
    (for the usual mirrored unions such as U(−5, −1) ∪ U(1, 5) that is a fair
    coin for the sign).
    """
    intervals = check_range(value)
    if len(intervals) == 1:
        low, high = intervals[0]
        return rng.uniform(low, high, shape)
    lengths = np.array([h - lo for lo, h in intervals])
    which = rng.choice(len(intervals), size=shape, p=lengths / lengths.sum())
    lows = np.array([lo for lo, _ in intervals])[which]
    return lows + rng.uniform(0.0, 1.0, shape) * lengths[which]


def _check_targets(expression: Expression, x: np.ndarray, y: np.ndarray, name: str) -> None:
    """Raise ValueError if a target is not finite in float32, with an example row."""
    bad = np.flatnonzero(~np.isfinite(y[:, 0]))
    if bad.size:
        row = bad[0]
        raise ValueError(
            f"expression {str(expression)!r} gives {bad.size} of {len(y)} {name} targets "
            f"that are not finite in float32 (e.g. {y[row, 0]} at inputs "
            f"{x[row].tolist()}): a division by zero or a value beyond "
            f"{_FLOAT32_MAX:.4g}; change the expression or the range")


def arithmetic_task(expression: Union[str, Expression] = REPORT_EXPRESSION,
                    num_inputs: Optional[int] = 7, n: int = 64000, train_range: Range = (-3, 3),
                    extrapolation_range: Range = (10, 15),
                    seed: Optional[int] = None) -> ArithmeticTask:
    """Training, interpolation and extrapolation sets for an arithmetic expression.

    Args:
        expression: over variables ``x1 … xN``, numbers, ``+ - * /`` and
            parentheses (see :mod:`tensorflow_kappa.datasets.expression`), as text
            or already parsed (an :class:`Expression`, used as it is); the
            report's task by default.
        num_inputs: ``N``, the number of input columns (inputs the expression
            does not use are distractors); ``None``: the highest variable used.
        n: samples per set (the report: 64 000 each).
        train_range: where training and interpolation inputs are drawn, a pair
            ``(low, high)`` (uniform) or a union of pairs, e.g.
            ``[(-5, -1), (1, 5)]``.
        extrapolation_range: the same for the extrapolation set.
        seed: makes the three sets reproducible (NumPy ``default_rng``); None
            (a seed drawn under ``keras.utils.set_random_seed``) or an integer
            >= 0.

    Returns:
        An :class:`ArithmeticTask` ``(train, interpolation, extrapolation,
        expression, input_names)``; each set is ``(x, y)`` with ``x`` float32
        ``(n, N)`` and ``y`` float32 ``(n, 1)``.  Targets are computed in
        float64 from the float32 inputs, then rounded to float32.

    Raises:
        ExpressionError: a malformed expression (message points at the position).
        ValueError: bad ``n``, ranges, ``num_inputs`` or ``seed``; or an
            expression whose targets are not finite in float32 on some drawn
            inputs (e.g. ``"x1 / (x2 - x2)"``), naming the set and an example.

    Example:

    >>> task = arithmetic_task("x1 * x2", num_inputs=2, n=4, seed=0)
    >>> x, y = task.train
    >>> x.shape, y.shape, task.input_names
    ((4, 2), (4, 1), ('x1', 'x2'))
    >>> bool(np.allclose(y[:, 0], x[:, 0] * x[:, 1]))
    True
    """
    if not isinstance(expression, Expression):
        parsed = parse_expression(expression, num_inputs)
    elif num_inputs is not None and num_inputs != expression.num_inputs:
        parsed = expression.with_inputs(num_inputs)
    else:
        parsed = expression
    n = _checks.integer("n", n, minimum=1)
    check_range(train_range, "train_range")
    check_range(extrapolation_range, "extrapolation_range")
    rng = np.random.default_rng(_checks.seed_or_drawn("seed", seed))
    shape = (int(n), parsed.num_inputs)

    def draw(value, name):
        x = sample_range(rng, value, shape).astype(np.float32)
        with np.errstate(over="ignore"):
            y = parsed.evaluate(x).astype(np.float32)[:, None]
        _check_targets(parsed, x, y, name)
        return x, y

    train = draw(train_range, "training")
    interpolation = draw(train_range, "interpolation")
    extrapolation = draw(extrapolation_range, "extrapolation")
    return ArithmeticTask(train, interpolation, extrapolation, parsed, parsed.input_names)

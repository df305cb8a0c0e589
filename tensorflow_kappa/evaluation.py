"""How the NALM literature decides that an arithmetic run succeeded.

Madsen & Johansen (2020, "Neural Arithmetic Units", ICLR; section 4.1 and
their ``stable-nalu`` code) call a run successful when its extrapolation MSE
is below that of a *nearly exact* solution: the exact solution with every
relevant weight perturbed by ε = 1e-5.  The error is read at the iteration
with the best interpolation (validation) error, so a run is judged at the
point model selection would pick.  Mistry, Farrahi & Hare's NALM primer
(2022) adopts the same protocol and reports success rates with confidence
intervals over seeds.

This module provides the pieces:

* :func:`perturbed_threshold` -- the ε-perturbed exact solution's MSE on a
  data set, for any expression of :mod:`tensorflow_kappa.datasets.expression`,
  in float64;
* :func:`best_epoch` and :func:`succeeded` -- the selection and the verdict;
* :func:`wilson_interval` -- the Wilson score interval of a success rate;
* :func:`formula_matches` -- whether a read-out formula (``explain``) is the
  expression: the two trees compared once both are normalised.

Every function takes the expression parsed once
(:func:`~tensorflow_kappa.datasets.expression.parse_expression`, or an
:class:`~tensorflow_kappa.datasets.ArithmeticTask`'s ``expression``), never text.

What exactly is perturbed.  Madsen & Johansen's exact solution is a linear
selection layer (weight 1 from each operand's input, 0 elsewhere) followed
by the exact operation.  For an expression of
:mod:`tensorflow_kappa.datasets.expression` each *occurrence* of a variable
is such a selection with one relevant weight, 1.  The perturbed solution
scales occurrence ``k`` by ``1 + s_k ε`` with signs ``s_k = ±1``; operations
and numeric constants stay exact.  The signs are chosen so that the
perturbation hurts most on the data set (the largest MSE over all sign
patterns; a sign pattern whose perturbations cancel, such as ``(1−ε)x1 /
((1−ε)x2)``, would make the threshold 0).  The pattern is found from the
first-order (in ε) error, exhaustively for up to 16 occurrences and greedily
beyond, and the threshold is then the exact float64 MSE of the chosen
perturbed solution against the exact float64 values.

On the single-operation tasks this gives the thresholds of the primer's
benchmark up to its handling of irrelevant inputs: ``(1+ε)² a·b`` for
``a·b``, ``(1+ε)/(1−ε) a/b`` for ``a/b``, ``(1+ε)(a+b)`` for ``a + b`` and
``(1+ε)a − (1−ε)b`` for ``a − b``.  Irrelevant (zero) weights are not
perturbed ("every relevant weight").  For the report's task on U(10, 15)
the threshold is about 1e-5.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.datasets.expression import BinaryOp, Expression, Negate, Node, Number
from tensorflow_kappa.datasets.expression import Variable
from tensorflow_kappa.layers import Formula
from tensorflow_kappa.layers import _formula

__all__ = [
    "EPSILON",
    "best_epoch",
    "formula_matches",
    "formula_tree",
    "perturbed_predictions",
    "perturbed_threshold",
    "succeeded",
    "wilson_interval",
    "worst_signs",
]

#: Madsen & Johansen's ε.
EPSILON = 1e-5


def _check_expression(expression: object) -> Expression:
    if not isinstance(expression, Expression):
        raise TypeError(
            f"expression must be a parsed Expression (parse the text once with "
            f"tensorflow_kappa.datasets.expression.parse_expression), got "
            f"{type(expression).__name__} {expression!r}")
    return expression


def _check_epsilon(epsilon: object) -> float:
    return _checks.number("epsilon", epsilon, minimum=0.0, strict_minimum=True)


def _occurrence_scaled(expr: Expression, x: np.ndarray, scales: np.ndarray) -> np.ndarray:
    def leaf(values, i, k):
        return values[:, i] * scales[k]

    return expr.evaluate(x, leaf=leaf)


def worst_signs(expression: Expression, x, epsilon: float = EPSILON) -> np.ndarray:
    """The signs ``s_k`` of the perturbation ``1 + s_k ε`` that maximise the MSE.

    Found on the first-order error ``Σ_k s_k ε g_k`` (``g_k`` the derivative of
    the output with respect to the scale of occurrence ``k``, by central
    differences in float64): exhaustively up to 16 occurrences, by greedy
    coordinate ascent beyond.
    """
    expr = _check_expression(expression)
    x = _checks.float_array("x", x, np.float64)
    _check_epsilon(epsilon)
    leaves = expr.num_leaves
    if leaves == 0:
        return np.zeros(0)
    h = 1e-4
    grads = []
    for k in range(leaves):
        up = np.ones(leaves)
        down = np.ones(leaves)
        up[k] += h
        down[k] -= h
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            g = (_occurrence_scaled(expr, x, up) - _occurrence_scaled(expr, x, down)) / (2 * h)
        grads.append(np.where(np.isfinite(g), g, 0.0))
    grads = np.stack(grads, axis=1)  # (n, L)
    gram = grads.T @ grads / max(len(x), 1)  # E[g g^T]
    if leaves <= 16:
        codes = np.arange(2 ** leaves)
        patterns = 1.0 - 2.0 * ((codes[:, None] >> np.arange(leaves)) & 1)  # (2^L, L)
        scores = np.einsum("pi,ij,pj->p", patterns, gram, patterns)
        return patterns[int(np.argmax(scores))]
    signs = np.ones(leaves)
    improved = True
    while improved:
        improved = False
        for k in range(leaves):
            flipped = signs.copy()
            flipped[k] = -flipped[k]
            if flipped @ gram @ flipped > signs @ gram @ signs + 1e-300:
                signs, improved = flipped, True
    return signs


def perturbed_predictions(expression: Expression, x,
                          epsilon: float = EPSILON, signs=None) -> np.ndarray:
    """The ε-perturbed exact solution's outputs on ``x`` (float64, shape ``(n,)``).

    Occurrence ``k`` of a variable is scaled by ``1 + signs[k] ε``; ``signs``
    defaults to :func:`worst_signs` on ``x``.
    """
    expr = _check_expression(expression)
    x = _checks.float_array("x", x, np.float64)
    _check_epsilon(epsilon)
    if signs is None:
        signs = worst_signs(expr, x, epsilon)
    signs = np.asarray(signs, dtype=np.float64)
    if signs.shape != (expr.num_leaves,):
        raise ValueError(f"signs needs one entry per variable occurrence "
                         f"({expr.num_leaves}), got shape {signs.shape}")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _occurrence_scaled(expr, x, 1.0 + signs * epsilon)


def perturbed_threshold(expression: Expression, x,
                        epsilon: float = EPSILON) -> float:
    """MSE of the ε-perturbed exact solution on inputs ``x``, in float64.

    Args:
        expression: the task's expression, parsed.
        x: inputs ``(n, N)``, usually the extrapolation set's.
        epsilon: the perturbation (Madsen & Johansen: 1e-5).

    The MSE is against the exact float64 values of the expression on ``x``.
    A run whose extrapolation MSE is below this value is at least as good
    as a solution that is right in every weight up to ε (module docstring).
    Samples where the exact value is not finite (division by 0) are left out.
    """
    expr = _check_expression(expression)
    x = _checks.float_array("x", x, np.float64)
    _check_epsilon(epsilon)
    target = expr.evaluate(x)
    keep = np.isfinite(target)
    x, target = x[keep], target[keep]
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.mean((perturbed_predictions(expr, x, epsilon) - target) ** 2))


def best_epoch(interpolation_mse: Sequence[float]) -> int:
    """Index of the lowest interpolation MSE (NaN counts as worst; first of ties)."""
    values = _checks.float_array("interpolation_mse", interpolation_mse, np.float64)
    if values.size == 0:
        raise ValueError("interpolation_mse is empty: no interpolation MSE recorded")
    values = np.where(np.isfinite(values), values, np.inf)
    return int(np.argmin(values))


def succeeded(interpolation_mse: Sequence[float], extrapolation_mse: Sequence[float],
              threshold: float) -> Tuple[bool, int]:
    """Madsen & Johansen's verdict on one run.

    Args:
        interpolation_mse, extrapolation_mse: per evaluation (e.g. per epoch),
            aligned.
        threshold: :func:`perturbed_threshold` on the extrapolation set.

    Returns:
        ``(success, index)``: whether the extrapolation MSE at the evaluation
        with the best interpolation MSE is below ``threshold``, and that index.
    """
    interpolation_mse = _checks.float_array("interpolation_mse", interpolation_mse, np.float64)
    extrapolation_mse = _checks.float_array("extrapolation_mse", extrapolation_mse, np.float64)
    if interpolation_mse.ndim != 1 or interpolation_mse.shape != extrapolation_mse.shape:
        raise ValueError(f"interpolation_mse and extrapolation_mse must be sequences of the "
                         f"same length, got shapes {interpolation_mse.shape} and "
                         f"{extrapolation_mse.shape}")
    threshold = _checks.number("threshold", threshold)
    index = best_epoch(interpolation_mse)
    value = float(extrapolation_mse[index])
    return bool(math.isfinite(value) and value < threshold), index


def wilson_interval(successes: int, n: int, z: float = 1.96) -> Tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % for ``z = 1.96``).

    >>> [round(v, 3) for v in wilson_interval(8, 10)]
    [0.49, 0.943]
    """
    n = _checks.integer("n", n, minimum=0)
    successes = _checks.integer("successes", successes, minimum=0, maximum=n)
    z = _checks.number("z", z, minimum=0.0, strict_minimum=True)
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def formula_tree(expression: Expression) -> _formula.Expr:
    """The expression as the read-out's normalised symbolic tree (what ``explain`` builds).

    Variables are named ``x1 … xN`` by position, like ``explain``'s default input names.
    """
    return _as_formula(_check_expression(expression).root)


def _as_formula(node: Node) -> _formula.Expr:
    if isinstance(node, Number):
        return _formula.constant(node.value)
    if isinstance(node, Variable):
        return _formula.Var(f"x{node.index + 1}", node.index)
    if isinstance(node, Negate):
        return _formula.linear([(-1, _as_formula(node.operand))])
    if isinstance(node, BinaryOp):
        left, right = _as_formula(node.left), _as_formula(node.right)
        if node.op in "+-":
            return _formula.linear([(1, left), (1 if node.op == "+" else -1, right)])
        return _formula.product([(left, 1), (right, 1 if node.op == "*" else -1)])
    raise TypeError(f"not an expression node: {node!r}")


def formula_matches(formula: Formula, expression: Expression) -> bool:
    """Whether a read-out formula (from ``explain``) is ``expression``.

    The formula's symbolic tree is compared with :func:`formula_tree` of the
    expression: both are normalised the same way (like terms and factors merged,
    constants folded, terms in canonical order and sign), so ``x2 * x1 - x3``
    matches ``x1 * x2 - x3``. Forms the normalisation does not unify (a product
    left unexpanded in one and expanded in the other) do not match; neither does
    a formula that is not discrete (``"not discrete: ..."``).

    Args:
        formula: one entry of ``explain(model)`` (a :class:`~tensorflow_kappa.layers.Formula`).
        expression: the task's expression, parsed.

    Example:
    >>> from tensorflow_kappa.datasets.expression import parse_expression
    >>> from tensorflow_kappa.layers import Formula
    >>> read = Formula(formula_tree(parse_expression("x2 * x1 - x3")))
    >>> formula_matches(read, parse_expression("x1 * x2 - x3"))
    True
    """
    if not isinstance(formula, Formula):
        raise TypeError(f"formula must be a Formula read out by explain, got "
                        f"{type(formula).__name__} {formula!r}")
    return formula.discrete and formula.expression == formula_tree(expression)

"""The success criterion (Madsen & Johansen 2020) and the Wilson interval."""
import itertools

import keras
import numpy as np
import pytest

from tensorflow_kappa.callbacks import InExtrapolationEvaluation
from tensorflow_kappa.datasets import arithmetic_task
from tensorflow_kappa.datasets.expression import parse_expression
from tensorflow_kappa.evaluation import (best_epoch, formula_matches, formula_tree,
                                         perturbed_predictions, perturbed_threshold, succeeded,
                                         wilson_interval, worst_signs)
from tensorflow_kappa.layers import INALU, Formula, explain
from tensorflow_kappa.layers import _formula as F

EPS = 1e-5
REPORT = "(x1 - x2) * (x3 - x4) + x5 * x6"


def test_wilson_interval_known_values():
    # Reference values of the Wilson score interval (z = 1.96).
    np.testing.assert_allclose(wilson_interval(8, 10), (0.4902, 0.9433), atol=1e-4)
    np.testing.assert_allclose(wilson_interval(0, 10), (0.0, 0.2775), atol=1e-4)
    np.testing.assert_allclose(wilson_interval(10, 10), (0.7225, 1.0), atol=1e-4)
    np.testing.assert_allclose(wilson_interval(5, 10), (0.2366, 0.7634), atol=1e-4)
    low, high = wilson_interval(30, 100, z=2.576)  # 99 %
    assert low < 0.3 < high and high - low > wilson_interval(30, 100)[1] - wilson_interval(
        30, 100)[0]
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for bad in [(11, 10), (-1, 10), (1.5, 10)]:
        with pytest.raises(ValueError):
            wilson_interval(*bad)


@pytest.mark.parametrize("op, factor", [
    ("*", (1 + EPS) ** 2 - 1),
    ("/", (1 + EPS) / (1 - EPS) - 1),
    ("+", EPS),
])
def test_threshold_of_single_operations_in_closed_form(op, factor):
    x = np.random.default_rng(0).uniform(2, 6, (20000, 2))
    expr = parse_expression(f"x1 {op} x2")
    expected = np.mean((factor * expr.evaluate(x)) ** 2)
    np.testing.assert_allclose(perturbed_threshold(expr, x, EPS), expected, rtol=1e-4)


def test_threshold_of_subtraction_takes_the_non_cancelling_signs():
    x = np.random.default_rng(0).uniform(2, 6, (20000, 2))
    # (1 + ε) x1 − (1 − ε) x2 or its mirror: error ε (x1 + x2), not ε (x1 − x2)
    expected = np.mean((EPS * (x[:, 0] + x[:, 1])) ** 2)
    sub = parse_expression("x1 - x2")
    np.testing.assert_allclose(perturbed_threshold(sub, x, EPS), expected, rtol=1e-4)
    assert worst_signs(sub, x).tolist() in ([1.0, -1.0], [-1.0, 1.0])


@pytest.mark.parametrize("fn", [perturbed_threshold, perturbed_predictions, worst_signs])
def test_text_is_not_an_expression(fn):
    """Every function takes the expression parsed once, never its text."""
    with pytest.raises(TypeError, match="parse_expression"):
        fn("x1 - x2", np.ones((3, 2)))


def test_threshold_is_the_worst_sign_pattern_by_brute_force():
    task = arithmetic_task(REPORT, 7, n=3000, seed=3)
    x = task.extrapolation[0].astype(np.float64)
    expr = task.expression
    exact = expr.evaluate(x)
    best = 0.0
    for signs in itertools.product([-1.0, 1.0], repeat=expr.num_leaves):
        pred = perturbed_predictions(expr, x, EPS, signs=np.array(signs))
        best = max(best, float(np.mean((pred - exact) ** 2)))
    np.testing.assert_allclose(perturbed_threshold(expr, x, EPS), best, rtol=1e-6)
    assert 1e-6 < best < 1e-4  # about 1e-5 on U(10, 15)


def test_best_epoch_and_verdict():
    assert best_epoch([3.0, 1.0, 2.0, 1.0]) == 1
    assert best_epoch([np.nan, 2.0, np.inf]) == 1
    assert succeeded([1.0, 0.1, 0.5], [9.0, 1e-7, 1e-9], 1e-6) == (True, 1)
    # judged at the best interpolation epoch, not at the best extrapolation epoch
    assert succeeded([1.0, 0.1, 0.5], [9.0, 1e-3, 1e-9], 1e-6) == (False, 1)
    assert succeeded([0.1], [np.nan], 1.0) == (False, 0)
    with pytest.raises(ValueError):
        succeeded([1.0], [1.0, 2.0], 1.0)
    with pytest.raises(ValueError):
        best_epoch([])


def _exact_report_model(perturb=0.0):
    """INALU 3-2-1 stack with hand-set weights computing the report's task exactly.

    Raw weights ±20 make tanh(Ŵ)σ(M̂) and σ(G) equal to 1, 0 or −1 in float32.
    ``perturb`` moves the exponent of x5 in the product x5 * x6 from 1 to 1 − perturb.
    """
    big = 20.0
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((7,)), INALU(3), INALU(2), INALU(1)])

    def setup(layer, add, mul, gate):
        add, mul = np.asarray(add, float), np.asarray(mul, float)
        layer.w_hat_a.assign(big * np.sign(add))
        layer.m_hat_a.assign(np.where(add != 0, big, -big))
        layer.w_hat_m.assign(big * np.sign(mul))
        layer.m_hat_m.assign(np.where(mul != 0, big, -big))
        layer.g.assign(big * np.asarray(gate, float))

    l1, l2, l3 = model.layers
    add1 = np.zeros((7, 3))
    add1[0, 0], add1[1, 0], add1[2, 1], add1[3, 1] = 1, -1, 1, -1   # x1 - x2, x3 - x4
    mul1 = np.zeros((7, 3))
    mul1[4, 2] = mul1[5, 2] = 1                                      # x5 * x6
    setup(l1, add1, mul1, [1, 1, -1])
    if perturb:  # tanh(Ŵ)·σ(20) = 1 − perturb (σ(20) is 1 in float32)
        value = l1.w_hat_m.numpy()
        value[4, 2] = np.arctanh(1.0 - perturb)
        l1.w_hat_m.assign(value)
    add2 = np.array([[0, 0], [0, 0], [0, 1.0]])                      # h3
    mul2 = np.array([[1.0, 0], [1.0, 0], [0, 0]])                    # h1 * h2
    setup(l2, add2, mul2, [-1, 1])
    setup(l3, np.ones((2, 1)), np.zeros((2, 1)), [1])                # z1 + z2
    return model


def test_success_criterion_on_hand_set_exact_and_perturbed_models():
    task = arithmetic_task(REPORT, 7, n=20000, seed=0)
    threshold = perturbed_threshold(task.expression, task.extrapolation[0])
    results = {}
    for name, perturb in [("exact", 0.0), ("perturbed", 1e-4)]:
        model = _exact_report_model(perturb)
        cb = InExtrapolationEvaluation(task.interpolation, task.extrapolation)
        cb.set_model(model)
        first = cb.evaluate()
        results[name] = first
        ok, index = succeeded([first["interpolation_mse"]], [first["extrapolation_mse"]],
                              threshold)
        assert index == 0
        assert ok == (name == "exact"), (name, first, threshold)
    assert results["exact"]["extrapolation_mse"] < threshold / 100
    assert results["perturbed"]["extrapolation_mse"] > threshold * 10
    exact = _exact_report_model()
    formula = explain(exact)[0]
    assert formula == REPORT
    assert formula_matches(formula, task.expression)
    # the perturbed model still reads as the task at explain's tolerance 0.1, which is
    # why the verdict is the MSE criterion, not the read-out
    assert explain(_exact_report_model(1e-4))[0] == REPORT


def _read(text, num_inputs=3):
    """The read-out of a formula, as explain builds it (the parser's tree, normalised)."""
    return Formula(formula_tree(parse_expression(text, num_inputs)))


@pytest.mark.parametrize("read, task, match", [
    ("x2 * x1 - x3", "x1 * x2 - x3", True),          # order of factors and terms
    ("-(x3 - x2 * x1)", "x1 * x2 - x3", True),       # sign normalised
    ("x1 + x1", "2 * x1", True),                      # like terms merged
    ("x1 * x1 / x1", "x1", True),                     # like factors merged
    ("(x1 - x2) * (x3 - x2)", "(x2 - x1) * (x2 - x3)", True),
    ("x1 * x2 + x3", "x1 * x2 - x3", False),
    ("x1 / x2", "x2 / x1", False),
    ("x1 * (x2 + x3)", "x1 * x2 + x1 * x3", False),   # not expanded: trees differ
])
def test_formula_matches_compares_normalised_trees(read, task, match):
    assert formula_matches(_read(read), parse_expression(task, 3)) is match
    # the same verdict as comparing the two normalised trees directly
    assert (formula_tree(parse_expression(read, 3)) == formula_tree(parse_expression(task, 3))) \
        is match


def test_formula_matches_rejects_undetermined_read_outs_and_text():
    undetermined = Formula(F.Undetermined(["inalu: W_A[0, 0] = 0.5"]))
    assert not undetermined.discrete
    assert not formula_matches(undetermined, parse_expression("x1"))
    assert not formula_matches(Formula(F.absolute(F.Var("x1", 0))), parse_expression("x1"))
    with pytest.raises(TypeError, match="Formula"):
        formula_matches("x1", parse_expression("x1"))
    with pytest.raises(TypeError, match="parse_expression"):
        formula_matches(_read("x1"), "x1")


def test_formula_tree_evaluates_like_the_expression():
    """The converted tree is the same function as the parsed expression (an independent check
    through the read-out's rendering, which is a Python expression)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 3.0, (16, 4))
    for text in [REPORT.replace("x5", "x1").replace("x6", "x2"), "x1 / (x2 - x3) + 2 * x4",
                 "-(x1 - 0.5 * x2) * x3 / x4"]:
        expr = parse_expression(text, 4)
        rendered = str(formula_tree(expr))
        names = {f"x{i + 1}": x[:, i] for i in range(4)}
        np.testing.assert_allclose(eval(rendered, {"abs": abs}, names), expr.evaluate(x),
                                   rtol=1e-12)

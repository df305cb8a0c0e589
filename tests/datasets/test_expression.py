"""The safe expression parser: accepted inputs evaluate like NumPy, rejected ones point
at the position of the problem."""
import numpy as np
import pytest

from tensorflow_kappa.datasets.expression import ExpressionError, parse_expression

RNG = np.random.default_rng(0)
X = RNG.uniform(-3.0, 3.0, (50, 7))
x1, x2, x3, x4, x5, x6, x7 = X.T

ACCEPTED = [
    ("(x1 - x2) * (x3 - x4) + x5 * x6", (x1 - x2) * (x3 - x4) + x5 * x6),
    ("x1 + x2 * x3", x1 + x2 * x3),  # precedence
    ("x1 - x2 - x3", (x1 - x2) - x3),  # left associativity
    ("x1 / x2 / x3", (x1 / x2) / x3),
    ("x1 - (x2 - x3)", x1 - (x2 - x3)),
    ("-x1 * -x2", (-x1) * (-x2)),
    ("+x1 - -2", x1 + 2),
    ("2.5e-1 * x7 + .5 - 3.", 0.25 * x7 + 0.5 - 3.0),
    ("  ((x1))\t*\nx1 ", x1 * x1),
    ("-(x1 + x2) / 4", -(x1 + x2) / 4),
    ("7", np.full(50, 7.0)),
]


@pytest.mark.parametrize("text, expected", ACCEPTED)
def test_accepted_expressions_evaluate_like_numpy(text, expected):
    e = parse_expression(text, num_inputs=7)
    np.testing.assert_allclose(e.evaluate(X), expected, rtol=1e-12)
    # the canonical text parses back to the same function
    again = parse_expression(str(e), num_inputs=7)
    np.testing.assert_allclose(again.evaluate(X), expected, rtol=1e-12)


def test_variables_leaves_and_inferred_inputs():
    e = parse_expression("(x1 - x2) * (x3 - x4) + x5 * x6")
    assert e.num_inputs == 6
    assert e.variables == (0, 1, 2, 3, 4, 5)
    assert e.num_leaves == 6
    assert parse_expression("x3 * x3", num_inputs=7).variables == (2,)
    assert parse_expression("x3 * x3", num_inputs=7).num_leaves == 2
    assert e.input_names == ("x1", "x2", "x3", "x4", "x5", "x6")


def test_leaf_hook_sees_every_occurrence_in_order():
    e = parse_expression("x2 * x1 + x2", num_inputs=2)
    seen = []

    def leaf(values, index, occurrence):
        seen.append((index, occurrence))
        return values[:, index] * 10.0 ** occurrence

    out = e.evaluate(np.array([[1.0, 2.0]]), leaf=leaf)
    assert seen == [(1, 0), (0, 1), (1, 2)]
    assert out.tolist() == [2.0 * 10.0 + 200.0]


REJECTED = [
    ("x1 + * x2", 5, "expected a number, a variable or '('"),
    ("(x1 + x2", 8, "expected ')'"),
    ("x1 + x2)", 7, "unmatched ')'"),
    ("x8 + x1", 0, "out of range"),
    ("y1", 0, "unknown name 'y1'"),
    ("x0", 0, "unknown name 'x0'"),
    ("x1 ** 2", 4, "expected a number"),
    ("x1 ^ 2", 3, "unexpected character '^'"),
    ("__import__('os')", 0, "unknown name"),
    ("x1 x2", 3, "expected an operator"),
    ("2x1", 1, "expected an operator"),
    ("", 0, "empty expression"),
    ("   ", 0, "empty expression"),
    ("x1 +", 4, "the end of the expression"),
    ("()", 1, "expected a number"),
]


@pytest.mark.parametrize("text, position, reason", REJECTED)
def test_rejected_expressions_point_at_the_problem(text, position, reason):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, num_inputs=7)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.position == position, str(err)
    assert reason in str(err)
    lines = str(err).splitlines()
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * position + "^"


def test_never_evaluates_python():
    # Text that would have side effects under eval is only ever a parse error.
    for text in ["open('/tmp/x', 'w')", "x1.real", "[x1]", "x1; x2", "lambda: 1"]:
        with pytest.raises(ExpressionError):
            parse_expression(text, num_inputs=2)


def test_bad_arguments():
    with pytest.raises(TypeError):
        parse_expression(3)
    with pytest.raises(ValueError):
        parse_expression("x1", num_inputs=0)
    e = parse_expression("x1 + x2", num_inputs=2)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        e.evaluate(np.ones((3, 3)))


# -- bounds: what a typo can ask for ------------------------------------------------
from tensorflow_kappa.datasets.expression import MAX_DEPTH, MAX_INPUTS, MAX_LENGTH  # noqa: E402


@pytest.mark.parametrize("text, position, reason", [
    ("x9999999999", 0, "at most 10000 inputs"),
    ("x1 + x" + "9" * 5000, 5, "at most 10000 inputs"),
    ("(" * 300 + "x1" + ")" * 300, MAX_DEPTH, "nests deeper than"),
    ("-" * 300 + "x1", MAX_DEPTH, "nests deeper than"),
    (" + ".join(["x1"] * 2000), 5 * MAX_DEPTH - 2, "a sum or product takes at most"),
    (" * ".join(["x1"] * 2000), 5 * MAX_DEPTH - 2, "a sum or product takes at most"),
    ("x1 + 1e999", 5, "too large for float64"),
    ("x1" * 6000, MAX_LENGTH, "characters long"),
])
def test_what_a_user_can_ask_for_is_bounded_with_an_error_at_the_position(text, position,
                                                                           reason):
    with pytest.raises(ExpressionError) as err:
        parse_expression(text)
    assert err.value.position == position and reason in err.value.reason
    assert "^" in str(err.value) and len(str(err.value)) < 500  # a long text is cut short


def test_the_bounds_themselves_are_accepted_and_evaluate():
    deep = "(" * (MAX_DEPTH - 1) + "x1" + ")" * (MAX_DEPTH - 1)
    assert parse_expression(deep).evaluate(np.array([[3.0]]))[0] == 3.0
    total = parse_expression(" + ".join(["x1"] * MAX_DEPTH))
    assert total.evaluate(np.array([[0.5]]))[0] == 0.5 * MAX_DEPTH
    assert str(total).count("+") == MAX_DEPTH - 1
    wide = parse_expression(f"x{MAX_INPUTS} - x1")
    assert wide.num_inputs == MAX_INPUTS and len(wide.input_names) == MAX_INPUTS
    with pytest.raises(ValueError, match="num_inputs"):
        parse_expression("x1", num_inputs=MAX_INPUTS + 1)

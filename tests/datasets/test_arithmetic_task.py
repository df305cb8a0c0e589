"""arithmetic_task: shapes, dtypes, ranges, targets against NumPy, determinism."""
import numpy as np
import pytest

from tensorflow_kappa.datasets import ArithmeticTask, arithmetic_task
from tensorflow_kappa.datasets.arithmetic import REPORT_EXPRESSION, check_range, sample_range
from tensorflow_kappa.datasets.expression import ExpressionError


def test_report_task_shapes_ranges_and_targets():
    task = arithmetic_task(REPORT_EXPRESSION, 7, n=5000, seed=1)
    assert isinstance(task, ArithmeticTask)
    assert task.input_names == ("x1", "x2", "x3", "x4", "x5", "x6", "x7")
    assert str(task.expression) == "(x1 - x2) * (x3 - x4) + x5 * x6"
    for (x, y), (low, high) in [(task.train, (-3, 3)), (task.interpolation, (-3, 3)),
                                (task.extrapolation, (10, 15))]:
        assert x.shape == (5000, 7) and y.shape == (5000, 1)
        assert x.dtype == np.float32 and y.dtype == np.float32
        assert x.min() >= low and x.max() <= high
        # uniform: every column fills its range (not, e.g., a constant)
        assert np.all(x.min(axis=0) < low + 0.01 * (high - low))
        assert np.all(x.max(axis=0) > high - 0.01 * (high - low))
        v = x.astype(np.float64)
        expected = (v[:, 0] - v[:, 1]) * (v[:, 2] - v[:, 3]) + v[:, 4] * v[:, 5]
        np.testing.assert_allclose(y[:, 0], expected.astype(np.float32), rtol=0, atol=0)
    # training and interpolation sets are independent draws of the same range
    assert not np.array_equal(task.train[0], task.interpolation[0])


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = arithmetic_task("x1 * x2", 2, n=100, seed=7)
    b = arithmetic_task("x1 * x2", 2, n=100, seed=7)
    c = arithmetic_task("x1 * x2", 2, n=100, seed=8)
    for part in ("train", "interpolation", "extrapolation"):
        for i in range(2):
            np.testing.assert_array_equal(getattr(a, part)[i], getattr(b, part)[i])
        assert not np.array_equal(getattr(a, part)[0], getattr(c, part)[0])


def test_union_of_ranges_is_sampled_uniformly_over_its_length():
    task = arithmetic_task("x1 - x2", 2, n=40000, train_range=(1, 2),
                           extrapolation_range=[(-5, -1), (1, 5)], seed=0)
    x = task.extrapolation[0]
    assert np.all((np.abs(x) >= 1) & (np.abs(x) <= 5))
    assert abs(np.mean(x < 0) - 0.5) < 0.01
    # unequal lengths: U(0, 1) ∪ U(2, 5) puts 3/4 of the mass in the second interval
    draws = sample_range(np.random.default_rng(0), [(0, 1), (2, 5)], (40000,))
    assert np.all(((draws >= 0) & (draws <= 1)) | ((draws >= 2) & (draws <= 5)))
    assert abs(np.mean(draws >= 2) - 0.75) < 0.01
    hist, _ = np.histogram(draws[draws >= 2], bins=6, range=(2, 5))
    assert hist.min() > 0.9 * hist.mean()


def test_distractor_inputs_and_division():
    task = arithmetic_task("x1 / x3", 4, n=200, train_range=(1, 2), seed=0)
    x, y = task.train
    assert x.shape == (200, 4)
    np.testing.assert_allclose(y[:, 0], x[:, 0].astype(np.float64) / x[:, 2], rtol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(expression="x1 +", num_inputs=2), "position 4"),
    (dict(expression="x3", num_inputs=2), "out of range"),
    (dict(expression="x1", num_inputs=1, n=0), "n must be"),
    (dict(expression="x1", num_inputs=1, train_range=(3, 1)), "low < high"),
    (dict(expression="x1", num_inputs=1, train_range="ab"), "pair"),
    (dict(expression="x1", num_inputs=1, extrapolation_range=[(1, 2), (3,)]), "pair"),
    (dict(expression="x1", num_inputs=1, extrapolation_range=(0, float("inf"))), "finite"),
])
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises((ValueError, ExpressionError), match=match):
        arithmetic_task(**kwargs)


def test_check_range_normalises():
    assert check_range((-3, 3)) == ((-3.0, 3.0),)
    assert check_range([(-5, -1), (1, 5)]) == ((-5.0, -1.0), (1.0, 5.0))
    assert check_range(np.array([0.1, 0.2])) == ((0.1, 0.2),)


@pytest.mark.parametrize("expression, num_inputs", [
    ("x1 / (x2 - x2)", 2),       # all NaN/Inf
    ("x1 * 1e30 * 1e30", 1),     # finite in float64, beyond float32
])
def test_targets_that_are_not_finite_are_an_error_naming_the_set(expression, num_inputs):
    with pytest.raises(ValueError, match="training targets that are not finite"):
        arithmetic_task(expression, num_inputs=num_inputs, n=16, seed=0)


def test_ranges_beyond_float32_and_bad_seeds_are_rejected_by_name():
    with pytest.raises(ValueError, match="train_range: the inputs are float32"):
        arithmetic_task("x1", num_inputs=1, n=4, train_range=(-1e300, 1e300))
    with pytest.raises(ValueError, match="extrapolation_range"):
        arithmetic_task("x1", num_inputs=1, n=4, extrapolation_range=[(0, 1), (1, 1e39)])
    with pytest.raises(ValueError, match=r"seed must be None or an integer in \[0"):
        arithmetic_task("x1", num_inputs=1, n=4, seed=-1)
    with pytest.raises(ExpressionError, match="too large for float64"):
        arithmetic_task("x1 + 1e999", num_inputs=1, n=4)
    # The largest float32 range is fine, and so are its values.
    x, y = arithmetic_task("x1", num_inputs=1, n=64, seed=0,
                           train_range=(-3.0e38, 3.0e38)).train
    assert np.isfinite(x).all() and np.isfinite(y).all()

"""An abrupt divergence never loses the run: the history comes back flagged, the
metrics of the diverged step are NaN where they cannot be computed, and the
model keeps the weights of its last finite step."""
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa.datasets import TeacherStudentDataset
from tensorflow_kappa.models import LinearBlockModel, stability

DATA = TeacherStudentDataset(64, 4, 2, seed=0)


def fresh_model():
    return LinearBlockModel(dataset=DATA, num_hidden=[], use_bias=False, seed=0)


def train(model, X, Y, **options):
    options = {"epochs": 3, "batch_size": 16, "shuffle": False, **options}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.train_instrumented(X, Y, **options)
    return history, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def poisoned(which):
    X, Y = DATA.X.copy(), DATA.Y.copy()
    if which == "nan_in_X":
        X[5, 1] = np.nan
    else:
        Y[3, 0] = np.inf
    return X, Y


@pytest.mark.parametrize("which", ["nan_in_X", "inf_in_Y"])
@pytest.mark.parametrize("precision", [None, "s16.8"])
def test_non_finite_data_returns_the_history_flagged_and_the_weights_kept(which, precision):
    model = fresh_model()
    X, Y = poisoned(which)
    reference = fresh_model()
    h_ref, _ = train(reference, DATA.X, DATA.Y, epochs=0, precision_dict=precision)
    start = reference.model.get_weights()  # after the initial rounding onto the grids
    history, messages = train(model, X, Y, precision_dict=precision)
    assert history.diverged and history.metadata["diverged_at_step"] == 0 and len(history) == 1
    assert history.finite[-1] == 0 and not np.isfinite(history.loss[-1])
    assert any("diverged" in m and "X or Y holds non-finite values" in m for m in messages)
    for got, want in zip(model.model.get_weights(), start):
        assert got.tobytes() == want.tobytes()
    if which == "nan_in_X":  # the Hessian of a NaN batch: NaN, not an eigvalsh error
        assert np.isnan(history.hessian_lambda_max[-1])
        assert np.isnan(history.stability_margin_lambda_raw[-1])


@pytest.mark.parametrize("precision", [None, "s16.8"])
def test_a_step_that_overflows_the_weights_stops_with_the_last_finite_weights(precision):
    """learning_rate=1e3: the weights grow by ~1e3 per step until they overflow; the
    history ends at that step and the model holds the weights of the step before,
    exactly what a run stopped one step earlier ends with."""
    options = dict(learning_rate=1e3, batch_size=64, epochs=40, precision_dict=precision)
    model = fresh_model()
    history, messages = train(model, DATA.X, DATA.Y, **options)
    if precision is not None:  # fixed point saturates instead of overflowing
        assert not history.diverged
        return
    k = history.metadata["diverged_at_step"]
    assert history.diverged and k == len(history) - 1 and k >= 1
    assert np.isnan(history.forward_gain_spectral[k]) or np.isinf(history.theta_norm[k])
    weights = model.model.get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    stopped_before = fresh_model()
    train(stopped_before, DATA.X, DATA.Y, **{**options, "epochs": k})  # one step per epoch
    for got, want in zip(weights, stopped_before.model.get_weights()):
        assert got.tobytes() == want.tobytes()
    assert np.float32(np.linalg.norm(weights[0])) == pytest.approx(history.theta_norm[k - 1],
                                                                   rel=1e-6)


def test_metrics_of_non_finite_matrices_are_nan_not_an_exception():
    for bad in (np.nan, np.inf):
        hessian = np.array([[2.0, 0.0], [0.0, bad]], np.float32)
        metrics = stability.stability_metrics_from_hessian(hessian, 0.1)
        assert all(np.isnan(float(v)) for v in metrics.values())
        assert np.isnan(stability.finite_eigvalsh(hessian).numpy()).all()
    # Finite input: the same eigenvalues as TensorFlow's own.
    matrix = tf.constant([[2.0, 1.0], [1.0, 3.0]])
    np.testing.assert_array_equal(stability.finite_eigvalsh(matrix).numpy(),
                                  tf.linalg.eigvalsh(matrix).numpy())

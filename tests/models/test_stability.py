"""tensorflow_kappa.models.stability against float64 NumPy (and tf.GradientTape for the Hessian)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa.models import stability


def test_flatten_tensors_matches_numpy_concatenate():
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal((2, 1, 3))]
    got = stability.flatten_tensors([tf.constant(p) for p in parts]).numpy()
    np.testing.assert_array_equal(got, np.concatenate([p.ravel() for p in parts]))


def test_flatten_tensors_fills_none_from_like_and_rejects_none_without():
    like = [tf.ones((2, 2)), tf.ones(3)]
    got = stability.flatten_tensors([None, tf.constant([1.0, 2.0, 3.0])], like=like).numpy()
    np.testing.assert_array_equal(got, [0, 0, 0, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="entry 0 is None"):
        stability.flatten_tensors([None, tf.ones(3)])


def test_half_mse_and_keras_mse_against_numpy():
    rng = np.random.default_rng(1)
    y, p = rng.standard_normal((7, 3)), rng.standard_normal((7, 3))
    half = 0.5 * np.mean(np.sum((p - y) ** 2, axis=1))
    np.testing.assert_allclose(stability.half_mse_batch_loss(y, p).numpy(), half, rtol=1e-12)
    keras_mse = keras.losses.MeanSquaredError()(y, p).numpy()
    np.testing.assert_allclose(stability.keras_mse_batch_loss(y, p).numpy(), keras_mse, rtol=1e-6)
    # The conventions differ by 2 / n_outputs.
    np.testing.assert_allclose(keras_mse, half * 2 / 3, rtol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 1e25, 1e-30])
def test_tensor_l2_norm_against_numpy_without_overflow(scale):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(100) * scale).astype(np.float32)
    expect = np.linalg.norm(x.astype(np.float64))
    np.testing.assert_allclose(stability.tensor_l2_norm(x).numpy(), expect, rtol=1e-5)
    with np.errstate(over="ignore"):  # the naive float32 norm overflows at 1e25
        naive = np.sqrt(np.sum(x * x, dtype=np.float32))
    assert np.isinf(naive) == (scale > 1e20)


def test_tensor_l2_norm_special_values():
    assert stability.tensor_l2_norm(np.zeros(4, np.float32)).numpy() == 0.0
    assert stability.tensor_l2_norm(np.zeros(0, np.float32)).numpy() == 0.0
    assert np.isnan(stability.tensor_l2_norm([1.0, np.nan, np.inf]).numpy())
    assert np.isposinf(stability.tensor_l2_norm([1.0, -np.inf]).numpy())


def test_safe_cosine_against_numpy_and_zero_vectors():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(50), rng.standard_normal(50)
    expect = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    np.testing.assert_allclose(stability.safe_cosine(a, b).numpy(), expect, rtol=1e-12)
    assert stability.safe_cosine(a, 3 * a).numpy() == pytest.approx(1.0)
    assert stability.safe_cosine(a, -a).numpy() == pytest.approx(-1.0)
    assert stability.safe_cosine(a, np.zeros(50)).numpy() == 0.0
    # The package's one convention (quantization.geometry): nothing vs nothing agrees.
    assert stability.safe_cosine(np.zeros(50), np.zeros(50)).numpy() == 1.0
    c = rng.standard_normal(50)   # times 1e200: the squares overflow float64 unless scaled
    np.testing.assert_allclose(stability.safe_cosine(c * 1e200, a).numpy(),
                               c @ a / (np.linalg.norm(c) * np.linalg.norm(a)), rtol=1e-12)


@pytest.mark.parametrize("loss_mode", ["half_mse", "keras_mse"])
def test_analytic_hessian_equals_jacobian_of_the_gradient(loss_mode):
    rng = np.random.default_rng(4)
    X = tf.constant(rng.standard_normal((11, 4)))
    Y = tf.constant(rng.standard_normal((11, 3)))
    W = tf.Variable(rng.standard_normal((4, 3)))
    loss_fn = stability.half_mse_batch_loss if loss_mode == "half_mse" else stability.keras_mse_batch_loss
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            loss = loss_fn(Y, X @ W)
        grad = inner.gradient(loss, W)
    jac = outer.jacobian(grad, W).numpy().reshape(12, 12)  # row-major flattening of W
    full = stability.analytic_single_dense_hessian(X, 3, loss_mode).numpy()
    np.testing.assert_allclose(full, jac, rtol=1e-12, atol=1e-12)
    block = stability.analytic_single_dense_hessian(X, 3, loss_mode, full=False).numpy()
    x = X.numpy()
    scale = 1.0 if loss_mode == "half_mse" else 2.0 / 3.0
    np.testing.assert_allclose(block, scale * x.T @ x / 11, rtol=1e-12)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(full)),
                               np.sort(np.repeat(np.linalg.eigvalsh(block), 3)), rtol=1e-10)


def test_analytic_hessian_rejects_unknown_loss_mode():
    with pytest.raises(ValueError, match="'mae'"):
        stability.analytic_single_dense_hessian(np.ones((2, 2)), 1, "mae")


def test_stability_metrics_against_numpy_eigenvalues():
    rng = np.random.default_rng(5)
    M = rng.standard_normal((6, 6))
    H = M @ M.T / 6
    lam = np.linalg.eigvalsh(H)
    eta, alpha = 0.7, 0.4
    got = {k: float(v) for k, v in
           stability.stability_metrics_from_hessian(H, eta, alpha).items()}
    assert got["hessian_lambda_max"] == pytest.approx(lam.max(), rel=1e-10)
    assert got["stability_margin_lambda_raw"] == pytest.approx(eta * lam.max(), rel=1e-10)
    assert got["stability_margin_lambda_ctrl"] == pytest.approx(alpha * eta * lam.max(), rel=1e-10)
    assert got["spectral_radius_raw"] == pytest.approx(np.abs(1 - eta * lam).max(), rel=1e-10)
    assert got["spectral_radius_ctrl"] == pytest.approx(
        np.abs(1 - alpha * eta * lam).max(), rel=1e-10)


@pytest.mark.parametrize("eta", [0.1, 0.9, 1.6, 2.5])
def test_heavy_ball_spectral_radius_matches_the_update_map(eta):
    rng = np.random.default_rng(6)
    M = rng.standard_normal((4, 4))
    H = M @ M.T / 4
    mu = 0.6
    # theta' = theta + mu (theta - theta_prev) - eta H theta, as a linear map on (theta, theta_prev).
    eye = np.eye(4)
    T = np.block([[(1 + mu) * eye - eta * H, -mu * eye], [eye, np.zeros((4, 4))]])
    expect = np.abs(np.linalg.eigvals(T)).max()
    got = stability.stability_metrics_from_hessian(H, eta, momentum=mu)["spectral_radius_raw"]
    assert float(got) == pytest.approx(expect, rel=1e-6)


def test_spectral_radius_crosses_one_exactly_where_eta_lambda_crosses_two():
    H = np.diag([3.0, 1.0, 0.25])
    below = stability.stability_metrics_from_hessian(H, 0.99 * 2 / 3)
    above = stability.stability_metrics_from_hessian(H, 1.01 * 2 / 3)
    assert float(below["stability_margin_lambda_raw"]) < 2 < float(above["stability_margin_lambda_raw"])
    assert float(below["spectral_radius_raw"]) < 1 < float(above["spectral_radius_raw"])

"""The momentum update rule: float against Keras's SGD(momentum), quantized against NumPy."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa.datasets import TeacherStudentDataset
from tensorflow_kappa.models import LinearBlockModel, TrainConfig
from tensorflow_kappa.models.instrumented import MOMENTUM_QUANT_METRICS, InstrumentedTrainer
from tensorflow_kappa.models.stability import half_mse_batch_loss
from references.fixed_point import assert_on_grid, quantize_reference


def test_float_momentum_is_keras_sgd_with_momentum():
    ds = TeacherStudentDataset(96, 4, 2, noise=0.1, seed=0)
    model = LinearBlockModel(dataset=ds, num_hidden=[6], activation="tanh", seed=1)
    variables = model.model.trainable_variables
    start = [v.numpy() for v in variables]
    h = model.train_instrumented(ds.X, ds.Y, epochs=3, batch_size=32, learning_rate=0.05,
                                 shuffle=False, update_rule="momentum", momentum=0.8)
    end = [v.numpy() for v in variables]
    for v, s in zip(variables, start):
        v.assign(s)
    opt = keras.optimizers.SGD(learning_rate=0.05, momentum=0.8)
    opt.build(variables)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = half_mse_batch_loss(yb, model.model(xb, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses = [float(step(ds.X[i:i + 32], ds.Y[i:i + 32])) for _ in range(3)
              for i in range(0, 96, 32)]
    np.testing.assert_allclose(h.loss, losses, rtol=1e-6)
    for v, e in zip(variables, end):
        np.testing.assert_allclose(v.numpy(), e, rtol=1e-6, atol=1e-7)
    assert np.all(h.update_cosine > 0.9999)


def test_quantized_momentum_step_by_step_against_numpy():
    ds = TeacherStudentDataset(32, 3, 2, noise=0.1, seed=2)
    model = LinearBlockModel(dataset=ds, num_hidden=[], use_bias=False, seed=2)
    eta, mu = 0.2, 0.9
    formats = {"weight": "s12.9", "update": "s10.7", "momentum": "s10.6"}
    trainer = InstrumentedTrainer(model, ds.X, ds.Y, TrainConfig(
        batch_size=32, learning_rate=eta, update_rule="momentum", momentum=mu,
        precision_dict={"*": formats}))
    trainer.initialize()
    assert set(MOMENTUM_QUANT_METRICS) <= set(trainer.metric_names)
    kernel = model.model.trainable_variables[0]
    x = ds.X.astype(np.float64)
    v = np.zeros((3, 2))
    for _ in range(8):
        W = kernel.numpy().astype(np.float64)
        row = dict(zip(trainer.metric_names, trainer.run(np.arange(32), 0, 1)[0]))
        g = x.T @ (x @ W - ds.Y) / 32
        u = v * mu - g * eta  # the new velocity, before rounding
        v = quantize_reference(u, "s10.6")  # stored velocity: the step the optimizer requests
        expect = quantize_reference(W + quantize_reference(v, "s10.7"), "s12.9")
        np.testing.assert_array_equal(kernel.numpy(), expect)
        velocity = trainer.optimizer.inner_optimizer.momentums[0].numpy()
        np.testing.assert_array_equal(velocity, v)
        assert_on_grid(velocity, "s10.6", "velocity")
        applied = expect - W
        assert row["raw_update_norm"] == pytest.approx(np.linalg.norm(v), rel=1e-5)
        assert row["actual_update_norm"] == pytest.approx(np.linalg.norm(applied), rel=1e-5)
        if np.linalg.norm(applied) > 0:
            cos = np.sum(v * applied) / (np.linalg.norm(v) * np.linalg.norm(applied))
            assert row["update_cosine"] == pytest.approx(cos, rel=1e-4)
        assert row["momentum_saturation_fraction_max"] == pytest.approx(
            np.mean((u > 511 / 64) | (u < -8)))
        assert row["momentum_underflow_fraction_max"] == pytest.approx(
            np.sum((u != 0) & (v == 0)) / np.sum(u != 0))


def test_momentum_stability_metrics_use_the_heavy_ball_map():
    ds = TeacherStudentDataset(64, 3, 1, noise=0.0, seed=4)
    model = LinearBlockModel(dataset=ds, num_hidden=[], use_bias=False, seed=4)
    X = ds.X.astype(np.float64)
    H = X.T @ X / 64
    lam = np.linalg.eigvalsh(H).max()
    mu = 0.5
    for factor, stable in ((0.95, True), (1.05, False)):
        eta = factor * 2 * (1 + mu) / lam  # heavy ball is stable while eta lambda < 2 (1 + mu)
        model.reinitialize_weights()
        with np.errstate(all="ignore"):
            h = model.train_instrumented(ds.X, ds.Y, epochs=150, batch_size=64, shuffle=False,
                                         learning_rate=eta, update_rule="momentum", momentum=mu)
        T = np.block([[(1 + mu) * np.eye(3) - eta * H, -mu * np.eye(3)],
                      [np.eye(3), np.zeros((3, 3))]])
        radius = np.abs(np.linalg.eigvals(T)).max()
        assert h.spectral_radius_raw[0] == pytest.approx(radius, rel=1e-4)
        assert (radius < 1) == stable
        assert (h.loss[-1] < 1e-3 * h.loss[0]) == stable
        assert (h.loss[-1] > h.loss[0]) == (not stable)

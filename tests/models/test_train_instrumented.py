"""train_instrumented: the float path, the controller, stability, divergence, quantization."""
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa.datasets import BaseDataset, TeacherStudentDataset
from tensorflow_kappa.models import FitHistory, LinearBlockModel, TrainConfig
from tensorflow_kappa.models import quantized_forward as qf
from tensorflow_kappa.quantization.variables import variable_layer_and_field
from tensorflow_kappa.models.instrumented import BASE_METRICS, QUANT_METRICS, InstrumentedTrainer
from references.fixed_point import assert_on_grid, quantize_reference


def _one_layer(n=64, d=4, m=2, noise=0.1, seed=0):
    ds = TeacherStudentDataset(n, d, m, noise=noise, seed=seed)
    # Stretch the input scales so the Hessian's eigenvalues are well separated.
    ds = BaseDataset(ds.X * np.array([2.0, 1.0, 0.7, 0.4])[:d], ds.Y)
    return ds, LinearBlockModel(dataset=ds, num_hidden=[], use_bias=False, seed=seed)


def _lambda_max(X):
    X = X.astype(np.float64)
    return np.linalg.eigvalsh(X.T @ X / len(X)).max()


# -- the float path: plain SGD, exactly ---------------------------------------------------------
@pytest.mark.parametrize("loss_mode", ["half_mse", "keras_mse"])
def test_float_path_is_exactly_a_hand_written_sgd_loop(loss_mode):
    ds = TeacherStudentDataset(100, 5, 3, noise=0.1, seed=0)
    model = LinearBlockModel(dataset=ds, num_hidden=[7], activation="tanh", seed=1)
    variables = model.model.trainable_variables
    start = [v.numpy() for v in variables]
    h = model.train_instrumented(ds.X, ds.Y, epochs=3, batch_size=32, learning_rate=0.1,
                                 shuffle=False, loss_mode=loss_mode)
    end = [v.numpy() for v in variables]

    def loss_fn(y, p):
        if loss_mode == "half_mse":
            return 0.5 * tf.reduce_mean(tf.reduce_sum(tf.square(p - y), axis=1))
        return tf.reduce_mean(tf.square(p - y))

    def sgd_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model.model(xb, training=True))
        for v, g in zip(variables, tape.gradient(loss, variables)):
            v.assign_sub(0.1 * g)
        return loss

    for step, atol in ((tf.function(sgd_step), 0.0), (sgd_step, 1e-6)):
        for v, s in zip(variables, start):
            v.assign(s)
        losses = [float(step(ds.X[i:i + 32], ds.Y[i:i + 32]))
                  for _ in range(3) for i in range(0, 100, 32)]  # last batch has 4 rows
        np.testing.assert_allclose(h.loss, losses, rtol=0, atol=atol)
        for v, e in zip(variables, end):
            np.testing.assert_allclose(v.numpy(), e, rtol=0, atol=atol)
    assert h.loss.shape == (12,) and h.epoch.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert np.all(h.update_cosine > 0.9999) and np.all(h.alpha == 1.0)


def test_shuffle_follows_numpy_permutations_seeded_by_the_model_seed():
    ds = TeacherStudentDataset(40, 3, 1, noise=0.1, seed=0)
    model = LinearBlockModel(dataset=ds, num_hidden=[], use_bias=False, seed=5)
    W0 = model.model.trainable_variables[0].numpy().astype(np.float64)
    h = model.train_instrumented(ds.X, ds.Y, epochs=2, batch_size=16, learning_rate=0.1)
    rng, W, losses = np.random.default_rng(5), W0, []
    for _ in range(2):
        perm = rng.permutation(40)
        for i in range(0, 40, 16):
            x, y = ds.X[perm[i:i + 16]].astype(np.float64), ds.Y[perm[i:i + 16]]
            r = x @ W - y
            losses.append(0.5 * np.mean(np.sum(r * r, axis=1)))
            W = W - 0.1 * x.T @ r / len(x)
    np.testing.assert_allclose(h.loss, losses, rtol=1e-5)


# -- every equation of the controller and the metric block, against float64 NumPy ------------
def _np_run(X, Y, W0, eta, steps, *, use_controller, rho=0.05, chi=1.5, eps=1e-12, A=None):
    X, Y, W = X.astype(np.float64), Y.astype(np.float64), W0.astype(np.float64)
    N = len(X)
    lam = np.linalg.eigvalsh(X.T @ X / N)
    rows, prev_g, prev_t, ema = [], None, None, 0.0
    for t in range(steps):
        r = X @ W - Y
        g = X.T @ r / N
        C = 0.0 if t == 0 else np.linalg.norm(g - prev_g) / (np.linalg.norm(W - prev_t) + eps)
        ema = (1 - rho) * ema + rho * C
        alpha_would = min(1.0, chi / (eta * (max(C, ema) + eps)))
        alpha = alpha_would if use_controller else 1.0
        prev_g, prev_t = g, W
        W = W - alpha * eta * g
        rows.append(dict(
            loss=0.5 * np.mean(np.sum(r * r, axis=1)), rmse=np.sqrt(np.mean(r * r)),
            grad_norm=np.linalg.norm(g), raw_update_norm=alpha * eta * np.linalg.norm(g),
            actual_update_norm=alpha * eta * np.linalg.norm(g),
            curvature_proxy=C, curvature_ema=ema, alpha_would=alpha_would, alpha=alpha,
            eta_eff=alpha * eta, theta_norm=np.linalg.norm(W),
            forward_gain_spectral=np.linalg.svd(W, compute_uv=False)[0],
            hessian_lambda_max=lam.max(), stability_margin_lambda_raw=eta * lam.max(),
            stability_margin_lambda_ctrl=alpha * eta * lam.max(),
            spectral_radius_raw=np.abs(1 - eta * lam).max(),
            spectral_radius_ctrl=np.abs(1 - alpha * eta * lam).max(),
            weight_error_fro=np.linalg.norm(W - A), update_cosine=1.0, update_radius_ratio=1.0,
        ))
    return {k: np.array([row[k] for row in rows]) for k in rows[0]}


@pytest.mark.parametrize("use_controller, eta_times_lambda, rho", [
    (False, 0.8, 0.05), (True, 2.5, 0.05), (True, 2.5, 0.4)])
def test_every_logged_metric_matches_a_float64_numpy_run(use_controller, eta_times_lambda, rho):
    ds, model = _one_layer()
    eta = eta_times_lambda / _lambda_max(ds.X)
    W0 = model.model.trainable_variables[0].numpy()
    A = np.linalg.lstsq(ds.X.astype(np.float64), ds.Y.astype(np.float64), rcond=None)[0]
    h = model.train_instrumented(ds.X, ds.Y, epochs=40, batch_size=64, learning_rate=eta,
                                 shuffle=False, use_controller=use_controller, reference_A=A,
                                 curvature_ema_rho=rho)
    expect = _np_run(ds.X, ds.Y, W0, eta, 40, use_controller=use_controller, A=A, rho=rho)
    assert set(BASE_METRICS) <= set(h.keys())
    for name, values in expect.items():
        np.testing.assert_allclose(h[name], values, rtol=2e-3, atol=1e-6, err_msg=name)
    if rho > 0.1:  # the control signal max(C, EMA) takes the EMA side at times
        assert np.any(expect["curvature_ema"] > expect["curvature_proxy"] * 1.01)
    if use_controller:
        assert h.alpha.min() < 0.7  # it intervened ...
        assert h.loss[-1] < 1.01 * expect["loss"][-1]  # ... and converged


# -- stability: eta * lambda_max crossing 2 -------------------------------------------------------
@pytest.mark.parametrize("factor", [0.98, 1.02])
def test_the_run_diverges_exactly_when_eta_lambda_max_crosses_two(factor):
    ds, model = _one_layer(noise=0.0)
    lam = _lambda_max(ds.X)
    h = model.train_instrumented(ds.X, ds.Y, epochs=300, batch_size=64,
                                 learning_rate=factor * 2 / lam, shuffle=False)
    margin, radius = h.stability_margin_lambda_raw, h.spectral_radius_raw
    np.testing.assert_allclose(margin, 2 * factor, rtol=1e-5)
    if factor < 1:
        assert np.all(radius < 1) and h.loss[-1] < 1e-3 * h.loss[0] and not h.diverged
    else:
        assert np.all(radius > 1) and h.loss[-1] > 1e3 * h.loss[0]
        # Late growth per step is the spectral radius squared (the top mode's |1 - eta lambda|^2).
        rate = np.exp(np.log(h.loss[-1] / h.loss[-51]) / 50)
        assert rate == pytest.approx(radius[-1] ** 2, rel=1e-3)


def test_a_diverged_run_stops_cleanly_and_keeps_its_flagged_history(tmp_path):
    ds, model = _one_layer(noise=0.0)
    eta = 4.0 / _lambda_max(ds.X)  # |1 - eta lambda| = 3: float32 overflows in ~80 steps
    with pytest.warns(RuntimeWarning, match="diverged"):
        h = model.train_instrumented(ds.X, ds.Y, epochs=500, batch_size=64, learning_rate=eta)
    assert h.diverged and h.metadata["diverged"]
    k = h.metadata["diverged_at_step"]
    assert len(h) == k + 1 < 500
    assert h.finite[-1] == 0 and np.all(h.finite[:-1] == 1)
    assert np.all(np.isfinite(h.loss[:-1])) and np.all(np.diff(np.log(h.loss[:-1])[-10:]) > 0)
    back = FitHistory.load(h.save(str(tmp_path / "div")))
    assert back.diverged and len(back) == len(h)


def test_the_controller_rescues_a_run_that_diverges_without_it():
    ds, model = _one_layer(noise=0.0)
    eta = 2.5 / _lambda_max(ds.X)
    with pytest.warns(RuntimeWarning):
        off = model.train_instrumented(ds.X, ds.Y, epochs=300, batch_size=64, learning_rate=eta,
                                       chi=1.5)
    model.reinitialize_weights()
    on = model.train_instrumented(ds.X, ds.Y, epochs=300, batch_size=64, learning_rate=eta,
                                  chi=1.5, use_controller=True)
    assert off.diverged and not on.diverged
    assert np.all(off.alpha == 1) and off.alpha_would[5:].max() < 1  # it would have intervened
    assert on.alpha.min() < 0.7 and on.loss[-1] < 1e-6 * on.loss[0]
    np.testing.assert_allclose(on.eta_eff, on.alpha * eta, rtol=1e-6)
    np.testing.assert_allclose(on.stability_margin_lambda_ctrl,
                               on.alpha * on.stability_margin_lambda_raw, rtol=1e-5)


# -- argument checks -------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(loss_mode="mse"), "loss_mode.*'mse'"),
    (dict(update_rule="adam"), "update_rule.*'adam'"),
    (dict(learning_rate=-1.0), "learning_rate"),
    (dict(batch_size=0), "batch_size"),
    (dict(curvature_ema_rho=1.5), "curvature_ema_rho"),
    (dict(reference_A=np.zeros((3, 3))), r"reference_A of shape \(3, 3\)"),
])
def test_bad_arguments_fail_before_training(kwargs, match):
    ds, model = _one_layer()
    before = model.model.trainable_variables[0].numpy()
    with pytest.raises(ValueError, match=match):
        model.train_instrumented(ds.X, ds.Y, epochs=1, **kwargs)
    with pytest.raises(ValueError, match="X has shape"):
        model.train_instrumented(ds.X[:, :3], ds.Y, epochs=1)
    np.testing.assert_array_equal(model.model.trainable_variables[0].numpy(), before)


def test_hessian_metrics_are_nan_where_no_analytic_hessian_exists():
    ds = TeacherStudentDataset(32, 3, 2, seed=0)
    model = LinearBlockModel(dataset=ds, num_hidden=[4], activation="relu", seed=0)
    h = model.train_instrumented(ds.X, ds.Y, epochs=1, batch_size=16)
    assert np.all(np.isnan(h.hessian_lambda_max)) and np.all(np.isnan(h.weight_error_fro))
    assert np.all(np.isfinite(h.forward_gain_spectral)) and not h.metadata["analytic_hessian"]


# -- compiled step ----------------------------------------------------------------------------
def test_one_trace_per_run_and_eager_gives_the_same_numbers():
    ds, model = _one_layer()
    W0 = model.model.trainable_variables[0].numpy()
    kw = dict(batch_size=16, learning_rate=0.1, use_controller=True,
              precision_dict={"*": {"weight": "s12.9", "update": "s12.11"}})
    trainer = InstrumentedTrainer(model, ds.X, ds.Y, TrainConfig(**kw))
    trainer.initialize()
    blocks = [trainer.run(np.random.default_rng(e).permutation(64), 0, 4) for e in range(3)]
    assert trainer._run.experimental_get_tracing_count() == 1
    model.model.trainable_variables[0].assign(W0)
    eager = InstrumentedTrainer(model, ds.X, ds.Y, TrainConfig(compiled=False, **kw))
    eager.initialize()
    for e in range(3):
        np.testing.assert_allclose(eager.run(np.random.default_rng(e).permutation(64), 0, 4),
                                   blocks[e], rtol=1e-5, atol=1e-6)


def test_verbose_shows_a_progress_bar(capsys):
    ds, model = _one_layer()
    model.verbose = True
    model.train_instrumented(ds.X, ds.Y, epochs=2, batch_size=8)
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "8/8" in out and "loss" in out


# -- the quantized path ------------------------------------------------------------------------
def test_storage_stays_on_its_grid_after_every_step(implementation):
    ds = TeacherStudentDataset(48, 3, 2, noise=0.1, seed=3)
    model = LinearBlockModel(dataset=ds, num_hidden=[4], activation="relu", use_batchnorm=True,
                             seed=3)
    formats = {"weight": "s8.5", "bias": "s6.3", "value": "s10.4"}
    p = {"*": {**formats, "update": "s12.9", "gradient": "s12.8", "activation": "s12.8"}}
    trainer = InstrumentedTrainer(model, ds.X, ds.Y, TrainConfig(batch_size=16, learning_rate=0.2,
                                                                 precision_dict=p))
    trainer.initialize()
    seen = set()
    for step in range(9):
        row = trainer.run(np.arange(48), step % 3, step % 3 + 1)
        assert row.shape == (1, len(trainer.metric_names))
        for v in model.model.trainable_variables:
            field = variable_layer_and_field(v)[1]
            assert_on_grid(v.numpy(), formats[field], f"{v.path} after step {step}")
            seen.add(field)
    assert seen == {"weight", "bias", "value"}


def test_quantized_update_geometry_against_numpy(implementation):
    ds, model = _one_layer(noise=0.1)
    eta = 0.3
    p = {"dense0": {"weight": "s12.9", "update": "s10.7"}}  # float forward and gradient
    trainer = InstrumentedTrainer(model, ds.X, ds.Y, TrainConfig(batch_size=64, learning_rate=eta,
                                                                 precision_dict=p))
    trainer.initialize()
    kernel = model.model.trainable_variables[0]
    for _ in range(5):
        before = kernel.numpy().astype(np.float64)
        row = dict(zip(trainer.metric_names, trainer.run(np.arange(64), 0, 1)[0]))
        after = kernel.numpy().astype(np.float64)
        x = ds.X.astype(np.float64)
        raw = -eta * x.T @ (x @ before - ds.Y) / 64
        applied = after - before
        np.testing.assert_array_equal(after, quantize_reference(before + quantize_reference(raw, "s10.7"),
                                                         "s12.9"))
        assert row["raw_update_norm"] == pytest.approx(np.linalg.norm(raw), rel=1e-5)
        assert row["actual_update_norm"] == pytest.approx(np.linalg.norm(applied), rel=1e-6)
        cos = np.sum(raw * applied) / (np.linalg.norm(raw) * np.linalg.norm(applied))
        assert row["update_cosine"] == pytest.approx(cos, rel=1e-5)
        assert row["update_angle_rad"] == pytest.approx(np.arccos(min(cos, 1.0)), abs=1e-3)
        assert row["update_radius_ratio"] == pytest.approx(
            np.linalg.norm(applied) / np.linalg.norm(raw), rel=1e-5)
        assert row["update_underflow_fraction_max"] == pytest.approx(
            np.mean(quantize_reference(raw, "s10.7") == 0), abs=1e-6)
    assert set(QUANT_METRICS) <= set(trainer.metric_names)


def test_gradient_rail_pressure_against_numpy():
    ds, model = _one_layer(noise=0.5)
    trainer = InstrumentedTrainer(model, ds.X, ds.Y, TrainConfig(
        batch_size=64, learning_rate=0.01, precision_dict={"dense0": {"gradient": "s4.3"}}))
    W = model.model.trainable_variables[0].numpy().astype(np.float64)
    row = dict(zip(trainer.metric_names, trainer.run(np.arange(64), 0, 1)[0]))
    x = ds.X.astype(np.float64)
    g = x.T @ (x @ W - ds.Y) / 64
    # s4.3: rails -1 and 0.875; near rail (0.9) beyond 0.875 - 0.09375 or below -1 + 0.09375.
    assert row["gradient_saturation_fraction_max"] == pytest.approx(
        np.mean((g > 0.875) | (g < -1.0)))
    assert row["gradient_near_rail_fraction_max"] == pytest.approx(
        np.mean((g >= 0.78125) | (g <= -0.90625)))
    assert row["grad_norm"] == pytest.approx(np.linalg.norm(quantize_reference(g, "s4.3")), rel=1e-5)


def test_silent_learning_death_is_visible_in_the_update_geometry():
    ds, model = _one_layer(noise=0.1)
    W0 = model.model.trainable_variables[0].numpy()
    h = model.train_instrumented(
        ds.X, ds.Y, epochs=5, batch_size=16, learning_rate=0.01,
        precision_dict={"*": {"weight": "s16.12", "update": "s8.3"}})  # lsb 1/8 >> eta * g
    # Everything looks healthy ...
    assert not h.diverged and np.all(h.finite == 1)
    assert np.all(h.stability_margin_lambda_raw < 0.2)
    assert np.all(h.weight_saturation_fraction_max == 0)
    assert np.all(h.raw_update_norm > 1e-3)
    # ... but nothing is learned, and the diagnostics say so.
    np.testing.assert_array_equal(model.model.trainable_variables[0].numpy(),
                                  quantize_reference(W0, "s16.12"))
    assert np.all(h.actual_update_norm == 0) and np.all(h.update_underflow_fraction_max == 1)
    assert np.all(h.update_cosine == 0) and np.all(h.update_radius_ratio == 0)
    np.testing.assert_allclose(h.update_angle_rad, np.pi / 2, rtol=1e-6)


def test_with_the_controller_on_one_frozen_step_locks_the_throttle_shut():
    """The spec's proxy C = ||dG|| / (||dtheta|| + eps) is ||dG|| / eps after a step
    that applied nothing, so alpha collapses and every later update underflows too:
    with quantized updates the controller turns one dead step into a dead run."""
    ds, model = _one_layer(noise=0.1)
    h = model.train_instrumented(
        ds.X, ds.Y, epochs=3, batch_size=16, learning_rate=0.05, use_controller=True,
        precision_dict={"*": {"weight": "s16.12", "update": "s8.4"}})
    frozen = np.flatnonzero(h.actual_update_norm == 0)
    assert frozen.size and frozen[0] < len(h) - 1
    after = slice(frozen[0] + 1, None)
    assert np.all(h.curvature_proxy[after] > 1e9) and np.all(h.alpha[after] < 1e-9)
    assert np.all(h.actual_update_norm[after] == 0)


def test_stochastic_rounding_runs_repeat_under_the_model_seed():
    ds = TeacherStudentDataset(64, 4, 2, noise=0.1, seed=0)
    p = {"*": "s12.8:stochastic", "input": {"value": "s8.4"}}

    def run(seed):
        model = LinearBlockModel(dataset=ds, num_hidden=[6], activation="relu", seed=seed)
        model.model.trainable_variables[0].assign(
            np.random.default_rng(0).uniform(-0.5, 0.5, (4, 6)).astype(np.float32))
        h = model.train_instrumented(ds.X, ds.Y, epochs=2, batch_size=16, learning_rate=0.05,
                                     shuffle=False, precision_dict=p)
        for v in model.model.trainable_variables:
            assert_on_grid(v.numpy(), "s12.8", v.path)
        return h.loss

    a, b = run(1), run(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(run(2), a)

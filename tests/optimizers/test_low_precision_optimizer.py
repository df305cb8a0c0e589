"""LowPrecisionOptimizer: float equivalence, grids, NumPy references, statistics, saving, distribution."""
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from references import optimizers as ref
from tensorflow_kappa.layers import Quantize
from tensorflow_kappa.optimizers import DEFAULT_STATE_FIELDS, LowPrecisionOptimizer
from tensorflow_kappa.quantization import FixedPoint, PrecisionDict, quantize_model

REPO = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(11)

#: Every optimizer Keras 3 ships that keeps its state per variable, in the forms
#: that change which writes happen.
KERAS_OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.1),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "sgd_nesterov": lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adam_amsgrad": lambda: keras.optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
    "rmsprop": lambda: keras.optimizers.RMSprop(0.01),
    "rmsprop_momentum": lambda: keras.optimizers.RMSprop(0.01, momentum=0.5),
    "rmsprop_centered_momentum": lambda: keras.optimizers.RMSprop(0.01, momentum=0.5,
                                                                  centered=True),
    "adagrad": lambda: keras.optimizers.Adagrad(0.1),
    "adadelta": lambda: keras.optimizers.Adadelta(1.0),
    "adamax": lambda: keras.optimizers.Adamax(0.01),
    "nadam": lambda: keras.optimizers.Nadam(0.01),
    "ftrl": lambda: keras.optimizers.Ftrl(0.1),
    "lion": lambda: keras.optimizers.Lion(0.001),
    "lamb": lambda: keras.optimizers.Lamb(0.01),
    "sgd_clipnorm_ema": lambda: keras.optimizers.SGD(0.1, momentum=0.5, clipnorm=0.5,
                                                     use_ema=True, ema_overwrite_frequency=3),
    "adam_accumulation": lambda: keras.optimizers.Adam(0.01, gradient_accumulation_steps=2),
}


def make_model(seed=0, constraint=None, batch_norm=True):
    keras.utils.set_random_seed(seed)
    layers = [
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(3, 3, activation="relu", name="conv", kernel_constraint=constraint),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(4, activation="tanh", name="dense"),
        keras.layers.Dense(2, name="out"),
    ]
    return keras.Sequential([l for l in layers if batch_norm or l.name != "bn"])


X = RNG.standard_normal((48, 6, 6, 1)).astype("float32")
Y = RNG.standard_normal((48, 2)).astype("float32")


def train_steps(model, optimizer, steps, batch=8):
    """Compile and take ``steps`` train_on_batch steps; the weights after each step."""
    model.compile(optimizer=optimizer, loss="mse")
    history = []
    for s in range(steps):
        i = (s * batch) % len(X)
        model.train_on_batch(X[i:i + batch], Y[i:i + batch])
        history.append([w.numpy().copy() for w in model.weights])
    return history


def on_grid(x, fmt):
    fmt = FixedPoint.coerce(fmt)
    scaled = np.asarray(x, np.float64) * 2.0 ** fmt.frac_bits
    return bool(np.all(scaled == np.round(scaled)) and np.all(x >= fmt.min_value)
                and np.all(x <= fmt.max_value))


# ----------------------------------------------------------------------------
# Float in, float out
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(KERAS_OPTIMIZERS))
def test_a_dict_that_quantizes_nothing_equals_the_wrapped_optimizer_step_for_step(name):
    plain = train_steps(make_model(), KERAS_OPTIMIZERS[name](), 6)
    # Fields the optimizer does not use (activation, error) change nothing either.
    precision = {"*": {"activation": "s8.4", "error": "s8.4"}}
    wrapped = train_steps(make_model(), LowPrecisionOptimizer(KERAS_OPTIMIZERS[name](), precision),
                          6)
    for step, (a, b) in enumerate(zip(plain, wrapped)):
        for wa, wb in zip(a, b):
            np.testing.assert_array_equal(wa, wb, err_msg=f"{name}, step {step}")


# ----------------------------------------------------------------------------
# Every stored value on its grid, after every step
# ----------------------------------------------------------------------------
GRID_PRECISION = {
    "*": {"weight": "s16.12", "bias": "s12.10", "value": "s16.12", "gradient": "s16.14",
          "update": "s16.14", "momentum": "s16.13", "second_moment": "u16.16"},
    "out": {"weight": "s16.12:stochastic", "bias": "s12.10:stochastic",
            "momentum": "s16.13:stochastic", "second_moment": "u16.16:stochastic"},
}


# (Centered RMSprop is left out: with its mean square rounded, v - mean(g)**2 can go
# negative and the step NaN, which the wrapper faithfully stores.)
@pytest.mark.parametrize("name", ["sgd_momentum", "adam", "rmsprop_momentum",
                                  "adamw", "sgd_clipnorm_ema", "adam_accumulation", "lion"])
def test_every_stored_variable_and_state_is_on_its_grid_after_every_step(name):
    model = make_model(constraint=keras.constraints.MaxNorm(0.5))
    # A layer's own entry may set only state the optimizer keeps (SGD and Lion keep
    # no second moment): "*" holds the defaults of every kind.
    precision = {**GRID_PRECISION, "out": {
        field: fmt for field, fmt in GRID_PRECISION["out"].items()
        if field != "second_moment" or name not in ("sgd_momentum", "sgd_clipnorm_ema", "lion")}}
    optimizer = LowPrecisionOptimizer(KERAS_OPTIMIZERS[name](), precision, seed=3)
    precision = optimizer.precision
    model.compile(optimizer=optimizer, loss="mse")
    optimizer.build(model.trainable_variables)
    fields = {"kernel": "weight", "bias": "bias", "gamma": "value", "beta": "value"}
    assert _states(model, optimizer) or name == "sgd"
    for step in range(5):
        if step:
            i = step * 8
            model.train_on_batch(X[i:i + 8], Y[i:i + 8])
        for v in model.trainable_variables:
            layer, kind = v.path.split("/")[-2:]
            fmt = precision.format(layer, fields[kind])
            assert on_grid(v.numpy(), fmt), (step, v.path)
        for v, state, field in _states(model, optimizer):
            fmt = precision.format(v.path.split("/")[-2], field)
            assert on_grid(state.numpy(), fmt), (state.name, step)


def _states(model, optimizer):
    """(model variable, state variable, field) for the quantized state of the optimizer,
    found by Keras' documented state names ``<variable path>_<state name>``."""
    found = []
    for v in model.trainable_variables:
        prefix = v.path.replace("/", "_") + "_"
        for state in optimizer.inner_optimizer.variables:
            name = state.name[len(prefix):] if state.name.startswith(prefix) else None
            if DEFAULT_STATE_FIELDS.get(name) is not None:
                found.append((v, state, DEFAULT_STATE_FIELDS[name]))
    return found


def test_storage_formats_are_applied_when_the_optimizer_is_built():
    model = make_model()
    optimizer = LowPrecisionOptimizer(keras.optimizers.SGD(0.1), {"dense": {"weight": "s8.4"}})
    assert not on_grid(model.get_layer("dense").kernel.numpy(), "s8.4")
    optimizer.build(model.trainable_variables)
    assert on_grid(model.get_layer("dense").kernel.numpy(), "s8.4")


# ----------------------------------------------------------------------------
# Against NumPy: gradient and state quantization
# ----------------------------------------------------------------------------
def _direct(optimizer_factory, formats, steps=6, shape=(5, 4)):
    """Apply known gradients to one Dense kernel with and without the reference."""
    layer = keras.layers.Dense(shape[1], use_bias=False, name="dense")
    layer.build((None, shape[0]))
    layer.kernel.assign(RNG.uniform(-1, 1, shape).astype("float32"))
    precision = {"dense": {k if k != "storage" else "weight": v for k, v in formats.items()}}
    optimizer = LowPrecisionOptimizer(optimizer_factory(), precision)
    optimizer.build([layer.kernel])
    grads = [(RNG.standard_normal(shape) * 0.3).astype("float32") for _ in range(steps)]
    weights = [layer.kernel.numpy()]
    for g in grads:
        optimizer.apply([tf.constant(g)], [layer.kernel])
        weights.append(layer.kernel.numpy())
    return optimizer, grads, weights


def _assert_close_on_grid(got, want, fmt, context):
    lsb = FixedPoint.coerce(fmt).lsb
    np.testing.assert_allclose(got, want, rtol=0, atol=1.01 * lsb, err_msg=context)
    assert np.mean(got == want) >= 0.95, context  # float32 op-order ulps may flip a rounding


FORMATS = {"gradient": FixedPoint.parse("s12.8"), "momentum": FixedPoint.parse("s16.12"),
           "update": FixedPoint.parse("s16.11"), "storage": FixedPoint.parse("s16.10"),
           "second_moment": FixedPoint.parse("u16.14")}


@pytest.mark.parametrize("fields", [("gradient",), ("momentum",), ("update", "storage"),
                                    ("gradient", "momentum", "update", "storage")])
def test_sgd_momentum_matches_numpy(implementation, fields):
    formats = {f: FORMATS[f] for f in fields}
    optimizer, grads, weights = _direct(lambda: keras.optimizers.SGD(0.05, momentum=0.9),
                                        formats)
    w, m = weights[0], np.zeros_like(weights[0])
    for step, g in enumerate(grads):
        w, m = ref.sgd_momentum_step(w, m, g, 0.05, 0.9, formats)
        fmt = formats.get("storage") or formats.get("momentum") or formats["gradient"]
        _assert_close_on_grid(weights[step + 1], w, fmt, f"step {step}")
    state = optimizer.inner_optimizer.momentums[0].numpy()
    if "momentum" in formats:
        assert on_grid(state, formats["momentum"])
        _assert_close_on_grid(state, m, formats["momentum"], "momentum state")


@pytest.mark.parametrize("fields", [("gradient",), ("momentum", "second_moment"),
                                    ("gradient", "momentum", "second_moment", "storage")])
def test_adam_matches_numpy(implementation, fields):
    formats = {f: FORMATS[f] for f in fields}
    optimizer, grads, weights = _direct(lambda: keras.optimizers.Adam(0.01), formats)
    w = weights[0]
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads):
        w, m, v = ref.adam_step(w, m, v, g, 0.01, t, formats)
        if "storage" in formats:
            _assert_close_on_grid(weights[t + 1], w, formats["storage"], f"step {t}")
        else:
            np.testing.assert_allclose(weights[t + 1], w, rtol=1e-5, atol=1e-6)
    inner = optimizer.inner_optimizer
    if "momentum" in formats:
        _assert_close_on_grid(inner._momentums[0].numpy(), m, formats["momentum"], "m")
        _assert_close_on_grid(inner._velocities[0].numpy(), v, formats["second_moment"], "v")


def test_stochastic_gradient_rounding_is_unbiased_and_reproducible_from_the_seed():
    def run(seed):
        layer = keras.layers.Dense(512, use_bias=False, name="dense")
        layer.build((None, 8))
        layer.kernel.assign(np.zeros((8, 512), "float32"))
        optimizer = LowPrecisionOptimizer(keras.optimizers.SGD(1.0),
                                        {"dense": {"gradient": "s8.4:stochastic"}}, seed=seed)
        optimizer.build([layer.kernel])
        steps = []
        for _ in range(3):
            optimizer.apply([tf.fill([8, 512], 0.3)], [layer.kernel])
            steps.append(layer.kernel.numpy().copy())
        return np.diff(np.stack([np.zeros((8, 512), "float32")] + steps), axis=0)

    a, b, c = run(7), run(7), run(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a[0], a[1])  # fresh per step
    assert set(np.unique(a)) <= {-0.25, -0.3125}
    assert abs(a.mean() + 0.3) < 0.005


# ----------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------
def test_statistics_match_numpy_per_layer():
    update, storage = FixedPoint.parse("s16.9"), FixedPoint.parse("s12.6")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="dense")])
    model.get_layer("dense").bias.assign(np.full(4, 31.9, "float32"))   # near s12.6's rail
    optimizer = LowPrecisionOptimizer(keras.optimizers.SGD(0.01),
                                    {"dense": {"update": update, "weight": storage,
                                               "bias": storage}})
    optimizer.build(model.trainable_variables)
    old = [v.numpy().copy() for v in model.trainable_variables]
    grads = [(RNG.standard_normal(v.shape) * np.where(RNG.random(v.shape) < 0.5, 0.1, 3))
             .astype("float32") for v in model.trainable_variables]
    grads[1] = np.full(4, -50.0, "float32")  # pushes the bias beyond the rail
    optimizer.apply([tf.constant(g) for g in grads], model.trainable_variables)
    stats = {k: float(v) for k, v in optimizer.statistics().items()}
    raw = [-0.01 * g for g in grads]
    new = [v.numpy() for v in model.trainable_variables]
    d = [n.astype(np.float64) - o for n, o in zip(new, old)]
    requested = np.sqrt(sum(np.sum(r.astype(np.float64) ** 2) for r in raw))
    applied = np.sqrt(sum(np.sum(x ** 2) for x in d))
    cosine = sum(np.sum(r * x) for r, x in zip(raw, d)) / (requested * applied)
    added = [ref.q(r, update) for r in raw]
    underflow = sum(np.sum((r != 0) & (a == 0)) for r, a in zip(raw, added)) / 24
    saturated = sum(np.sum(np.abs(o + a) > storage.max_value) for o, a in zip(old, added)) / 24
    assert stats["update_norm/dense/requested"] == pytest.approx(requested, rel=1e-5)
    assert stats["update_norm/dense/applied"] == pytest.approx(applied, rel=1e-5)
    assert stats["cosine/dense/update"] == pytest.approx(cosine, rel=1e-5)
    assert stats["underflow/dense/update_format"] == pytest.approx(underflow, abs=1e-6)
    assert stats["saturation/dense/storage"] == pytest.approx(saturated, abs=1e-6)
    assert 0 < underflow < 1 and saturated == pytest.approx(4 / 24)


def test_apply_and_record_columns_match_numpy_per_variable():
    """Every column of a recorded step against NumPy: a quantized layer (update,
    storage, gradient and momentum formats) beside a float one."""
    update, storage, grad_fmt, mom = (FixedPoint.parse(f) for f in
                                      ("s10.7", "s8.5", "s6.4", "s6.5"))
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="q"),
                              keras.layers.Dense(3, name="f")])
    precision = {"q": {"update": update, "weight": storage, "bias": storage,
                       "gradient": grad_fmt, "momentum": mom}}
    lr, mu = 0.3, 0.9
    opt = LowPrecisionOptimizer(keras.optimizers.SGD(lr, momentum=mu), precision, seed=1)
    variables = model.trainable_variables
    opt.build(variables)
    velocity = [np.zeros(v.shape, np.float32) for v in variables]
    f32 = np.float32
    for step in range(3):
        old = [v.numpy().astype(np.float64) for v in variables]
        grads = [(RNG.standard_normal(v.shape) * 1.5).astype("float32") for v in variables]
        record = opt.apply_and_record([tf.constant(g) for g in grads], variables)
        stats = {k: v.numpy() for k, v in record.statistics.items()}
        for i, (v, g) in enumerate(zip(variables, grads)):
            new = v.numpy().astype(np.float64)
            if i < 2:   # the quantized layer: the step is the stored (rounded) velocity
                q_g = ref.q(g, grad_fmt)
                u = velocity[i] * f32(mu) - q_g * f32(lr)   # Keras' float32 order
                velocity[i] = ref.q(u, mom)
                step_ = velocity[i].astype(np.float64)
                added = ref.q(step_, update)
                assert stats["update_underflow"][i] == pytest.approx(
                    np.sum((step_ != 0) & (added == 0)) / np.sum(step_ != 0), abs=1e-6)
                assert stats["update_saturation"][i] == pytest.approx(
                    np.mean((step_ > update.max_value) | (step_ < update.min_value)), abs=1e-6)
                assert stats["gradient_saturation"][i] == pytest.approx(
                    np.mean((g > grad_fmt.max_value) | (g < grad_fmt.min_value)), abs=1e-6)
                assert stats["momentum_saturation"][i] == pytest.approx(
                    np.mean((u > mom.max_value) | (u < mom.min_value)), abs=1e-6)
                assert stats["momentum_underflow"][i] == pytest.approx(
                    np.sum((u != 0) & (velocity[i] == 0)) / max(np.sum(u != 0), 1), abs=1e-6)
                nonzero = step_ != 0
                assert stats["lost"][i] == pytest.approx(
                    np.sum(nonzero & (new == old[i])) / max(np.sum(nonzero), 1), abs=1e-6)
                np.testing.assert_array_equal(new, ref.q(old[i] + added, storage))
            else:       # the float layer: only the geometry is measured
                velocity[i] = velocity[i] * f32(mu) - g * f32(lr)
                step_ = velocity[i].astype(np.float64)
                for column in ("update_underflow", "lost", "gradient_saturation",
                               "momentum_saturation", "weight_near_rail"):
                    assert np.isnan(stats[column][i]), column
            applied = new - old[i]
            np.testing.assert_allclose(record.steps[i].numpy(), step_, rtol=1e-6, atol=1e-12)
            assert stats["requested_sq"][i] == pytest.approx(np.sum(step_ ** 2), rel=1e-5)
            assert stats["applied_sq"][i] == pytest.approx(np.sum(applied ** 2), rel=1e-5)
            assert stats["dot"][i] == pytest.approx(np.sum(step_ * applied), rel=1e-5, abs=1e-9)
    assert 0 < stats["update_saturation"][0] or 0 < stats["gradient_saturation"][0]


def test_a_record_measures_only_the_columns_asked_for_and_takes_rounded_gradients():
    fmt = FixedPoint.parse("s8.3:stochastic")
    v = tf.Variable(np.zeros(6, "float32"), name="dense/kernel")
    opt = LowPrecisionOptimizer(keras.optimizers.SGD(1.0), {"dense": {"gradient": fmt,
                                                                      "weight": "s8.4"}}, seed=3)
    opt.build([v])
    g = tf.constant(RNG.standard_normal(6).astype("float32"))
    rounded = opt.quantize_gradients([g], [v])
    record = opt.apply_and_record([g], [v], columns=("gradient_saturation",),
                                  rounded_gradients=rounded)
    assert set(record.statistics) == {"gradient_saturation"}
    np.testing.assert_array_equal(v.numpy(), ref.q(-rounded[0].numpy(), FixedPoint(8, 4)))
    np.testing.assert_array_equal(record.steps[0].numpy(), -rounded[0].numpy())


def test_quantize_gradients_gives_what_apply_feeds_the_wrapped_optimizer():
    fmt = FixedPoint.parse("s8.5:stochastic")
    v = tf.Variable(np.zeros((3, 4), "float32"), name="dense/kernel")
    opt = LowPrecisionOptimizer(keras.optimizers.SGD(1.0), {"dense": {"gradient": fmt}}, seed=7)
    opt.build([v])
    g = tf.constant(RNG.standard_normal((3, 4)).astype("float32"))
    for _ in range(3):
        before = v.numpy()
        (q,) = opt.quantize_gradients([g], [v])
        assert on_grid(q.numpy(), fmt)
        opt.apply([g], [v])
        np.testing.assert_array_equal(v.numpy(), before - q.numpy())
    with pytest.raises(ValueError, match="build"):
        LowPrecisionOptimizer(keras.optimizers.SGD()).quantize_gradients([g], [v])


def test_monitored_statistics_report_the_update_format_and_state_per_layer():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    opt = LowPrecisionOptimizer(keras.optimizers.Adam(0.5), {
        "d": {"update": "s4.3", "momentum": "s4.4", "second_moment": "u8.8"}})
    opt.build(model.trainable_variables)
    grads = [tf.constant((RNG.standard_normal(v.shape) * 3).astype("float32"))
             for v in model.trainable_variables]
    per_variable = {k: v.numpy() for k, v in
                    opt.apply_and_record(grads, model.trainable_variables).statistics.items()}
    from tensorflow_kappa.quantization.recording import recording
    with recording():
        opt.apply(grads, model.trainable_variables)
    stats = {k: float(v) for k, v in opt.statistics(monitored=True).items()}
    for key in ("saturation/d/update_format", "saturation/d/momentum",
                "underflow/d/momentum", "saturation/d/second_moment",
                "underflow/d/second_moment"):
        assert key in stats, key
    assert "saturation/d/gradient" not in stats   # no gradient format: not reported
    # Adam's second moment g^2 (1 - beta_2) underflows u8.8 for small gradients.
    assert per_variable["second_moment_underflow"].max() > 0
    assert stats["saturation/d/momentum"] == pytest.approx(
        np.average(opt_column(opt, "momentum_saturation"), weights=[12, 3]), abs=1e-6)


def opt_column(opt, column):
    from tensorflow_kappa.optimizers.statistics import MONITOR_STATS
    return [v.numpy()[MONITOR_STATS.index(column)] for v in opt._monitor_stats]


def test_statistics_of_an_unbuilt_optimizer_are_a_clear_error():
    with pytest.raises(ValueError, match="not built"):
        LowPrecisionOptimizer(keras.optimizers.SGD()).statistics()


# ----------------------------------------------------------------------------
# Arguments, state names, serialization
# ----------------------------------------------------------------------------
def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="optimizer"):
        LowPrecisionOptimizer("sgd")
    with pytest.raises(ValueError, match="optimizer"):
        LowPrecisionOptimizer(LowPrecisionOptimizer(keras.optimizers.SGD()))
    built = keras.optimizers.SGD()
    built.build([keras.Variable(np.zeros(2, "float32"))])
    with pytest.raises(ValueError, match="already built"):
        LowPrecisionOptimizer(built)
    with pytest.raises(ValueError, match="seed"):
        LowPrecisionOptimizer(keras.optimizers.SGD(), seed=-3)
    with pytest.raises(ValueError, match="state_fields"):
        LowPrecisionOptimizer(keras.optimizers.SGD(), state_fields={"trace": "velocity"})
    with pytest.raises(ValueError, match="clipnorm"):
        LowPrecisionOptimizer(keras.optimizers.SGD(), clipnorm=1.0)
    with pytest.raises(ValueError, match="Unknown precision field"):
        LowPrecisionOptimizer(keras.optimizers.SGD(), {"dense": {"momentun": "s8.4"}})
    with pytest.raises(ValueError, match="no layer"):
        LowPrecisionOptimizer(keras.optimizers.SGD()).build([tf.Variable([1.0], name="v")])


class TracingSGD(keras.optimizers.Optimizer):
    """A user's optimizer with a state name Keras does not use."""

    def build(self, variables):
        super().build(variables)
        self.traces = self.add_optimizer_variables(variables, "trace")

    def update_step(self, gradient, variable, learning_rate):
        trace = self.traces[self._get_variable_index(variable)]
        self.assign(trace, trace * 0.5 + gradient)
        self.assign_sub(variable, trace * learning_rate)


def test_state_names_it_cannot_place_are_a_clear_error_unless_mapped():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    precision = {"dense": {"momentum": "s8.6", "weight": "s8.6"}}
    with pytest.raises(ValueError, match="'trace'.*state_fields"):
        LowPrecisionOptimizer(TracingSGD(0.1), precision).build(model.trainable_variables)
    optimizer = LowPrecisionOptimizer(TracingSGD(0.1), precision, state_fields={"trace": "momentum"})
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0, epochs=2)
    assert all(on_grid(t.numpy(), "s8.6") for t in optimizer.inner_optimizer.traces)
    assert optimizer.get_config()["state_fields"] == {"trace": "momentum"}
    # Without formats for state, an unknown state name is simply left in float.
    LowPrecisionOptimizer(TracingSGD(0.1), {"dense": {"weight": "s8.6"}}).build(
        model.trainable_variables)


def test_default_state_fields_cover_every_per_variable_state_of_keras_optimizers():
    for name, factory in KERAS_OPTIMIZERS.items():
        model = make_model()
        optimizer = LowPrecisionOptimizer(factory(), {"*": {"momentum": "s16.10",
                                                          "second_moment": "u16.16"}})
        optimizer.build(model.trainable_variables)   # raises for an unplaced state name
    assert set(DEFAULT_STATE_FIELDS.values()) == {"momentum", "second_moment", None}


def test_config_round_trips():
    optimizer = LowPrecisionOptimizer(keras.optimizers.Adam(0.003, beta_1=0.8),
                                    {"*": {"weight": "s16.12:stochastic"}}, seed=42, name="fpo")
    config = optimizer.get_config()
    json.dumps(config)
    clone = LowPrecisionOptimizer.from_config(config)
    assert clone.seed == 42 and clone.name == "fpo"
    assert clone.precision == PrecisionDict({"*": {"weight": "s16.12:stochastic"}})
    assert isinstance(clone.inner_optimizer, keras.optimizers.Adam)
    assert clone.inner_optimizer.beta_1 == 0.8
    assert float(clone.learning_rate.numpy()) == pytest.approx(0.003)
    revived = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(revived) is LowPrecisionOptimizer and revived.get_config() == config


# ----------------------------------------------------------------------------
# Saving with the model, loading in a fresh process
# ----------------------------------------------------------------------------
SAVE_PRECISION = {
    "*": {"weight": "s16.11:stochastic", "bias": "s16.11", "value": "s16.11",
          "activation": "s16.10:stochastic", "error": "s16.13", "gradient": "s16.12",
          "momentum": "s16.13", "second_moment": "u16.16"},
    "input": {"value": "s16.12"},
}


def _quantized_cnn():
    return quantize_model(make_model(), SAVE_PRECISION)


def test_a_model_with_quantize_layers_and_the_optimizer_saves_and_continues_in_a_fresh_process(
        tmp_path):
    model = _quantized_cnn()
    model.compile(optimizer=LowPrecisionOptimizer(keras.optimizers.Adam(0.01), SAVE_PRECISION,
                                                seed=5), loss="mse")
    model.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    model.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)   # continue here ...
    code = textwrap.dedent(f"""
        import json, numpy as np, keras, tensorflow_kappa as tk
        tk.register_all()
        folder = {str(tmp_path)!r}
        model = keras.models.load_model(folder + "/model.keras")
        opt = model.optimizer
        info = dict(optimizer=type(opt).__name__, inner=type(opt.inner_optimizer).__name__,
                    precision=opt.precision.to_dict(), seed=opt.seed,
                    iterations=int(opt.iterations.numpy()),
                    quantize=[l.name for l in model.layers if type(l).__name__ == "Quantize"])
        model.fit(np.load(folder + "/x.npy"), np.load(folder + "/y.npy"), batch_size=8,
                  epochs=1, shuffle=False, verbose=0)              # ... and there
        np.savez(folder + "/continued.npz", *[w.numpy() for w in model.weights])
        print(json.dumps(info))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["optimizer"] == "LowPrecisionOptimizer" and info["inner"] == "Adam"
    assert PrecisionDict(info["precision"]) == PrecisionDict(SAVE_PRECISION)
    assert info["seed"] == 5 and info["iterations"] == 6
    assert "conv_quantize" in info["quantize"] and "input_quantize" in info["quantize"]
    with np.load(tmp_path / "continued.npz") as continued:
        for i, w in enumerate(model.weights):
            np.testing.assert_array_equal(continued[f"arr_{i}"], w.numpy(), err_msg=w.path)


# ----------------------------------------------------------------------------
# tf.distribute
# ----------------------------------------------------------------------------
DISTRIBUTED_PRECISION = {
    "*": {"weight": "s16.12:stochastic", "bias": "s16.12", "value": "s16.12",
          "activation": "s16.10", "error": "s16.13", "gradient": "s16.12",
          "momentum": "s16.13:stochastic"},
}


def _distributed_run(strategy):
    with strategy.scope():
        # No BatchNormalization: each replica would normalise its own half batch.
        model = quantize_model(make_model(batch_norm=False), DISTRIBUTED_PRECISION)
        model.compile(optimizer=LowPrecisionOptimizer(keras.optimizers.SGD(0.05, momentum=0.9),
                                                    DISTRIBUTED_PRECISION, seed=1), loss="mse")
    from tensorflow_kappa.callbacks import QuantizationMonitor
    monitor = QuantizationMonitor(every=2)
    model.fit(X[:32], Y[:32], batch_size=16, epochs=3, shuffle=False, verbose=0,
              callbacks=[monitor])
    return model, monitor


def test_mirrored_strategy_equals_one_device(mirrored_strategy):
    one, one_monitor = _distributed_run(tf.distribute.get_strategy())
    two, two_monitor = _distributed_run(mirrored_strategy)
    for a, b in zip(one.trainable_variables, two.trainable_variables):
        layer, name = a.path.split("/")[-2:]
        field = {"kernel": "weight", "bias": "bias"}.get(name, "value")
        fmt = PrecisionDict(DISTRIBUTED_PRECISION).format(layer, field)
        assert on_grid(b.numpy(), fmt)
        # The all-reduced gradient differs from the one-device one in float32
        # rounding only; a rounding may flip by one grid step.
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=2.01 * fmt.lsb,
                                   err_msg=a.path)
        assert np.mean(a.numpy() == b.numpy()) > 0.9, a.path
    assert one_monitor.records.keys() == two_monitor.records.keys()
    for key, values in one_monitor.records.items():
        np.testing.assert_allclose(values, two_monitor.records[key], rtol=0.05, atol=0.02,
                                   err_msg=key)


# ----------------------------------------------------------------------------
# XLA (jit_compile=True, Keras' "auto" on a GPU)
# ----------------------------------------------------------------------------
def _jit_run(jit_compile):
    import tensorflow_kappa as tk
    from tensorflow_kappa.callbacks import QuantizationMonitor

    # The twins compile under XLA whether or not the op library has XLA
    # lowerings: what is tested here is that the wrapper, the Quantize layers
    # and the monitor add nothing XLA cannot compile.
    with tk.composite_ops():
        model = quantize_model(make_model(batch_norm=False), DISTRIBUTED_PRECISION)
        model.compile(optimizer=LowPrecisionOptimizer(keras.optimizers.SGD(0.05, momentum=0.9),
                                                    DISTRIBUTED_PRECISION, seed=1),
                      loss="mse", jit_compile=jit_compile)
        monitor = QuantizationMonitor(every=2)
        model.fit(X[:32], Y[:32], batch_size=16, epochs=2, shuffle=False, verbose=0,
                  callbacks=[monitor])
    return model, monitor


@pytest.mark.slow
def test_fit_with_jit_compile_equals_fit_without():
    plain, plain_monitor = _jit_run(False)
    jit, jit_monitor = _jit_run(True)
    for a, b in zip(plain.trainable_variables, jit.trainable_variables):
        layer, name = a.path.split("/")[-2:]
        fmt = PrecisionDict(DISTRIBUTED_PRECISION).format(
            layer, {"kernel": "weight", "bias": "bias"}.get(name, "value"))
        assert on_grid(b.numpy(), fmt), b.path
        # XLA may order a float sum differently: a rounding may flip by one step.
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=2.01 * fmt.lsb,
                                   err_msg=a.path)
    assert plain_monitor.records.keys() == jit_monitor.records.keys()
    assert any(k.startswith("underflow/") and k.endswith("/update") for k in jit_monitor.records)
    for key, values in plain_monitor.records.items():
        np.testing.assert_allclose(values, jit_monitor.records[key], rtol=0.05, atol=0.02,
                                   err_msg=key)


def test_an_entry_for_a_layer_with_sublayers_covers_their_variables():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 3))
    h = keras.layers.MultiHeadAttention(2, 2, name="mha")(inputs, inputs)
    h = keras.layers.SimpleRNN(3, name="rnn")(h)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(h))
    precision = {"mha": {"weight": "s16.10", "bias": "s16.10"},
                 "rnn": {"weight": "s16.11", "bias": "s16.11"}}
    opt = LowPrecisionOptimizer(keras.optimizers.SGD(0.1), precision, seed=0)
    model.compile(optimizer=opt, loss="mse")
    x = RNG.standard_normal((16, 4, 3)).astype("float32")
    model.fit(x, x[:, :1, 0], batch_size=8, epochs=1, verbose=0)
    for v in model.trainable_variables:
        owner = next((n for n in ("mha", "rnn") if f"/{n}/" in f"/{v.path}"), None)
        if owner is not None:
            assert on_grid(v.numpy(), precision[owner]["weight"]), v.path
    layers = {key.split("/")[1] for key in opt.statistics()}
    assert {"mha", "rnn"} <= layers and not any("cell" in n or n == "query" for n in layers)

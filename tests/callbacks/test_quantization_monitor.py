"""QuantizationMonitor: its numbers against rail_stats by hand, where they go, learning death."""
import glob
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa.callbacks import LearningDeathWarning, QuantizationMonitor
from tensorflow_kappa.optimizers import LowPrecisionOptimizer
from tensorflow_kappa.quantization import FixedPoint, quantize_model, quantize_tensor, rail_stats

RNG = np.random.default_rng(8)
ACT, ERR = FixedPoint.parse("s8.4"), FixedPoint.parse("s8.9")
GRAD, STORE = FixedPoint.parse("s8.6"), FixedPoint.parse("s8.5")
PRECISION = {"d1": {"activation": ACT, "error": ERR, "gradient": GRAD, "weight": STORE}}
LR = 0.05


def _model():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="d1"),
                              keras.layers.Dense(2, name="d2")])
    q = quantize_model(model, PRECISION)
    q.compile(optimizer=LowPrecisionOptimizer(keras.optimizers.SGD(LR), PRECISION), loss="mse")
    return q


def test_monitored_numbers_equal_rail_stats_computed_by_hand():
    model = _model()
    model.optimizer.build(model.trainable_variables)   # rounds d1's kernel onto STORE
    x = (RNG.standard_normal((16, 3)) * 6).astype("float32")
    t = RNG.standard_normal((16, 2)).astype("float32")
    d1, d2 = model.get_layer("d1"), model.get_layer("d2")
    w1, b1, w2, b2 = (v.numpy().copy() for v in (d1.kernel, d1.bias, d2.kernel, d2.bias))
    # The forward and backward pass by hand.
    z1 = x @ w1 + b1
    a1 = quantize_tensor(z1, ACT).numpy()
    y = a1 @ w2 + b2
    dy = 2 * (y - t) / y.size                        # mse, mean over batch and outputs
    error = dy @ w2.T                                # into d1's output, before rounding
    grad_w1 = x.T @ quantize_tensor(error, ERR).numpy()
    grad_b1 = quantize_tensor(error, ERR).numpy().sum(axis=0)
    delta = -LR * quantize_tensor(grad_w1, GRAD).numpy()
    new_w1 = quantize_tensor(w1 + delta, STORE).numpy()
    expected = {}
    for field, value, fmt in (("forward", z1, ACT), ("backward", error, ERR)):
        for stat, v in zip(("saturation", "near_rail", "underflow"), rail_stats(value, fmt)):
            expected[f"{stat}/d1_quantize/{field}"] = float(v)
    # The layer's two gradients (kernel, bias), weighted by their sizes.
    per_variable = [np.array(rail_stats(g, GRAD)) for g in (grad_w1, grad_b1)]
    layer = (12 * per_variable[0] + 4 * per_variable[1]) / 16
    for stat, v in zip(("saturation", "near_rail", "underflow"), layer):
        expected[f"{stat}/d1/gradient"] = float(v)
    both = np.concatenate([grad_w1.ravel(), grad_b1])
    assert expected["saturation/d1/gradient"] == pytest.approx(
        float(rail_stats(both, GRAD).saturation_fraction))
    expected["near_rail/d1/weight"] = float(rail_stats(new_w1, STORE).near_rail_fraction)
    moved = delta != 0
    expected["underflow/d1/update"] = float(np.mean(new_w1[moved] == w1[moved]))

    monitor = QuantizationMonitor(every=1)
    model.fit(x, t, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[monitor])
    got = {k: v[0] for k, v in monitor.records.items()}
    np.testing.assert_allclose(model.get_layer("d1").kernel.numpy(), new_w1, atol=1e-6)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    # The nontrivial cases are exercised: something saturates, something underflows.
    assert expected["saturation/d1_quantize/forward"] > 0
    assert 0 < expected["underflow/d1/update"] < 1 or expected["underflow/d1/gradient"] > 0
    assert {"update_norm/d1/requested", "cosine/d1/update", "saturation/d1/storage"} <= set(got)


def test_every_nth_step_history_and_a_second_fit():
    model = _model()
    monitor = QuantizationMonitor(every=3)
    x = RNG.standard_normal((40, 3)).astype("float32")
    t = RNG.standard_normal((40, 2)).astype("float32")
    history = model.fit(x, t, batch_size=4, epochs=2, verbose=0, callbacks=[monitor])
    assert monitor.steps == list(range(0, 20, 3))
    key = "underflow/d1/update"
    assert len(history.history[key]) == 2
    epoch_one = [v for s, v in zip(monitor.steps, monitor.records[key]) if s < 10]
    assert history.history[key][0] == pytest.approx(np.mean(epoch_one))
    plain = model.train_function
    assert plain is not None and plain.__name__ != "monitored_train_function"
    model.fit(x, t, batch_size=4, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.steps == list(range(0, 30, 3))   # the step count goes on across fits
    assert model.train_function is plain        # fit's own function is back, unchanged


def test_layers_selects_what_is_reported():
    model = _model()
    monitor = QuantizationMonitor(every=1, layers=["d2"])
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0, callbacks=[monitor])
    assert monitor.records == {}
    monitor = QuantizationMonitor(every=1, layers=["d1"])
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0, callbacks=[monitor])
    assert monitor.records and all(k.split("/")[1] in ("d1", "d1_quantize")
                                   for k in monitor.records)


def test_tensorboard_scalars_and_histograms(tmp_path):
    model = _model()
    monitor = QuantizationMonitor(every=2, tensorboard_dir=str(tmp_path))
    model.fit(RNG.standard_normal((16, 3)), RNG.standard_normal((16, 2)), batch_size=4,
              epochs=1, verbose=0, callbacks=[monitor])
    tags, steps = set(), set()
    for path in glob.glob(str(tmp_path / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add((value.tag, value.metadata.plugin_data.plugin_name))
                steps.add(event.step)
    assert ("underflow/d1/update", "scalars") in tags
    assert ("saturation/d1_quantize/forward", "scalars") in tags
    assert any(tag.startswith("weights/") and plugin == "histograms" for tag, plugin in tags)
    assert steps == {0, 2}


def test_a_layer_whose_updates_all_underflow_is_named_in_a_warning():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="stuck"),
                              keras.layers.Dense(2, name="fine")])
    precision = {"stuck": {"weight": "s8.4"}, "fine": {"weight": "s24.22"}}
    model.compile(optimizer=LowPrecisionOptimizer(keras.optimizers.SGD(1e-4), precision),
                  loss="mse")
    monitor = QuantizationMonitor(every=2, death_steps=4)
    with pytest.warns(LearningDeathWarning, match="'stuck'") as caught:
        model.fit(RNG.standard_normal((64, 4)), RNG.standard_normal((64, 2)), batch_size=8,
                  epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.dead_layers == ["stuck"]
    assert len([w for w in caught if issubclass(w.category, LearningDeathWarning)]) == 1
    assert monitor.records["underflow/fine/update"][-1] < 0.5


class ReplacesTrainFunction(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self.model.train_function = self.model.train_function  # a stand-in: any other object
        fn = self.model.train_function
        self.model.train_function = lambda iterator: fn(iterator)


def test_another_callback_replacing_the_train_function_is_reported():
    model = _model()
    with pytest.warns(RuntimeWarning, match="not monitored"):
        model.fit(np.ones((8, 3)), np.ones((8, 2)), batch_size=4, verbose=0,
                  callbacks=[QuantizationMonitor(every=1), ReplacesTrainFunction()])


@pytest.mark.parametrize("kwargs, word", [
    ({"every": 0}, "every"), ({"every": 2.0}, "every"), ({"layers": "d1"}, "layers"),
    ({"death_threshold": 0}, "death_threshold"), ({"death_threshold": 1.5}, "death_threshold"),
    ({"death_steps": -1}, "death_steps"), ({"tensorboard_dir": 3}, "tensorboard_dir")])
def test_bad_arguments_name_themselves(kwargs, word):
    with pytest.raises(ValueError, match=word):
        QuantizationMonitor(**kwargs)


def test_an_uncompiled_model_is_a_clear_error():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    monitor = QuantizationMonitor()
    monitor.set_model(model)
    with pytest.raises(ValueError, match="compiled"):
        monitor.on_train_begin()

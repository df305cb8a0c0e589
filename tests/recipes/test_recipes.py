"""inalu_controller: the report's recipe as recorded by the controller, rule by rule."""
import json

import keras
import numpy as np
import pytest

from tensorflow_kappa.layers import INALU
from tensorflow_kappa.callbacks import LoopController
from tensorflow_kappa.recipes import (INIT_FAMILIES, BatchMSE, InaluController, InaluRecipe,
                                      draw_initial_weights, inalu_controller, inalu_layers,
                                      plateau, stuck)


def _data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, (n, 3)).astype("float32")
    return x, (x[:, :1] * x[:, 1:2] + x[:, 2:3]).astype("float32")


def _model(optimizer, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), INALU(2), INALU(1)])
    model.compile(optimizer=optimizer, loss="mse", metrics=[BatchMSE()])
    return model


class Snapshots(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.values = [[v.numpy().copy() for v in self.model.trainable_variables]]

    def on_train_batch_end(self, batch, logs=None):
        self.values.append([v.numpy().copy() for v in self.model.trainable_variables])


def test_gate_schedule_8_of_10_clipping_and_delayed_regularisation():
    x, y = _data(160)  # 20 batches of 8 per epoch
    model = _model(keras.optimizers.SGD(1.0))  # SGD(1): an update is the clipped gradient
    cb = inalu_controller(regularization_delay_epochs=1, regularization_loss_threshold=1e9,
                          early_stopping_threshold=None, reinitialization=False,
                          loss_key="batch_mse")
    snaps = Snapshots()
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[cb, snaps])
    steps = np.arange(60)
    np.testing.assert_array_equal(cb.history["gate"], (steps % 10 < 8).astype(float))
    # report: reinit_epochs > 1 -> regularisation from the third epoch on
    np.testing.assert_array_equal(cb.history["delay"], (steps >= 40).astype(float))
    assert cb.regularization_started == [(2, 40)]
    gate_ids = {id(v) for v in [layer.g for layer in inalu_layers(model)]}
    is_gate = [id(v) in gate_ids for v in model.trainable_variables]
    for step in range(40):  # no regularisation step yet: one clipped update per batch
        before, after = snaps.values[step], snaps.values[step + 1]
        for gate, a, b in zip(is_gate, before, after):
            moved = np.abs(b - a)
            trained = (step % 10 < 8) != gate
            if not trained:
                assert np.all(moved == 0), (step, gate)
            assert np.all(moved <= 0.1 + 1e-6), (step, moved.max())
        assert any(np.any(b != a) for a, b in zip(before, after))


def test_stuck_rule():
    rng = np.random.default_rng(0)
    flat_high = 5 + rng.normal(0, 0.1, 2000)
    assert stuck(flat_high, min_steps=1000)
    assert not stuck(flat_high, min_steps=2000)  # needs more than min_steps losses
    assert not stuck(flat_high, min_steps=1000, loss_threshold=10)  # already good enough
    improving = np.linspace(50, 2, 2000)
    assert not stuck(improving, min_steps=1000)
    flat_low = 0.5 + rng.normal(0, 0.01, 2000)
    assert not stuck(flat_low, min_steps=1000)
    # window: only the recent losses count
    recent_flat = np.concatenate([np.linspace(100, 5, 3000), 5 + rng.normal(0, 0.1, 1000)])
    assert not stuck(recent_flat, min_steps=1000)
    assert stuck(recent_flat, min_steps=1000, window=1000)
    assert stuck(np.concatenate([flat_high, [np.nan]]), min_steps=1000)


def test_reinitialisation_when_stuck_and_its_limit():
    x, y = _data(80)
    model = _model(keras.optimizers.SGD(0.0))  # learns nothing: stuck by construction
    cb = inalu_controller(report=True, reinit_min_steps=15, reinit_loss_threshold=0.0,
                          max_reinitializations=2, early_stopping_threshold=None,
                          regularization=False, loss_key="batch_mse")
    weights = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights.append(model.layers[0].w_hat_a.numpy().copy())

    model.fit(x, y, batch_size=8, epochs=5, shuffle=False, verbose=0,
              callbacks=[cb, Record()])
    # > 15 losses since the last reinit at the ends of epochs 2 and 4 (10 batches each);
    # weights[k] is read at the end of epoch k + 1, after the controller acted
    assert cb.reinitializations == [(2, 20), (4, 40)]
    assert not np.array_equal(weights[0], weights[1])  # redrawn
    assert np.array_equal(weights[1], weights[2])      # SGD(0) learns nothing
    assert not np.array_equal(weights[2], weights[3])  # redrawn again
    assert np.array_equal(weights[3], weights[4])      # max_reinitializations=2 reached
    assert cb.reinit_epochs == 1  # one epoch since the last reinitialisation


def test_a_custom_reinitialisation_condition_replaces_the_authors_rule():
    x, y = _data(80)
    model = _model(keras.optimizers.SGD(0.0))
    seen = []

    def report_fig_6_5(losses):  # the report's rule, scaled down
        seen.append(len(losses))
        return len(losses) > 12 and losses[-5:].mean() > 0.2

    cb = inalu_controller(reinit_condition=report_fig_6_5, early_stopping_threshold=None,
                          regularization=False, loss_key="batch_mse")
    model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=[cb])
    assert seen == [10, 20, 10, 20]  # reset after the redraw at the end of epoch 2
    assert cb.reinitializations == [(2, 20), (4, 40)]


def test_early_stopping_and_batch_mse():
    x, y = _data(80)
    model = _model(keras.optimizers.RMSprop(0.01))
    cb = inalu_controller(early_stopping_threshold=1e9, loss_key="batch_mse")
    history = model.fit(x, y, batch_size=8, epochs=5, verbose=0, shuffle=False, callbacks=[cb])
    assert len(history.history["loss"]) == 1
    # batch_mse is the last batch's MSE, measured before that batch's update
    metric = BatchMSE()
    metric.update_state(y[:8], np.zeros((8, 1), "float32"))
    metric.update_state(y[8:16], np.ones((8, 1), "float32"))
    np.testing.assert_allclose(float(metric.result()), np.mean((y[8:16] - 1) ** 2), rtol=1e-6)


def test_loss_key_default_reads_the_data_loss_not_the_regularised_loss():
    x, y = _data(80)
    model = _model(keras.optimizers.RMSprop(0.01))
    cb = inalu_controller(early_stopping_threshold=None)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False, callbacks=[cb])
    assert cb.recipe.loss_key == "loss_gate"
    # Keras's loss includes the iNALU regulariser (about 5 at initialisation)
    assert np.all(cb.history["loss"] - cb.history["loss_gate"] > 1.0)


def test_a_missing_loss_column_is_an_error_not_a_silent_no_op():
    x, y = _data(80)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), INALU(1)])
    model.compile(optimizer="rmsprop", loss="mse")  # no BatchMSE metric
    with pytest.raises(ValueError, match="BatchMSE"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0,
                  callbacks=[inalu_controller(loss_key="batch_mse")])


@pytest.mark.parametrize("kwargs", [
    dict(gate_period=0), dict(gate_batches=11), dict(clipping=(1, -1)),
    dict(clipping="x"), dict(reinit_window=1), dict(early_stopping_threshold=0.0),
    dict(loss_key=3), dict(layers="INALU"), dict(regularization_delay_epochs=-1),
    dict(reinit_condition=0.2), dict(detector="halves"), dict(init_families=("random",)),
    dict(init_families=()), dict(candidates=0), dict(detector="window", reinit_window=None),
])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        inalu_controller(**kwargs)


def test_the_controller_declares_the_recipes_state_and_reset_clears_it():
    x, y = _data(80)
    model = _model(keras.optimizers.SGD(0.0))
    cb = inalu_controller(report=True, reinit_min_steps=15, reinit_loss_threshold=0.0,
                          early_stopping_threshold=None, regularization_delay_epochs=0,
                          regularization_loss_threshold=1e9, loss_key="batch_mse")
    assert isinstance(cb, InaluController) and isinstance(cb, LoopController)
    assert (cb.reinitializations, cb.regularization_started, cb.regularizing) == ([], [], False)
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[cb])
    assert cb.reinitializations == [(2, 20)]
    # on from the second epoch; the redraw at the end of epoch 2 restarts the delay
    assert cb.regularization_started == [(1, 10)] and not cb.regularizing
    np.testing.assert_array_equal(cb.history["delay"], (np.arange(30) // 10 == 1))
    assert not [name for name in vars(cb) if name.startswith("_kappa")]
    cb.reset()
    assert (cb.reinitializations, cb.regularization_started, cb.regularizing) == ([], [], False)
    assert cb.batches == 0 and len(cb.history) == 0


def test_a_rule_changes_by_subclassing():
    class EveryOtherBatch(InaluController):
        def gate_open(self):
            return self.batches % 2 == 0

    x, y = _data(80)
    model = _model(keras.optimizers.RMSprop(0.01))
    cb = EveryOtherBatch(InaluRecipe(regularization=False, reinitialization=False,
                                     early_stopping_threshold=None))
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    np.testing.assert_array_equal(cb.history["gate"], np.arange(10) % 2 == 0)
    assert cb.action_names == ("gate",)


def test_the_recipe_record_is_checked_once_and_json_ready():
    recipe = InaluRecipe(clipping=[-1, 1], gate_clipping=None, reinit_window=np.int64(50),
                         reinit_condition=lambda losses: False)
    assert recipe.clipping == (-1.0, 1.0) and recipe.reinit_window == 50
    record = json.loads(json.dumps(recipe.to_dict()))
    assert record["clipping"] == [-1.0, 1.0] and record["gate_clipping"] is None
    assert record["reinit_condition"].startswith("<function")
    assert set(record) == {f for f in InaluRecipe.__dataclass_fields__}
    with pytest.raises(ValueError, match="recipe must be an InaluRecipe"):
        InaluController({"gate_period": 5})


def _descent_then_plateau(rng, descent=3000, flat=6000, level=9.0):
    """The issue's failure: a steep initial descent, then a plateau at MSE ~9."""
    return np.concatenate([np.geomspace(200, level, descent),
                           level + rng.normal(0, 0.3, flat)])


def test_windowed_detector_fires_on_a_plateau_after_a_steep_descent():
    rng = np.random.default_rng(1)
    losses = _descent_then_plateau(rng)
    # the authors' halves rule cannot fire: the first half holds the descent
    assert not stuck(losses, min_steps=5000)
    assert plateau(losses, min_steps=5000, window=2000)
    # whatever came before: a longer or steeper descent changes nothing
    assert plateau(_descent_then_plateau(rng, descent=20000, flat=4000), window=2000)
    assert not plateau(losses[:4000], min_steps=5000, window=2000)  # too few steps
    assert not plateau(losses, loss_threshold=20.0, window=2000)    # good enough


def test_windowed_detector_does_not_fire_on_a_slow_steady_descent():
    rng = np.random.default_rng(2)
    # 10 % per 2000 steps: slow, steady and noisy, still far above the threshold
    slow = np.geomspace(60, 60 * 0.9 ** 5, 10000) * (1 + rng.normal(0, 0.05, 10000))
    assert not plateau(slow, min_steps=5000, window=2000)
    assert plateau(slow, min_steps=5000, window=2000, min_improvement=0.2)
    assert plateau(np.r_[slow[:-1], np.inf], min_steps=5000, window=2000)  # diverged


def test_report_recipe_is_the_published_one_and_the_default_lists_its_differences():
    report, default = InaluRecipe.report(), InaluRecipe()
    assert (report.detector, report.reinit_min_steps, report.reinit_window) == \
        ("authors", 10000, None)
    assert report.init_families == ("published",) and report.candidates == 1
    assert inalu_controller(report=True).recipe == report
    differ = {k for k, v in report.to_dict().items() if default.to_dict()[k] != v}
    assert differ == {"detector", "reinit_min_steps", "reinit_window", "init_families",
                      "candidates"}
    losses = _descent_then_plateau(np.random.default_rng(3), flat=9000)
    assert default.stuck(losses) and not report.stuck(losses)
    assert [default.family(1, a) for a in range(4)] == \
        [INIT_FAMILIES[(1 + a) % 3] for a in range(4)]


def test_init_families_draw_what_they_say():
    shapes = [{v: (7, 3) for v in ("w_hat_a", "m_hat_a", "w_hat_m", "m_hat_m")} | {"g": (3,)},
              {v: (3, 1) for v in ("w_hat_a", "m_hat_a", "w_hat_m", "m_hat_m")} | {"g": (1,)}]
    rng = np.random.default_rng(0)
    published = draw_initial_weights("published", rng, shapes)
    assert all(np.all(layer["w_hat_a"] > 0) for layer in published)
    signed = draw_initial_weights("signed_a", np.random.default_rng(0), shapes * 20)
    w = np.concatenate([layer["w_hat_a"].ravel() for layer in signed])
    assert 0.4 < np.mean(w < 0) < 0.6 and np.all(np.abs(np.abs(w) - 1) < 0.6)
    assert np.all(signed[1]["m_hat_a"] < 0)  # only the add path's W_hat changes
    last = draw_initial_weights("lastadd_signed", rng, shapes)
    assert abs(float(last[-1]["g"][0]) - 2.0) < 0.6 and np.all(np.abs(last[0]["g"]) < 0.6)
    with pytest.raises(ValueError, match="init family"):
        draw_initial_weights("zeros", rng, shapes)


def test_the_controller_redraws_from_the_next_family():
    x, y = _data(80)
    model = _model(keras.optimizers.SGD(0.0))  # stuck by construction
    cb = inalu_controller(reinit_min_steps=15, reinit_window=10, reinit_loss_threshold=0.0,
                          init_families=("published", "signed_a"), max_reinitializations=1,
                          early_stopping_threshold=None, regularization=False,
                          loss_key="batch_mse", seed=0)
    before = [layer.w_hat_a.numpy().copy() for layer in inalu_layers(model)]
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[cb])
    assert cb.reinitializations == [(2, 20)]
    after = [layer.w_hat_a.numpy() for layer in inalu_layers(model)]
    assert all(np.all(b > 0) for b in before)
    assert any(np.any(a < 0) for a in after)  # signed_a: some add weights start negative

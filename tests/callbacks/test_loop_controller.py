"""Behaviour of LoopController: the report's chapter-5 tests, asserted numerically.

References are independent of the implementation: plain ``model.fit`` on an
identical model, or SGD steps of a linear model computed by hand in NumPy.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from loop_controller_testlib import (
    INALU,
    WeightRecorder,
    gates,
    linear_data,
    linear_model,
    inalu_data,
    inalu_model,
    np_grads,
    np_loss,
)
from tensorflow_kappa.callbacks import LoopController


def fit(model, x, y, callbacks, epochs=1, batch_size=None, **kwargs):
    return model.fit(x, y, batch_size=batch_size or len(x), epochs=epochs,
                     shuffle=False, verbose=0, callbacks=callbacks, **kwargs)


def always(cb):
    return True


def even_epoch(cb):
    return cb.epochs % 2 == 0


def kernel_of(model):
    return [model.layers[-1].kernel]


def bias_of(model):
    return [model.layers[-1].bias]


def mlp(seed=0, metrics=("mae",)):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.01), loss="mse", metrics=list(metrics))
    return model


def test_one_action_over_all_variables_reproduces_plain_fit_with_validation():
    x, y = linear_data(64)
    xv, yv = linear_data(16, seed=5)
    plain = mlp()
    h_plain = fit(plain, x, y, [], epochs=2, batch_size=16, validation_data=(xv, yv))
    model = mlp()
    cb = LoopController({"train": {"cond": always, True: {}}})
    h = fit(model, x, y, [cb], epochs=2, batch_size=16, validation_data=(xv, yv))
    for a, b in zip(plain.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for key in ("loss", "mae", "val_loss", "val_mae"):
        np.testing.assert_allclose(h.history[key], h_plain.history[key], rtol=1e-6)
    # one action == one apply per batch, as in plain fit
    assert int(model.optimizer.iterations) == int(plain.optimizer.iterations) == 8
    np.testing.assert_allclose(h.history["loss_train"], h.history["loss"], rtol=1e-6)
    assert h.history["train"] == [1.0, 1.0]


def test_variables_inclusion_trains_only_the_selected_variables():
    # Report 5.0.1 on the iNALU: only the gates may move.
    x, y = inalu_data()
    model = inalu_model()
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    selected = {v.path for v in gates(model)}
    cb = LoopController({"gate": {"cond": always, "True": {"variables": gates}}})
    fit(model, x, y, [cb], epochs=2, batch_size=32)
    for v in model.trainable_variables:
        if v.path in selected:
            assert not np.allclose(v.numpy(), before[v.path]), v.path
        else:
            np.testing.assert_array_equal(v.numpy(), before[v.path], err_msg=v.path)


def test_variables_exclusion_freezes_the_excluded_variables():
    # Report 5.0.2: everything but the gates moves.
    x, y = inalu_data()
    model = inalu_model()
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    excluded = {v.path for v in gates(model)}
    cb = LoopController({"gate": {"cond": always, True: {"excluded_variables": gates}}})
    fit(model, x, y, [cb], epochs=2, batch_size=32)
    for v in model.trainable_variables:
        if v.path in excluded:
            np.testing.assert_array_equal(v.numpy(), before[v.path], err_msg=v.path)
        else:
            assert not np.allclose(v.numpy(), before[v.path]), v.path


@pytest.mark.parametrize(
    "branch_loss",
    [
        "mse",
        keras.losses.MeanSquaredError(),
        lambda y_true, y_pred: keras.ops.mean(keras.ops.square(y_true - y_pred)),
    ],
    ids=["name", "loss-object", "callable-returning-scalar"],
)
def test_loss_switching_matches_hand_computed_sgd_steps(branch_loss):
    # Report 5.0.3: compiled mae, mse on even epochs; one batch per epoch.
    lr = 0.1
    x, y = linear_data(16)
    model = linear_model(lr=lr, loss="mae")
    w, b = (a.astype(np.float64) for a in model.get_weights())
    cb = LoopController({"gate": {"cond": even_epoch, True: {"loss": branch_loss}, False: {}}})
    h = fit(model, x, y, [cb], epochs=2)

    gw, gb = np_grads(w, b, x, y, "mse")  # epoch 0: the branch's loss
    w1, b1 = w - lr * gw, b - lr * gb
    gw, gb = np_grads(w1, b1, x, y, "mae")  # epoch 1: the compiled loss
    w2, b2 = w1 - lr * gw, b1 - lr * gb
    np.testing.assert_allclose(model.get_weights()[0], w2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], b2, rtol=1e-5, atol=1e-6)
    # logs: "loss" is what plain fit reports (the compiled mae), loss_gate what was trained
    np.testing.assert_allclose(h.history["loss"], [np_loss(w, b, x, y, "mae"),
                                                   np_loss(w1, b1, x, y, "mae")], rtol=1e-5)
    np.testing.assert_allclose(h.history["loss_gate"], [np_loss(w, b, x, y, "mse"),
                                                        np_loss(w1, b1, x, y, "mae")], rtol=1e-5)


def test_a_batch_without_active_action_does_nothing():
    # cond False on the first two batches (compiled metrics are still unbuilt
    # then), True on the last two; the action has no False branch.
    lr = 0.1
    x, y = linear_data(16)
    model = linear_model(lr=lr)
    model.compile(keras.optimizers.SGD(lr), loss="mse", metrics=["mae"])
    w, b = (a.astype(np.float64) for a in model.get_weights())
    rec = WeightRecorder()
    cb = LoopController({"late": {"cond": lambda cb: cb.batches >= 2, True: {}}})
    h = fit(model, x, y, [cb, rec], epochs=1, batch_size=4)
    for step in (0, 1):
        for a, c in zip(rec.snapshots[step], rec.snapshots[step + 1]):
            np.testing.assert_array_equal(a, c)
    assert int(model.optimizer.iterations) == 2
    np.testing.assert_array_equal(cb.history["late"], [0, 0, 1, 1])
    assert set(h.history) == {"loss", "mae", "loss_late", "late"}
    # "loss" still averages over every batch, as plain fit would report it
    gw, gb = np_grads(w, b, x[8:12], y[8:12], "mse")
    w1, b1 = w - lr * gw, b - lr * gb
    expected = np.mean([np_loss(w, b, x[:4], y[:4], "mse"), np_loss(w, b, x[4:8], y[4:8], "mse"),
                        np_loss(w, b, x[8:12], y[8:12], "mse"),
                        np_loss(w1, b1, x[12:], y[12:], "mse")])
    np.testing.assert_allclose(h.history["loss"], [expected], rtol=1e-5)
    # the action's own loss only averages over the batches it ran on
    np.testing.assert_allclose(h.history["loss_late"], [
        np.mean([np_loss(w, b, x[8:12], y[8:12], "mse"), np_loss(w1, b1, x[12:], y[12:], "mse")])],
        rtol=1e-5)
    # idle batches leave BatchNorm statistics alone (inference-mode forward pass)
    keras.utils.set_random_seed(0)
    bn = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(),
                           keras.layers.Dense(1)])
    bn.compile(keras.optimizers.SGD(lr), loss="mse")
    before = [v.copy() for v in bn.get_weights()]
    fit(bn, x, y, [LoopController({"never": {"cond": lambda cb: False, True: {}}})],
        batch_size=4)
    for a, c in zip(before, bn.get_weights()):
        np.testing.assert_array_equal(a, c)


def test_sample_weights_reach_compiled_and_branch_losses():
    lr = 0.1
    x, y = linear_data(16)
    sw = np.linspace(0.0, 2.0, 16).astype("float32")
    plain, model = linear_model(lr=lr), linear_model(lr=lr)
    w, b = (a.astype(np.float64) for a in model.get_weights())
    plain.fit(x, y, sample_weight=sw, batch_size=16, epochs=1, shuffle=False, verbose=0)
    cb = LoopController({"a": {"cond": always, True: {}}})
    model.fit(x, y, sample_weight=sw, batch_size=16, epochs=1, shuffle=False, verbose=0,
              callbacks=[cb])
    for p, q in zip(plain.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(p, q)
    # a branch loss gets them too: weighted mse = sum(sw * r^2) / n
    model = linear_model(lr=lr, loss="mae")
    cb = LoopController({"a": {"cond": always, True: {"loss": "mse"}}})
    model.fit(x, y, sample_weight=sw, batch_size=16, epochs=1, shuffle=False, verbose=0,
              callbacks=[cb])
    r = x.astype(np.float64) @ w + b - y
    gw = x.T.astype(np.float64) @ (2 * sw[:, None] * r) / 16
    np.testing.assert_allclose(model.get_weights()[0], w - lr * gw, rtol=1e-5)


def test_control_variable_reassignment_and_branch_selection():
    # Report 5.0.4: history.history["gate"] == [1, 0, 1, 0] for epochs % 2 == 0,
    # and the branch that ran is the one the state says.
    x, y = linear_data(16)
    model = linear_model()
    rec = WeightRecorder()
    cb = LoopController({"gate": {"cond": even_epoch,
                                  True: {"variables": kernel_of},
                                  False: {"variables": bias_of}}})
    h = fit(model, x, y, [cb, rec], epochs=4)
    assert h.history["gate"] == [1.0, 0.0, 1.0, 0.0]
    snaps = rec.snapshots
    for epoch in range(4):
        kernel_moved = not np.array_equal(snaps[epoch][0], snaps[epoch + 1][0])
        bias_moved = not np.array_equal(snaps[epoch][1], snaps[epoch + 1][1])
        assert (kernel_moved, bias_moved) == ((True, False) if epoch % 2 == 0 else (False, True))


def test_regularisation_on_and_off_matches_hand_computed_steps():
    lr, l2 = 0.1, 0.3
    x, y = linear_data(16)
    model = linear_model(lr=lr, l2=l2)
    w, b = (a.astype(np.float64) for a in model.get_weights())
    cb = LoopController({"reg": {"cond": even_epoch, True: {"regularize": True}, False: {}}})
    h = fit(model, x, y, [cb], epochs=2)

    gw, gb = np_grads(w, b, x, y, "mse")
    w1, b1 = w - lr * (gw + 2 * l2 * w), b - lr * gb  # regularised step
    gw, gb = np_grads(w1, b1, x, y, "mse")
    w2, b2 = w1 - lr * gw, b1 - lr * gb  # data loss only
    np.testing.assert_allclose(model.get_weights()[0], w2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], b2, rtol=1e-5, atol=1e-6)
    reg0, reg1 = l2 * np.sum(w**2), l2 * np.sum(w1**2)
    data0, data1 = np_loss(w, b, x, y, "mse"), np_loss(w1, b1, x, y, "mse")
    np.testing.assert_allclose(h.history["loss"], [data0 + reg0, data1 + reg1], rtol=1e-5)
    np.testing.assert_allclose(h.history["loss_reg"], [data0 + reg0, data1], rtol=1e-5)


def test_inalu_regulariser_off_and_on_equal_plain_fit_without_and_with_it():
    # iNALU adds its sparsity regulariser through add_loss. "regularize" off must
    # train exactly as plain fit of the same iNALU built without the regulariser;
    # on, exactly as plain fit with it.
    x, y = inalu_data()

    def build(reg):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), INALU(2, sparsity_regularization=reg),
                                  INALU(1, sparsity_regularization=reg)])
        model.compile(keras.optimizers.RMSprop(0.01), loss="mse")
        return model

    for regularize in (False, True):
        controlled, plain = build(True), build(regularize)
        plain.set_weights(controlled.get_weights())
        cb = LoopController({"t": {"cond": always, True: {"regularize": regularize}}})
        fit(controlled, x, y, [cb], epochs=2, batch_size=16)
        fit(plain, x, y, [], epochs=2, batch_size=16)
        for a, b in zip(controlled.get_weights(), plain.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_gradient_clipping_bounds_every_sgd_step():
    lr, c = 0.1, 0.05
    x, y = linear_data(32, scale=10.0)  # large errors: gradients far above c
    model = linear_model(lr=lr)
    w, b = (a.astype(np.float64) for a in model.get_weights())
    rec = WeightRecorder()
    cb = LoopController({"clip": {"cond": always, True: {"clipping": (-c, c)}}})
    fit(model, x, y, [cb, rec], epochs=3, batch_size=16)
    moves = [max(np.abs(a - p).max() for a, p in zip(s1, s0))
             for s0, s1 in zip(rec.snapshots, rec.snapshots[1:])]
    assert len(moves) == 6
    assert max(moves) <= lr * c * (1 + 1e-5)
    gw, gb = np_grads(w, b, x[:16], y[:16], "mse")
    assert np.abs(gw).max() > c  # clipping was active
    np.testing.assert_allclose(rec.snapshots[1][0], w - lr * np.clip(gw, -c, c), rtol=1e-5)
    np.testing.assert_allclose(rec.snapshots[1][1], b - lr * np.clip(gb, -c, c), rtol=1e-5)


def test_zero_loss_trains_nothing_or_only_the_regulariser():
    lr, l2 = 0.1, 0.3
    x, y = linear_data(16)
    model = linear_model(lr=lr, l2=l2)
    w, b = model.get_weights()
    cb = LoopController({"zero": {"cond": always, True: {"loss": None}}})
    h = fit(model, x, y, [cb], epochs=2)
    np.testing.assert_array_equal(model.get_weights()[0], w)
    np.testing.assert_array_equal(model.get_weights()[1], b)
    assert int(model.optimizer.iterations) == 0  # nothing connected: no apply
    assert h.history["loss_zero"] == [0.0, 0.0]
    expected = np_loss(w, b, x, y, "mse") + l2 * np.sum(w.astype(np.float64) ** 2)
    np.testing.assert_allclose(h.history["loss"], [expected] * 2, rtol=1e-5)

    cb = LoopController({"delay": {"cond": always, True: {"loss": False, "regularize": True}}})
    fit(model, x, y, [cb], epochs=1)
    np.testing.assert_allclose(model.get_weights()[0], w - lr * 2 * l2 * w, rtol=1e-6)
    np.testing.assert_array_equal(model.get_weights()[1], b)  # bias: no regulariser
    assert int(model.optimizer.iterations) == 1


def test_gradient_transform_is_applied_per_variable_and_before_clipping():
    lr = 0.1
    x, y = linear_data(16)
    model = linear_model(lr=lr)
    w, b = (a.astype(np.float64) for a in model.get_weights())
    gw, gb = np_grads(w, b, x, y, "mse")
    # c between 0.25|g| and |g| for the largest kernel gradient: the order matters
    c = 0.5 * np.abs(gw).max()
    seen = []

    def transform(grads, variables):
        seen.append([tuple(v.shape) for v in variables])
        return [0.25 * g if len(v.shape) == 2 else -g for g, v in zip(grads, variables)]

    cb = LoopController({"t": {"cond": always,
                               True: {"gradient_transform": transform, "clipping": (-c, c)}}})
    fit(model, x, y, [cb], epochs=1)
    assert seen[0] == [(3, 1), (1,)]
    np.testing.assert_allclose(model.get_weights()[0], w - lr * np.clip(0.25 * gw, -c, c),
                               rtol=1e-5)
    np.testing.assert_allclose(model.get_weights()[1], b - lr * np.clip(-gb, -c, c), rtol=1e-5)


def test_two_actions_run_in_config_order_on_the_same_batch():
    # Each active action is a full step; the second sees the first's update.
    # "loss" (as plain fit reports it) comes from the first action's forward pass.
    lr = 0.1
    x, y = linear_data(16)
    model = linear_model(lr=lr)
    model.compile(keras.optimizers.SGD(lr), loss="mse", metrics=["mae"])
    w, b = (a.astype(np.float64) for a in model.get_weights())
    cb = LoopController({"first": {"cond": always, True: {"variables": kernel_of}},
                         "second": {"cond": always, True: {"variables": bias_of}}})
    h = fit(model, x, y, [cb], epochs=1)
    gw, _ = np_grads(w, b, x, y, "mse")
    w1 = w - lr * gw
    _, gb = np_grads(w1, b, x, y, "mse")
    b1 = b - lr * gb
    np.testing.assert_allclose(model.get_weights()[0], w1, rtol=1e-5)
    np.testing.assert_allclose(model.get_weights()[1], b1, rtol=1e-5)
    np.testing.assert_allclose(h.history["loss"], [np_loss(w, b, x, y, "mse")], rtol=1e-5)
    np.testing.assert_allclose(h.history["mae"], [np_loss(w, b, x, y, "mae")], rtol=1e-5)
    np.testing.assert_allclose(h.history["loss_first"], [np_loss(w, b, x, y, "mse")], rtol=1e-5)
    np.testing.assert_allclose(h.history["loss_second"], [np_loss(w1, b, x, y, "mse")],
                               rtol=1e-5)
    assert int(model.optimizer.iterations) == 2  # optimizer.iterations counts applies


def test_async_reinitialisation_and_stopping():
    x, y = inalu_data(32)
    model = inalu_model()
    calls = []

    def stuck(cb):
        return cb.epochs == 2 and not calls

    def reinitialise(m):
        calls.append(("model", m is model))
        for layer in m.layers:
            if isinstance(layer, INALU):
                layer.reinitialize()

    def reinitialise_metrics(cb):  # the report's figure 6.5
        calls.append(("callback", cb.reinit_epochs))
        cb.history = []
        cb.epochs = 0
        cb.batches = 0

    def stop(cb):
        cb.model.stop_training = True

    async_config = {
        "reinitialize": {"cond": stuck, "model": reinitialise, "callback": reinitialise_metrics},
        "early_stopping": {"cond": lambda cb: cb.reinit_epochs >= 3, "callback": stop},
    }
    rec = []
    snapshot = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: rec.append([v.copy() for v in model.get_weights()]))
    cb = LoopController({"train": {"cond": always, True: {}}}, async_config)
    h = fit(model, x, y, [cb, snapshot], epochs=20, batch_size=16)
    assert calls == [("model", True), ("callback", 2)]
    assert len(h.history["loss"]) == 5  # 2 epochs, reinitialise, 3 more, stop
    assert (cb.epochs, cb.reinit_epochs, cb.batches) == (3, 3, 6)
    assert len(cb.history) == 6 and len(cb.reinit_history) == 6
    # the snapshot after epoch 2 saw the reinitialised weights (it runs after
    # the controller in the callback list): they differ from the trained ones
    assert not all(np.allclose(a, b) for a, b in zip(rec[1], model.get_weights()))


def test_report_inalu_recipe_gate_schedule_and_delayed_regularisation():
    # Report figure 6.4 with gate_open = batches % 10 < 8, on the iNALU.
    x, y = inalu_data(64)
    model = inalu_model()
    gate_paths = {v.path for v in gates(model)}
    paths = [v.path for v in model.trainable_variables]
    weight_index = {id(w): i for i, w in enumerate(model.weights)}
    gate_idx = [weight_index[id(v)] for v in model.trainable_variables if v.path in gate_paths]

    def gate_open(cb):
        return cb.batches % 10 < 8

    def delay_reg(cb):
        return bool(cb.reinit_epochs >= 1 and cb.reinit_history
                    and cb.reinit_history[-1]["loss"] < 1e9)

    config = {
        "gate": {"cond": gate_open,
                 True: {"clipping": (-0.1, 0.1), "excluded_variables": gates},
                 False: {"clipping": (-0.1, 0.1), "variables": gates}},
        "delay": {"cond": delay_reg, True: {"loss": False, "regularize": True}},
    }
    rec = WeightRecorder()
    cb = LoopController(config)
    fit(model, x, y, [cb, rec], epochs=3, batch_size=8)
    assert len(paths) == len(model.weights)
    np.testing.assert_array_equal(cb.history["gate"], (np.arange(24) % 10 < 8).astype(float))
    np.testing.assert_array_equal(cb.history["delay"], (np.arange(24) >= 8).astype(float))
    for step in range(8):  # epoch 0: no delay action, so the gate branch alone decides
        before, after = rec.snapshots[step], rec.snapshots[step + 1]
        moved = [not np.array_equal(a, b) for a, b in zip(before, after)]
        for i, m in enumerate(moved):
            assert m == (i not in gate_idx), (step, paths[i])
    # every gate step and every delay step is one optimizer apply
    assert int(model.optimizer.iterations) == 24 + 16


def test_counters_history_views_and_bounded_history():
    x, y = linear_data(16)
    model = linear_model()
    cb = LoopController({"train": {"cond": always, True: {}}}, max_history=5)
    cb_full = LoopController({"other": {"cond": always, False: {}}})
    h = fit(model, x, y, [cb, cb_full], epochs=3, batch_size=4)
    assert (cb.epochs, cb.batches, cb.batches_in_epoch) == (3, 12, 4)
    full = cb.history
    assert 5 <= len(full) <= 10
    np.testing.assert_array_equal(full["batch"], np.arange(12)[-len(full):])
    assert len(cb_full.history) == 12
    np.testing.assert_array_equal(cb_full.history["epoch"], np.repeat([0, 1, 2], 4))
    # per-step "loss" is Keras's running epoch mean: its last value per epoch is the epoch log
    np.testing.assert_allclose(cb_full.loss_history[3::4], h.history["loss"], rtol=1e-6)
    assert cb_full.history[-1]["loss"] == cb_full.loss_history[-1]
    assert [row["batch"] for row in cb_full.history][:3] == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError):
        cb_full.loss_history[0] = 1.0  # read-only view
    cb_full.history = []
    assert len(cb_full.history) == 0 and not cb_full.reinit_history
    assert cb.states == {"train": True} and cb_full.states == {"other": True}


def test_flipping_a_control_every_batch_costs_no_retrace():
    x, y = linear_data(48)

    def run(batches):
        model = linear_model()
        cb = LoopController({"gate": {"cond": lambda cb: cb.batches % 2 == 0,
                                      True: {"variables": kernel_of},
                                      False: {"variables": bias_of}}})
        fit(model, x[: 4 * batches], y[: 4 * batches], [cb], batch_size=4)
        return cb

    few, many = run(2), run(12)
    np.testing.assert_array_equal(many.history["gate"], np.arange(12) % 2 == 0)
    assert many.trace_count == few.trace_count <= 4


def test_fit_twice_then_plain_fit_behaves_as_without_controller():
    x, y = linear_data(16)
    model = linear_model()
    model.make_train_function()
    plain_function = model.train_function
    cb = LoopController({"bias": {"cond": always, True: {"variables": bias_of}}})
    fit(model, x, y, [cb], epochs=1)
    assert model.train_function is plain_function  # restored: plain fit will not even retrace
    w_after_first = model.get_weights()[0].copy()
    fit(model, x, y, [cb], epochs=1)
    np.testing.assert_array_equal(model.get_weights()[0], w_after_first)  # still frozen
    assert (cb.epochs, cb.batches) == (2, 2)  # counters continue across fits
    assert "train_step" not in vars(model)

    twin = linear_model(seed=3)
    twin.set_weights(model.get_weights())
    fit(model, x, y, [], epochs=2)
    fit(twin, x, y, [], epochs=2)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.get_weights()[0], w_after_first)


def test_plain_fit_after_a_crashed_controlled_fit():
    x, y = linear_data(16)
    model = linear_model()

    def explode(cb):
        if cb.batches == 2:
            raise RuntimeError("boom")
        return True

    cb = LoopController({"bias": {"cond": explode, True: {"variables": bias_of}}})
    with pytest.raises(RuntimeError, match="boom") as info:
        fit(model, x, y, [cb], epochs=1, batch_size=4)
    assert any("'bias'" in note for note in getattr(info.value, "__notes__", []))
    twin = linear_model(seed=3)
    twin.set_weights(model.get_weights())
    fit(model, x, y, [], epochs=1, batch_size=4)
    fit(twin, x, y, [], epochs=1, batch_size=4)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_with_keras_callbacks_and_save_load(tmp_path):
    x, y = linear_data(32)
    model = linear_model()
    callbacks = [
        LoopController({"gate": {"cond": even_epoch, True: {}, False: {"variables": bias_of}}}),
        keras.callbacks.EarlyStopping(monitor="gate", mode="max", patience=0),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.keras")),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
    ]
    h = fit(model, x, y, callbacks, epochs=5, batch_size=16, validation_data=(x, y))
    assert h.history["gate"] == [1.0, 0.0]  # EarlyStopping on the state: stops in epoch 2
    assert (tmp_path / "ckpt.keras").exists()
    np.testing.assert_allclose(h.history["val_loss"][-1], model.evaluate(x, y, verbose=0),
                               rtol=1e-6)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert len(loaded.weights) == len(model.weights)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_with_tensorboard(tmp_path):
    # tensorboard is a test dependency (scripts/quickstart.sh, setup.py [test]).
    x, y = linear_data(16)
    model = linear_model()
    cb = LoopController({"gate": {"cond": even_epoch, True: {}, False: {"variables": bias_of}}})
    h = fit(model, x, y, [cb, keras.callbacks.TensorBoard(str(tmp_path / "tb"))], epochs=2)
    assert h.history["gate"] == [1.0, 0.0]
    assert any(p.is_file() for p in (tmp_path / "tb").rglob("*"))


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(4, activation="tanh")
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))


def test_subclassed_model_built_inside_fit():
    x, y = linear_data(16)
    keras.utils.set_random_seed(0)
    model = Subclassed()
    model.compile(keras.optimizers.Adam(0.01), loss="mse")
    assert not model.built
    snapshot = {}

    def only_output(m):
        snapshot.update({v.path: v.numpy().copy() for v in m.trainable_variables})
        return [m.out.kernel, m.out.bias]

    cb = LoopController({"head": {"cond": always, True: {"variables": only_output}}})
    fit(model, x, y, [cb], epochs=2, batch_size=8)
    out_paths = {model.out.kernel.path, model.out.bias.path}
    for v in model.trainable_variables:
        same = np.array_equal(v.numpy(), snapshot[v.path])
        assert same == (v.path not in out_paths), v.path


def test_functional_multi_output_model_matches_plain_fit():
    x, y = linear_data(32)
    y2 = (x[:, :1] ** 2).astype("float32")

    def build(loss=("mse", "mae"), loss_weights=(1.0, 0.5)):
        keras.utils.set_random_seed(0)
        inp = keras.Input((3,))
        h = keras.layers.Dense(6, activation="relu")(inp)
        model = keras.Model(inp, [keras.layers.Dense(1, name="a")(h),
                                  keras.layers.Dense(1, name="b")(h)])
        model.compile(keras.optimizers.SGD(0.05), loss=list(loss),
                      loss_weights=None if loss_weights is None else list(loss_weights))
        return model

    # the compiled loss: exactly plain fit, per-output logs included
    plain, model = build(), build()
    h_plain = fit(plain, x, [y, y2], [], epochs=2, batch_size=8)
    h = fit(model, x, [y, y2], [LoopController({"all": {"cond": always, True: {}}})],
            epochs=2, batch_size=8)
    for a, b in zip(plain.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for key, value in h_plain.history.items():
        np.testing.assert_allclose(h.history[key], value, rtol=1e-5, err_msg=key)

    # a branch loss applies per output and sums, like compile(loss=[...]) does
    for branch_loss, compiled in (("mse", ("mse", "mse")), (["mae", "mse"], ("mae", "mse"))):
        plain = build(loss=compiled, loss_weights=None)
        model = build(loss=("mae", "mae"), loss_weights=None)
        fit(plain, x, [y, y2], [], epochs=1, batch_size=8)
        fit(model, x, [y, y2],
            [LoopController({"own": {"cond": always, True: {"loss": branch_loss}}})],
            epochs=1, batch_size=8)
        for a, b in zip(plain.get_weights(), model.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_steps_per_execution_coarsens_the_granularity():
    x, y = linear_data(40)
    model = linear_model()
    model.compile(keras.optimizers.SGD(0.1), loss="mse", steps_per_execution=2)
    cb = LoopController({"gate": {"cond": lambda cb: cb.batches % 4 == 0,
                                  True: {"variables": kernel_of},
                                  False: {"variables": bias_of}}})
    fit(model, x, y, [cb], epochs=1, batch_size=4)
    assert cb.batches == 10
    np.testing.assert_array_equal(cb.history["batch"], [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(cb.history["gate"], [1, 0, 1, 0, 1])
    assert int(model.optimizer.iterations) == 10


def test_verbose_reports_state_changes_and_async_actions(capsys):
    x, y = linear_data(16)
    cb = LoopController({"gate": {"cond": even_epoch, True: {}, False: {}}},
                        {"stop": {"cond": lambda cb: cb.epochs == 2,
                                  "callback": lambda cb: setattr(cb.model, "stop_training", True)}},
                        verbose=1)
    fit(linear_model(), x, y, [cb], epochs=5)
    out = capsys.readouterr().out
    assert "gate True" in out and "gate True -> False" in out
    assert "async action 'stop'" in out
    fit(linear_model(), x, y, [LoopController({"gate": {"cond": even_epoch, True: {}}})],
        epochs=2)
    assert "LoopController" not in capsys.readouterr().out


@pytest.mark.parametrize("returned", [None, "False", 0, 1, 0.0, [True], np.array([True, False])])
@pytest.mark.parametrize("kind", ["action", "async action"])
def test_a_cond_that_does_not_return_a_bool_is_a_type_error_naming_the_action(returned, kind):
    """A forgotten `return` (None) is not False and the string "False" is not True: a
    cond must return a bool, and training stops before that batch or epoch ends."""
    x, y = linear_data(8)
    model = linear_model()
    before = [w.copy() for w in model.get_weights()]
    cond = lambda cb: returned  # noqa: E731
    if kind == "action":
        cb = LoopController({"bias": {"cond": cond, True: {"variables": bias_of}}})
    else:
        cb = LoopController({"all": {"cond": always, True: {}}},
                            async_config={"bias": {"cond": cond, "model": lambda m: None}})
    with pytest.raises(TypeError, match=rf"'cond' of LoopController {kind} 'bias' returned"):
        fit(model, x, y, [cb], epochs=1, batch_size=8)
    if kind == "action":  # rejected before the first step
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("returned", [True, np.bool_(False), np.array(True),
                                      tf.constant(False), tf.constant(True)])
def test_python_numpy_and_scalar_tensor_bools_are_conds(returned):
    x, y = linear_data(8)
    model = linear_model()
    cb = LoopController({"bias": {"cond": lambda cb: returned, True: {"variables": bias_of}}})
    fit(model, x, y, [cb], epochs=1, batch_size=4)
    assert cb.states == {"bias": bool(returned)}

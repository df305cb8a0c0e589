"""InExtrapolationEvaluation: its numbers against model.evaluate and NumPy, its logs as
seen by History, EarlyStopping and ModelCheckpoint, and its compiled evaluation."""
import keras
import numpy as np
import pytest

from tensorflow_kappa.callbacks import InExtrapolationEvaluation, LoopController
from tensorflow_kappa.layers import INALU


def _data(seed, n, low, high, dim=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, (n, dim)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] - x[:, 2:3]).astype("float32")
    return x, y


def _model(seed=0, regularized=False):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), INALU(2, sparsity_regularization=regularized),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mse"])
    return model


def test_logs_match_model_evaluate_and_numpy():
    train, interp, extrap = _data(0, 512, -2, 2), _data(1, 1000, -2, 2), _data(2, 777, 3, 5)
    model = _model(regularized=True)  # evaluate's loss then includes the regulariser
    cb = InExtrapolationEvaluation(interp, extrap, batch_size=128)  # several chunks
    history = model.fit(*train, batch_size=64, epochs=3, verbose=0, callbacks=[cb])
    assert len(history.history["interpolation_mse"]) == 3
    assert len(history.history["extrapolation_mse"]) == 3
    for name, (x, y) in [("interpolation_mse", interp), ("extrapolation_mse", extrap)]:
        logged = history.history[name][-1]
        reference = model.evaluate(x, y, batch_size=100, verbose=0, return_dict=True)
        np.testing.assert_allclose(logged, reference["mse"], rtol=1e-5)
        assert reference["loss"] > reference["mse"] + 1e-3  # not the regularised loss
        pred = model.predict(x, verbose=0).astype(np.float64)
        np.testing.assert_allclose(logged, np.mean((pred - y) ** 2), rtol=1e-6)
    assert cb.history["epoch"] == [0, 1, 2]
    assert cb.ext_results[2] == history.history["extrapolation_mse"][-1]
    assert cb.int_results[2] == history.history["interpolation_mse"][-1]
    # one compiled function, traced once for both sets (different n), not per epoch
    assert cb._function.experimental_get_tracing_count() == 1


def test_every_and_composition_with_keras_callbacks(tmp_path):
    train, interp, extrap = _data(0, 256, -2, 2), _data(1, 200, -2, 2), _data(2, 300, 3, 5)
    model = _model()
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(sorted(k for k in logs if k.endswith("_mse")))

    cb = InExtrapolationEvaluation(interp, extrap, every=2)
    model.fit(*train, batch_size=64, epochs=5, verbose=0, callbacks=[cb, Spy()])
    assert cb.history["epoch"] == [0, 2, 4]
    assert seen == [["extrapolation_mse", "interpolation_mse"], [],
                    ["extrapolation_mse", "interpolation_mse"], [],
                    ["extrapolation_mse", "interpolation_mse"]]

    # EarlyStopping and ModelCheckpoint see the keys (callback listed first).
    model = _model(1)
    path = str(tmp_path / "best.keras")
    stop = keras.callbacks.EarlyStopping(monitor="extrapolation_mse", mode="min",
                                         patience=0, min_delta=1e12)
    checkpoint = keras.callbacks.ModelCheckpoint(path, monitor="extrapolation_mse",
                                                 mode="min", save_best_only=True)
    history = model.fit(*train, batch_size=64, epochs=10, verbose=0,
                        callbacks=[InExtrapolationEvaluation(interp, extrap), stop, checkpoint])
    assert len(history.history["loss"]) == 2  # no epoch improves by 1e12: stop after one more
    assert stop.stopped_epoch == 1
    restored = keras.models.load_model(path)
    x, y = extrap
    np.testing.assert_allclose(np.mean((restored.predict(x, verbose=0) - y) ** 2),
                               min(history.history["extrapolation_mse"]), rtol=1e-5)


def test_works_next_to_the_loop_controller():
    train, interp, extrap = _data(0, 256, -2, 2), _data(1, 200, -2, 2), _data(2, 300, 3, 5)
    model = _model()

    def gates(m):
        return [layer.g for layer in m.layers if isinstance(layer, INALU)]

    controller = LoopController({"gate": {"cond": lambda cb: cb.batches % 2 == 0,
                                          True: {"excluded_variables": gates},
                                          False: {"variables": gates}}})
    cb = InExtrapolationEvaluation(interp, extrap)
    history = model.fit(*train, batch_size=64, epochs=2, verbose=0, callbacks=[cb, controller])
    x, y = extrap
    np.testing.assert_allclose(history.history["extrapolation_mse"][-1],
                               np.mean((model.predict(x, verbose=0) - y) ** 2), rtol=1e-6)


def test_evaluate_outside_fit_and_bad_arguments():
    interp, extrap = _data(1, 50, -2, 2), _data(2, 60, 3, 5)
    cb = InExtrapolationEvaluation(interp, (extrap[0], extrap[1][:, 0]))  # 1-D y accepted
    with pytest.raises(RuntimeError, match="set_model"):
        cb.evaluate()
    model = _model()
    cb.set_model(model)
    out = cb.evaluate()
    x, y = extrap
    np.testing.assert_allclose(out["extrapolation_mse"],
                               np.mean((model.predict(x, verbose=0) - y) ** 2), rtol=1e-6)
    with pytest.raises(ValueError, match="every"):
        InExtrapolationEvaluation(interp, extrap, every=0)
    with pytest.raises(ValueError, match="same number of rows"):
        InExtrapolationEvaluation(interp, (extrap[0], extrap[1][:5]))
    with pytest.raises(ValueError, match="pair"):
        InExtrapolationEvaluation(interp, extrap[0])
    with pytest.raises(ValueError, match="names"):
        InExtrapolationEvaluation(interp, extrap, names=("a", "a"))


def test_data_of_the_wrong_width_fails_before_the_first_epoch():
    """Found at on_train_begin, not after an epoch of training."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    before = [w.copy() for w in model.get_weights()]
    evaluation = InExtrapolationEvaluation((np.zeros((4, 3)), np.zeros(4)),
                                           (np.zeros((4, 2)), np.zeros(4)))
    with pytest.raises(ValueError, match=r"extrapolation_data: x has rows of shape \(2,\)"):
        model.fit(np.zeros((8, 3)), np.zeros(8), epochs=1, verbose=0, callbacks=[evaluation])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)

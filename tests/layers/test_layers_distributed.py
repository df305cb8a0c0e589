"""NALM layers under tf.distribute.MirroredStrategy over the two logical CPUs (see conftest)."""
import keras
import numpy as np

from tensorflow_kappa.layers import INALU, NALU, NAU, NMU, gate_variables


def _model():
    inputs = keras.Input((4,))
    hidden = INALU(3, name="inalu")(inputs)
    hidden = keras.layers.Dense(3, name="dense")(hidden)
    hidden = NALU(2, name="nalu")(hidden)
    hidden = NAU(2, name="nau", warmup_start=0, warmup_end=4)(hidden)
    outputs = NMU(1, name="nmu", warmup_start=0, warmup_end=4)(hidden)
    return keras.Model(inputs, outputs)


def test_training_under_mirrored_strategy_matches_one_device(mirrored_strategy):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (128, 4)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] - x[:, 2:3]).astype("float32")

    keras.utils.set_random_seed(7)
    single = _model()
    initial = single.get_weights()
    single.compile(optimizer=keras.optimizers.SGD(0.005), loss="mse")
    single.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)

    strategy = mirrored_strategy
    with strategy.scope():
        mirrored = _model()
        mirrored.set_weights(initial)
        mirrored.compile(optimizer=keras.optimizers.SGD(0.005), loss="mse")
        assert len(gate_variables(mirrored)) == 2
    history = mirrored.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)

    assert all(np.isfinite(history.history["loss"]))
    moved = max(np.abs(a - b).max() for a, b in zip(single.get_weights(), initial))
    assert moved > 1e-3  # training did something, with every regulariser on
    for a, b in zip(single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    # The warm-up counters advanced once per global step (8 = 2 epochs × 4 batches).
    for name in ("nau", "nmu"):
        assert int(mirrored.get_layer(name).regularization_step.numpy()) == 8
    np.testing.assert_allclose(mirrored.predict(x, verbose=0), single.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)


def test_reinitialize_and_read_out_under_strategy_scope(mirrored_strategy):
    strategy = mirrored_strategy
    with strategy.scope():
        model = keras.Sequential([keras.Input((2,)), INALU(2), INALU(1)])
        before = [w.numpy().copy() for w in model.weights]
        for layer in model.layers:
            layer.reinitialize()
    after = [w.numpy() for w in model.weights]
    assert all(not np.allclose(a, b) for a, b in zip(before, after))
    assert len(model.layers[0].explain()) == 2

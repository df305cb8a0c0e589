"""NAU and NMU (Madsen & Johansen 2020): forward, regulariser with warm-up, constraint, state."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from references import nalm as ref
from tensorflow_kappa.layers import NAU, NMU


def _set_w(layer, w):
    layer.w.assign(np.asarray(w, layer.w.dtype))


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-12)])
def test_nau_forward_matches_reference(dtype, rtol):
    rng = np.random.default_rng(0)
    x = ref.hard_inputs(rng, 64, 5)
    layer = NAU(3, dtype=dtype)
    layer.build((None, 5))
    w = rng.uniform(-1.3, 1.3, (5, 3))  # some outside [−1, 1]: the forward pass clamps
    _set_w(layer, w)
    out = layer(x.astype(dtype)).numpy()
    expected = ref.nau(x, w)
    scale = np.abs(x).sum(-1, keepdims=True) + 1
    np.testing.assert_array_less(np.abs(out - expected), rtol * np.broadcast_to(scale, out.shape))


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-12)])
def test_nmu_forward_matches_reference(dtype, rtol):
    rng = np.random.default_rng(1)
    x = ref.hard_inputs(rng, 64, 4)
    x[x > 1e3] = 1e3  # keep products of four inputs inside float32
    x[x < -1e3] = -1e3
    layer = NMU(3, dtype=dtype)
    layer.build((None, 4))
    w = rng.uniform(-0.2, 1.2, (4, 3))
    _set_w(layer, w)
    out = layer(x.astype(dtype)).numpy()
    expected = ref.nmu(x, w)
    wc = np.clip(w, 0.0, 1.0)  # rounding bound: the product of the factors' magnitudes
    scale = np.prod(wc * np.abs(x)[:, :, None] + (1.0 - wc), axis=1)
    np.testing.assert_array_less(np.abs(out - expected), rtol * (scale + 1.0))


def test_nmu_product_with_large_and_zero_inputs_and_finite_gradients():
    layer = NMU(2)
    layer.build((None, 2))
    _set_w(layer, [[1.0, 0.5], [1.0, 1.0]])
    x = tf.constant([[1e6, 1e6], [0.0, 5.0], [-1e6, 0.0], [0.0, 0.0]], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y)
    expected = ref.nmu(x.numpy(), layer.w.numpy())
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
    for g in tape.gradient(loss, [x, layer.w]):
        assert np.all(np.isfinite(g.numpy()))


@pytest.mark.parametrize("cls, reference", [(NAU, ref.nau_regularizer), (NMU, ref.nmu_regularizer)])
@pytest.mark.parametrize("step", [0, 5, 12, 20, 40])
def test_regularizer_with_linear_warmup_matches_reference(cls, reference, step):
    rng = np.random.default_rng(step)
    layer = cls(3, regularization_scale=2.5, warmup_start=10, warmup_end=30)
    model = keras.Sequential([keras.Input((4,)), layer])
    w = rng.uniform(-1.0, 1.0, (4, 3))
    _set_w(layer, w)
    layer.regularization_step.assign(step)
    model(np.ones((2, 4), "float32"))  # inference: the step does not move
    assert int(layer.regularization_step.numpy()) == step
    expected = reference(w, step, 2.5, 10, 30)
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(model.losses[0]), expected, rtol=1e-5, atol=1e-8)
    if 10 < step < 30:
        assert expected > 0


def test_warmup_with_equal_start_and_end_is_a_step():
    layer = NAU(2, regularization_scale=1.0, warmup_start=3, warmup_end=3)
    layer.build((None, 2))
    _set_w(layer, [[0.5, 0.25], [0.75, -0.5]])
    for step, on in [(2, 0.0), (3, 1.0), (9, 1.0)]:
        layer.regularization_step.assign(step)
        layer(np.ones((1, 2), "float32"))
        np.testing.assert_allclose(float(layer.losses[0]), on * np.mean([0.5, 0.25, 0.25, 0.5]))


def test_regularizer_can_be_switched_off():
    layer = NMU(2, sparsity_regularization=False, warmup_start=0, warmup_end=0)
    layer(np.ones((1, 3), "float32"))
    assert layer.losses == []


def test_step_counter_advances_once_per_training_step_and_stays_untrainable():
    layer = NAU(2, warmup_start=0, warmup_end=100)
    model = keras.Sequential([keras.Input((3,)), layer])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((40, 3), "float32")
    model.fit(x, np.ones((40, 2), "float32"), batch_size=8, epochs=2, verbose=0)
    assert int(layer.regularization_step.numpy()) == 10
    model.predict(x, verbose=0)
    model.evaluate(x, np.ones((40, 2), "float32"), verbose=0)
    assert int(layer.regularization_step.numpy()) == 10
    assert all(v is not layer.regularization_step for v in model.trainable_variables)
    assert any(v is layer.regularization_step for v in model.non_trainable_variables)
    layer.reinitialize()
    assert int(layer.regularization_step.numpy()) == 0


@pytest.mark.parametrize("cls, low, high", [(NAU, -1.0, 1.0), (NMU, 0.0, 1.0)])
def test_constraint_clamps_weights_after_each_update(cls, low, high):
    layer = cls(1, sparsity_regularization=False)
    model = keras.Sequential([keras.Input((2,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(100.0), loss="mse")
    x = np.array([[2.0, 3.0]] * 4, "float32")  # NMU output is constant at x = 1
    model.fit(x, np.full((4, 1), 1e4, "float32"), verbose=0)
    assert np.all(layer.w.numpy() == high)
    model.fit(x, np.full((4, 1), -1e4, "float32"), verbose=0)
    assert np.all(layer.w.numpy() >= low) and np.any(layer.w.numpy() < high)


def test_default_initializers():
    keras.utils.set_random_seed(0)
    nau = NAU(200); nau.build((None, 100))
    r = np.sqrt(6.0 / 300)
    w = nau.w.numpy()
    assert np.abs(w).max() <= r and abs(w.std() - r / np.sqrt(3)) < 0.02 * r
    # I + O = 22 < 24: √(6 / 22) > 0.5, so r is capped at 0.5 (600 draws from 5 layers).
    draws = []
    for _ in range(5):
        capped = NAU(12); capped.build((None, 10))
        draws.append(capped.w.numpy().ravel())
    draws = np.concatenate(draws)
    assert np.abs(draws).max() <= 0.5 and np.abs(draws).max() > 0.49
    assert abs(draws.std() - 0.5 / np.sqrt(3)) < 5 * 0.5 / np.sqrt(3) / np.sqrt(2 * draws.size)
    nmu = NMU(200); nmu.build((None, 100))
    for _ in range(2):  # as built, then redrawn from the same distribution
        w = nmu.w.numpy()
        assert w.min() >= 0.25 and w.max() <= 0.75
        assert abs(w.mean() - 0.5) < 0.005 and abs(w.std() - 0.5 / np.sqrt(12)) < 0.005
        nmu.reinitialize()

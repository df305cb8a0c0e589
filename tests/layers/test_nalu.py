"""NALU, NAC and NACMultiplicative against float64 NumPy references of Trask et al.'s equations."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from references import nalm as ref
from tensorflow_kappa.layers import NAC, NALU, NACMultiplicative


def _assign_random(layer, rng, scale=1.5):
    values = {}
    for var in layer.weights:
        values[var.name] = rng.normal(0.0, scale, var.shape)
        var.assign(values[var.name].astype(var.dtype))
    return values


def _moderate_inputs(rng, rows, cols):
    """Zeros, negatives, tiny values and 1e6, with at most one 1e6 per row for NALU's
    unclipped exponent (several 1e6 inputs with W ≈ 1 overflow float32, as in the paper)."""
    x = rng.uniform(-5.0, 5.0, (rows, cols))
    x[0] = 0.0
    x[1, 0], x[2, 1], x[3, 2] = 1e6, -1e6, 1e-7
    x[4, :2] = [-3e-8, 0.0]
    return x


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-4), ("float64", 1e-10)])
def test_nalu_forward_matches_reference(dtype, rtol):
    rng = np.random.default_rng(0)
    x = _moderate_inputs(rng, 48, 3)
    layer = NALU(4, dtype=dtype)
    layer.build((None, 3))
    v = _assign_random(layer, rng, scale=1.0)
    # Scale G down so that the input-dependent gate is not saturated on most rows.
    v["g"] = v["g"] * 0.1
    layer.g.assign(v["g"].astype(dtype))
    expected = ref.nalu(x, v["w_hat"], v["m_hat"], v["g"])
    gates = ref.sigmoid(x @ v["g"])
    assert np.mean((gates > 0.05) & (gates < 0.95)) > 0.5
    out = layer(x.astype(dtype)).numpy()
    scale = np.abs(x).sum(-1, keepdims=True) + np.abs(expected).max(-1, keepdims=True) + 1
    np.testing.assert_array_less(np.abs(out - expected), rtol * np.broadcast_to(scale, out.shape))


def test_nalu_uses_abs_plus_epsilon_not_max():
    layer = NALU(1, epsilon=1e-3, dtype="float64")
    layer.build((None, 1))
    layer.w_hat.assign([[40.0]]); layer.m_hat.assign([[40.0]])  # W = 1
    layer.g.assign([[0.0]])  # gate 1/2
    out = layer(np.array([[0.0], [-2e-3]])).numpy()[:, 0]
    # a = x; m = |x| + ε; y = (a + m) / 2
    np.testing.assert_allclose(out, [0.5 * 1e-3, 0.5 * (-2e-3 + 3e-3)], rtol=1e-12)


def test_nac_and_multiplicative_nac_match_reference():
    rng = np.random.default_rng(1)
    x = _moderate_inputs(rng, 32, 3)
    nac = NAC(2, dtype="float64"); nac.build((None, 3))
    v = _assign_random(nac, rng)
    np.testing.assert_allclose(nac(x).numpy(), ref.nac(x, v["w_hat"], v["m_hat"]), rtol=1e-12, atol=1e-9)
    mul = NACMultiplicative(2, dtype="float64"); mul.build((None, 3))
    v = _assign_random(mul, rng)
    np.testing.assert_allclose(mul(x).numpy(), ref.nac_multiplicative(x, v["w_hat"], v["m_hat"]),
                               rtol=1e-10)


@pytest.mark.parametrize("cls", [NALU, NAC, NACMultiplicative])
def test_gradients_are_finite(cls):
    rng = np.random.default_rng(2)
    x = tf.constant(_moderate_inputs(rng, 32, 3).astype("float32"))
    layer = cls(2)
    layer.build((None, 3))
    _assign_random(layer, rng, scale=1.0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_mean(y)
    grads = tape.gradient(loss, [x] + layer.trainable_variables)
    assert np.all(np.isfinite(y.numpy()))
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_weight_names_and_gate_variable():
    layer = NALU(3)
    layer.build((None, 5))
    assert [w.name for w in layer.weights] == ["w_hat", "m_hat", "g"]
    assert layer.g.shape == (5, 3)
    nac = NAC(3)
    nac.build((None, 5))
    assert [w.name for w in nac.weights] == ["w_hat", "m_hat"]


def test_default_initializers_are_glorot_uniform():
    keras.utils.set_random_seed(0)
    layer = NALU(200)
    layer.build((None, 100))
    limit = np.sqrt(6.0 / 300)
    for w in layer.weights:
        values = w.numpy()
        assert np.abs(values).max() <= limit
        assert abs(values.std() - limit / np.sqrt(3)) < 0.02 * limit

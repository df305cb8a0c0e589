"""INALU: forward pass, regulariser, gradients, initialisers and init families, config,
saving, bad input."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from references import nalm as ref
from tensorflow_kappa.layers import INALU
from tensorflow_kappa.layers.inalu import INIT_FAMILIES, draw_initial_weights


def _set_random_weights(layer, rng, spread=1.5, gate_spread=1.0):
    """Random raw weights that keep both paths and the gate away from saturation."""
    values = {}
    for var in layer.weights:
        scale = gate_spread if var.name == "g" else spread
        values[var.name] = rng.normal(0.0, scale, var.shape)
        var.assign(values[var.name].astype(var.dtype))
    return values


def _row_scale(x, out):
    """Per-row magnitude to compare float32 results against (inputs reach 1e6)."""
    scale = np.abs(x).sum(-1, keepdims=True) + np.abs(out).max(-1, keepdims=True) + 1.0
    return np.broadcast_to(scale, out.shape)


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-4), ("float64", 1e-10)])
def test_forward_matches_numpy_reference(dtype, rtol):
    rng = np.random.default_rng(0)
    x = ref.hard_inputs(rng, 64, 5)
    layer = INALU(4, dtype=dtype)
    layer.build((None, 5))
    v = _set_random_weights(layer, rng)
    expected = ref.inalu(x, v["w_hat_a"], v["m_hat_a"], v["w_hat_m"], v["m_hat_m"], v["g"])
    out = layer(x.astype(dtype)).numpy()
    assert out.dtype == np.dtype(dtype)
    gates = ref.sigmoid(v["g"])
    assert np.all((gates > 0.05) & (gates < 0.95)), "both paths must be active"
    np.testing.assert_array_less(np.abs(out - expected), rtol * _row_scale(x, expected))


def test_forward_with_shared_weights():
    rng = np.random.default_rng(1)
    x = ref.hard_inputs(rng, 32, 3)
    layer = INALU(2, share_weights=True, dtype="float64")
    layer.build((None, 3))
    assert sorted(w.name for w in layer.weights) == ["g", "m_hat", "w_hat"]
    v = _set_random_weights(layer, rng)
    expected = ref.inalu(x, v["w_hat"], v["m_hat"], v["w_hat"], v["m_hat"], v["g"])
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-10, atol=1e-10)


def test_forward_on_higher_rank_inputs():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 3, (4, 6, 3))
    layer = INALU(2, dtype="float64")
    v = None
    layer.build((None, 6, 3))
    v = _set_random_weights(layer, rng)
    out = layer(x).numpy()
    assert out.shape == (4, 6, 2) == layer.compute_output_shape((4, 6, 3))
    expected = ref.inalu(x.reshape(-1, 3), v["w_hat_a"], v["m_hat_a"], v["w_hat_m"],
                         v["m_hat_m"], v["g"]).reshape(4, 6, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)


def test_omega_clip_and_epsilon_floor_are_the_authors():
    """Inputs where clip(·, ω) and max(|x|, ε) (not |x| + ε) change the result."""
    layer = INALU(1, dtype="float64", omega=5.0, epsilon=1e-3)
    layer.build((None, 2))
    big = 40.0  # tanh(40) = σ(40) = 1 in float64: W_M = 1 exactly
    layer.w_hat_m.assign(np.full((2, 1), big)); layer.m_hat_m.assign(np.full((2, 1), big))
    layer.w_hat_a.assign(np.zeros((2, 1))); layer.m_hat_a.assign(np.zeros((2, 1)))
    layer.g.assign(np.array([-40.0]))  # multiplicative path only
    x = np.array([[20.0, 30.0], [1e-3, 2.0], [-4.0, 5e-4], [0.0, 3.0]])
    out = layer(x).numpy()[:, 0]
    w = ref.nac_weight(big, big)
    assert w == 1.0
    expected = np.array([
        np.exp(5.0),                       # 20 * 30 = 600 > e^5: clipped
        np.exp(w * np.log(1e-3) + w * np.log(2.0)),
        -np.exp(w * np.log(4.0) + w * np.log(1e-3)),  # |x| = 5e-4 floored to ε = 1e-3
        0.0,                               # msv = 1 − |W| = 0 at x = 0 (W = 1)
    ])
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)
    assert abs(out[2] - (-4.0 * (5e-4 + 1e-3))) > 1e-4  # not the |x| + ε variant


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients_are_finite_on_hard_inputs(dtype):
    rng = np.random.default_rng(3)
    x = tf.constant(ref.hard_inputs(rng, 64, 4).astype(dtype))
    layer = INALU(3, dtype=dtype)
    layer.build((None, 4))
    _set_random_weights(layer, rng)
    # One output column with |W_M| = 1 exactly: a msv factor is exactly 0 at x = 0.
    w_hat_m = layer.w_hat_m.numpy(); w_hat_m[:, 0] = 30.0; layer.w_hat_m.assign(w_hat_m)
    m_hat_m = layer.m_hat_m.numpy(); m_hat_m[:, 0] = 40.0; layer.m_hat_m.assign(m_hat_m)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_mean(y) + tf.cast(tf.add_n(layer.losses), dtype)
    grads = tape.gradient(loss, [x] + layer.trainable_variables)
    assert np.all(np.isfinite(y.numpy()))
    for g in grads:
        assert g is not None
        assert np.all(np.isfinite(g.numpy()))


def test_regularizer_matches_numpy_and_reaches_model_losses():
    rng = np.random.default_rng(4)
    layer = INALU(3, t=7.0)
    model = keras.Sequential([keras.Input((4,)), layer, keras.layers.Dense(1)])
    # Spread beyond ±t so that the max(·, 0) cut-off matters for some entries.
    values = {}
    for var in layer.weights:
        values[var.name] = rng.normal(0.0, 8.0, var.shape)
        var.assign(values[var.name].astype("float32"))
    model(np.ones((2, 4), "float32"))
    expected = ref.inalu_regularizer([values[n] for n in
                                      ("w_hat_a", "m_hat_a", "w_hat_m", "m_hat_m", "g")], t=7.0)
    assert any(np.abs(values["w_hat_a"]).ravel() > 7.0)
    assert len(layer.losses) == 1 and len(model.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(model.losses[0]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(layer.sparsity_loss()), expected, rtol=1e-5)


def test_regularizer_with_shared_weights_covers_one_pair():
    rng = np.random.default_rng(5)
    layer = INALU(2, share_weights=True)
    layer.build((None, 3))
    v = _set_random_weights(layer, rng, spread=10.0, gate_spread=10.0)
    layer(np.ones((1, 3), "float32"))
    expected = ref.inalu_regularizer([v["w_hat"], v["m_hat"], v["g"]], t=20.0)
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=1e-5)


def test_regularizer_can_be_switched_off():
    layer = INALU(2, sparsity_regularization=False)
    model = keras.Sequential([keras.Input((3,)), layer])
    model(np.ones((2, 3), "float32"))
    assert layer.losses == [] and model.losses == []


def test_regularizer_is_in_floatx_for_a_float64_layer_in_a_float32_model():
    model = keras.Sequential([keras.Input((3,)), INALU(2, dtype="float64"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(np.ones((8, 3), "float32"), np.ones((8, 1), "float32"), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model(np.ones((1, 3), "float32"))
    assert model.losses[0].dtype == keras.config.floatx()


def test_default_initializers_statistics():
    keras.utils.set_random_seed(11)
    layer = INALU(500)
    layer.build((None, 40))  # 20 000 entries per matrix, 500 gates
    for name, mean in [("w_hat_a", 1.0), ("w_hat_m", 1.0), ("m_hat_a", -1.0), ("m_hat_m", -1.0)]:
        w = getattr(layer, name).numpy()
        assert abs(w.mean() - mean) < 5 * 0.1 / np.sqrt(w.size), name
        assert abs(w.std() - 0.1) < 5 * 0.1 / np.sqrt(2 * w.size), name
    g = layer.g.numpy()
    assert g.shape == (500,)
    assert abs(g.mean()) < 5 * 0.1 / np.sqrt(g.size)
    assert abs(g.std() - 0.1) < 5 * 0.1 / np.sqrt(2 * g.size)
    # The two paths get independent draws, not one draw twice.
    assert not np.allclose(layer.w_hat_a.numpy(), layer.w_hat_m.numpy())


def test_seeded_builds_are_reproducible():
    keras.utils.set_random_seed(3)
    a = INALU(3); a.build((None, 2))
    keras.utils.set_random_seed(3)
    b = INALU(3); b.build((None, 2))
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())


def test_reinitialize_redraws_every_weight_from_its_initializer():
    keras.utils.set_random_seed(12)
    layer = INALU(400, g_initializer=keras.initializers.RandomNormal(5.0, 0.2))
    layer.build((None, 50))
    before = {w.name: w.numpy().copy() for w in layer.weights}
    for w in layer.weights:
        w.assign(np.full(w.shape, 123.0, "float32"))
    layer.reinitialize()
    for w in layer.weights:
        now = w.numpy()
        assert not np.any(now == 123.0), w.name
        assert not np.allclose(now, before[w.name]), f"{w.name} was not redrawn"
        mean = {"g": 5.0, "w_hat_a": 1.0, "w_hat_m": 1.0}.get(w.name, -1.0)
        std = 0.2 if w.name == "g" else 0.1
        assert abs(now.mean() - mean) < 5 * std / np.sqrt(now.size), w.name
        assert abs(now.std() - std) < 5 * std / np.sqrt(2 * now.size), w.name


def test_gate_variable_is_layer_g():
    layer = INALU(3)
    layer.build((None, 4))
    assert layer.g.shape == (3,)
    assert layer.g.trainable and layer.g.name == "g"
    assert sorted(w.name for w in layer.trainable_variables) == sorted(
        ["w_hat_a", "m_hat_a", "w_hat_m", "m_hat_m", "g"])


def test_config_carries_the_initializers():
    layer = INALU(3, share_weights=True,
                  m_hat_initializer=keras.initializers.RandomNormal(-2.0, 0.5, seed=4))
    clone = INALU.from_config(json.loads(json.dumps(layer.get_config())))
    clone.build((None, 4))
    assert abs(clone.m_hat.numpy().mean() + 2.0) < 0.5


def test_unknown_last_dimension_is_rejected():
    with pytest.raises(ValueError, match="last input dimension"):
        INALU(2).build((None, None))


def _moments_match(values, mean, std, what):
    """Sample mean and standard deviation of ``values`` against N(mean, std), 5 sigma."""
    values = np.asarray(values, np.float64).ravel()
    n = values.size
    assert abs(values.mean() - mean) < 5 * std / np.sqrt(n), (what, values.mean(), mean)
    assert abs(values.std() - std) < 5 * std / np.sqrt(2 * n), (what, values.std(), std)


def _signs_are_fair_coins(values, what):
    """Each sign is + or - with probability 1/2: the count of negatives within 5 sigma."""
    values = np.asarray(values).ravel()
    negatives = int(np.sum(values < 0))
    assert abs(negatives - values.size / 2) < 5 * np.sqrt(values.size / 4), (what, negatives)


@pytest.mark.parametrize("family", INIT_FAMILIES)
@pytest.mark.parametrize("output_layer", [False, True])
def test_reinitialize_draws_each_family_from_its_distribution(family, output_layer):
    layer = INALU(400)
    layer.build((None, 50))
    layer.reinitialize(family, rng=np.random.default_rng(7), output_layer=output_layer)
    signed = family != "published"
    w_hat_a = layer.w_hat_a.numpy()
    if signed:  # ±|N(1, .1)|: N(1, .1) magnitudes, signs fair and independent of them
        _moments_match(np.abs(w_hat_a), 1.0, 0.1, "|w_hat_a|")
        _signs_are_fair_coins(w_hat_a, "w_hat_a")
        large = np.abs(w_hat_a) > 1.0
        _signs_are_fair_coins(w_hat_a[large], "w_hat_a above 1")
        _signs_are_fair_coins(w_hat_a[~large], "w_hat_a below 1")
    else:
        _moments_match(w_hat_a, 1.0, 0.1, "w_hat_a")
        assert np.all(w_hat_a > 0)
    _moments_match(layer.w_hat_m.numpy(), 1.0, 0.1, "w_hat_m")
    assert np.all(layer.w_hat_m.numpy() > 0)  # the multiplicative path keeps its signs
    for name in ("m_hat_a", "m_hat_m"):
        _moments_match(getattr(layer, name).numpy(), -1.0, 0.1, name)
    gate_mean = 2.0 if family == "lastadd_signed" and output_layer else 0.0
    _moments_match(layer.g.numpy(), gate_mean, 0.1, "g")


def test_reinitialize_with_a_generator_is_reproducible_and_what_the_stack_draw_gives():
    def stack():
        keras.utils.set_random_seed(0)
        return [INALU(3), INALU(2), INALU(1)], [7, 3, 2]

    layers, fan_in = stack()
    for layer, inputs in zip(layers, fan_in):
        layer.build((None, inputs))
    rng = np.random.default_rng(11)
    for k, layer in enumerate(layers):  # one generator through the stack, last = output
        layer.reinitialize("lastadd_signed", rng, output_layer=k == 2)
    shapes = [{name: tuple(getattr(layer, name).shape) for name in
               ("w_hat_a", "m_hat_a", "w_hat_m", "m_hat_m", "g")} for layer in layers]
    expected = draw_initial_weights("lastadd_signed", np.random.default_rng(11), shapes)
    for layer, values in zip(layers, expected):
        for name, value in values.items():
            np.testing.assert_array_equal(getattr(layer, name).numpy(), value)
    again = draw_initial_weights("lastadd_signed", np.random.default_rng(11), shapes)
    for a, b in zip(expected, again):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    other = draw_initial_weights("lastadd_signed", np.random.default_rng(12), shapes)
    assert not np.array_equal(other[0]["w_hat_a"], expected[0]["w_hat_a"])


def test_reinitialize_of_shared_weights_and_float64():
    layer = INALU(300, share_weights=True, dtype="float64")
    layer.build((None, 40))
    layer.reinitialize("signed_a", np.random.default_rng(0), output_layer=True)
    assert layer.w_hat.dtype == "float64"
    _moments_match(layer.w_hat.numpy(), 1.0, 0.1, "w_hat")  # no separate add path
    _moments_match(layer.m_hat.numpy(), -1.0, 0.1, "m_hat")


def test_reinitialize_names_a_bad_family_and_needs_a_generator_for_the_others():
    layer = INALU(2)
    with pytest.raises(RuntimeError, match="not built"):
        layer.reinitialize("signed_a", np.random.default_rng(0))
    layer.build((None, 3))
    before = [w.numpy().copy() for w in layer.weights]
    with pytest.raises(ValueError, match="init family must be one of 'published', "
                                         "'signed_a', 'lastadd_signed', got 'zeros'"):
        layer.reinitialize("zeros", np.random.default_rng(0))
    with pytest.raises(ValueError, match="pass rng"):
        layer.reinitialize("signed_a")
    with pytest.raises(ValueError, match="rng must be None or a numpy.random.Generator"):
        layer.reinitialize("signed_a", rng=0)
    for w, b in zip(layer.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)

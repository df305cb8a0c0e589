"""quantize_model: Sequential and functional copies with Quantize layers, weights copied."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from references.fixed_point import quantize_reference, same_bits
from tensorflow_kappa.layers import Quantize
from tensorflow_kappa.quantization import FixedPoint, quantize_model
from tensorflow_kappa.quantization.quantize_model import SUPPORTED_LAYERS

RNG = np.random.default_rng(5)
ACT, ERR, INP = FixedPoint.parse("s8.4"), FixedPoint.parse("s10.8"), FixedPoint.parse("s8.5")


def _sequential():
    keras.utils.set_random_seed(1)
    L = keras.layers
    return keras.Sequential([
        keras.Input((6, 6, 2)),
        L.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
        L.BatchNormalization(name="bn"),
        L.MaxPooling2D(name="pool"),
        L.Flatten(name="flat"),
        L.Dropout(0.2, name="drop"),
        L.Dense(5, activation="tanh", name="dense"),
        L.Dense(3, name="out"),
    ], name="seq")


def _functional():
    keras.utils.set_random_seed(2)
    L = keras.layers
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = L.Dense(6, activation="relu", name="da")(a)
    g = L.EinsumDense("ab,bc->ac", output_shape=6, name="db")(b)
    s = L.Add(name="add")([h, g])
    c = L.Concatenate(name="cat")([s, a])
    return keras.Model([a, b], L.Dense(2, name="out")(c), name="func")


def _reference_forward(model, inputs, precision_layers):
    """The original model's layers applied by hand, outputs rounded where asked."""
    x = quantize_reference(inputs, INP)
    for layer in model.layers:
        x = layer(tf.constant(x), training=False).numpy()
        if layer.name in precision_layers:
            x = quantize_reference(x, ACT)
    return x


def test_sequential_copy_inserts_quantize_layers_and_copies_every_weight():
    model = _sequential()
    x = RNG.standard_normal((8, 6, 6, 2)).astype("float32")
    model.get_layer("bn").moving_mean.assign(RNG.standard_normal(4).astype("float32"))
    precision = {"input": {"value": INP}, "dense": {"activation": ACT, "error": ERR},
                 **{name: {"activation": ACT} for name in ("conv", "bn", "pool", "drop", "out")}}
    q = quantize_model(model, precision)
    assert isinstance(q, keras.Sequential)
    assert [layer.name for layer in q.layers] == [
        "input_quantize", "conv", "conv_quantize", "bn", "bn_quantize", "pool",
        "pool_quantize", "flat", "drop", "drop_quantize", "dense", "dense_quantize", "out",
        "out_quantize"]
    assert q.get_layer("dense_quantize").backward == ERR
    assert q.get_layer("conv_quantize").backward is None
    for layer in model.layers:
        for w, v in zip(layer.weights, q.get_layer(layer.name).weights):
            np.testing.assert_array_equal(w.numpy(), v.numpy())   # trainable and not
            assert w is not v
    got = q(x, training=False).numpy()
    want = _reference_forward(model, x, {"conv", "bn", "pool", "drop", "dense", "out"})
    assert same_bits(got, want)


def test_the_error_into_a_layer_output_is_rounded_to_its_error_format():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name="a"),
                              keras.layers.Dense(3, name="b")])
    q = quantize_model(model, {"a": {"error": ERR}})
    x = RNG.standard_normal((8, 4)).astype("float32")
    upstream = RNG.standard_normal((8, 3)).astype("float32")
    a = q.get_layer("a")
    with tf.GradientTape() as tape:
        y = q(x)
    grad_kernel, grad_bias = tape.gradient(y, [a.kernel, a.bias],
                                           output_gradients=tf.constant(upstream))
    error = quantize_reference(upstream @ q.get_layer("b").kernel.numpy().T, ERR)
    assert same_bits(grad_bias.numpy(), error.sum(axis=0))   # sums of grid values: exact
    np.testing.assert_allclose(grad_kernel.numpy(), x.T @ error, rtol=1e-6, atol=1e-7)
    assert not same_bits(error, upstream @ q.get_layer("b").kernel.numpy().T)


def test_functional_copy_with_two_inputs_and_merges():
    model = _functional()
    precision = {"input": {"value": INP}, "*": {"activation": ACT, "error": ERR}}
    q = quantize_model(model, precision)
    assert not isinstance(q, keras.Sequential)
    names = [layer.name for layer in q.layers]
    for layer in ("da", "db", "add", "cat", "out", "input"):
        assert f"{layer}_quantize" in names
    assert names.count("input_quantize") == 1      # one layer, called on each input
    xa = RNG.standard_normal((5, 4)).astype("float32")
    xb = RNG.standard_normal((5, 3)).astype("float32")
    for layer in model.layers[2:]:
        for w, v in zip(layer.weights, q.get_layer(layer.name).weights):
            np.testing.assert_array_equal(w.numpy(), v.numpy())
    qa, qb = quantize_reference(xa, INP), quantize_reference(xb, INP)
    L = {layer.name: layer for layer in model.layers}
    r = lambda t: quantize_reference(np.asarray(t), ACT)  # noqa: E731
    h = r(L["da"](qa))
    g = r(L["db"](qb))
    s = r(L["add"]([h, g]))
    c = r(L["cat"]([s, qa]))
    assert same_bits(q([xa, xb]).numpy(), r(L["out"](c)))


def test_quantized_copy_trains_with_fit():
    q = quantize_model(_sequential(), {"*": {"activation": "s12.8", "error": "s16.14"}})
    q.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    x = RNG.standard_normal((32, 6, 6, 2)).astype("float32")
    y = RNG.standard_normal((32, 3)).astype("float32")
    history = q.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


class Wobble(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


def test_unsupported_layers_are_named_in_a_clear_error():
    inputs = keras.Input((4, 3))
    h = keras.layers.LSTM(2, name="lstm")(inputs)
    h = Wobble(name="wobble")(h)
    model = keras.Model(inputs, keras.layers.Dense(1, name="d")(h))
    with pytest.raises(ValueError, match=r"'lstm' \(LSTM\), 'wobble' \(Wobble\)"):
        quantize_model(model, {"*": {"activation": "s8.4"}})
    q = quantize_model(model, {"*": {"activation": "s8.4"}}, allow=(keras.layers.LSTM, Wobble))
    assert "wobble_quantize" in [layer.name for layer in q.layers]


class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.d = keras.layers.Dense(2)

    def call(self, x):
        return self.d(x)


def test_subclassed_models_and_other_bad_input_are_clear_errors():
    net = Net()
    net(tf.zeros((1, 3)))
    with pytest.raises(ValueError, match="subclassed.*Quantize"):
        quantize_model(net, "s8.4")
    with pytest.raises(ValueError, match="keras.Model"):
        quantize_model(keras.layers.Dense(2), "s8.4")
    with pytest.raises(ValueError, match="no inputs"):
        quantize_model(keras.Sequential([keras.layers.Dense(2)]), "s8.4")
    with pytest.raises(ValueError, match=r"\['dnse'\]"):
        quantize_model(_sequential(), {"dnse": {"activation": "s8.4"}})
    with pytest.raises(ValueError, match="allow"):
        quantize_model(_sequential(), "s8.4", allow=("Dense",))
    taken = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="d"),
                              Quantize(name="d_quantize")])
    with pytest.raises(ValueError, match="already has a layer"):
        quantize_model(taken, {"d": {"activation": "s8.4"}}, allow=(Quantize,))


def test_integer_inputs_are_left_alone():
    inputs = keras.Input((5,), dtype="int32")
    model = keras.Model(inputs, keras.layers.Dense(1, name="d")(
        keras.layers.Flatten(name="f")(keras.layers.Embedding(10, 3, name="emb")(inputs))))
    q = quantize_model(model, "s8.4")
    assert "input_quantize" not in [layer.name for layer in q.layers]
    out = q(np.arange(5)[None]).numpy()
    assert np.array_equal(out * 16, np.round(out * 16))


def test_supported_layers_are_layer_classes():
    assert all(issubclass(cls, keras.layers.Layer) for cls in SUPPORTED_LAYERS)
    assert keras.layers.Dense in SUPPORTED_LAYERS and keras.layers.Conv2D in SUPPORTED_LAYERS


def test_conv1d_activation_and_global_pooling_layers():
    keras.utils.set_random_seed(3)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((8, 2)), L.Conv1D(3, 3, name="c1"), L.Activation("relu", name="act"),
        L.AveragePooling1D(2, name="avg"), L.GlobalMaxPooling1D(name="gmax"), L.Dense(2, name="out"),
    ])
    names = ("c1", "act", "avg", "gmax", "out")
    precision = {"input": {"value": INP}, **{n: {"activation": ACT} for n in names}}
    q = quantize_model(model, precision)
    assert [layer.name for layer in q.layers] == ["input_quantize"] + [
        n for name in names for n in (name, f"{name}_quantize")]
    x = RNG.standard_normal((5, 8, 2)).astype("float32")
    assert same_bits(q(x, training=False).numpy(), _reference_forward(model, x, set(names)))

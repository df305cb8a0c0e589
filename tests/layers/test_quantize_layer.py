"""The Quantize layer: forward and backward rounding against NumPy, seeds, and use in models."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa.layers import Quantize
from references.fixed_point import quantize_reference, same_bits
from tensorflow_kappa.quantization import FixedPoint


RNG = np.random.default_rng(3)
X = (RNG.standard_normal((6, 5)) * 4).astype("float32")
DY = (RNG.standard_normal((6, 5)) * 0.3).astype("float32")


def forward_backward(layer, x, dy, run=lambda fn: fn()):
    def fn():
        x_t = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x_t)
            y = layer(x_t)
        return y, tape.gradient(y, x_t, output_gradients=tf.constant(dy))

    y, dx = run(fn)
    return y.numpy(), dx.numpy()


@pytest.mark.parametrize("forward, backward", [
    ("s8.4", "s8.2"), ("s6.2:toward_zero", None), (None, "s12.10:nearest_away"),
    ("u8.4", "s8.6:truncate"), ("s8.4:wrap", "s4.1")])
def test_forward_and_backward_round_as_numpy(implementation, execution, forward, backward):
    layer = Quantize(forward, backward)
    y, dx = forward_backward(layer, X, DY, run=lambda fn: execution(fn))
    expect_y = X if forward is None else quantize_reference(X, FixedPoint.parse(forward))
    expect_dx = DY if backward is None else quantize_reference(DY, FixedPoint.parse(backward))
    assert same_bits(y, expect_y)
    assert same_bits(dx, expect_dx)  # ste=True passes the rounded error straight through


def test_clipped_ste_zeroes_the_rounded_error_beyond_the_rails(implementation):
    layer = Quantize("s6.2", "s8.4", ste="clipped")
    _, dx = forward_backward(layer, X, DY)
    fmt = FixedPoint.parse("s6.2")
    inside = (X >= fmt.min_value) & (X <= fmt.max_value)
    expect = quantize_reference(DY, FixedPoint.parse("s8.4")) * inside.astype("float32")
    assert same_bits(dx, expect)  # the mask multiplies: -0.0 where a negative error is cut
    assert not inside.all() and inside.any()


def test_ste_false_stops_the_gradient():
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = Quantize("s8.4", ste=False)(x)
    assert tape.gradient(y, x) is None


def test_stochastic_streams_are_fresh_per_call_and_reproducible_from_the_seed(implementation):
    x = np.full((4, 256), 0.3, "float32")   # 0.3 = 4.8 lsb of s8.4: rounds to 4 or 5 lsb
    dy = np.full((4, 256), 0.1, "float32")
    a, b = Quantize("s8.4:stochastic", "s8.4:stochastic", seed=5), Quantize(
        "s8.4:stochastic", "s8.4:stochastic", seed=5)
    first_a, second_a = forward_backward(a, x, dy), forward_backward(a, x, dy)
    first_b, second_b = forward_backward(b, x, dy), forward_backward(b, x, dy)
    for got, same in ((first_a, first_b), (second_a, second_b)):
        assert same_bits(got[0], same[0]) and same_bits(got[1], same[1])
    assert not np.array_equal(first_a[0], second_a[0])      # a fresh stream per call
    assert not np.array_equal(first_a[0], first_a[1] * 3)
    for y, dx in (first_a, second_a):
        assert set(np.unique(y)) <= {0.25, 0.3125} and set(np.unique(dx)) <= {0.0625, 0.125}
        assert abs(y.mean() - 0.3) < 0.01 and abs(dx.mean() - 0.1) < 0.01   # unbiased
    # The seeds are the layer's generator's draws, reproduced by the NumPy reference.
    gen = keras.random.SeedGenerator(5)
    seed_forward, seed_backward = gen.next().numpy(), gen.next().numpy()
    fmt = FixedPoint.parse("s8.4:stochastic")
    assert same_bits(first_a[0], quantize_reference(x, fmt, seed_forward))
    assert same_bits(first_a[1], quantize_reference(dy, fmt, seed_backward))


def test_only_stochastic_formats_give_the_layer_state():
    assert Quantize("s8.4", "s8.2").variables == []
    layer = Quantize("s8.4:stochastic")
    assert len(layer.variables) == 1 and not layer.trainable_weights  # the seed state


@pytest.mark.parametrize("kwargs, word", [
    ({"forward": "s8"}, "forward"), ({"backward": "q8.4"}, "backward"),
    ({"forward": 8}, "forward"), ({"ste": "yes"}, "ste"), ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"), ({"seed": True}, "seed")])
def test_bad_arguments_name_themselves(kwargs, word):
    with pytest.raises(ValueError, match=word):
        Quantize(**kwargs)


def test_a_format_the_dtype_cannot_hold_is_a_clear_error():
    with pytest.raises(ValueError, match="float16"):
        Quantize("s20.10", dtype="float16")(tf.zeros([2], tf.float16))


def test_config_round_trips_with_rounding_and_overflow():
    layer = Quantize("s8.4:stochastic:wrap", "u6.6:truncate", ste="clipped", seed=9, name="q")
    config = layer.get_config()
    assert config["forward"] == "s8.4:stochastic:wrap" and config["backward"] == "u6.6:truncate"
    clone = Quantize.from_config(config)
    assert clone.forward == layer.forward and clone.backward == layer.backward
    assert clone.ste == "clipped" and clone.seed == 9
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is Quantize and revived.get_config() == config


class SubclassedNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)
        self.q = Quantize("s8.4", "s8.6")

    def call(self, x):
        return self.q(self.dense(x))


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_usable_in_every_kind_of_model(kind):
    keras.utils.set_random_seed(0)
    if kind == "sequential":
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), Quantize("s8.4")])
    elif kind == "functional":
        inputs = keras.Input((4,))
        model = keras.Model(inputs, Quantize("s8.4")(keras.layers.Dense(3)(inputs)))
    else:
        model = SubclassedNet()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = RNG.standard_normal((32, 4)).astype("float32")
    history = model.fit(x, x[:, :3], batch_size=8, epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    out = model.predict(x, verbose=0)
    assert np.array_equal(out * 16, np.round(out * 16))

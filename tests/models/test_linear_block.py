"""LinearBlockModel: layer names, variable -> (layer, field) mapping, reinitialisation, train()."""
import keras
import numpy as np
import pytest

from tensorflow_kappa.datasets import BaseDataset, TeacherStudentDataset
from tensorflow_kappa.models import BaseModel, LinearBlockModel
from tensorflow_kappa.quantization.variables import variable_layer_and_field


def _ds(out=2):
    return TeacherStudentDataset(64, 3, out, noise=0.05, seed=0)


def test_block_layer_names_and_final_projection():
    m = LinearBlockModel(dataset=_ds(), num_hidden=[4, 3], activation="relu",
                         use_batchnorm=True, seed=0)
    assert m.layer_names() == ["dense0", "activation0", "batchnorm0",
                               "dense1", "activation1", "batchnorm1", "dense2"]
    assert m.model.layers[0].name == "model_input"
    assert m.input_shape == (3,) and m.output_shape == (2,)
    assert tuple(m.model.output_shape) == (None, 2)
    # The last block already has the output width: no extra layer.
    assert LinearBlockModel(dataset=_ds(), num_hidden=[4, 2]).layer_names() == ["dense0", "dense1"]
    one = LinearBlockModel(dataset=_ds(), num_hidden=[], use_bias=False)
    assert one.layer_names() == ["dense0"]
    assert [tuple(v.shape) for v in one.model.trainable_variables] == [(3, 2)]


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("use_batchnorm", [True, False])
def test_every_variable_maps_to_its_layer_and_field(use_bias, use_batchnorm):
    m = LinearBlockModel(dataset=_ds(), num_hidden=[4], activation="tanh",
                         use_batchnorm=use_batchnorm, use_bias=use_bias, seed=0)
    expect = [("dense0/kernel", "dense0", "weight")]
    if use_bias:
        expect.append(("dense0/bias", "dense0", "bias"))
    if use_batchnorm:
        expect += [("batchnorm0/gamma", "batchnorm0", "value"),
                   ("batchnorm0/beta", "batchnorm0", "value")]
    expect.append(("dense1/kernel", "dense1", "weight"))
    if use_bias:
        expect.append(("dense1/bias", "dense1", "bias"))
    got = [(v.path, *variable_layer_and_field(v)) for v in m.model.trainable_variables]
    assert sorted(got) == sorted(expect)


def test_reinitialize_weights_restores_the_seeded_start():
    ds = _ds()
    m = LinearBlockModel(dataset=ds, num_hidden=[4], activation="relu", use_batchnorm=True,
                         seed=3)
    start = [v.numpy().copy() for v in m.model.weights]
    fresh = LinearBlockModel(dataset=ds, num_hidden=[4], activation="relu", use_batchnorm=True,
                             seed=3)
    for a, b in zip(start, fresh.model.weights):
        np.testing.assert_array_equal(a, b.numpy())
    m.train_instrumented(ds.X, ds.Y, epochs=2, batch_size=16, learning_rate=0.1)
    assert not np.array_equal(m.model.weights[0].numpy(), start[0])
    m.reinitialize_weights()
    for a, v in zip(start, m.model.weights):
        np.testing.assert_array_equal(v.numpy(), a)
    # Unseeded: fresh random kernels, zero bias.
    u = LinearBlockModel(dataset=ds, num_hidden=[4])
    k0 = u.model.weights[0].numpy().copy()
    u.reinitialize_weights()
    assert not np.array_equal(u.model.weights[0].numpy(), k0)
    np.testing.assert_array_equal(u.model.weights[1].numpy(), 0.0)


def test_reserved_and_non_chain_models_are_rejected_for_the_quantized_path():
    class Custom(BaseModel):
        def __post_init__(self):
            super().__post_init__()
            inp = keras.Input((3,))
            a = keras.layers.Dense(2, name="dense0")(inp)
            b = keras.layers.Dense(2, name="dense1")(inp)
            self.model = keras.Model(inp, keras.layers.Add(name="add0")([a, b]))

    ds = BaseDataset(np.ones((8, 3)), np.ones((8, 2)))
    with pytest.raises(ValueError, match="chain of layers"):
        Custom(dataset=ds).train_instrumented(ds.X, ds.Y, epochs=1, precision_dict="s16.8")

    class Reserved(BaseModel):
        def __post_init__(self):
            super().__post_init__()
            inp = keras.Input((3,))
            self.model = keras.Model(inp, keras.layers.Dense(2, name="loss")(inp))

    with pytest.raises(ValueError, match="'loss' is reserved"):
        Reserved(dataset=ds).train_instrumented(ds.X, ds.Y, epochs=1, precision_dict="s16.8")


def test_plain_train_reduces_the_loss():
    ds = _ds()
    m = LinearBlockModel(dataset=ds, num_hidden=[], optimizer=keras.optimizers.SGD(0.1), seed=0)
    losses = m.train(ds.X, ds.Y, epochs=15, batch_size=16)["loss"]
    assert losses.shape == (15,) and losses[-1] < 0.1 * losses[0]


def test_summary_prints_the_layers(capsys):
    LinearBlockModel(dataset=_ds(), num_hidden=[4], seed=0).summary()
    out = capsys.readouterr().out
    assert "dense0" in out and "dense1" in out

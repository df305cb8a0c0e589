"""Which variable is which: the one mapping (path -> layer, field) and the per-variable record."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa.quantization import PrecisionDict
from tensorflow_kappa.quantization.variables import (variable_layer_and_field, variable_record,
                                                     variable_records)


def test_variable_layer_and_field_of_every_kind_of_keras_variable():
    model = keras.Sequential([
        keras.Input((4, 4, 2)),
        keras.layers.DepthwiseConv2D(3, name="dw"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Reshape((4, 2), name="flat"),
        keras.layers.SimpleRNN(3, name="rnn"),
        keras.layers.Dense(2, name="head"),
    ])
    emb = keras.layers.Embedding(5, 2, name="emb")
    emb.build((None,))
    fields = {"kernel": "weight", "depthwise_kernel": "weight", "recurrent_kernel": "weight",
              "embeddings": "weight", "bias": "bias", "gamma": "value", "beta": "value",
              "moving_mean": "value", "moving_variance": "value"}
    cell = model.get_layer("rnn").cell.name
    for v in model.weights + emb.weights:
        *outer, layer, name = v.path.split("/")
        assert variable_layer_and_field(v) == (layer, fields[name]), v.path
        # A precision dict entry for an outer layer covers its sublayers' variables.
        named = variable_layer_and_field(v, named=["rnn", "head", "*", "input"])
        assert named == ("rnn" if layer == cell else layer, fields[name]), v.path
    assert {variable_layer_and_field(v)[0] for v in model.weights} == {"dw", "bn", cell, "head"}
    with pytest.raises(ValueError, match="belongs to no layer"):
        variable_layer_and_field(keras.Variable(0.0, name="v"))



def test_records_carry_every_format_of_the_variables_layer_and_field():
    model = keras.Sequential([keras.Input((5, 5, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                              keras.layers.BatchNormalization(name="bn"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(3, name="out")])
    precision = PrecisionDict({
        "*": {"weight": "s8.6", "bias": "s8.4", "value": "s10.6", "gradient": "s12.10"},
        "out": {"weight": "s4.2", "update": "s16.14", "momentum": "s12.12",
                "second_moment": "u16.16"},
    })
    records = variable_records(model.trainable_variables, precision)
    got = [(r.path.split("/", 1)[1], r.layer, r.field, str(r.storage), r.size) for r in records]
    assert got == [
        ("conv/kernel", "conv", "weight", "s8.6", 18), ("conv/bias", "conv", "bias", "s8.4", 2),
        ("bn/gamma", "bn", "value", "s10.6", 2), ("bn/beta", "bn", "value", "s10.6", 2),
        ("out/kernel", "out", "weight", "s4.2", 54), ("out/bias", "out", "bias", "s8.4", 3),
    ]
    for r in records:
        own = r.layer == "out"
        assert str(r.gradient) == "s12.10"
        assert (str(r.update), str(r.momentum), str(r.second_moment)) == (
            ("s16.14", "s12.12", "u16.16") if own else ("None", "None", "None"))
        assert r.quantized_store
        assert r.state_format("momentum") is r.momentum and r.state_format(None) is None


def test_a_float_record_quantizes_nothing():
    r = variable_record(tf.Variable(np.zeros(4, np.float32), name="d/kernel"), PrecisionDict())
    assert (r.storage, r.update, r.gradient, r.momentum, r.second_moment) == (None,) * 5
    assert not r.quantized_store

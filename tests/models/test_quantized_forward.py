"""The forward pass with fake quantization, against a NumPy fake-quant forward; the
trainer's initial rounding of every stored variable onto its field's format."""
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa.datasets import TeacherStudentDataset
from tensorflow_kappa.models import LinearBlockModel, TrainConfig
from tensorflow_kappa.models import quantized_forward as qf
from tensorflow_kappa.quantization.variables import variable_layer_and_field
from tensorflow_kappa.models.instrumented import InstrumentedTrainer
from tensorflow_kappa.quantization import PrecisionDict
from references.fixed_point import assert_on_grid, quantize_reference

PRECISION = PrecisionDict({
    "input": {"value": "s8.4"},
    "*": {"weight": "s8.6", "bias": "s8.6", "accumulator": "s10.6", "activation": "s8.5"},
    "dense1": {"activation": "s12.7"},
})


def _model(**kw):
    ds = TeacherStudentDataset(16, 6, 3, noise=0.1, seed=1)
    kw.setdefault("num_hidden", [5])
    return ds, LinearBlockModel(dataset=ds, activation="relu", seed=2, **kw)


def _np_forward(model, x, p):
    """Every product and sum below is exact in float32 and float64 (few-bit grids)."""
    h = quantize_reference(x, p.format("input", "value"))
    for name in ("dense0", "dense1"):
        layer = model.model.get_layer(name)
        z = h @ quantize_reference(layer.kernel.numpy(), p.format(name, "weight"))
        z = quantize_reference(z, p.format(name, "accumulator"))
        z = z + quantize_reference(layer.bias.numpy(), p.format(name, "bias"))
        if name == "dense0":
            z = quantize_reference(z, p.format(name, "activation"))  # dense0's own output
            z = np.maximum(z, 0.0)  # activation0 (relu)
            z = quantize_reference(z, p.format("activation0", "activation"))
        else:
            z = quantize_reference(z, p.format(name, "activation"))
        h = z
    return h


def test_quantized_forward_equals_numpy_fake_quant_forward(implementation):
    ds, model = _model()
    got = qf.forward_with_precision(model.model, ds.X, PRECISION, training=True).numpy()
    np.testing.assert_array_equal(got, _np_forward(model, ds.X, PRECISION))
    assert_on_grid(got, "s12.7", "output")
    # And it really quantizes: the float forward differs.
    assert not np.allclose(got, model.model(ds.X).numpy(), atol=1e-4)


def test_compiled_forward_matches_eager():
    ds, model = _model()
    f = tf.function(lambda x: qf.forward_with_precision(model.model, x, PRECISION, training=True))
    np.testing.assert_array_equal(f(tf.constant(ds.X)).numpy(),
                                  qf.forward_with_precision(model.model, ds.X, PRECISION, training=True))


def test_straight_through_gradient_of_a_one_layer_model():
    ds, model = _model(num_hidden=[], use_bias=False)
    p = PrecisionDict({"input": {"value": "s8.4"},
                       "dense0": {"weight": "s8.6", "accumulator": "s10.6", "activation": "s8.5"}})
    kernel = model.model.trainable_variables[0]
    with tf.GradientTape() as tape:
        y = qf.forward_with_precision(model.model, ds.X, p, training=True)
        loss = 0.5 * tf.reduce_mean(tf.reduce_sum(tf.square(y - ds.Y), axis=1))
    grad = tape.gradient(loss, kernel).numpy()
    # STE: d(q(z))/dz = 1, so dL/dW = q(x)^T (y_q - Y) / N.
    xq = quantize_reference(ds.X, "s8.4")
    expect = xq.T @ (y.numpy() - ds.Y) / len(ds.X)
    np.testing.assert_allclose(grad, expect, rtol=1e-5, atol=1e-7)


def test_non_dense_layers_are_called_and_their_output_quantized():
    ds, model = _model(use_batchnorm=True)
    p = PrecisionDict({"batchnorm0": {"activation": "s6.3"}})
    out = {}
    h = qf.forward_with_precision(model.model, ds.X, p, training=True)
    # Recompute the chain by hand up to batchnorm0 to see its output on the grid.
    x = tf.constant(ds.X)
    for layer in model.model.layers[1:]:
        x = layer(x, training=True)
        if layer.name == "batchnorm0":
            out["bn"] = x.numpy()
            break
    bn_q = quantize_reference(out["bn"], "s6.3")
    assert not np.allclose(bn_q, out["bn"], atol=1e-3)  # the format is coarse enough to show
    dense1 = model.model.get_layer("dense1")
    np.testing.assert_allclose(h.numpy(), bn_q @ dense1.kernel.numpy() + dense1.bias.numpy(),
                               rtol=1e-5, atol=1e-6)


def test_trainer_rounds_each_stored_variable_to_its_fields_format(implementation):
    ds, model = _model(use_batchnorm=True)
    fields = {"weight": "s8.4", "bias": "s6.2", "value": "s10.3"}
    config = TrainConfig(precision_dict={"*": {**fields, "gradient": "s8.5"}})
    rng = np.random.default_rng(3)
    for v in model.model.trainable_variables:  # off every grid, within every rail
        v.assign(rng.uniform(-1.5, 1.5, v.shape).astype(np.float32))
    before = {v.path: v.numpy().copy() for v in model.model.trainable_variables}
    InstrumentedTrainer(model, ds.X, ds.Y, config).initialize()
    seen = set()
    for v in model.model.trainable_variables:
        _, field = variable_layer_and_field(v)
        want = quantize_reference(before[v.path], fields[field])
        assert not np.array_equal(want, before[v.path])
        np.testing.assert_array_equal(v.numpy(), want, err_msg=v.path)
        seen.add(field)
    assert seen == set(fields)
    with pytest.raises(ValueError):
        PrecisionDict({"*": {"weights": "s8.4"}})

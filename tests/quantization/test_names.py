"""Nothing named in vain: every layer or field name given to an entry point that takes
names (a precision dict at quantize_model, at the optimizer wrapper's build and at the
instrumented trainer; QuantizationMonitor's layers) must match something of the model,
or it is a ValueError that names it and lists what exists. Each class of mistake is a
generated table: misspellings of every layer name, every field set on a layer that has
no variable of that field (or an optimizer without that state), the reserved names."""
import itertools

import keras
import numpy as np
import pytest

from tensorflow_kappa.callbacks import QuantizationMonitor
from tensorflow_kappa.datasets import TeacherStudentDataset
from tensorflow_kappa.models import LinearBlockModel
from tensorflow_kappa.optimizers import LowPrecisionOptimizer
from tensorflow_kappa.quantization import PrecisionDict, quantize_model
from tensorflow_kappa.quantization.precision import FIELDS

LAYERS = ("conv", "bn", "flat", "dense", "out")  # "flat" holds no variable
X = np.random.default_rng(0).standard_normal((16, 6, 6, 1)).astype("float32")
Y = np.random.default_rng(1).standard_normal((16, 2)).astype("float32")


def make_model(names=LAYERS):
    conv, bn, flat, dense, out = names
    return keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(2, 3, name=conv),
        keras.layers.BatchNormalization(name=bn),
        keras.layers.Flatten(name=flat),
        keras.layers.Dense(3, name=dense),
        keras.layers.Dense(2, use_bias=False, name=out),
    ])


def misspellings(name):
    """What a hand types instead of ``name``: a letter short, a Keras auto-name
    suffix, another case, a plural, Keras' class-style name."""
    typed = {name[:-1], name + "_1", name.upper(), name + "s", name.capitalize()}
    typed |= {"conv2d", "dense_1", "batch_normalization", "input_layer"}
    return typed - set(LAYERS) - {"", "input", "*"}


MISSPELT = sorted(set(itertools.chain.from_iterable(misspellings(n) for n in LAYERS)))


def fit(model, optimizer, callbacks=()):
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=list(callbacks))


def precision_entry_points():
    """name -> call(precision dict): each entry point that takes a precision dict."""
    def quantize(precision):
        quantize_model(make_model(), precision)

    def wrapper_build(precision):
        model = make_model()
        LowPrecisionOptimizer(keras.optimizers.SGD(0.1), precision).build(
            model.trainable_variables)

    def wrapper_fit(precision):
        fit(make_model(), LowPrecisionOptimizer(keras.optimizers.SGD(0.1), precision))

    return {"quantize_model": quantize, "LowPrecisionOptimizer.build": wrapper_build,
            "model.fit(LowPrecisionOptimizer)": wrapper_fit}


@pytest.mark.parametrize("entry", sorted(precision_entry_points()))
@pytest.mark.parametrize("name", MISSPELT)
def test_a_misspelt_layer_name_is_an_error_listing_the_layers(entry, name):
    """{"dense_1": ...} for a layer called "dense": that layer would train in float."""
    with pytest.raises(ValueError) as caught:
        precision_entry_points()[entry]({name: {"weight": "s8.4", "activation": "s8.4"}})
    message = str(caught.value)
    assert repr(name) in message, message
    assert all(layer in message for layer in ("conv", "dense", "out")), message


@pytest.mark.parametrize("name", MISSPELT)
def test_the_instrumented_trainer_refuses_a_misspelt_layer_name(name):
    model = LinearBlockModel(dataset=TeacherStudentDataset(32, 3, 2, seed=0), num_hidden=[4],
                             seed=0)
    with pytest.raises(ValueError, match=f"{name!r}.*the model's layers are"):
        model.train_instrumented(model.dataset.X, model.dataset.Y, epochs=1,
                                 precision_dict={name: {"weight": "s8.4"}})


@pytest.mark.parametrize("field", ["weights", "kernel", "Bias", "grad", "activations", "moment",
                                   "second moment", "input", ""])
def test_a_misspelt_field_is_an_error_listing_the_fields(field):
    with pytest.raises(ValueError) as caught:
        PrecisionDict({"dense": {field: "s8.4"}})
    assert repr(field) in str(caught.value) and all(f in str(caught.value) for f in FIELDS)


#: (layer, field, wrapped optimizer): a field the layer's variables (or the optimizer's
#: state of them) do not have, so the format would round nothing.
UNMATCHED = [
    *[(layer, "weight", "sgd") for layer in ("bn", "flat")],   # bn: gamma/beta are 'value'
    *[(layer, "bias", "sgd") for layer in ("bn", "flat", "out")],  # out has no bias
    *[(layer, "value", "sgd") for layer in ("conv", "flat", "dense", "out")],
    *[(layer, field, "sgd") for layer in ("conv", "dense") for field in ("momentum",
                                                                         "second_moment")],
    *[(layer, "second_moment", opt) for layer in ("conv", "bn", "out")
      for opt in ("sgd_momentum", "lion")],
    *[(layer, field, "sgd") for layer in ("flat",) for field in ("gradient", "update")],
]
OPTIMIZERS = {"sgd": lambda: keras.optimizers.SGD(0.1),
              "sgd_momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
              "lion": lambda: keras.optimizers.Lion(1e-3)}


@pytest.mark.parametrize("layer, field, optimizer", UNMATCHED)
def test_a_field_that_matches_nothing_in_its_layer_is_an_error(layer, field, optimizer):
    """{"bn": {"weight": ...}}: BatchNormalization's gamma and beta are 'value', so they
    would train in float; the message lists the layer's variables and their fields."""
    model = make_model()
    wrapper = LowPrecisionOptimizer(OPTIMIZERS[optimizer](), {layer: {field: "s8.4"}})
    with pytest.raises(ValueError) as caught:
        wrapper.build(model.trainable_variables)
    message = str(caught.value)
    assert f"precision[{layer!r}] sets {field}" in message, message
    if layer != "flat":
        assert f"{layer}/" in message or "state it keeps" in message, message


@pytest.mark.parametrize("layer, field, optimizer", [
    ("bn", "value", "sgd"), ("out", "weight", "sgd"), ("dense", "bias", "sgd"),
    ("conv", "momentum", "sgd_momentum"), ("dense", "momentum", "lion"),
    ("flat", "activation", "sgd"), ("dense", "error", "sgd")])
def test_fields_that_match_are_taken(layer, field, optimizer):
    """The check refuses only what matches nothing; forward fields (activation,
    error) are quantize_model's and pass the optimizer untouched; "*" holds defaults,
    which apply where they can."""
    model = make_model()
    LowPrecisionOptimizer(OPTIMIZERS[optimizer](), {layer: {field: "s8.4"}, "*": {
        f: "s16.8" for f in FIELDS}}).build(model.trainable_variables)


def test_the_instrumented_trainer_only_field_is_refused_by_quantize_model():
    with pytest.raises(ValueError, match="'accumulator'.*instrumented trainer"):
        quantize_model(make_model(), {"dense": {"accumulator": "s8.4"}})


@pytest.mark.parametrize("fields", [{"activation": "s8.4"}, {"error": "s8.4"},
                                    {"weight": "s8.4"}, {"value": "s8.4", "error": "s8.4"}])
def test_the_input_entry_takes_only_its_value(fields):
    """{"input": {"activation": ...}} was ignored: the input has no output or error."""
    if set(fields) == {"value"}:
        return
    with pytest.raises(ValueError, match="'input' \\(the model's input\\) takes only the "
                                         "field 'value'"):
        PrecisionDict({"input": fields})


def test_one_format_for_the_input_means_its_value():
    assert PrecisionDict({"input": "s8.4"}).fields("input") == ("value",)


@pytest.mark.parametrize("reserved", ["input", "*"])
@pytest.mark.parametrize("entry", ["quantize_model", "LowPrecisionOptimizer.build"])
def test_a_layer_with_a_reserved_name_collides_loudly(reserved, entry):
    """A Keras layer named "input" got the model input's quantizer; an entry naming
    it could mean either."""
    names = ("conv", "bn", "flat", reserved, "out")
    precision = {"input": {"value": "s8.4"}, "*": {"weight": "s8.6"}}
    model = make_model(names)
    with pytest.raises(ValueError, match=f"layer named {reserved!r}.*rename the layer"):
        if entry == "quantize_model":
            quantize_model(model, precision)
        else:
            LowPrecisionOptimizer(keras.optimizers.SGD(0.1), precision).build(
                model.trainable_variables)


def test_a_layer_named_input_without_an_input_entry_works():
    """Only "*" defaults: the layer named "input" gets its activation quantizer and the
    model input its own; nothing is ambiguous, so nothing is refused except the clash
    of their quantizers' names, which names itself."""
    model = make_model(("conv", "bn", "flat", "input", "out"))
    q = quantize_model(model, {"*": {"activation": "s8.4"}})
    assert "input_quantize" in [layer.name for layer in q.layers]
    with pytest.raises(ValueError, match="'input_quantize'.*rename"):
        quantize_model(model, {"*": {"activation": "s8.4", "value": "s8.4"}})


@pytest.mark.parametrize("name", MISSPELT)
def test_the_monitor_refuses_a_layer_the_model_does_not_have(name):
    model = make_model()
    with pytest.raises(ValueError) as caught:
        fit(model, LowPrecisionOptimizer(keras.optimizers.SGD(0.1), {"dense": {"weight": "s8.4"}}),
            [QuantizationMonitor(every=1, layers=[name])])
    message = str(caught.value)
    assert repr(name) in message and all(layer in message for layer in LAYERS), message


def test_the_monitor_takes_the_model_layers_and_their_quantizers():
    model = quantize_model(make_model(), {"dense": {"activation": "s8.4"}})
    monitor = QuantizationMonitor(every=1, layers=["dense", "dense_quantize", "flat"])
    fit(model, LowPrecisionOptimizer(keras.optimizers.SGD(0.1), {"dense": {"weight": "s8.4"}}),
        [monitor])
    assert monitor.records and all(key.split("/")[1] in ("dense", "dense_quantize")
                                   for key in monitor.records)


def test_an_unwritable_tensorboard_folder_fails_before_the_first_step(tmp_path):
    """It was a raw NotFoundError from inside fit."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    model = make_model()
    weights = [w.numpy().copy() for w in model.weights]
    with pytest.raises(ValueError, match="tensorboard_dir: cannot write files in"):
        fit(model, "sgd", [QuantizationMonitor(tensorboard_dir=str(blocker / "tb"))])
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(weights, model.weights))


@pytest.mark.parametrize("name", ["momentun", "velocities", "Momentum", "m", "accumulators"])
def test_a_misspelt_state_name_is_an_error_listing_the_kept_state(name):
    """state_fields={"momentun": ...} would leave the momentum in float."""
    model = make_model()
    wrapper = LowPrecisionOptimizer(keras.optimizers.Adam(1e-3), {"*": {"momentum": "s16.12"}},
                                    state_fields={name: "momentum"})
    with pytest.raises(ValueError, match=f"state_fields names state {name!r}, which Adam does "
                                         "not keep; the per-variable state it keeps: momentum, "
                                         "velocity"):
        wrapper.build(model.trainable_variables)

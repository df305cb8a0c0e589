"""PrecisionDict: parsing, defaults, errors."""
import json

import numpy as np
import pytest

from tensorflow_kappa.datasets import TeacherStudentDataset
from tensorflow_kappa.models import LinearBlockModel
from tensorflow_kappa.quantization import PrecisionDict, ensure_precision_dict
from tensorflow_kappa.quantization.precision import FIELDS
from tensorflow_kappa.quantization import FixedPoint


def test_layer_entries_override_the_default_field_by_field():
    p = PrecisionDict({
        "*": {"weight": "s8.6", "update": FixedPoint(16, 14)},
        "dense1": {"weight": "s4.2:stochastic"},
    })
    assert p.format("dense0", "weight") == FixedPoint(8, 6)
    assert p.format("dense1", "weight") == FixedPoint(4, 2, rounding="stochastic")
    assert p.format("dense1", "update") == FixedPoint(16, 14)  # falls back to "*"
    assert p.format("dense0", "gradient") is None  # float
    assert p.format("input", "value") is None


def test_one_format_for_a_layer_means_every_field():
    p = PrecisionDict({"dense0": "s8.6"})
    assert all(p.format("dense0", f) == FixedPoint(8, 6) for f in FIELDS)
    assert p.format("dense1", "weight") is None


def test_ensure_precision_dict_forms():
    assert ensure_precision_dict(None) is None
    p = PrecisionDict({"*": "s8.6"})
    assert ensure_precision_dict(p) is p
    assert ensure_precision_dict("s8.6") == p
    assert ensure_precision_dict({"*": "s8.6"}) == p
    with pytest.raises(ValueError, match="precision_dict must be"):
        ensure_precision_dict(3)


def test_to_dict_and_json_round_trip(tmp_path):
    p = PrecisionDict({"*": {"weight": "s8.6"}, "dense0": {"update": "s12.10:stochastic"}})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(p.to_dict()))
    assert PrecisionDict.from_json(str(path)) == p
    assert p.to_dict() == {"*": {"weight": "s8.6"}, "dense0": {"update": "s12.10:stochastic"}}


def test_unknown_field_is_an_error_naming_it_and_the_fields():
    with pytest.raises(ValueError, match=r"'wieght'.*'weight'"):
        PrecisionDict({"dense0": {"wieght": "s8.6"}})
    with pytest.raises(ValueError, match="Unknown precision field"):
        PrecisionDict({}).format("dense0", "kernel")


def test_impossible_format_string_is_an_error_naming_the_entry():
    with pytest.raises(ValueError, match=r"dense0\.weight.*Cannot parse"):
        PrecisionDict({"dense0": {"weight": "q8.6"}})
    with pytest.raises(ValueError, match=r"dense0\.weight.*bits=1"):
        PrecisionDict({"dense0": {"weight": "s1.0"}})


def test_format_that_float32_cannot_hold_is_an_error():
    with pytest.raises(ValueError, match=r"\*\.update.*float32"):
        PrecisionDict({"*": {"update": "s32.16"}})


def _model():
    ds = TeacherStudentDataset(32, 3, 2, seed=0)
    return ds, LinearBlockModel(dataset=ds, num_hidden=[4], activation="relu", seed=0)


def test_validate_lists_the_model_layer_names():
    _, model = _model()
    p = PrecisionDict({"dense7": "s8.6", "*": "s8.6", "input": {"value": "s8.4"}})
    with pytest.raises(ValueError, match=r"\['dense7'\].*'dense0', 'activation0', 'dense1'"):
        p.validate(model.layer_names())
    PrecisionDict({"dense1": "s8.6", "input": "s8.4"}).validate(model.layer_names())


def test_train_instrumented_rejects_a_bad_precision_dict_before_training():
    ds, model = _model()
    before = [v.numpy().copy() for v in model.model.trainable_variables]
    with pytest.raises(ValueError, match="dense9"):
        model.train_instrumented(ds.X, ds.Y, epochs=1, precision_dict={"dense9": "s8.6"})
    with pytest.raises(ValueError, match="float32"):
        model.train_instrumented(ds.X, ds.Y, epochs=1, precision_dict={"dense0": "s28.6"})
    for v, b in zip(model.model.trainable_variables, before):
        np.testing.assert_array_equal(v.numpy(), b)


def test_error_and_second_moment_are_fields():
    precision = PrecisionDict({"*": {"error": "s16.14", "second_moment": "u16.16"}})
    assert precision.format("dense", "error") == FixedPoint.coerce("s16.14")
    assert precision.format("dense", "second_moment") == FixedPoint.coerce("u16.16")
    assert {"error", "second_moment"} <= set(FIELDS)

"""TrainConfig: one record of a run's settings, checked once, recorded in the history."""
import dataclasses

import numpy as np
import pytest

from tensorflow_kappa.datasets import TeacherStudentDataset
from tensorflow_kappa.models import LinearBlockModel, TrainConfig
from tensorflow_kappa.quantization import FixedPoint, PrecisionDict


def test_defaults_are_the_spec_signature_of_train_instrumented():
    import inspect

    signature = inspect.signature(LinearBlockModel.train_instrumented).parameters
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "compiled"}
    assert fields == {name: p.default for name, p in signature.items()
                      if name not in ("self", "X", "Y")}


def test_values_are_normalised_once():
    config = TrainConfig(epochs=np.int64(2), learning_rate=1, precision_dict="s12.8",
                         reference_A=[[1, 2]], shuffle=np.bool_(False))
    assert config.epochs == 2 and type(config.epochs) is int
    assert config.learning_rate == 1.0 and type(config.learning_rate) is float
    assert config.shuffle is False
    assert isinstance(config.precision_dict, PrecisionDict)
    assert config.precision_dict.format("dense7", "update") == FixedPoint(12, 8)
    assert config.reference_A.dtype == np.float32 and config.reference_A.shape == (1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3
    assert config == dataclasses.replace(config)


@pytest.mark.parametrize("field, value", [
    ("epochs", -1), ("epochs", 2.0), ("epochs", True), ("batch_size", 0),
    ("learning_rate", 0.0), ("learning_rate", float("nan")), ("learning_rate", "0.1"),
    ("curvature_ema_rho", 0.0), ("curvature_ema_rho", 1.5), ("chi", -1.0),
    ("eps", -1e-12), ("momentum", float("inf")), ("loss_mode", "mse"),
    ("update_rule", "adam"), ("shuffle", 1), ("use_controller", "yes"),
    ("compute_analytic_hessian", None), ("compiled", 0), ("precision_dict", 3),
])
def test_every_bad_field_is_a_value_error_naming_it_and_its_value(field, value):
    with pytest.raises(ValueError, match=rf"{field}.*{value!r}" if field != "precision_dict"
                       else "precision_dict"):
        TrainConfig(**{field: value})


def test_momentum_range_applies_to_the_momentum_rule():
    assert TrainConfig(update_rule="sgd", momentum=1.5).effective_momentum == 0.0
    assert TrainConfig(update_rule="momentum", momentum=0.5).effective_momentum == 0.5
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got 1.0"):
        TrainConfig(update_rule="momentum", momentum=1.0)


def test_the_history_metadata_is_the_config_plus_the_outcome():
    ds = TeacherStudentDataset(40, 3, 2, seed=0)
    model = LinearBlockModel(dataset=ds, num_hidden=[], use_bias=False, seed=4)
    h = model.train_instrumented(ds.X, ds.Y, epochs=2, batch_size=16, learning_rate=0.05,
                                 reference_A=ds.A, precision_dict={"*": {"weight": "s12.9"}})
    config = TrainConfig(epochs=2, batch_size=16, learning_rate=0.05,
                         precision_dict={"*": {"weight": "s12.9"}})
    outcome = {"model": "LinearBlockModel", "seed": 4, "steps_per_epoch": 3,
               "epochs_completed": 2, "analytic_hessian": True, "diverged": False,
               "diverged_at_step": None}
    assert h.metadata == {**config.to_dict(), **outcome}
    assert "reference_A" not in h.metadata
    assert h.metadata["precision_dict"] == {"*": {"weight": "s12.9"}}

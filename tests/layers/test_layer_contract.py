"""Every exported layer keeps the Keras layer contract (see layer_contract.py)."""
import pytest

import layer_contract as contract

LAYERS = contract.exported_layers()
BAD_ARGUMENTS = [(cls, kwargs, word) for cls in LAYERS
                 for kwargs, word in (contract.COMMON_BAD_ARGUMENTS if contract.CASES[cls].has_units
                                      else []) + contract.CASES[cls].bad_arguments]
REINITIALIZABLE = [cls for cls in LAYERS if hasattr(cls, "reinitialize")]


def _id(value):
    return value.__name__ if isinstance(value, type) else None


def test_every_exported_layer_has_a_contract_case():
    assert len(LAYERS) >= 6
    assert set(LAYERS) == set(contract.CASES)


@pytest.mark.parametrize("cls", LAYERS, ids=_id)
def test_config_round_trips(cls):
    contract.check_config_round_trip(cls)


@pytest.mark.parametrize("cls, kwargs, word", BAD_ARGUMENTS, ids=_id)
def test_bad_constructor_arguments_raise_value_error_naming_them(cls, kwargs, word):
    contract.check_bad_arguments(cls, kwargs, word)


@pytest.mark.parametrize("cls", REINITIALIZABLE, ids=_id)
def test_reinitialize_redraws_every_trainable_weight(cls):
    contract.check_reinitialize(cls)


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory):
    """Every layer's trained model, saved here and loaded in one fresh process."""
    folder = tmp_path_factory.mktemp("layer_contract")
    expected = contract.save_trained_models(folder)
    contract.load_in_fresh_process(folder, sorted(expected))
    return folder, expected


@pytest.mark.parametrize("cls", LAYERS, ids=_id)
def test_save_and_load_in_a_fresh_process_keeps_weights_and_outputs(cls, reloaded):
    folder, expected = reloaded
    contract.check_reloaded(folder, cls.__name__, expected[cls.__name__])

"""Bad LoopController configurations: an error before the first step that names
the action, the branch and the key, and lists what is allowed."""
import math

import keras
import numpy as np
import pytest

from loop_controller_testlib import linear_data, linear_model
from tensorflow_kappa.callbacks import LoopController, LoopControllerConfigError


def always(cb):
    return True


def kernel_of(model):
    return [model.layers[-1].kernel]


def branch(**keys):
    return {"gate": {"cond": always, True: keys}}


ALLOWED_BRANCH = "Allowed"


@pytest.mark.parametrize(
    "config, fragments",
    [
        (branch(varaibles=kernel_of),
         ["'gate'", "branch True", "'varaibles'", "Did you mean 'variables'", ALLOWED_BRANCH,
          "'excluded_variables'", "'clipping'"]),
        ({"gate": {True: {}}}, ["'gate'", "'cond'", "missing"]),
        ({"gate": {"cond": True, True: {}}}, ["'gate'", "'cond'", "callable"]),
        ({"gate": {"cond": always, "con": 1, True: {}}}, ["'gate'", "'con'", "'cond'"]),
        ({"gate": {"cond": always, True: [("loss", "mse")]}},
         ["'gate'", "branch True", "must be a dict", ALLOWED_BRANCH]),
        ({"gate": {"cond": always, "False": None}},
         ["'gate'", "branch False", "must be a dict"]),
        (branch(variables=kernel_of, excluded_variables=kernel_of),
         ["'gate'", "branch True", "'excluded_variables'", "'variables'", ALLOWED_BRANCH]),
        (branch(clipping=(0.1,)), ["'gate'", "branch True", "'clipping'", ALLOWED_BRANCH]),
        (branch(clipping=(1.0, -1.0)), ["'clipping'", "low <= high"]),
        (branch(clipping=("a", 1.0)), ["'clipping'"]),
        (branch(clipping=(True, 1.0)), ["'clipping'"]),
        (branch(clipping=(math.nan, 1.0)), ["'clipping'"]),
        (branch(clipping=0.5), ["'clipping'"]),
        (branch(variables=[1, 2]), ["'gate'", "branch True", "'variables'", "callable"]),
        (branch(excluded_variables="g"), ["'excluded_variables'", "callable"]),
        (branch(gradient_transform=3), ["'gradient_transform'", "callable"]),
        (branch(loss=True), ["'gate'", "branch True", "'loss'", ALLOWED_BRANCH]),
        (branch(loss="no_such_loss"), ["'loss'", "unknown loss name", ALLOWED_BRANCH]),
        (branch(loss=3), ["'loss'", ALLOWED_BRANCH]),
        (branch(regularize="yes"), ["'regularize'", "True or False"]),
        ({"gate": {"cond": always, True: {}, "True": {}}}, ["'gate'", "both"]),
        ({"gate": {"cond": always}}, ["'gate'", "neither a True nor a False branch"]),
        ({}, ["empty"]),
        ([("gate", {})], ["must be a dict"]),
        ({"loss": {"cond": always, True: {}}}, ["'loss'", "reserved"]),
    ],
    ids=lambda v: None,
)
def test_bad_config_is_rejected_at_construction(config, fragments):
    with pytest.raises(LoopControllerConfigError) as info:
        LoopController(config)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert isinstance(info.value, ValueError)


OK = {"train": {"cond": always, True: {}}}


@pytest.mark.parametrize(
    "async_config, fragments",
    [
        ({"reinit": {"cond": always, "modle": print}},
         ["'reinit'", "'modle'", "Did you mean 'model'", "Allowed keys", "'callback'"]),
        ({"reinit": {"model": print}}, ["'reinit'", "'cond'", "missing"]),
        ({"reinit": {"cond": always}}, ["'reinit'", "'model' and/or 'callback'"]),
        ({"reinit": {"cond": always, "model": 1}}, ["'reinit'", "'model'", "callable"]),
        ({"reinit": {"cond": always, "model": print, "reinit": "no"}}, ["'reinit'", "True or False"]),
        ({"reinit": print}, ["'reinit'", "must be a dict"]),
    ],
)
def test_bad_async_config_is_rejected_at_construction(async_config, fragments):
    with pytest.raises(LoopControllerConfigError) as info:
        LoopController(OK, async_config)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def other_model_variable(model):
    return [linear_model(seed=9).layers[-1].kernel]


def batchnorm_statistic(model):
    return [model.layers[0].moving_mean]


@pytest.mark.parametrize(
    "keys, fragments",
    [
        ({"variables": lambda m: m.layers[-1].kernel},
         ["'gate'", "branch True", "'variables'", "must return a list", "Allowed"]),
        ({"variables": other_model_variable},
         ["'variables'", "is not a trainable variable of model"]),
        ({"variables": batchnorm_statistic}, ["'variables'", "is not a trainable variable"]),
        ({"variables": lambda m: []}, ["'gate'", "branch True", "'variables'", "empty"]),
        ({"excluded_variables": lambda m: m.trainable_variables},
         ["'excluded_variables'", "empty"]),
        ({"excluded_variables": lambda m: ["kernel"]},
         ["'excluded_variables'", "is not a trainable variable"]),
        ({"gradient_transform": lambda g, v: g[:1]},
         ["'gate'", "branch True", "'gradient_transform'", "list of 4 gradients"]),
        ({"gradient_transform": lambda g, v: [gi[..., None] for gi in g]},
         ["'gradient_transform'", "has shape"]),
    ],
)
def test_bad_selection_or_transform_fails_before_the_first_step(keys, fragments):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(),
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    x, y = linear_data(16)
    with pytest.raises(LoopControllerConfigError) as info:
        model.fit(x, y, batch_size=8, verbose=0,
                  callbacks=[LoopController({"gate": {"cond": always, True: keys}})])
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # not a single step was taken
    assert int(model.optimizer.iterations) == 0


def test_bad_selection_in_the_other_branch_is_caught_before_the_first_step():
    model = linear_model()
    x, y = linear_data(16)
    w = model.get_weights()
    cb = LoopController({"gate": {"cond": always, True: {},
                                  False: {"variables": lambda m: []}}})
    with pytest.raises(LoopControllerConfigError, match="branch False, key 'variables'"):
        model.fit(x, y, batch_size=8, verbose=0, callbacks=[cb])
    np.testing.assert_array_equal(model.get_weights()[0], w[0])


def test_a_controlled_fit_needs_a_compiled_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    cb = LoopController(OK)
    cb.set_model(model)
    with pytest.raises(ValueError, match="compiled"):
        cb.on_train_begin()


def test_error_in_a_selector_names_the_action():
    def broken(model):
        raise KeyError("no such layer")

    model = linear_model()
    x, y = linear_data(16)
    with pytest.raises(KeyError) as info:
        model.fit(x, y, verbose=0,
                  callbacks=[LoopController({"gate": {"cond": always, True: {"variables": broken}}})])
    assert any("'gate'" in n and "'variables'" in n for n in info.value.__notes__)

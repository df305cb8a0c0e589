"""Keras' own optimizer wrappers around and inside LowPrecisionOptimizer: every nesting
either quantizes what the precision dict says or is a clear error.

A generated table of combinations (LossScaleOptimizer inside, outside, or added by
``compile`` under ``mixed_float16``; EMA with and without overwrites during training;
gradient accumulation; two wrapped optimizers) is trained with ``fit``; after it every
stored weight lies on its grid, as it does after every step, so the wrapped optimizer's
writes were all routed and the final EMA write was rounded. Under loss scaling the
error quantizer sees the unscaled error."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_kappa.layers import Quantize
from tensorflow_kappa.layers import quantize as quantize_layer
from tensorflow_kappa.optimizers import LowPrecisionOptimizer
from tensorflow_kappa.optimizers.low_precision import low_precision_optimizer
from tensorflow_kappa.quantization import FixedPoint

QUANTIZE = quantize_layer.quantize_tensor
PRECISION = {"*": {"weight": "s16.10", "bias": "s12.8", "momentum": "s16.12"},
             "d1": {"weight": "s16.10:stochastic", "update": "s16.14"}}
X = np.random.default_rng(0).standard_normal((48, 5)).astype("float32")
Y = np.random.default_rng(1).standard_normal((48, 2)).astype("float32")

INNER = {"sgd_momentum": lambda **kw: keras.optimizers.SGD(0.05, momentum=0.9, **kw),
         "adam": lambda **kw: keras.optimizers.Adam(0.01, **kw)}
EMA = {"no_ema": {}, "ema": {"use_ema": True},
       "ema_overwrite_2": {"use_ema": True, "ema_overwrite_frequency": 2}}
ACCUMULATION = {"every_step": {}, "accumulate_2": {"gradient_accumulation_steps": 2}}
NESTING = ("plain", "lso_inside", "lso_outside", "mixed_float16")
COMBINATIONS = list(itertools.product(NESTING, INNER, EMA, ACCUMULATION))


def make_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh",
                                                                   name="d0"),
                             keras.layers.Dense(2, name="d1")])


def wrapped(nesting, inner):
    """The optimizer to compile for ``nesting``."""
    if nesting == "lso_inside":
        return LowPrecisionOptimizer(keras.optimizers.LossScaleOptimizer(inner), PRECISION,
                                     seed=1)
    optimizer = LowPrecisionOptimizer(inner, PRECISION, seed=1)
    if nesting == "lso_outside":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer  # "mixed_float16": compile wraps it in a LossScaleOptimizer


def on_grid(x, fmt):
    fmt = FixedPoint.coerce(fmt)
    scaled = np.asarray(x, np.float64) * 2.0 ** fmt.frac_bits
    return bool(np.all(scaled == np.round(scaled)) and np.all(x >= fmt.min_value)
                and np.all(x <= fmt.max_value))


@pytest.fixture
def policy():
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("nesting, inner, ema, accumulation", COMBINATIONS)
def test_every_stored_weight_is_on_its_grid_after_fit(nesting, inner, ema, accumulation,
                                                      policy):
    policy("mixed_float16" if nesting == "mixed_float16" else "float32")
    model = make_model()
    start = [w.numpy().copy() for w in model.trainable_variables]
    optimizer = wrapped(nesting, INNER[inner](**EMA[ema], **ACCUMULATION[accumulation]))
    model.compile(optimizer=optimizer, loss="mse")
    if nesting != "plain":
        assert isinstance(model.optimizer if nesting != "lso_inside" else
                          model.optimizer.inner_optimizer, keras.optimizers.LossScaleOptimizer)
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0)
    lpo = low_precision_optimizer(model.optimizer)
    for variable, before in zip(model.trainable_variables, start):
        layer, name = variable.path.split("/")[-2:]
        fmt = lpo.precision.format(layer, "weight" if name == "kernel" else "bias")
        assert on_grid(variable.numpy(), fmt), variable.path
        assert not np.array_equal(variable.numpy(), before), f"{variable.path} did not train"
    for state in lpo._states.values():  # momentum (SGD, Adam's m) on its grid as well
        if state.fmt is not None:
            value = next(v for v in lpo._step.variables
                         if lpo._step._var_key(v) in lpo._states
                         and lpo._states[lpo._step._var_key(v)] is state)
            assert on_grid(value.numpy(), state.fmt), state.name


@pytest.mark.parametrize("nesting", ["lso_inside", "lso_outside"])
def test_the_gradient_format_rounds_the_unscaled_gradient(nesting):
    """With a gradient format coarser than the gradients times the loss scale would
    be, a loss-scaled gradient would sit at its rail: the stored steps show it."""
    precision = {"*": {"gradient": "s8.6"}}

    def trained(optimizer):
        model = make_model()
        model.compile(optimizer=optimizer, loss="mse")
        model.fit(X, Y, batch_size=48, epochs=1, verbose=0, shuffle=False)
        return [w.numpy() for w in model.trainable_variables]

    plain = trained(LowPrecisionOptimizer(keras.optimizers.SGD(0.1), precision, seed=0))
    inner = keras.optimizers.SGD(0.1)
    scaled = trained(LowPrecisionOptimizer(keras.optimizers.LossScaleOptimizer(inner),
                                           precision, seed=0)
                     if nesting == "lso_inside" else keras.optimizers.LossScaleOptimizer(
                         LowPrecisionOptimizer(inner, precision, seed=0)))
    for a, b in zip(plain, scaled):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_an_optimizer_wrapped_twice_is_refused():
    """It was a raw IndexError at the first step."""
    inner = keras.optimizers.SGD(0.1)
    LowPrecisionOptimizer(inner, PRECISION, name="first")
    with pytest.raises(ValueError, match="already wrapped by LowPrecisionOptimizer 'first'"):
        LowPrecisionOptimizer(inner, PRECISION)
    with pytest.raises(ValueError, match="already wrapped"):
        LowPrecisionOptimizer(keras.optimizers.LossScaleOptimizer(inner), PRECISION)
    with pytest.raises(ValueError, match="not itself a LowPrecisionOptimizer"):
        LowPrecisionOptimizer(keras.optimizers.LossScaleOptimizer(
            LowPrecisionOptimizer(keras.optimizers.SGD(0.1))), PRECISION)


def error_inputs(policy_name, policy, monkeypatch, optimizer):
    """One eager step of a model with an error quantizer under ``policy_name``: the
    tensors its backward pass rounds, and how far the Dense below it moved."""
    policy(policy_name)
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="d0"),
                              Quantize(backward="s8.6", name="q"),
                              keras.layers.Dense(2, name="d1")])
    seen = []

    def recording(x, fmt, ste=True, seed=None):
        seen.append(np.asarray(x, np.float64))
        return QUANTIZE(x, fmt, ste=ste, seed=seed)

    monkeypatch.setattr(quantize_layer, "quantize_tensor", recording)
    before = model.get_layer("d0").kernel.numpy().copy()
    model.compile(optimizer=optimizer, loss="mse", run_eagerly=True)
    model.train_on_batch(X[:8], 0.01 * Y[:8])
    return seen, model.get_layer("d0").kernel.numpy() - before, model


@pytest.mark.parametrize("policy_name, make_optimizer", [
    ("mixed_float16", lambda: keras.optimizers.SGD(0.5)),            # compile adds the LSO
    ("mixed_float16", lambda: LowPrecisionOptimizer(keras.optimizers.SGD(0.5),
                                                    {"d0": {"weight": "s16.12"}})),
    ("mixed_float16", lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.5),
                                                                  initial_scale=256)),
    ("float32", lambda: keras.optimizers.SGD(0.5, loss_scale_factor=1024.0)),
    ("float32", lambda: LowPrecisionOptimizer(keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(0.5)), {"d0": {"weight": "s16.12"}})),
], ids=["compile_lso", "compile_lso_around_wrapper", "explicit_lso", "loss_scale_factor",
        "lso_inside_wrapper"])
def test_the_error_quantizer_sees_the_unscaled_error(policy_name, make_optimizer, policy,
                                                      monkeypatch):
    """Under loss scaling (x32768 by default) an s8.6 error format saturated and the
    layers below stopped learning; it must round the error the unscaled run rounds."""
    reference, moved_ref, _ = error_inputs("float32", policy, monkeypatch,
                                           keras.optimizers.SGD(0.5))
    seen, moved, model = error_inputs(policy_name, policy, monkeypatch, make_optimizer())
    assert model.optimizer.scale_loss(tf.constant(1.0)).numpy() > 1  # the loss was scaled
    assert len(seen) == len(reference) == 1
    np.testing.assert_allclose(seen[0], reference[0], rtol=2e-2, atol=1e-4)
    np.testing.assert_allclose(moved, moved_ref, rtol=5e-2, atol=1e-3)
    assert np.abs(moved).sum() > 0.5 * np.abs(moved_ref).sum()

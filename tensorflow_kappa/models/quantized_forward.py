"""The instrumented trainer's forward pass with fake quantization.

The forward pass walks a chain of layers (each consuming the previous
layer's output, as in :class:`~tensorflow_kappa.models.LinearBlockModel`):
the input is quantized to ``("input", "value")``; a Dense layer computes
``q_act(act(q_acc(x @ q_w(W)) + q_b(b)))``; any other layer is called as
usual (its variables as stored: the optimizer keeps them on their storage
grids) and its output quantized to its ``activation`` format. Every
quantizer uses the straight-through estimator, so gradients flow as in
float. Which format a variable is stored in, and every other per-variable
format, comes from the one mapping in
:mod:`~tensorflow_kappa.quantization.variables`.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import keras
import tensorflow as tf

from tensorflow_kappa.quantization import FixedPoint, quantize_tensor
from tensorflow_kappa.quantization.precision import INPUT_LAYER, PrecisionDict
from tensorflow_kappa.quantization.seeds import SeedStream

__all__ = ["check_layer_chain", "forward_with_precision", "layer_names"]

RESERVED_LAYER_NAMES = ("input", "loss")


def _model_layers(model: keras.Model) -> List[keras.layers.Layer]:
    return [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]


def check_layer_chain(model: keras.Model) -> None:
    """Raise ValueError unless the model is a chain the quantized forward can walk."""
    layers = _model_layers(model)
    for name in RESERVED_LAYER_NAMES:
        if any(l.name == name for l in layers):
            raise ValueError(
                f"Layer name {name!r} is reserved in precision dicts; rename the layer"
            )
    for prev, layer in zip(layers, layers[1:]):
        if layer.input is not prev.output:
            raise ValueError(
                f"The quantized forward pass walks a chain of layers, but layer "
                f"{layer.name!r} does not take the output of {prev.name!r}; "
                "extend forward_with_precision for this architecture"
            )


def _q(x, fmt: Optional[FixedPoint], seeds: Optional[SeedStream]):
    if fmt is None:
        return x
    return quantize_tensor(x, fmt, ste=True, seed=None if seeds is None else seeds.next(fmt))


def forward_with_precision(model: keras.Model, x, precision: PrecisionDict, *,
                           training: bool, seeds: Optional[SeedStream] = None) -> tf.Tensor:
    """The model's forward pass with fake quantization at every precision field.

    Args:
        model: a chain of layers (see :func:`check_layer_chain`).
        x: a batch of inputs.
        precision: the formats.
        training: passed to non-Dense layers (BatchNormalization).
        seeds: the run's seeds for stochastic rounding; None lets stochastic
            formats draw from TensorFlow's global generator.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    x = _q(x, precision.format(INPUT_LAYER, "value"), seeds)
    for layer in _model_layers(model):
        name = layer.name
        if isinstance(layer, keras.layers.Dense):
            kernel = _q(tf.convert_to_tensor(layer.kernel), precision.format(name, "weight"),
                        seeds)
            z = tf.matmul(x, kernel)
            z = _q(z, precision.format(name, "accumulator"), seeds)
            if layer.bias is not None:
                bias = _q(tf.convert_to_tensor(layer.bias), precision.format(name, "bias"),
                          seeds)
                z = z + bias
            if layer.activation is not None:
                z = layer.activation(z)
            x = z
        else:
            x = layer(x, training=training)
        x = _q(x, precision.format(name, "activation"), seeds)
    return x


def layer_names(model: keras.Model) -> Sequence[str]:
    """The names a precision dict may use for this model's layers."""
    return [l.name for l in _model_layers(model)]

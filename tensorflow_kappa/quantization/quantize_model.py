"""``quantize_model``: a copy of a Keras model with ``Quantize`` layers where a precision dict asks."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import keras

from tensorflow_kappa.quantization.precision import (DEFAULT_LAYER, INPUT_LAYER, PrecisionDict,
                                                     ensure_precision_dict)

__all__ = ["SUPPORTED_LAYERS", "quantize_model"]

_L = keras.layers
#: Layers whose whole computation is captured by quantizing their output (and
#: the error flowing back into it): the layers ``quantize_model`` handles.
SUPPORTED_LAYERS: Tuple[type, ...] = (
    _L.Dense, _L.EinsumDense, _L.Embedding,
    _L.Conv1D, _L.Conv2D, _L.Conv3D, _L.Conv1DTranspose, _L.Conv2DTranspose,
    _L.Conv3DTranspose, _L.DepthwiseConv1D, _L.DepthwiseConv2D, _L.SeparableConv1D,
    _L.SeparableConv2D,
    _L.BatchNormalization, _L.LayerNormalization, _L.GroupNormalization,
    _L.MaxPooling1D, _L.MaxPooling2D, _L.MaxPooling3D, _L.AveragePooling1D,
    _L.AveragePooling2D, _L.AveragePooling3D, _L.GlobalAveragePooling1D,
    _L.GlobalAveragePooling2D, _L.GlobalAveragePooling3D, _L.GlobalMaxPooling1D,
    _L.GlobalMaxPooling2D, _L.GlobalMaxPooling3D,
    _L.Flatten, _L.Reshape, _L.Permute, _L.ZeroPadding1D, _L.ZeroPadding2D, _L.Cropping1D,
    _L.Cropping2D, _L.UpSampling1D, _L.UpSampling2D,
    _L.Dropout, _L.SpatialDropout1D, _L.SpatialDropout2D, _L.GaussianNoise, _L.GaussianDropout,
    _L.Activation, _L.ReLU, _L.LeakyReLU, _L.PReLU, _L.ELU, _L.Softmax,
    _L.Add, _L.Subtract, _L.Multiply, _L.Average, _L.Maximum, _L.Minimum, _L.Concatenate,
)


def _layers(model: keras.Model) -> List[keras.layers.Layer]:
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _check_model(model: Any, allow: Tuple[type, ...]) -> None:
    if not isinstance(model, keras.Model):
        raise ValueError(f"quantize_model takes a keras.Model, got model={model!r}")
    if not isinstance(model, keras.Sequential) and not hasattr(model, "_run_through_graph"):
        raise ValueError(
            f"quantize_model copies Sequential and functional models; {model.name!r} is a "
            f"subclassed model ({type(model).__name__}): put "
            "tensorflow_kappa.layers.Quantize layers into its call() yourself")
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not model.built or not inputs:
        raise ValueError(f"model {model.name!r} has no inputs yet: give it a keras.Input (or "
                         "call it once) before quantize_model")
    unsupported = [f"{layer.name!r} ({type(layer).__name__})" for layer in _layers(model)
                   if not isinstance(layer, SUPPORTED_LAYERS + allow)]
    if unsupported:
        raise ValueError(
            f"quantize_model cannot quantize inside layer(s) {', '.join(unsupported)}: it "
            "quantizes a layer's output and the error flowing into it, which captures the "
            "layers in tensorflow_kappa.quantization.quantize_model.SUPPORTED_LAYERS. Pass "
            "allow=(TheirClass, ...) to quantize only their outputs, or build the model with "
            "tensorflow_kappa.layers.Quantize where you want quantizers")


class _Quantizers:
    """The Quantize layers to insert, one per layer (and per model input)."""

    def __init__(self, precision: PrecisionDict, taken: Sequence[str]):
        self.precision = precision
        self.taken = set(taken)
        self.made: Dict[Tuple[str, str], keras.layers.Layer] = {}

    def get(self, layer_name: str, forward_field: str, backward: bool) -> Any:
        """The Quantize layer for ``layer_name`` (the model input's for ``forward_field``
        ``"value"``), or None where nothing is quantized."""
        key = (layer_name, forward_field)
        if key in self.made:
            return self.made[key]
        from tensorflow_kappa.layers.quantize import Quantize

        fmt = self.precision.format
        forward = fmt(layer_name, forward_field)
        error = fmt(layer_name, "error") if backward else None
        quantizer = None
        if forward is not None or error is not None:
            name = f"{layer_name}_quantize"
            if name in self.taken:
                raise ValueError(f"quantize_model names the quantizer of {layer_name!r} "
                                 f"{name!r}, but the model already has a layer of that name "
                                 "(or the model input's quantizer is called so); rename "
                                 "that layer")
            self.taken.add(name)
            quantizer = Quantize(forward=forward, backward=error, name=name)
        self.made[key] = quantizer
        return quantizer


def quantize_model(model: keras.Model, precision: Any, allow: Sequence[type] = ()) -> keras.Model:
    """A copy of ``model`` with ``Quantize`` layers inserted per ``precision``, weights copied.

    After every layer ``L`` whose precision dict entry sets ``activation``
    or ``error``, the copy has a layer ``Quantize(forward=activation(L),
    backward=error(L), name=f"{L.name}_quantize")``: ``L``'s output is rounded
    to its activation format and the error backpropagated into it to its
    error format. Float model inputs are rounded to ``("input", "value")``
    by a layer named ``input_quantize``. Layers keep their names, so the same
    precision dict drives :class:`~tensorflow_kappa.optimizers.LowPrecisionOptimizer`
    (weights, biases, gradients, updates, optimizer state) on the copy.
    The copy is not compiled.

    Args:
        model: a built Sequential or functional model (Sequential stays
            Sequential). Its layers must be in :data:`SUPPORTED_LAYERS`
            (Dense, EinsumDense, Conv*, BatchNormalization, pooling, Flatten,
            Dropout, activations, merging, ...) or in ``allow``.
        precision: a PrecisionDict, a mapping ``{layer: {field: format}}`` or
            one format for every field.
        allow: further layer classes whose outputs may be quantized (their
            inside stays float).

    Returns:
        The new model, with the original's weights (trainable and not).

    Raises:
        ValueError: a subclassed model (use ``Quantize`` in its ``call``), a
            model without inputs, layers it cannot handle (named in the
            message), a precision dict naming layers the model does not have
            (the message lists those it has) or an ``accumulator`` (the
            instrumented trainer's field), a layer whose name a precision dict
            reserves (``"*"``, or ``"input"`` when the dict has that entry),
            or a name clash with an existing ``*_quantize`` layer.

    Example:
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d1"),
    ...                           keras.layers.Dense(1, name="d2")])
    >>> q = quantize_model(model, {"input": {"value": "s8.4"},
    ...                            "d1": {"activation": "s8.4", "error": "s8.12"}})
    >>> [layer.name for layer in q.layers]
    ['input_quantize', 'd1', 'd1_quantize', 'd2']
    """
    if (isinstance(allow, (str, bytes)) or not isinstance(allow, Sequence)
            or not all(isinstance(cls, type) for cls in allow)):
        raise ValueError(f"allow must be a sequence of layer classes, got allow={allow!r}")
    allow = tuple(allow)
    _check_model(model, allow)
    precision = ensure_precision_dict(precision) or PrecisionDict()
    names = [layer.name for layer in _layers(model)]
    precision.validate(names)
    for layer in precision.layer_names:  # "*" holds defaults: what applies, applies
        if layer != DEFAULT_LAYER and "accumulator" in precision.fields(layer):
            raise ValueError(
                f"precision[{layer!r}] sets 'accumulator', which only the instrumented "
                "trainer rounds (train_instrumented); in model.fit a layer's output is "
                "rounded by 'activation'")
    quantizers = _Quantizers(precision, names)
    clones: Dict[int, Tuple[keras.layers.Layer, keras.layers.Layer]] = {}

    def clone(layer):
        new = layer.__class__.from_config(layer.get_config())
        clones[id(layer)] = (layer, new)
        return new

    if isinstance(model, keras.Sequential):
        new_model = _quantize_sequential(model, quantizers, clone)
    else:
        new_model = _quantize_functional(model, quantizers, clone)
    for layer, new in clones.values():
        new.set_weights(layer.get_weights())
    return new_model


def _input_quantizer(tensor: Any, quantizers: _Quantizers) -> Any:
    if "float" not in str(tensor.dtype):
        return tensor  # integer inputs (token ids) are not values to round
    quantizer = quantizers.get(INPUT_LAYER, "value", backward=False)
    return tensor if quantizer is None else quantizer(tensor)


def _quantize_sequential(model, quantizers: _Quantizers, clone) -> keras.Model:
    source = model.inputs[0]
    layers: List[Any] = [keras.Input(batch_shape=source.shape, dtype=source.dtype)]
    if "float" in str(source.dtype):
        layers.append(quantizers.get(INPUT_LAYER, "value", backward=False))
    for layer in _layers(model):
        layers.append(clone(layer))
        layers.append(quantizers.get(layer.name, "activation", backward=True))
    return keras.Sequential([layer for layer in layers if layer is not None], name=model.name)


def _quantize_functional(model, quantizers: _Quantizers, clone) -> keras.Model:
    inputs = keras.tree.map_structure(
        lambda x: keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x.name), model.input)
    quantized_inputs = {id(x): _input_quantizer(x, quantizers) for x in keras.tree.flatten(inputs)}

    def call(layer, *args, **kwargs):
        args, kwargs = keras.tree.map_structure(
            lambda x: quantized_inputs.get(id(x), x), (args, kwargs))
        outputs = layer(*args, **kwargs)
        quantizer = quantizers.get(layer.name, "activation", backward=True)
        if quantizer is None:
            return outputs
        return keras.tree.map_structure(quantizer, outputs)

    return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone,
                                    call_function=call)

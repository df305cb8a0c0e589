"""Model-level read-out of neural arithmetic layers: formulas, sparsity error, gates."""
from __future__ import annotations

from typing import Iterator, Sequence

import keras
import numpy as np

from tensorflow_kappa.layers import _formula
from tensorflow_kappa.layers._base import NALMLayer


def _walk(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """``layer`` and, for models and other containers, every layer inside, in order."""
    yield layer
    for inner in getattr(layer, "layers", None) or ():
        yield from _walk(inner)


def nalm_layers(model: keras.layers.Layer) -> list:
    """Every neural arithmetic layer in ``model`` (nested models included), in order."""
    return [layer for layer in _walk(model) if isinstance(layer, NALMLayer)]


def gate_variables(model: keras.layers.Layer) -> list:
    """The gate variables (``layer.g``) of every gated NALM layer (INALU, NALU) in ``model``.

    The same list as the report's ``[layer.g for layer in self.layers if isinstance(layer,
    NALU)]``, found also in nested models; layers must be built.

    Example:

    >>> import keras
    >>> from tensorflow_kappa.layers import INALU, gate_variables
    >>> model = keras.Sequential([keras.Input((4,)), INALU(2), INALU(1)])
    >>> [tuple(v.shape) for v in gate_variables(model)]
    [(2,), (1,)]
    """
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(f"gate_variables: model must be a keras.Model or layer, got {model!r}")
    gates = []
    for layer in nalm_layers(model):
        if layer._gated:
            if not layer.built:
                raise ValueError(f"{layer.name} is not built yet; build the model first")
            gates.append(layer.g)
    return gates


def sparsity_error(layer: keras.layers.Layer) -> float:
    """Madsen & Johansen's sparsity error ``max_w min(|w|, |1 − |w||)``.

    Taken over the layer's effective weights (its ``effective_weights()``: ``W`` of NAC,
    NALU, NAU and NMU, ``W_A`` and ``W_M`` of iNALU; gates are not weights). Zero when
    every weight is in {−1, 0, 1}. Given a model, the maximum over its NALM layers.
    """
    layers = [layer] if isinstance(layer, NALMLayer) else nalm_layers(layer)
    if not layers:
        raise ValueError(f"sparsity_error: layer must be a NALM layer or a model containing "
                         f"one, got {layer!r}")
    worst = 0.0
    for nalm in layers:
        if not nalm.built:
            raise ValueError(f"{nalm.name} is not built yet; call it on data first")
        for w in nalm.effective_weights().values():
            abs_w = np.abs(np.asarray(w, dtype=np.float64))
            worst = max(worst, float(np.max(np.minimum(abs_w, np.abs(1.0 - abs_w)))))
    return worst


def _chain(model: keras.layers.Layer) -> list:
    """The NALM layers of ``model`` as a chain, each feeding the next; else ValueError."""
    if isinstance(model, NALMLayer):
        return [model]
    if not isinstance(model, keras.Model):
        raise ValueError(f"explain: model must be a NALM layer or a keras.Model, got {model!r}")
    chain = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if not isinstance(layer, NALMLayer):
            raise ValueError(
                f"explain reads stacks of NALM layers only; layer {layer.name!r} "
                f"({type(layer).__name__}) is not one")
        chain.append(layer)
    if not chain:
        raise ValueError(f"model {model.name!r} has no NALM layer to explain")
    if not isinstance(model, keras.Sequential):
        for prev, layer in zip(chain, chain[1:]):
            try:
                linked = layer.input is prev.output
            except (AttributeError, ValueError):
                linked = False
            if not linked:
                raise ValueError(f"explain needs a single chain of NALM layers; "
                                 f"{layer.name!r} does not take {prev.name!r}'s output")
    for layer in chain:
        if not layer.built:
            raise ValueError(f"{layer.name} is not built yet; build the model first")
    for prev, layer in zip(chain, chain[1:]):
        if prev.units != layer.input_dim:
            raise ValueError(f"{layer.name!r} takes {layer.input_dim} inputs but "
                             f"{prev.name!r} gives {prev.units}")
    return chain


def explain(model: keras.layers.Layer, input_names: Sequence[str] | None = None,
            tolerance: float = 0.1) -> list:
    """Compose the formulas of a stack of NALM layers into one formula per model output.

    Each layer's units are read as in :meth:`INALU.explain` and substituted into the
    next layer's, simplifying as they go (like terms merge, parentheses only where
    needed), so a trained 3-layer iNALU stack on the report's task reads
    ``(x1 - x2) * (x3 - x4) + x5 * x6``. Units of inner layers that are not discrete only
    matter if a later unit uses them; the final read-out then names their weights.

    Args:
        model: a ``keras.Sequential`` or functional model whose layers (after its
            ``Input``) form one chain of NALM layers, or a single NALM layer.
        input_names: names of the model's inputs, plain identifiers; ``x1 … xN`` by
            default.
        tolerance: as in :meth:`INALU.explain`.

    Returns:
        One :class:`~tensorflow_kappa.layers.Formula` (a ``str``) per output unit.

    Example:

    >>> from tensorflow_kappa.layers import explain
    >>> explain(trained_model)  # doctest: +SKIP
    ['(x1 - x2) * (x3 - x4) + x5 * x6']
    """
    tolerance = _formula.check_tolerance(tolerance)
    chain = _chain(model)
    nodes = _formula.input_variables(input_names, chain[0].input_dim)
    for layer in chain:
        nodes = layer._unit_formulas(nodes, tolerance)
    return [_formula.Formula(node) for node in nodes]

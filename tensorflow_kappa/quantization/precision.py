"""Per-layer, per-field fixed-point formats: ``PrecisionDict``.

A precision dict says, for each layer of a model (by its Keras name) and each
*field* of that layer, which :class:`~tensorflow_kappa.quantization.FixedPoint`
format it is rounded to (by the instrumented trainer, and in ``model.fit`` by
``quantize_model`` and ``LowPrecisionOptimizer``). A field that is
not given stays in float32. The fields:

=================  ===========================================================
``value``          stored trainable variables other than a kernel/bias
                   (e.g. BatchNorm gamma/beta); for the reserved layer name
                   ``"input"``, the model's input
``weight``         a kernel (Dense; with ``LowPrecisionOptimizer`` any layer's
                   ``kernel``, ``*_kernel`` or ``embeddings``), as stored and
                   as used in the forward pass
``bias``           a bias, as stored and as used in the forward pass
``accumulator``    the matrix product ``x @ kernel`` before the bias
                   (instrumented trainer only)
``activation``     a layer's output
``error``          the error backpropagated into a layer's output (the
                   gradient of the loss with respect to it; ``quantize_model``)
``gradient``       the gradient of each of the layer's variables
``update``         the update added to each of the layer's variables
``momentum``       first-moment optimizer state of the layer's variables:
                   momentum, Adam's ``m``, RMSprop's momentum
``second_moment``  second-moment optimizer state: Adam's and RMSprop's
                   ``velocity`` (mean of squared gradients), Adagrad's
                   accumulator (``LowPrecisionOptimizer`` only)
=================  ===========================================================

:func:`~tensorflow_kappa.quantization.variables.variable_layer_and_field`
names the layer and storage field of a Keras variable from its path
(``"conv2d/kernel"`` -> ``("conv2d", "weight")``).

The layer name ``"*"`` gives defaults for every layer (``"input"`` included);
a layer's own entry wins field by field. A layer's entry is either a dict
``{field: format}`` or one format for all of its fields. Formats are
``FixedPoint`` objects or their string form (``"s8.6"``).

Example:
>>> p = PrecisionDict({"*": {"weight": "s8.6", "update": "s16.14"},
...                    "dense1": {"weight": "s4.2"}})
>>> str(p.format("dense0", "weight")), str(p.format("dense1", "weight"))
('s8.6', 's4.2')
>>> p.format("dense0", "gradient") is None
True
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.core.fixed_point import FixedPoint, FormatLike

__all__ = [
    "DEFAULT_LAYER",
    "FIELDS",
    "INPUT_LAYER",
    "PrecisionDict",
    "ensure_precision_dict",
]

#: The fields a layer's entry may give (the table above).
FIELDS = (
    "value", "weight", "bias", "accumulator", "activation", "gradient", "update", "momentum",
    "error", "second_moment",
)
#: The layer name whose entry gives every layer's defaults.
DEFAULT_LAYER = "*"
#: The reserved layer name of the model's input (its ``value`` field).
INPUT_LAYER = "input"

def _coerce_format(fmt: Any, where: str) -> FixedPoint:
    fmt = _checks.number_format(f"precision[{where!r}]", fmt)
    try:
        fmt.check_dtype(tf.float32)
    except ValueError as err:
        raise ValueError(
            f"Precision for {where}: {err}; the trainer computes in float32"
        ) from None
    return fmt


def _fields_of(layer: str) -> tuple:
    """The fields an entry may set: all of them, except for the model input's."""
    return ("value",) if layer == INPUT_LAYER else FIELDS


class PrecisionDict:
    """Fixed-point formats per layer name and field (see the module docstring).

    Args:
        spec: ``{layer_name: {field: format}}`` or ``{layer_name: format}``
            (one format for every field of that layer); ``"*"`` is the
            default layer, ``"input"`` the model input (its only field is
            ``value``; one format for it means that field).

    Raises:
        ValueError: an unknown field, a field other than ``value`` for
            ``"input"``, a format that does not parse, or one that float32
            cannot hold exactly.
    """

    def __init__(self, spec: Optional[Mapping[str, Any]] = None):
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise ValueError(
                f"A precision dict is a mapping {{layer_name: {{field: format}}}}, got {spec!r}"
            )
        self._formats: Dict[str, Dict[str, FixedPoint]] = {}
        for layer, entry in spec.items():
            if not isinstance(layer, str) or not layer:
                raise ValueError(f"Precision dict layer names are non-empty strings, got {layer!r}")
            if isinstance(entry, (FixedPoint, str)):
                entry = {field: entry for field in _fields_of(layer)}
            if not isinstance(entry, Mapping):
                raise ValueError(
                    f"Precision for layer {layer!r} must be a format or a mapping "
                    f"{{field: format}} with fields {FIELDS}, got {entry!r}"
                )
            formats = {}
            for field, fmt in entry.items():
                if field not in FIELDS:
                    raise ValueError(
                        f"Unknown precision field {field!r} for layer {layer!r}; "
                        f"expected one of {FIELDS}"
                    )
                if field not in _fields_of(layer):
                    raise ValueError(
                        f"Precision for {INPUT_LAYER!r} (the model's input) takes only the "
                        f"field 'value' (the input itself), got {field!r}; a layer's "
                        "output and error are set under that layer's name"
                    )
                if fmt is None:
                    continue
                formats[field] = _coerce_format(fmt, f"{layer}.{field}")
            self._formats[layer] = formats

    def format(self, layer_name: str, field: str) -> Optional[FixedPoint]:
        """The format of ``field`` in ``layer_name`` (else the ``"*"`` default), or None.

        Raises:
            ValueError: ``field`` is not one of :data:`FIELDS`.
        """
        if field not in FIELDS:
            raise ValueError(f"Unknown precision field {field!r}; expected one of {FIELDS}")
        own = self._formats.get(layer_name, {})
        if field in own:
            return own[field]
        return self._formats.get(DEFAULT_LAYER, {}).get(field)

    @property
    def layer_names(self) -> tuple:
        """The layer names the dict mentions (``"*"`` and ``"input"`` included)."""
        return tuple(self._formats)

    def fields(self, layer_name: str) -> tuple:
        """The fields the dict sets for ``layer_name`` itself (not through ``"*"``).

        Example:
        >>> PrecisionDict({"*": {"weight": "s8.6"}, "d": {"bias": "s8.4"}}).fields("d")
        ('bias',)
        """
        return tuple(self._formats.get(layer_name, {}))

    def validate(self, model_layer_names: Iterable[str]) -> None:
        """Raise ValueError if the dict names a layer the model does not have, or if a
        layer of the model has a reserved name (``"*"``, or ``"input"`` while the dict
        has an ``"input"`` entry): which one an entry meant could not be told apart.

        Example:
        >>> PrecisionDict({"dense_1": {"weight": "s8.6"}}).validate(["d1", "d2"])
        Traceback (most recent call last):
        ...
        ValueError: Precision dict names layer(s) ['dense_1'] that the model does not have; ...
        """
        known = list(model_layer_names)
        self.check_reserved(known)
        unknown = [
            name for name in self._formats
            if name not in (DEFAULT_LAYER, INPUT_LAYER) and name not in known
        ]
        if unknown:
            raise ValueError(
                f"Precision dict names layer(s) {unknown} that the model does not have; "
                f"the model's layers are {known} (plus '{DEFAULT_LAYER}' for defaults "
                f"and '{INPUT_LAYER}' for the input)"
            )

    def check_reserved(self, model_layer_names: Iterable[str]) -> None:
        """Raise ValueError if a layer of the model has a name the dict reserves:
        ``"*"``, or ``"input"`` while the dict has an ``"input"`` entry (the model's
        input or that layer: the entry could mean either)."""
        names = set(model_layer_names)
        for name in (DEFAULT_LAYER, INPUT_LAYER):
            if name in names and (name == DEFAULT_LAYER or name in self._formats):
                raise ValueError(
                    f"The model has a layer named {name!r}, a name a precision dict "
                    f"reserves ('{DEFAULT_LAYER}': the defaults, '{INPUT_LAYER}': the "
                    "model's input), so the dict's entry could mean either; rename the "
                    "layer (name=... when it is created)"
                )

    def to_dict(self) -> Dict[str, Dict[str, str]]:
        """The dict in string form (JSON-ready): ``{layer: {field: "s8.6"}}``."""
        return {layer: {f: str(fmt) for f, fmt in fields.items()}
                for layer, fields in self._formats.items()}

    @classmethod
    def from_json(cls, path: str) -> "PrecisionDict":
        """Read ``{layer: {field: "s8.6"}}`` (or ``{layer: "s8.6"}``) from a JSON file.

        Raises:
            OSError: the file cannot be read.
            ValueError: it is not JSON, or not a valid precision dict (the
                message names the file).
        """
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        try:
            return cls(json.loads(text))
        except json.JSONDecodeError as err:
            raise ValueError(f"precision file {path!r} is not valid JSON: {err}") from None
        except ValueError as err:
            raise ValueError(f"precision file {path!r}: {err}") from None

    def __bool__(self) -> bool:
        return any(self._formats.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrecisionDict) and self._formats == other._formats

    def __repr__(self) -> str:
        return f"PrecisionDict({self.to_dict()!r})"


def ensure_precision_dict(
    precision: Union[None, PrecisionDict, Mapping[str, Any], FixedPoint, str],
) -> Optional[PrecisionDict]:
    """None stays None; a PrecisionDict is returned as is; a mapping is parsed;
    one format (``"s8.6"``) means that format for every field of every layer."""
    if precision is None or isinstance(precision, PrecisionDict):
        return precision
    if isinstance(precision, (FixedPoint, str)):
        return PrecisionDict({DEFAULT_LAYER: precision})
    if isinstance(precision, Mapping):
        return PrecisionDict(precision)
    raise ValueError(
        "precision_dict must be None, a PrecisionDict, a mapping "
        f"{{layer_name: {{field: format}}}} or one format such as 's8.6', got {precision!r}"
    )

"""Which variable is which: a model variable's layer and field, and its formats.

One mapping and one record, shared by every part of the package that quantizes
a model's variables (the optimizer wrapper, the instrumented trainer, the
monitor through the wrapper's statistics):

* :func:`variable_layer_and_field` names the layer and storage field of a
  variable from its path (``"conv2d/kernel"`` -> ``("conv2d", "weight")``);
* :class:`VariableRecord` holds, for one variable, that place and the
  formats a :class:`~tensorflow_kappa.quantization.PrecisionDict` gives it:
  storage, update, gradient and optimizer-state formats (None: float);
* :func:`variable_records` builds the records of a list of variables.

Example:
>>> v = tf.Variable(tf.zeros([3, 2]), name="dense/kernel")
>>> r = variable_record(v, PrecisionDict({"dense": {"weight": "s8.6", "update": "s16.14"}}))
>>> (r.layer, r.field, str(r.storage), str(r.update), r.gradient, r.size)
('dense', 'weight', 's8.6', 's16.14', None, 6)
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf

from tensorflow_kappa.core.fixed_point import FixedPoint
from tensorflow_kappa.quantization.precision import DEFAULT_LAYER, INPUT_LAYER, PrecisionDict

__all__ = ["KERNEL_NAMES", "STATE_FIELDS", "STORAGE_FIELDS", "VARIABLE_FIELDS", "VariableRecord",
           "check_entries", "variable_layer_and_field", "variable_record", "variable_records"]

#: Variable names (the last part of a Keras variable's path) stored in the
#: ``weight`` field, besides any ``*_kernel``; ``bias`` is ``bias``; every
#: other name is a ``value``.
KERNEL_NAMES = ("kernel", "embeddings")
#: The precision fields of an optimizer's per-variable state.
STATE_FIELDS = ("momentum", "second_moment")
#: The fields a variable is stored in (one per variable, by its name).
STORAGE_FIELDS = ("weight", "bias", "value")
#: The fields that apply to a model's variables (the optimizer wrapper's): storage,
#: gradient, update and optimizer state. The others (activation, error,
#: accumulator) round what a layer computes.
VARIABLE_FIELDS = STORAGE_FIELDS + ("gradient", "update") + STATE_FIELDS


def variable_layer_and_field(variable: Any, named: Iterable[str] = ()) -> Tuple[str, str]:
    """The layer name and storage field of a model variable, from its path.

    A Keras 3 variable's path is ``".../<layer name>/<variable name>"`` (the
    name scopes of the layers that built it); the layer is the innermost one
    of them that ``named`` holds (the layer names of a precision dict), else
    the innermost one. So an entry for a layer with sublayers of its own
    (``"rnn"``, whose variables live in its cell ``rnn/simple_rnn_cell/...``;
    a MultiHeadAttention's ``mha/query/...``) covers their variables.
    ``kernel``, any ``*_kernel`` (``depthwise_kernel``, ``recurrent_kernel``)
    and ``embeddings`` are ``weight``, ``bias`` is ``bias``, anything else
    (BatchNormalization's ``gamma``/``beta``, ...) is ``value``. A plain
    ``tf.Variable`` is read from its name (``"dense/kernel:0"``).

    Raises:
        ValueError: the path has no layer part (a variable created outside
            any layer, e.g. ``keras.Variable(0.0, name="v")``).

    Example:
    >>> variable_layer_and_field(tf.Variable([0.0], name="dense/kernel"))
    ('dense', 'weight')
    >>> class Path: path = "model/conv2d/bias"   # a keras.Variable has .path
    >>> variable_layer_and_field(Path())
    ('conv2d', 'bias')
    >>> class Cell: path = "model/rnn/simple_rnn_cell/kernel"
    >>> variable_layer_and_field(Cell()), variable_layer_and_field(Cell(), named=["rnn"])
    (('simple_rnn_cell', 'weight'), ('rnn', 'weight'))
    """
    path = variable_path(variable)
    parts = path.split("/")
    if len(parts) < 2 or not parts[-2]:
        raise ValueError(
            f"Variable {path!r} belongs to no layer (its path has no '<layer>/<name>' "
            "part), so no precision dict entry can name it; create it inside a layer"
        )
    name = parts[-1]
    if name == "bias":
        field = "bias"
    elif name in KERNEL_NAMES or name.endswith("_kernel"):
        field = "weight"
    else:
        field = "value"
    named = set(named)
    layer = next((p for p in reversed(parts[:-1]) if p in named), parts[-2])
    return layer, field


def variable_path(variable: Any) -> str:
    """A variable's path (``keras.Variable.path``, else a ``tf.Variable``'s name
    without its ``:0``)."""
    path = getattr(variable, "path", None) or str(getattr(variable, "name", ""))
    return path.split(":")[0]


class VariableRecord(NamedTuple):
    """One variable's place in a precision dict and its formats (None: float).

    Attributes:
        path: the variable's path.
        layer: the precision dict's layer name for it.
        field: its storage field (``weight``, ``bias`` or ``value``).
        storage: the format it is stored in.
        update: the format of the step added to it.
        gradient: the format of its gradient.
        momentum: the format of its first-moment optimizer state.
        second_moment: the format of its second-moment optimizer state.
        size: its number of elements.
    """

    path: str
    layer: str
    field: str
    storage: Optional[FixedPoint]
    update: Optional[FixedPoint]
    gradient: Optional[FixedPoint]
    momentum: Optional[FixedPoint]
    second_moment: Optional[FixedPoint]
    size: int

    @property
    def quantized_store(self) -> bool:
        """Whether a write to the variable goes through a format (update or storage)."""
        return self.storage is not None or self.update is not None

    def state_format(self, field: Optional[str]) -> Optional[FixedPoint]:
        """The format of optimizer state in ``field`` (one of :data:`STATE_FIELDS`), or None."""
        return None if field is None else getattr(self, field)


def variable_record(variable: Any, precision: PrecisionDict) -> VariableRecord:
    """The :class:`VariableRecord` of ``variable`` under ``precision``.

    Raises:
        ValueError: the variable belongs to no layer (see
            :func:`variable_layer_and_field`).
    """
    layer, field = variable_layer_and_field(variable, named=precision.layer_names)
    fmt = precision.format
    return VariableRecord(variable_path(variable), layer, field, fmt(layer, field),
                          fmt(layer, "update"), fmt(layer, "gradient"), fmt(layer, "momentum"),
                          fmt(layer, "second_moment"),
                          int(math.prod(tf.TensorShape(variable.shape).as_list())))


def variable_records(variables: Iterable[Any], precision: PrecisionDict) -> List[VariableRecord]:
    """The records of ``variables``, in their order (see :func:`variable_record`)."""
    return [variable_record(v, precision) for v in variables]


def _described(record: VariableRecord) -> str:
    return f"{record.path}: {record.field}"


def check_entries(records: Sequence[VariableRecord], precision: PrecisionDict,
                  states: Optional[Mapping[int, Sequence[Tuple[str, Optional[str]]]]] = None,
                  ) -> None:
    """Raise ValueError unless every variable field a precision dict sets for a layer by
    name applies to one of the variables of ``records``: nothing a user names is
    silently left in float.

    For each layer entry (not ``"*"``, whose defaults apply where they can, nor
    ``"input"``, the model's input) that sets a field of :data:`VARIABLE_FIELDS`:
    some variable must belong to that layer; a storage field (``weight``,
    ``bias``, ``value``) must be the field of one of its variables; with
    ``states`` (``{record index: [(state name, field or None), ...]}``, the wrapped
    optimizer's per-variable state), ``momentum`` and ``second_moment`` must be
    the field of some state of its variables. Entries that set only ``activation``,
    ``error`` or ``accumulator`` round what a layer computes and are checked where
    that is done (:func:`~tensorflow_kappa.quantization.quantize_model`). A variable
    whose layer has a name the dict reserves is an error too
    (:meth:`PrecisionDict.check_reserved`).

    Raises:
        ValueError: one message for every entry that matches nothing, with the
            layers of the variables and their fields (what does exist).

    Example:
    >>> variables = [tf.Variable([0.0], name="d1/kernel"), tf.Variable([0.0], name="d1/bias")]
    >>> precision = PrecisionDict({"dense_1": {"weight": "s8.6"}})
    >>> check_entries(variable_records(variables, precision), precision)
    Traceback (most recent call last):
    ...
    ValueError: precision['dense_1'] sets weight, but no variable belongs to a layer ...: weight, d1/bias: bias)
    """
    precision.check_reserved({r.layer for r in records})
    by_layer: Dict[str, List[int]] = {}
    for i, record in enumerate(records):
        by_layer.setdefault(record.layer, []).append(i)

    def listing(layers: Iterable[str]) -> str:
        """Each layer with its variables and their fields: what the names can match."""
        return "; ".join(f"{layer} ({', '.join(_described(records[i]) for i in by_layer[layer])})"
                         for layer in layers)

    problems = []
    for layer in precision.layer_names:
        fields = [f for f in precision.fields(layer) if f in VARIABLE_FIELDS]
        if layer in (DEFAULT_LAYER, INPUT_LAYER) or not fields:
            continue
        mine = by_layer.get(layer)
        if mine is None:
            problems.append(f"precision[{layer!r}] sets {', '.join(fields)}, but no variable "
                            f"belongs to a layer {layer!r} (a misspelt name, or a layer with "
                            f"nothing trainable?); the layers of the variables: "
                            f"{listing(by_layer) or 'none'}")
            continue
        for field in fields:
            if field in STORAGE_FIELDS and all(records[i].field != field for i in mine):
                problems.append(f"precision[{layer!r}] sets {field}, but no variable of layer "
                                f"{layer!r} is stored in that field: {listing([layer])}")
            if field in STATE_FIELDS and states is not None and not any(
                    state_field == field for i in mine for _, state_field in states.get(i, ())):
                kept = sorted({f"{name} ({state_field or 'float'})" for i in mine
                               for name, state_field in states.get(i, ())})
                problems.append(f"precision[{layer!r}] sets {field}, but the optimizer keeps no "
                                f"{field} state for the variables of layer {layer!r} (the "
                                f"state it keeps for them: {', '.join(kept) or 'none'})")
    if problems:
        raise ValueError("; and ".join(problems))

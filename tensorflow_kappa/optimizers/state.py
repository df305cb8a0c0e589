"""Which state of a wrapped optimizer belongs to which model variable, and its format.

Keras 3 optimizers create their per-variable state (momentum, velocity, ...)
with ``add_variable_from_reference(variable, name)``.
:func:`build_recording_states` builds a wrapped optimizer while recording
those calls; :func:`map_states` then places each state variable: its model
variable, its precision field (by its name, :data:`DEFAULT_STATE_FIELDS`) and
the format that variable's record gives that field.

Example:
>>> v = tf.Variable([1.0, 2.0], name="dense/kernel")
>>> sgd = keras.optimizers.SGD(0.1, momentum=0.9)
>>> created = build_recording_states(sgd, [v])
>>> [(name, reference is v) for _, reference, name in created]
[('momentum', True)]
>>> records = variable_records([v], PrecisionDict({"dense": {"momentum": "s8.8"}}))
>>> [(s.name, s.field, str(s.fmt)) for s in map_states(sgd, created, records,
...                                                    DEFAULT_STATE_FIELDS).values()]
[('momentum', 'momentum', 's8.8')]
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import keras

from tensorflow_kappa.core.fixed_point import FixedPoint
from tensorflow_kappa.quantization.precision import PrecisionDict
from tensorflow_kappa.quantization.variables import (STATE_FIELDS, VariableRecord,
                                                     variable_path, variable_records)

__all__ = ["DEFAULT_STATE_FIELDS", "StateVariable", "build_recording_states",
           "check_named_states", "check_state_fields", "map_states"]

#: The precision field of each kind of per-variable optimizer state, by the name
#: Keras 3's optimizers give it (``add_variable_from_reference(var, name)``);
#: None keeps that state in float.
DEFAULT_STATE_FIELDS: Dict[str, Optional[str]] = {
    "momentum": "momentum",               # SGD, Adam/AdamW/Nadam/Lamb/Lion/Adamax m, RMSprop
    "average_gradient": "momentum",       # centered RMSprop's mean gradient
    "linear": "momentum",                 # Ftrl's z
    "velocity": "second_moment",          # Adam v, RMSprop's mean square, Adafactor
    "velocity_hat": "second_moment",      # AMSGrad's max of v
    "norm": "second_moment",              # Adamax's infinity norm
    "accumulator": "second_moment",       # Adagrad, Ftrl
    "accumulated_grad": "second_moment",  # Adadelta
    "accumulated_delta_var": "second_moment",
    "gradient_accumulator": None,         # gradient_accumulation_steps
    "average": None,                      # use_ema's moving averages
}


class StateVariable(NamedTuple):
    """A state variable of the wrapped optimizer: whose (model variable index), its
    Keras name, its precision field (None: float), its format and its ordinal
    among that model variable's states."""

    index: int
    name: str
    field: Optional[str]
    fmt: Optional[FixedPoint]
    ordinal: int


def check_state_fields(state_fields: Optional[Mapping[str, Optional[str]]]) -> Dict:
    """:data:`DEFAULT_STATE_FIELDS` updated by ``state_fields`` (``{state name:
    "momentum" | "second_moment" | None}``), else ValueError naming the bad entry."""
    fields = dict(DEFAULT_STATE_FIELDS)
    if state_fields is None:
        return fields
    if not isinstance(state_fields, Mapping):
        raise ValueError(f"state_fields must be a mapping {{state name: field or None}}, got "
                         f"state_fields={state_fields!r}")
    for name, field in state_fields.items():
        if not isinstance(name, str) or (field is not None and field not in STATE_FIELDS):
            raise ValueError(f"state_fields maps optimizer state names to one of "
                             f"{STATE_FIELDS} or None, got {name!r}: {field!r}")
        fields[name] = field
    return fields


def build_recording_states(optimizer: keras.optimizers.Optimizer, var_list: Sequence[Any],
                           step: Optional[keras.optimizers.Optimizer] = None,
                           ) -> List[Tuple[Any, Any, str]]:
    """Build ``optimizer`` on ``var_list``; return ``(state, model variable, name)`` for
    every per-variable state created by ``step``, the optimizer whose ``update_step``
    writes the variables (default ``optimizer``; the one a ``LossScaleOptimizer``
    wraps, which the wrapper's build builds)."""
    step = optimizer if step is None else step
    created: List[Tuple[Any, Any, str]] = []
    original = step.add_variable_from_reference

    def recording_add(reference_variable, name=None, initializer="zeros"):
        state = original(reference_variable, name=name, initializer=initializer)
        created.append((state, reference_variable, name or "var"))
        return state

    object.__setattr__(step, "add_variable_from_reference", recording_add)
    try:
        optimizer.build(list(var_list))
    finally:
        object.__delattr__(step, "add_variable_from_reference")
    return created


def check_named_states(optimizer: keras.optimizers.Optimizer,
                       created: Sequence[Tuple[Any, Any, str]], named: Sequence[str]) -> None:
    """Raise ValueError if a state name a user gave (``state_fields``) is no state
    ``optimizer`` created: a misspelt name would leave that state in float.

    Example:
    >>> sgd = keras.optimizers.SGD(0.1, momentum=0.9)
    >>> created = build_recording_states(sgd, [tf.Variable([1.0], name="dense/kernel")])
    >>> check_named_states(sgd, created, ["momentun"])
    Traceback (most recent call last):
    ...
    ValueError: state_fields names state 'momentun', which SGD does not keep; ...
    """
    kept = sorted({name for _, _, name in created})
    for name in named:
        if name not in kept:
            raise ValueError(f"state_fields names state {name!r}, which "
                             f"{type(optimizer).__name__} does not keep; the per-variable "
                             f"state it keeps: {', '.join(kept) or 'none'}")


def map_states(optimizer: keras.optimizers.Optimizer, created: Sequence[Tuple[Any, Any, str]],
               records: Sequence[VariableRecord],
               state_fields: Mapping[str, Optional[str]]) -> Dict[Any, StateVariable]:
    """Place every created state: ``{optimizer._var_key(state): StateVariable}``.

    Raises:
        ValueError: a state whose name ``state_fields`` does not know, of a
            variable whose layer has a state format (say where it belongs).
    """
    states: Dict[Any, StateVariable] = {}
    per_variable: Dict[int, int] = {}
    for state, reference, name in created:
        index = optimizer._get_variable_index(reference)
        record = records[index]
        field = state_fields.get(name, "unknown")
        if field == "unknown":
            if any(record.state_format(f) is not None for f in STATE_FIELDS):
                raise ValueError(
                    f"{type(optimizer).__name__} keeps per-variable state {name!r} of "
                    f"{variable_path(reference)!r}, which the wrapper cannot place: pass "
                    f"state_fields={{{name!r}: 'momentum' | 'second_moment' | None}}")
            field = None
        ordinal = per_variable.get(index, 0)
        per_variable[index] = ordinal + 1
        states[optimizer._var_key(state)] = StateVariable(index, name, field,
                                                          record.state_format(field), ordinal)
    return states

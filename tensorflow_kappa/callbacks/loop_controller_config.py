"""Validation and resolution of :class:`LoopController` configurations.

This module is the single home of the configuration *format*: which keys an
action, a branch and an asynchronous action may hold, what each value may be,
and the error raised when something is wrong.  The callback itself
(:mod:`tensorflow_kappa.callbacks.loop_controller`) only consumes the resolved
:class:`ActionSpec`, :class:`BranchSpec` and :class:`AsyncActionSpec` objects.

Everything that can be checked without a model is checked by
:func:`parse_config` and :func:`parse_async_config` (called from the
callback's ``__init__``); the variable selections need the built model and
are checked by :func:`select_variables` before the first training step.
Every error is a :class:`LoopControllerConfigError` (a ``ValueError``) whose
message names the action, the branch and the key and lists what is allowed.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import keras
import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.callbacks.function_loss import FunctionLoss

__all__ = [
    "ACTION_KEYS",
    "ASYNC_KEYS",
    "BRANCH_KEYS",
    "ActionSpec",
    "AsyncActionSpec",
    "BranchSpec",
    "LoopControllerConfigError",
    "parse_async_config",
    "parse_config",
    "select_variables",
]

#: Keys allowed in a branch dictionary, with a one-line description each.
BRANCH_KEYS: Mapping[str, str] = {
    "loss": "a keras.losses.Loss, a loss name, a callable (y_true, y_pred), "
    "a list of those (one per model output), or None/False for zero data loss; "
    "absent means the compiled loss",
    "regularize": "True to add model.losses to the objective (default False)",
    "variables": "fn(model) -> list of the model's trainable variables to train",
    "excluded_variables": "fn(model) -> list of trainable variables to leave out",
    "clipping": "(low, high) passed to tf.clip_by_value on every gradient",
    "gradient_transform": "fn(grads, variables) -> grads, same length and shapes",
}

#: Keys allowed in an action dictionary of ``config``.
ACTION_KEYS: tuple = ("cond", True, False, "True", "False")

#: Keys allowed in an action dictionary of ``async_config``.
ASYNC_KEYS: Mapping[str, str] = {
    "cond": "fn(callback) -> bool, evaluated at the end of every epoch",
    "model": "fn(model), run when cond holds (e.g. reinitialise weights)",
    "callback": "fn(callback), run after 'model' when cond holds",
    "reinit": "bool: whether running this action resets reinit_epochs and "
    "reinit_history (default: True when 'model' is given)",
}

#: Log keys the controller writes itself; action names may not take them.
RESERVED_NAMES = frozenset({"loss", "epoch", "batch"})


class LoopControllerConfigError(ValueError):
    """A :class:`LoopController` configuration is malformed.

    Raised before the first training step; the message names the action, the
    branch and the key at fault and lists what is allowed there.
    """


def _allowed_branch_keys() -> str:
    return "; ".join(f"{k!r}: {v}" for k, v in BRANCH_KEYS.items())


def _allowed_async_keys() -> str:
    return "; ".join(f"{k!r}: {v}" for k, v in ASYNC_KEYS.items())


def _where(action: str, branch: Any = None, key: Any = None) -> str:
    parts = [f"action {action!r}"]
    if branch is not None:
        parts.append(f"branch {branch!r}")
    if key is not None:
        parts.append(f"key {key!r}")
    return "LoopController config, " + ", ".join(parts)


def _suggest(key: Any, allowed: Sequence[Any]) -> str:
    if not isinstance(key, str):
        return ""
    names = [k for k in allowed if isinstance(k, str)]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------
# Resolved specifications
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BranchSpec:
    """One validated branch (what one training step of an action does).

    Attributes:
        action: name of the action the branch belongs to.
        branch: ``True`` or ``False``: the control state it runs in.
        loss_mode: ``"compiled"`` (the model's compiled loss), ``"zero"``
            (no data loss) or ``"custom"``.
        loss: for ``"custom"``, one :class:`keras.losses.Loss` or a tuple of
            them (one per model output); ``None`` otherwise.
        regularize: whether ``model.losses`` enter the objective.
        variables: selector ``fn(model) -> list`` of variables to train.
        excluded_variables: selector ``fn(model) -> list`` of variables not to
            train.
        clipping: ``(low, high)`` for ``tf.clip_by_value`` or ``None``.
        gradient_transform: ``fn(grads, variables) -> grads`` or ``None``.
    """

    action: str
    branch: bool
    loss_mode: str
    loss: Any
    regularize: bool
    variables: Optional[Callable]
    excluded_variables: Optional[Callable]
    clipping: Optional[tuple]
    gradient_transform: Optional[Callable]


@dataclass(frozen=True)
class ActionSpec:
    """One validated action: a condition and up to two branches."""

    name: str
    cond: Callable
    branches: Mapping[bool, BranchSpec]

    def branch(self, state: bool) -> Optional[BranchSpec]:
        """The branch for a control state, or ``None`` when it is absent."""
        return self.branches.get(bool(state))


@dataclass(frozen=True)
class AsyncActionSpec:
    """One validated asynchronous (end-of-epoch) action."""

    name: str
    cond: Callable
    model_fn: Optional[Callable]
    callback_fn: Optional[Callable]
    reinit: bool


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------


def _resolve_one_loss(value: Any, action: str, branch: bool) -> keras.losses.Loss:
    if isinstance(value, keras.losses.Loss):
        return value
    if isinstance(value, str):
        try:
            resolved = keras.losses.get(value)
        except (ValueError, TypeError) as err:
            raise LoopControllerConfigError(
                f"{_where(action, branch, 'loss')}: unknown loss name {value!r} "
                f"({err}). Allowed: {BRANCH_KEYS['loss']}."
            ) from None
        if isinstance(resolved, keras.losses.Loss):
            return resolved
        return FunctionLoss(resolved, name=value)
    if callable(value) and not isinstance(value, type):
        return FunctionLoss(value)
    raise LoopControllerConfigError(
        f"{_where(action, branch, 'loss')}: got {value!r} of type "
        f"{type(value).__name__}. Allowed: {BRANCH_KEYS['loss']}."
    )


def _resolve_loss(value: Any, action: str, branch: bool):
    if value is None or value is False:
        return "zero", None
    if value is True:
        raise LoopControllerConfigError(
            f"{_where(action, branch, 'loss')}: True is not a loss (omit the key "
            f"for the compiled loss). Allowed: {BRANCH_KEYS['loss']}."
        )
    if isinstance(value, (list, tuple)):
        if not value:
            raise LoopControllerConfigError(
                f"{_where(action, branch, 'loss')}: empty list. "
                f"Allowed: {BRANCH_KEYS['loss']}."
            )
        return "custom", tuple(_resolve_one_loss(v, action, branch) for v in value)
    return "custom", _resolve_one_loss(value, action, branch)


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _check_callable(value: Any, action: str, branch: Any, key: str, what: str):
    if not callable(value):
        raise LoopControllerConfigError(
            f"{_where(action, branch, key)}: expected a callable {what}, got "
            f"{value!r} of type {type(value).__name__}."
        )


def _parse_clipping(value: Any, action: str, branch: bool) -> tuple:
    try:
        return _checks.clip_range("clipping", value)
    except ValueError as err:
        raise LoopControllerConfigError(
            f"{_where(action, branch, 'clipping')}: {err}. Allowed: "
            f"{BRANCH_KEYS['clipping']}."
        ) from None


def _parse_branch(action: str, branch: bool, raw: Any) -> BranchSpec:
    if not isinstance(raw, Mapping):
        raise LoopControllerConfigError(
            f"{_where(action, branch)}: a branch must be a dict, got "
            f"{type(raw).__name__} ({raw!r}). Omit the branch to do nothing in "
            f"that state; use {{}} for a plain step. Allowed keys: "
            f"{_allowed_branch_keys()}."
        )
    for key in raw:
        if key not in BRANCH_KEYS:
            raise LoopControllerConfigError(
                f"{_where(action, branch, key)}: unknown key.{_suggest(key, list(BRANCH_KEYS))} "
                f"Allowed keys: {_allowed_branch_keys()}."
            )
    if "variables" in raw and "excluded_variables" in raw:
        raise LoopControllerConfigError(
            f"{_where(action, branch, 'excluded_variables')}: 'variables' and "
            "'excluded_variables' cannot both be given in one branch. Allowed "
            f"keys: {_allowed_branch_keys()}."
        )
    if "loss" in raw:
        loss_mode, loss = _resolve_loss(raw["loss"], action, branch)
    else:
        loss_mode, loss = "compiled", None
    regularize = raw.get("regularize", False)
    if not isinstance(regularize, (bool, np.bool_)):
        raise LoopControllerConfigError(
            f"{_where(action, branch, 'regularize')}: expected True or False, got "
            f"{regularize!r}. Allowed: {BRANCH_KEYS['regularize']}."
        )
    for key in ("variables", "excluded_variables", "gradient_transform"):
        if key in raw:
            _check_callable(raw[key], action, branch, key, BRANCH_KEYS[key])
    clipping = None
    if "clipping" in raw:
        clipping = _parse_clipping(raw["clipping"], action, branch)
    return BranchSpec(
        action=action,
        branch=branch,
        loss_mode=loss_mode,
        loss=loss,
        regularize=bool(regularize),
        variables=raw.get("variables"),
        excluded_variables=raw.get("excluded_variables"),
        clipping=clipping,
        gradient_transform=raw.get("gradient_transform"),
    )


def _check_name(name: Any, what: str) -> None:
    if not isinstance(name, str) or not name:
        raise LoopControllerConfigError(
            f"LoopController {what}: action names must be non-empty strings, "
            f"got {name!r}."
        )
    if name in RESERVED_NAMES:
        raise LoopControllerConfigError(
            f"LoopController {what}, action {name!r}: the name is reserved for "
            f"the controller's own logs ({sorted(RESERVED_NAMES)})."
        )


def parse_config(config: Mapping) -> list:
    """Validate ``config`` and return a list of :class:`ActionSpec`.

    Args:
        config: ``{action_name: {"cond": fn(callback) -> bool, True: branch,
            False: branch}}``; branches may be absent, ``"True"``/``"False"``
            are accepted as keys.

    Raises:
        LoopControllerConfigError: on any structural problem.
    """
    if not isinstance(config, Mapping):
        raise LoopControllerConfigError(
            f"LoopController config must be a dict of actions, got "
            f"{type(config).__name__}."
        )
    if not config:
        raise LoopControllerConfigError(
            "LoopController config is empty: give at least one action, e.g. "
            '{"train": {"cond": lambda cb: True, True: {}}} for plain steps.'
        )
    actions = []
    for name, raw in config.items():
        _check_name(name, "config")
        if not isinstance(raw, Mapping):
            raise LoopControllerConfigError(
                f"{_where(name)}: an action must be a dict with keys "
                f"{list(ACTION_KEYS)}, got {type(raw).__name__}."
            )
        for key in raw:
            if key not in ACTION_KEYS:
                raise LoopControllerConfigError(
                    f"{_where(name, key=key)}: unknown key.{_suggest(key, ACTION_KEYS)} "
                    f"Allowed keys: 'cond' (fn(callback) -> bool), True and False "
                    f"(or 'True' and 'False'): branch dicts."
                )
        if "cond" not in raw:
            raise LoopControllerConfigError(
                f"{_where(name, key='cond')}: missing. Every action needs "
                "'cond': fn(callback) -> bool, evaluated before every batch."
            )
        _check_callable(raw["cond"], name, None, "cond", "fn(callback) -> bool")
        branches = {}
        for state in (True, False):
            present = [k for k in (state, str(state)) if k in raw]
            if len(present) == 2:
                raise LoopControllerConfigError(
                    f"{_where(name, key=str(state))}: both {state!r} and "
                    f"{str(state)!r} given; use one of them."
                )
            if present:
                branches[state] = _parse_branch(name, state, raw[present[0]])
        if not branches:
            raise LoopControllerConfigError(
                f"{_where(name)}: neither a True nor a False branch; the action "
                "would never do anything. Allowed keys: 'cond', True, False."
            )
        actions.append(ActionSpec(name=name, cond=raw["cond"], branches=branches))
    return actions


def parse_async_config(async_config: Optional[Mapping]) -> list:
    """Validate ``async_config`` and return a list of :class:`AsyncActionSpec`."""
    if async_config is None:
        return []
    if not isinstance(async_config, Mapping):
        raise LoopControllerConfigError(
            "LoopController async_config must be a dict of actions, got "
            f"{type(async_config).__name__}."
        )
    actions = []
    for name, raw in async_config.items():
        _check_name(name, "async_config")
        where = f"LoopController async_config, action {name!r}"
        if not isinstance(raw, Mapping):
            raise LoopControllerConfigError(
                f"{where}: must be a dict. Allowed keys: {_allowed_async_keys()}."
            )
        for key in raw:
            if key not in ASYNC_KEYS:
                raise LoopControllerConfigError(
                    f"{where}, key {key!r}: unknown key.{_suggest(key, list(ASYNC_KEYS))} "
                    f"Allowed keys: {_allowed_async_keys()}."
                )
        if "cond" not in raw:
            raise LoopControllerConfigError(
                f"{where}, key 'cond': missing. Allowed keys: {_allowed_async_keys()}."
            )
        for key in ("cond", "model", "callback"):
            if key in raw and not callable(raw[key]):
                raise LoopControllerConfigError(
                    f"{where}, key {key!r}: expected a callable ({ASYNC_KEYS[key]}), "
                    f"got {raw[key]!r}."
                )
        if "model" not in raw and "callback" not in raw:
            raise LoopControllerConfigError(
                f"{where}: needs 'model' and/or 'callback' to do something. "
                f"Allowed keys: {_allowed_async_keys()}."
            )
        reinit = raw.get("reinit", "model" in raw)
        if not isinstance(reinit, (bool, np.bool_)):
            raise LoopControllerConfigError(
                f"{where}, key 'reinit': expected True or False, got {reinit!r}."
            )
        actions.append(
            AsyncActionSpec(
                name=name,
                cond=raw["cond"],
                model_fn=raw.get("model"),
                callback_fn=raw.get("callback"),
                reinit=bool(reinit),
            )
        )
    return actions


# --------------------------------------------------------------------------
# Variable selections (need the built model)
# --------------------------------------------------------------------------


def _variable_label(v: Any) -> str:
    return str(getattr(v, "path", None) or getattr(v, "name", None) or repr(v))


def _call_selector(spec: BranchSpec, key: str, fn: Callable, model, known: dict) -> list:
    try:
        chosen = fn(model)
    except Exception as err:  # re-raised with the location attached
        err.add_note(f"raised by {_where(spec.action, spec.branch, key)}")
        raise
    if isinstance(chosen, (str, bytes)) or not isinstance(chosen, (list, tuple)):
        raise LoopControllerConfigError(
            f"{_where(spec.action, spec.branch, key)}: the function must return a "
            f"list of the model's trainable variables, got {type(chosen).__name__}. "
            f"Allowed: {BRANCH_KEYS[key]}."
        )
    out, seen = [], set()
    for v in chosen:
        if id(v) not in known:
            raise LoopControllerConfigError(
                f"{_where(spec.action, spec.branch, key)}: {_variable_label(v)} "
                f"({type(v).__name__}) is not a trainable variable of model "
                f"{getattr(model, 'name', model)!r}. Return elements of "
                f"model.trainable_variables. Allowed: {BRANCH_KEYS[key]}."
            )
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def select_variables(spec: BranchSpec, model) -> list:
    """The variables a branch trains, in ``model.trainable_variables`` order.

    Raises:
        LoopControllerConfigError: when a selector returns something that is
            not a list of this model's trainable variables, or the selection
            is empty.
    """
    trainable = list(model.trainable_variables)
    known = {id(v): v for v in trainable}
    if spec.variables is not None:
        ids = {id(v) for v in _call_selector(spec, "variables", spec.variables, model, known)}
        chosen = [v for v in trainable if id(v) in ids]
        key = "variables"
    elif spec.excluded_variables is not None:
        ids = {
            id(v)
            for v in _call_selector(
                spec, "excluded_variables", spec.excluded_variables, model, known
            )
        }
        chosen = [v for v in trainable if id(v) not in ids]
        key = "excluded_variables"
    else:
        chosen, key = trainable, None
    if not chosen:
        raise LoopControllerConfigError(
            f"{_where(spec.action, spec.branch, key)}: the selection is empty "
            f"(model {getattr(model, 'name', model)!r} has {len(trainable)} "
            "trainable variables). Omit the branch if it should do nothing. "
            f"Allowed keys: {_allowed_branch_keys()}."
        )
    return chosen

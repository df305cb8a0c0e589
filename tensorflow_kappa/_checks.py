"""Argument checks the package's public functions share: one home per kind of check.

Each check takes the parameter's name and the value a caller passed, returns
the value normalised (a Python int, float or bool), and otherwise raises
ValueError whose message names the parameter, repeats the value and says
what was expected. Importing this module imports no TensorFlow (the command line and the
NumPy-only modules use it too); :func:`tensor` imports it when called.

Example:
>>> integer("epochs", 3, minimum=1)
3
>>> integer("epochs", 2.5, minimum=1)
Traceback (most recent call last):
...
ValueError: epochs must be an integer >= 1, got 2.5
>>> random_seed("seed", -1)
Traceback (most recent call last):
...
ValueError: seed must be None or an integer in [0, 2**63 - 1], got -1
"""
from __future__ import annotations

import math
import numbers
import os
import random
import tempfile
from typing import Any, Callable, Iterable, List, Optional, Tuple

import numpy as np

__all__ = ["SEED32_MAX", "bool_result", "clip_range", "flag", "float_array", "function",
           "integer", "number", "number_format", "one_of", "random_seed", "random_seeds",
           "seed_or_drawn", "tensor", "writable_folder"]

INT64_MAX = 2 ** 63 - 1
#: The largest seed NumPy's legacy seeding takes (``keras.utils.set_random_seed``).
SEED32_MAX = 2 ** 32 - 1


def _bounds(minimum: Optional[float], maximum: Optional[float], strict: bool = False,
            strict_max: bool = False) -> str:
    if minimum is not None and maximum is not None:
        return f"in {'(' if strict else '['}{minimum:g}, {maximum:g}{')' if strict_max else ']'}"
    if minimum is not None:
        return f"{'>' if strict else '>='} {minimum:g}"
    if maximum is not None:
        return f"{'<' if strict_max else '<='} {maximum:g}"
    return ""


def integer(name: str, value: Any, *, minimum: Optional[int] = None,
            maximum: Optional[int] = None) -> int:
    """``value`` as an int: a Python or NumPy integer (not a bool) within the bounds."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)):
        bounds = _bounds(minimum, maximum)
        raise ValueError(f"{name} must be an integer{' ' + bounds if bounds else ''}, "
                         f"got {value!r}")
    return int(value)


def number(name: str, value: Any, *, minimum: Optional[float] = None,
           maximum: Optional[float] = None, strict_minimum: bool = False,
           strict_maximum: bool = False) -> float:
    """``value`` as a finite float: a Python or NumPy real number (not a bool) within
    the bounds (``strict_minimum``: above ``minimum``; ``strict_maximum``: below
    ``maximum``).

    >>> number("tolerance", 0.5, minimum=0, maximum=0.5, strict_maximum=True)
    Traceback (most recent call last):
    ...
    ValueError: tolerance must be a finite number in [0, 0.5), got 0.5
    """
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real)
    if ok:
        value_f = float(value)
        ok = (math.isfinite(value_f)
              and (minimum is None or (value_f > minimum if strict_minimum
                                       else value_f >= minimum))
              and (maximum is None or (value_f < maximum if strict_maximum
                                       else value_f <= maximum)))
    if not ok:
        bounds = _bounds(minimum, maximum, strict_minimum, strict_maximum)
        raise ValueError(f"{name} must be a finite number{' ' + bounds if bounds else ''}, "
                         f"got {value!r}")
    return value_f


def _seed_range(maximum: int) -> str:
    """``[0, maximum]`` as the seed messages write it."""
    top = {INT64_MAX: "2**63 - 1", SEED32_MAX: "2**32 - 1"}.get(maximum, str(maximum))
    return f"[0, {top}]"


def random_seed(name: str, value: Any, maximum: int = INT64_MAX) -> Optional[int]:
    """A seed: None, or an integer in [0, maximum] (NumPy's ``default_rng`` takes
    up to 2**63 - 1; Keras's global seeding up to :data:`SEED32_MAX`)."""
    if value is None:
        return None
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
            or not 0 <= value <= maximum):
        raise ValueError(f"{name} must be None or an integer in {_seed_range(maximum)}, "
                         f"got {value!r}")
    return int(value)


def seed_or_drawn(name: str, value: Any, maximum: int = INT64_MAX) -> int:
    """A seed: ``value`` checked (:func:`random_seed`), or for None one drawn the way
    Keras draws the seed of its own ``seed=None`` objects (``SeedGenerator``,
    initializers): from Python's ``random``, which ``keras.utils.set_random_seed``
    seeds. So every ``seed=None`` of the package is reproducible under Keras' global
    seed, in the same way.

    Example:
    >>> random.seed(3)
    >>> a = seed_or_drawn("seed", None)
    >>> random.seed(3)
    >>> a == seed_or_drawn("seed", None), seed_or_drawn("seed", 5)
    (True, 5)
    """
    seed = random_seed(name, value, maximum)
    return random.randint(1, min(10**9, maximum)) if seed is None else seed


def number_format(name: str, value: Any, optional: bool = False):
    """A number format: a format object or its string form (``"s8.4"``), parsed; None
    passes where ``optional``. Anything else is a ValueError naming ``name``, the
    value and why it does not parse.

    Example:
    >>> str(number_format("forward", "s8.4:stochastic"))
    's8.4:stochastic'
    >>> number_format("forward", "s8.x")
    Traceback (most recent call last):
    ...
    ValueError: forward='s8.x' is not a number format: Cannot parse fixed-point format 's8.x': ...
    """
    from tensorflow_kappa.core.fixed_point import FixedPoint

    if value is None and optional:
        return None
    try:
        return FixedPoint.coerce(value)
    except ValueError as err:
        raise ValueError(f"{name}={value!r} is not a number format: {err}") from None


def bool_result(what: str, value: Any) -> bool:
    """What a user's predicate (``what``, e.g. "the 'cond' of action 'gate'") returned,
    as a bool: a Python or NumPy bool, a 0-d boolean array or an eager scalar boolean
    tensor. Anything else is a TypeError naming ``what``: truth-testing it would take
    None (a forgotten ``return``) as False and the string ``"False"`` as True."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    try:
        array = value.numpy() if callable(getattr(value, "numpy", None)) else value
    except Exception:  # a symbolic tensor has no value here
        array = None
    if isinstance(array, (np.ndarray, np.bool_)) and array.dtype == np.bool_ \
            and array.ndim == 0:
        return bool(array)
    raise TypeError(f"{what} returned {value!r} ({type(value).__name__}); it must return "
                    "a bool (Python, NumPy or a scalar boolean tensor): a forgotten "
                    "`return` gives None")


def float_array(name: str, value: Any, dtype: Any = np.float32) -> np.ndarray:
    """``value`` as a NumPy array of ``dtype``, else ValueError naming ``name`` (ragged
    nesting, strings, None)."""
    if value is None:
        raise ValueError(f"{name} must be an array of numbers, got None")
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers: {err}") from None


def tensor(name: str, value: Any, dtype_hint: Any = None):
    """``value`` (the argument ``name``) as a dense ``tf.Tensor``, else TypeError naming it:
    None (e.g. what ``tape.gradient`` returns for a variable the loss does not use),
    a ragged or sparse tensor, or a value that does not convert (a string, a ragged
    list, an out-of-range number, ...)."""
    import tensorflow as tf

    if value is None:
        raise TypeError(f"{name} is None; expected a tensor (tape.gradient returns None "
                        "for a variable the loss does not depend on)")
    if isinstance(value, (tf.RaggedTensor, tf.SparseTensor, tf.IndexedSlices)):
        raise TypeError(f"{name} must be a dense tensor, got a {type(value).__name__}; "
                        "convert it first (e.g. .to_tensor() or tf.convert_to_tensor)")
    try:
        converted = tf.convert_to_tensor(value, dtype_hint=dtype_hint)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a tensor or array-like of numbers, got "
                        f"{type(value).__name__}: {err}") from None
    if converted.dtype == tf.string:
        raise TypeError(f"{name} must be a tensor of numbers, got strings: {value!r}")
    return converted


# -- flags, choices, clip ranges, callables, seed lists --------------------------------------


def flag(name: str, value: Any) -> bool:
    """``value`` as a bool: True or False (Python or NumPy), not 0/1 or a string.

    Example:
    >>> flag("share_weights", np.bool_(True))
    True
    >>> flag("share_weights", 1)
    Traceback (most recent call last):
    ...
    ValueError: share_weights must be True or False, got 1
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def one_of(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices`` (a sequence, or a mapping's keys; same type
    and equal, so ``True`` is not ``1``), else ValueError listing them.

    Example:
    >>> one_of("detector", "window", ("authors", "window"))
    'window'
    >>> one_of("detector", "halves", ("authors", "window"))
    Traceback (most recent call last):
    ...
    ValueError: detector must be one of 'authors', 'window', got 'halves'
    """
    choices = list(choices)
    for choice in choices:
        if type(value) is type(choice) and value == choice:
            return value
    raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def clip_range(name: str, value: Any) -> Tuple[float, float]:
    """``(low, high)`` for ``tf.clip_by_value``: a pair (tuple, list or array) of real
    numbers, not bools or NaN, with ``low <= high`` (infinite bounds leave that side
    unclipped).

    Example:
    >>> clip_range("clipping", [-0.1, 0.1])
    (-0.1, 0.1)
    >>> clip_range("clipping", (1, -1))
    Traceback (most recent call last):
    ...
    ValueError: clipping must be a pair (low, high) of real numbers with low <= high, got (1, -1)
    """
    ok = isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2 and all(
        isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in value)
    if ok:
        low, high = float(value[0]), float(value[1])
        ok = not (math.isnan(low) or math.isnan(high)) and low <= high
    if not ok:
        raise ValueError(f"{name} must be a pair (low, high) of real numbers with "
                         f"low <= high, got {value!r}")
    return low, high


def function(name: str, value: Any, expected: str) -> Callable:
    """``value`` if it is callable; ``expected`` describes the call (its signature).

    Example:
    >>> function("reinit_condition", 0.2, "fn(losses) -> bool")
    Traceback (most recent call last):
    ...
    ValueError: reinit_condition must be a callable fn(losses) -> bool, got 0.2
    """
    if not callable(value):
        raise ValueError(f"{name} must be a callable {expected}, got {value!r}")
    return value


def random_seeds(name: str, values: Any, maximum: int = INT64_MAX) -> List[int]:
    """A non-empty sequence (list, tuple, range) of seeds, each an integer in
    [0, maximum] (see :func:`random_seed`; None is no seed here).

    Example:
    >>> random_seeds("seeds", range(3), SEED32_MAX)
    [0, 1, 2]
    >>> random_seeds("seeds", [0, None])
    Traceback (most recent call last):
    ...
    ValueError: seeds must be a non-empty sequence of integers in [0, 2**63 - 1], got [0, None]
    """
    ok = isinstance(values, (list, tuple, range)) and len(values) > 0
    if ok:
        try:
            seeds = [random_seed(name, v, maximum) for v in values]
        except ValueError:
            ok = False
        else:
            ok = None not in seeds
    if not ok:
        raise ValueError(f"{name} must be a non-empty sequence of integers in "
                         f"{_seed_range(maximum)}, got {values!r}")
    return seeds


def writable_folder(name: str, value: Any) -> str:
    """A folder files can be written in: created (with its parents) if needed, and a
    file written and removed there; call it before any work that writes there (an
    output folder, a TensorBoard folder). Returns the path as a string.

    Example:
    >>> blocker = tempfile.NamedTemporaryFile()
    >>> writable_folder("out_dir", os.path.join(blocker.name, "runs"))
    Traceback (most recent call last):
    ...
    ValueError: out_dir: cannot write files in '...runs': Not a directory
    """
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ValueError(f"{name} must be a folder path, got {value!r}")
    path = os.fspath(value)
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".kappa-write-check-"):
            pass
    except OSError as err:
        raise ValueError(f"{name}: cannot write files in {path!r}: "
                         f"{err.strerror or err}") from None
    return path

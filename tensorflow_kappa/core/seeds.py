"""Seeds of stochastic rounding, checked without TensorFlow.

Every op and function that rounds stochastically takes two integers, each in
the int64 range; all 64 bits of both words key the random stream (see
``cc/core/formats/random.h``). This module is the one place a seed given as
Python or NumPy integers is checked; :mod:`tensorflow_kappa.quantization.seeds`
builds the ops' seed tensors on it.

Example:
>>> check_seed((1, -2))
array([ 1, -2])
>>> check_seed([2**63 - 1, -2**63]).tolist()
[9223372036854775807, -9223372036854775808]
"""
from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from tensorflow_kappa.core.fixed_point import STOCHASTIC, FixedPoint

__all__ = ["INT64_MAX", "INT64_MIN", "SEED_EXPECTED", "check_seed", "rounds_stochastically"]

#: The range of each seed word, ``[-2**63, 2**63 - 1]``.
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
#: What a seed must be, as the error messages say it.
SEED_EXPECTED = "two integers (a, b), each in [-2**63, 2**63 - 1]"


def rounds_stochastically(*formats: Optional[FixedPoint]) -> bool:
    """Whether any of the formats (None: no quantization) rounds stochastically."""
    return any(f is not None and f.rounding == STOCHASTIC for f in formats)


def check_seed(seed: object) -> np.ndarray:
    """A Python or NumPy seed as int64[2], each element checked exactly (no float detour).

    Raises:
        ValueError: ``seed`` is not two integers within the int64 range (the
            message names ``seed`` and the value), e.g. ``(2**70, 1)`` or ``(1.5, 2)``.
    """
    if isinstance(seed, np.ndarray):
        if seed.dtype == np.bool_ or not np.issubdtype(seed.dtype, np.integer):
            raise ValueError(f"seed must be {SEED_EXPECTED}, got an array of dtype {seed.dtype}")
        values = seed.tolist()
        shape = seed.shape
    else:
        try:
            values = list(seed)
        except TypeError:
            raise ValueError(f"seed must be {SEED_EXPECTED}, got {seed!r}") from None
        shape = (len(values),)
        for v in values:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise ValueError(f"seed must be {SEED_EXPECTED}, got {seed!r}")
    if shape != (2,):
        raise ValueError(f"seed must be {SEED_EXPECTED}, got shape {shape}: {seed!r}")
    if not all(INT64_MIN <= int(v) <= INT64_MAX for v in values):
        raise ValueError(f"seed must be {SEED_EXPECTED}, got {seed!r} (out of the int64 range)")
    return np.asarray([int(v) for v in values], np.int64)

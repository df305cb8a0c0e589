"""The rounding modes on a scaled value, written from ``docs/rounding.md``: the references' one table.

Every format's reference scales a value by a power of two (fixed point by
``2**frac_bits``, a minifloat by its binade's quantum, an MX element by the
block scale and then its own) and rounds the scaled value ``v`` to an integer
here. ``v`` may be float64 or longdouble (the fixed-point reference's, for
formats whose scaled values exceed float64's 53 bits); each mode is exact in
the array's own precision.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np

__all__ = ["ALL_ROUNDINGS", "ROUNDINGS", "round_scaled"]


def _nearest_away(v: np.ndarray) -> np.ndarray:
    # |v| + 1/2 is exact while |v| is below 2**(digits - 1); above, v is integral.
    big = np.abs(v) >= np.asarray(2.0, v.dtype) ** (np.finfo(v.dtype).nmant - 1)
    r = np.where(np.signbit(v), -np.floor(-v + v.dtype.type(0.5)), np.floor(v + v.dtype.type(0.5)))
    return np.where(big, v, r)


#: Each deterministic mode: scaled value -> integer, in v's precision.
ROUNDINGS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "nearest_even": np.rint,
    "nearest_away": _nearest_away,
    "truncate": np.floor,
    "toward_zero": np.trunc,
}
#: Every mode, stochastic last.
ALL_ROUNDINGS = (*ROUNDINGS, "stochastic")


def round_scaled(v: np.ndarray, rounding: str, uniforms: Optional[np.ndarray] = None,
                 fraction: Optional[np.ndarray] = None) -> np.ndarray:
    """``v`` rounded to integers by ``rounding``. ``"stochastic"`` rounds up where the
    element's uniform ``u`` (``uniforms``, v's shape) is below the fraction of ``v``:
    ``v - floor(v)``, or ``fraction`` where given (the fixed-point reference passes
    the fraction as the compute type holds it)."""
    v = np.asarray(v)
    if rounding != "stochastic":
        return ROUNDINGS[rounding](v)
    f = np.floor(v)
    frac = v - f if fraction is None else fraction
    return np.where(np.asarray(uniforms, v.dtype) < frac, f + 1, f)

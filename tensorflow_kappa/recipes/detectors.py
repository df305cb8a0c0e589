"""Stall detectors: is a run stuck on the step losses since its last reinitialisation?

:func:`stuck` is the iNALU authors' rule (two halves of the losses compared),
:func:`plateau` the windowed one (the last two windows compared, whatever came
before them).  :meth:`~tensorflow_kappa.recipes.InaluRecipe.stuck` picks one by
its ``detector`` field.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

__all__ = ["plateau", "stuck"]


def stuck(losses: np.ndarray, min_steps: int = 10000, loss_threshold: float = 1.0,
          window: Optional[int] = None) -> bool:
    """The iNALU authors' reinitialisation test on a sequence of step losses.

    True when more than ``min_steps`` losses are given and, over the last
    ``window`` of them (all by default) split into halves ``a`` and ``b``,
    ``mean(a) <= mean(b) + std(b)`` and ``mean(b) > loss_threshold``.  NaN or
    infinite losses count as stuck once ``min_steps`` is reached.

    Example:
    >>> stuck(np.full(3000, 5.0), min_steps=2000)  # flat and above the threshold
    True
    >>> stuck(np.linspace(50, 2, 3000), min_steps=2000)  # still improving
    False
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.size <= min_steps:
        return False
    if window is not None:
        losses = losses[-int(window):]
    if not np.all(np.isfinite(losses[-1:])):
        return True
    half = losses.size // 2
    first, second = losses[:half], losses[half:]
    with np.errstate(invalid="ignore", over="ignore"):
        m1, m2, s2 = float(np.mean(first)), float(np.mean(second)), float(np.std(second))
    if not (math.isfinite(m1) and math.isfinite(m2) and math.isfinite(s2)):
        return True
    return m1 <= m2 + s2 and m2 > loss_threshold


def plateau(losses: np.ndarray, min_steps: int = 5000, loss_threshold: float = 1.0,
            window: int = 2000, min_improvement: float = 0.05) -> bool:
    """The windowed stuck detector: the loss sits on a plateau above ``loss_threshold``.

    Compares only the last two windows of ``window`` step losses each (whatever
    came before them, e.g. a steep initial descent, does not count): True when
    more than ``min_steps`` losses are given (and at least two windows), the mean
    of the last window is above ``loss_threshold`` and it fell by less than the
    fraction ``min_improvement`` of the previous window's mean.  Non-finite
    losses in the last window count as stuck.

    Example:
    >>> descent_then_flat = np.r_[np.linspace(100, 9, 3000), np.full(6000, 9.0)]
    >>> plateau(descent_then_flat, min_steps=5000, window=2000)
    True
    >>> plateau(np.geomspace(100, 2, 9000), min_steps=5000, window=2000)
    False
    """
    losses = np.asarray(losses, dtype=np.float64)
    window = int(window)
    if losses.size <= min_steps or losses.size < 2 * window:
        return False
    last, previous = losses[-window:], losses[-2 * window:-window]
    if not np.all(np.isfinite(last)):
        return True
    with np.errstate(invalid="ignore", over="ignore"):
        m_last, m_prev = float(np.mean(last)), float(np.mean(previous))
    if m_last <= loss_threshold:
        return False
    if not math.isfinite(m_prev):
        return True
    return (m_prev - m_last) < min_improvement * m_prev

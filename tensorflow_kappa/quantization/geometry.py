"""Update geometry: how the step a variable received compares with the step requested.

The one definition of the update diagnostics every part of the package logs
(the optimizer wrapper's statistics, the instrumented trainer's metrics,
:func:`~tensorflow_kappa.models.stability.safe_cosine`). From the three sums
that :func:`~tensorflow_kappa.quantization.update_quantize_store` reports (or
that any caller adds up over its variables),

* ``requested_sq = ||r||^2``, the squared norm of the step the optimizer
  computed (before any update or storage rounding),
* ``applied_sq = ||a||^2``, the squared norm of the change actually stored,
* ``dot = <r, a>``,

:func:`update_geometry` derives:

==================  ============================  ====================================
quantity            definition                    where the definition has no value
==================  ============================  ====================================
``requested_norm``  ``||r||``
``applied_norm``    ``||a||``
``cosine``          ``<r, a> / (||r|| ||a||)``,   1 if ``||r|| = ||a|| = 0``, else 0
                    clipped to [-1, 1]
``angle``           ``arccos(cosine)``            (follows the cosine: 0 or pi/2)
``radius_ratio``    ``||a|| / ||r||``             1 if ``||a|| = 0`` too, else +inf
``progress``        ``<r, a> / ||r||^2``          1 if ``||a|| = 0`` too, else 0
==================  ============================  ====================================

The convention in one sentence: *a step that asked for nothing and changed
nothing was followed exactly* (cosine, progress and radius ratio 1); *a step
where exactly one side is zero shares no direction with the other* (cosine
and progress 0). ``progress`` is how far the stored change went along the
requested step: 1 in float and, in expectation, under stochastic rounding; it
falls below 1 as round-to-nearest loses small updates (learning that dies).
Non-finite sums give NaN.

Example:
>>> g = update_geometry(25.0, 16.0, 16.0)   # r = (3, 4), a = (0, 4)
>>> [round(float(x), 4) for x in (g.requested_norm, g.applied_norm, g.cosine, g.progress,
...                               g.radius_ratio)]
[5.0, 4.0, 0.8, 0.64, 0.8]
>>> [float(x) for x in update_geometry(0.0, 0.0, 0.0)[2:]]    # nothing asked, nothing done
[1.0, 0.0, 1.0, 1.0]
>>> [float(x) for x in update_geometry(4.0, 0.0, 0.0)[2:]]    # the step underflowed
[0.0, 1.5707963705062866, 0.0, 0.0]
"""
from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

__all__ = ["UpdateGeometry", "update_geometry"]


class UpdateGeometry(NamedTuple):
    """The update diagnostics :func:`update_geometry` derives (float tensors)."""

    requested_norm: Any
    applied_norm: Any
    cosine: Any
    angle: Any
    radius_ratio: Any
    progress: Any


def update_geometry(requested_sq: Any, applied_sq: Any, dot: Any,
                    dtype: tf.DType = tf.float32) -> UpdateGeometry:
    """The update geometry of one step from ``||r||^2``, ``||a||^2`` and ``<r, a>``.

    Args:
        requested_sq, applied_sq, dot: scalars (or tensors of one shape,
            elementwise), any float dtype; summed over the variables the
            diagnostics cover.
        dtype: the dtype of the results.

    Returns:
        :class:`UpdateGeometry`, with the conventions of the module docstring.
    """
    r2 = tf.cast(requested_sq, tf.float64)
    a2 = tf.cast(applied_sq, tf.float64)
    dot = tf.cast(dot, tf.float64)
    r, a = tf.sqrt(r2), tf.sqrt(a2)
    some_r, neither = r > 0, tf.equal(r + a, 0.0)
    # Where the definition has no value: 1 where nothing moved; else the quotient by a
    # safe denominator (0 where only one side is zero, as dot is then 0; inf for the
    # ratio where only the change happened).
    one = tf.ones_like(r)
    both = some_r & (a > 0)
    cosine = tf.where(neither, one,
                      tf.clip_by_value(dot / tf.where(both, r * a, one), -1.0, 1.0))
    progress = tf.where(neither, one, dot / tf.where(some_r, r2, one))
    ratio = tf.where(neither, one, a / r)
    # One NaN poison for non-finite sums (their sum is non-finite too).
    poison = tf.where(tf.math.is_finite(r2 + a2 + dot), 0.0 * one, float("nan") * one)
    out = (r, a, cosine, tf.acos(cosine), ratio, progress)
    return UpdateGeometry(*(tf.cast(x + poison, dtype) for x in out))

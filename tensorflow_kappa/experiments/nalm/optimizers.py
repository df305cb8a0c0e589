"""Element-wise optimizers over stacked member variables, one member per leading index.

Example:
>>> v = tf.Variable([[1.0], [1.0]])
>>> opt = MaskedOptimizer("rmsprop", 0.01, [v], members=2)
>>> opt.apply([tf.ones_like(v)], [v], tf.constant([True, False]))
>>> [round(float(w), 4) for w in v[:, 0]]  # only member 0 moved
[0.9684, 1.0]
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np
import tensorflow as tf

__all__ = ["MaskedOptimizer", "OPTIMIZERS"]

#: The update rules :class:`MaskedOptimizer` knows.
OPTIMIZERS = ("rmsprop", "adam")


def _expand(mask: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """``mask`` (one entry per member) shaped to broadcast against ``like``."""
    return tf.reshape(mask, [-1] + [1] * (like.shape.rank - 1))


class MaskedOptimizer:
    """RMSprop or Adam (Keras 3 formulas, no weight decay) on stacked variables.

    ``apply(grads, variables, mask)`` updates only members with ``mask`` true (slots
    included); ``reset(members)`` zeroes the slots and step counts of members.

    Args:
        kind: one of :data:`OPTIMIZERS`.
        learning_rate: the step size.
        variables: the stacked variables, members along axis 0.
        members: the number of members.
    """

    def __init__(self, kind: str, learning_rate: float, variables: Sequence[tf.Variable],
                 members: int):
        if kind not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}")
        self.kind = kind
        self.lr = float(learning_rate)
        self.slots = {v.ref(): [tf.Variable(tf.zeros_like(v), trainable=False)
                                for _ in range(1 if kind == "rmsprop" else 2)]
                      for v in variables}
        self.count = {v.ref(): tf.Variable(tf.zeros((members,), tf.float32), trainable=False)
                      for v in variables}

    def apply(self, grads: Sequence[Optional[tf.Tensor]], variables: Sequence[tf.Variable],
              mask: tf.Tensor, constraints: Optional[List[Optional[Callable]]] = None) -> None:
        """One step on every variable with a gradient, for the members where ``mask`` holds."""
        for i, (g, v) in enumerate(zip(grads, variables)):
            if g is None:
                continue
            m = _expand(mask, v)
            step = (self._rmsprop_step(g, v, m) if self.kind == "rmsprop"
                    else self._adam_step(g, v, m, mask))
            new = v - step
            if constraints and constraints[i] is not None:
                new = constraints[i](new)
            v.assign(tf.where(m, new, v))

    def _rmsprop_step(self, g, v, m):
        rho, eps = 0.9, 1e-7
        (velocity,) = self.slots[v.ref()]
        new_v = rho * velocity + (1.0 - rho) * tf.square(g)
        velocity.assign(tf.where(m, new_v, velocity))
        return self.lr * g / tf.sqrt(new_v + eps)

    def _adam_step(self, g, v, m, mask):
        b1, b2, eps = 0.9, 0.999, 1e-7
        first, second = self.slots[v.ref()]
        count = self.count[v.ref()]
        new_count = tf.where(mask, count + 1.0, count)
        count.assign(new_count)
        t = _expand(new_count, v)
        new_m = first + (g - first) * (1.0 - b1)
        new_s = second + (tf.square(g) - second) * (1.0 - b2)
        alpha = self.lr * tf.sqrt(1.0 - tf.pow(b2, t)) / (1.0 - tf.pow(b1, t))
        first.assign(tf.where(m, new_m, first))
        second.assign(tf.where(m, new_s, second))
        return alpha * new_m / (tf.sqrt(new_s) + eps)

    def reset(self, members: np.ndarray) -> None:
        """Zero the slots and step counts of the members where ``members`` is True."""
        keep = tf.constant(~members)
        for slots in self.slots.values():
            for s in slots:
                s.assign(tf.where(_expand(keep, s), s, tf.zeros_like(s)))
        for count in self.count.values():
            count.assign(tf.where(keep, count, tf.zeros_like(count)))

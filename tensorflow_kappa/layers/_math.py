"""The arithmetic the neural arithmetic layers share, as plain TensorFlow functions.

Each function is one equation of the NALM family, written once and used by
every layer whose mathematics contains it:

* :func:`nac_weight` -- ``W = tanh(Ŵ) ⊙ σ(M̂)`` (Trask et al. 2018; report eq. 2.1, 2.6, 2.7),
  used by :class:`~tensorflow_kappa.layers.NAC`, ``NACMultiplicative``, ``NALU`` and ``INALU``.
* :func:`nalu_log_product` -- ``exp(log(|x| + ε) W)`` (eq. 2.3), NALU's multiplicative path.
* :func:`inalu_log_product` -- ``exp(min(log(max(|x|, ε)) W, ω))`` (eq. 2.9 as the iNALU
  authors implement it), iNALU's multiplicative path.
* :func:`multiplication_sign` -- ``clip(∏_i (sign(x_i)|W_io| + 1 − |W_io|), −1, 1)``
  (eq. 2.10–2.11 plus the authors' clip), the sign iNALU restores.
* :func:`nmu_product` -- ``∏_i (W_io x_i + 1 − W_io)``, the NMU (Madsen & Johansen 2020).
* :func:`inalu_sparsity_penalty`, :func:`nau_sparsity_penalty`, :func:`nmu_sparsity_penalty`
  and :func:`linear_warmup` -- the sparsity regularisers.

All functions take inputs of shape ``(..., I)`` and weights of shape ``(I, O)`` and
return ``(..., O)``; they work in the dtype of their arguments (float32 or float64).
The iNALU functions also take a population of ``P`` members at once (the arithmetic
population trains many candidates in one loop): inputs ``(P, B, I)``, weights
``(P, I, O)``, gates ``(P, O)``, results ``(P, B, O)``.
Python constants enter as ``tf.constant(value, dtype)``: ``tf.cast(1e-7, tf.float64)``
would round through float32 first.
"""
from __future__ import annotations

from typing import Iterable

import tensorflow as tf


def nac_weight(w_hat: tf.Tensor, m_hat: tf.Tensor) -> tf.Tensor:
    """``tanh(Ŵ) ⊙ σ(M̂)``: a weight biased towards {−1, 0, 1} (report eq. 2.1)."""
    return tf.tanh(w_hat) * tf.sigmoid(m_hat)


def linear_map(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """``x W`` over the last axis of ``x`` (inputs of any rank ≥ 2; for members'
    weights ``(P, I, O)``, each member's ``(P, B, I)`` slice by its own)."""
    if x.shape.rank == 2 or len(w.shape) == 3:
        return tf.matmul(x, w)
    return tf.tensordot(x, w, axes=[[x.shape.rank - 1], [0]])


def nalu_log_product(x: tf.Tensor, w: tf.Tensor, epsilon: float) -> tf.Tensor:
    """NALU's multiplicative path ``exp(log(|x| + ε) W)`` (report eq. 2.3).

    Unclipped, as Trask et al. define it: with many large inputs the exponent can exceed
    the float range (iNALU's ``ω`` clip is the remedy).
    """
    eps = tf.constant(epsilon, x.dtype)
    return tf.exp(linear_map(tf.math.log(tf.abs(x) + eps), w))


def inalu_log_product(x: tf.Tensor, w: tf.Tensor, epsilon: float, omega: float) -> tf.Tensor:
    """iNALU's multiplicative path ``exp(min(log(max(|x|, ε)) W, ω))``.

    This is the iNALU authors' implementation of report eq. 2.9: ``max(|x|, ε)`` keeps the
    logarithm finite at ``x = 0`` (and gives zero gradient below ε), and the exponent is
    clipped from above by ``ω`` so that the back-transformation cannot overflow.
    """
    eps = tf.constant(epsilon, x.dtype)
    log_x = tf.math.log(tf.maximum(tf.abs(x), eps))
    return tf.exp(tf.minimum(linear_map(log_x, w), tf.constant(omega, x.dtype)))


def multiplication_sign(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """iNALU's sign vector ``msv_o = clip(∏_i (sign(x_i)|W_io| + 1 − |W_io|), −1, 1)``.

    Report eq. 2.10–2.11 with the authors' clip to [−1, 1]. ``sign(0) = 0``, so a zero
    input contributes the factor ``1 − |W_io|``. Every factor lies in [−1, 1] when
    ``|W| ≤ 1``, so the product cannot overflow; ``tf.reduce_prod``'s gradient is exact
    when some factors are zero (it uses exclusive cumulative products, not a division).
    The sign itself carries no gradient to ``x``.
    """
    abs_w = tf.abs(w)
    if len(w.shape) == 3:  # members: (P, I, O) against x (P, B, I)
        abs_w = abs_w[:, None]
    factors = tf.expand_dims(tf.sign(x), -1) * abs_w + (1.0 - abs_w)  # (..., I, O)
    return tf.clip_by_value(tf.reduce_prod(factors, axis=-2), -1.0, 1.0)


def inalu_output(x: tf.Tensor, w_a: tf.Tensor, w_m: tf.Tensor, g: tf.Tensor,
                 epsilon: float, omega: float) -> tf.Tensor:
    """iNALU's output ``g ⊙ x W_a + (1 − g) ⊙ m ⊙ msv``, ``g = σ(G)`` (report eq. 2.12–2.13).

    ``m`` is :func:`inalu_log_product` and ``msv`` :func:`multiplication_sign` of
    ``W_m``; ``G`` is the raw gate, one per output (``(O,)``, or ``(P, O)`` for members).

    Example:
    >>> import tensorflow as tf
    >>> w = tf.ones([2, 1])  # both paths: W = [1, 1]
    >>> x = tf.constant([[3.0, -4.0]])
    >>> [round(float(inalu_output(x, w, w, tf.constant([g]), 1e-7, 20.0)[0, 0]), 4)
    ...  for g in (100.0, -100.0)]  # gate open: x1 + x2; closed: x1 * x2
    [-1.0, -12.0]
    """
    a = linear_map(x, w_a)
    m = inalu_log_product(x, w_m, epsilon, omega)
    msv = multiplication_sign(x, w_m)
    gate = tf.sigmoid(g)
    if len(g.shape) == 2:  # members: (P, O) against (P, B, O)
        gate = gate[:, None, :]
    return gate * a + (1.0 - gate) * m * msv


def nmu_product(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """The NMU ``z_o = ∏_i (W_io x_i + 1 − W_io)`` (Madsen & Johansen 2020)."""
    factors = tf.expand_dims(x, -1) * w + (1.0 - w)  # (..., I, O)
    return tf.reduce_prod(factors, axis=-2)


def inalu_sparsity_penalty(variables: Iterable[tf.Tensor], t: float,
                           members: bool = False) -> tf.Tensor:
    """``(1/t) Σ_w mean(max(min(−w, w) + t, 0))`` over the raw variables (report eq. 2.14–2.15).

    The penalty is zero once every entry has ``|w| ≥ t``: it drives the raw variables away
    from zero, hence ``tanh``/``σ`` towards their saturated values {−1, 0, 1}. With
    ``members``, each variable's first axis is the member and the result has shape ``(P,)``.
    """
    terms = []
    for w in variables:
        t_w = tf.constant(t, w.dtype)
        axes = list(range(1, len(w.shape))) if members else None
        terms.append(tf.reduce_mean(tf.maximum(tf.minimum(-w, w) + t_w, 0.0), axis=axes))
    total = tf.add_n(terms)
    return total / tf.constant(t, total.dtype)


def nau_sparsity_penalty(w: tf.Tensor) -> tf.Tensor:
    """NAU's ``mean(min(|W|, 1 − |W|))``: zero exactly when every weight is in {−1, 0, 1}."""
    abs_w = tf.abs(w)
    return tf.reduce_mean(tf.minimum(abs_w, 1.0 - abs_w))


def nmu_sparsity_penalty(w: tf.Tensor) -> tf.Tensor:
    """NMU's ``mean(min(W, 1 − W))``: zero exactly when every weight is in {0, 1}."""
    return tf.reduce_mean(tf.minimum(w, 1.0 - w))


def linear_warmup(step: tf.Tensor, start: int, end: int, dtype: tf.DType) -> tf.Tensor:
    """Madsen & Johansen's scaling ``clip((step − start) / (end − start), 0, 1)``.

    With ``end == start`` it is a step function: 0 before ``start``, 1 from ``start`` on.
    """
    step = tf.cast(step, dtype)
    if end == start:
        return tf.cast(step >= tf.constant(start, dtype), dtype)
    ramp = (step - tf.constant(start, dtype)) / tf.constant(end - start, dtype)
    return tf.clip_by_value(ramp, 0.0, 1.0)

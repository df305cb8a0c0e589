"""Curvature and stability mathematics of the instrumented trainer (graph-safe TensorFlow).

The exact Hessian of a one-layer linear model, the stability margins and
spectral radii of the (heavy-ball) gradient-descent update map, and the small
tensor helpers the spec lists with them. Each takes tensors or NumPy arrays
and returns tensors, so the trainer can call them inside its compiled step.

========================================  ========================================
``flatten_tensors``                       variables/gradients -> one global vector
``half_mse_batch_loss``                   ``(1/2N) sum_n ||y_n - p_n||^2``
``tensor_l2_norm``                        overflow/underflow-safe 2-norm
``safe_cosine``                           cosine, by the package's zero-vector convention
``analytic_single_dense_hessian``         exact Hessian of a one-layer no-bias model
``stability_metrics_from_hessian``        ``eta * lambda_max`` and update-map radii
``finite_eigvalsh``                       eigenvalues, NaN for a non-finite matrix
========================================  ========================================

A diverging run feeds these non-finite tensors; they then report NaN (never an
exception), so the trainer can log the diverged step and stop.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.quantization.geometry import update_geometry

__all__ = [
    "LOSS_MODES",
    "analytic_single_dense_hessian",
    "finite_eigvalsh",
    "flatten_tensors",
    "half_mse_batch_loss",
    "keras_mse_batch_loss",
    "safe_cosine",
    "stability_metrics_from_hessian",
    "tensor_l2_norm",
]

#: The losses whose Hessian :func:`analytic_single_dense_hessian` gives:
#: ``half_mse``, ``(1/2N) sum_n ||y_n - p_n||^2``, and ``keras_mse``, Keras' mean
#: over samples and outputs.
LOSS_MODES = ("half_mse", "keras_mse")


def flatten_tensors(tensors: Sequence, like: Optional[Sequence] = None) -> tf.Tensor:
    """Concatenate the tensors, each flattened row-major, into one vector.

    Args:
        tensors: tensors or variables (e.g. ``model.trainable_variables`` or
            their gradients). A None entry (a variable with no gradient)
            becomes zeros shaped like the matching entry of ``like``.
        like: the tensors whose shapes stand in for None entries.

    Example:
    >>> flatten_tensors([[[1.0, 2.0]], [3.0]]).numpy()
    array([1., 2., 3.], dtype=float32)
    """
    if isinstance(tensors, (str, bytes, tf.Tensor)) or not hasattr(tensors, "__iter__"):
        raise ValueError(f"tensors must be a list of tensors or variables, got {tensors!r}")
    parts = []
    for i, t in enumerate(tensors):
        if t is None:
            if like is None:
                raise ValueError(
                    f"flatten_tensors: entry {i} is None; pass like= to fill it with zeros"
                )
            t = tf.zeros_like(tf.convert_to_tensor(like[i]))
        parts.append(tf.reshape(tf.convert_to_tensor(t), [-1]))
    if not parts:
        return tf.zeros([0], tf.float32)
    return tf.concat(parts, axis=0)


def _as_2d(t: tf.Tensor) -> tf.Tensor:
    return tf.reshape(t, [tf.shape(t)[0], -1])


def half_mse_batch_loss(y_true, y_pred) -> tf.Tensor:
    """Half mean squared error: ``(1 / 2N) * sum_n sum_j (y_pred - y_true)^2``.

    The sum runs over outputs and the mean over the N rows of the batch, so
    for a one-layer no-bias model ``y = x @ W`` the Hessian with respect to
    each output column of ``W`` is exactly ``X^T X / N`` (no factor 2, no
    division by the number of outputs), which is what the analytic-Hessian
    experiments want. Keras's ``"mse"`` is ``mean_n mean_j (.)^2``, i.e.
    ``2 / n_outputs`` times this (:func:`keras_mse_batch_loss`).

    Example:
    >>> float(half_mse_batch_loss([[1.0, 2.0]], [[0.0, 0.0]]))
    2.5
    """
    y_pred = tf.convert_to_tensor(y_pred)
    y_true = tf.cast(y_true, y_pred.dtype)
    sq = tf.reduce_sum(_as_2d(tf.square(y_pred - y_true)), axis=1)
    return 0.5 * tf.reduce_mean(sq)


def keras_mse_batch_loss(y_true, y_pred) -> tf.Tensor:
    """Keras's mean squared error: the mean over rows and outputs, no 1/2."""
    y_pred = tf.convert_to_tensor(y_pred)
    y_true = tf.cast(y_true, y_pred.dtype)
    return tf.reduce_mean(tf.square(y_pred - y_true))


def tensor_l2_norm(x) -> tf.Tensor:
    """The Euclidean norm of all entries, scaled so large or tiny entries neither
    overflow nor underflow (``max|x| * ||x / max|x|||``); 0 for an all-zero or
    empty tensor, NaN if an entry is NaN, Inf if one is infinite.

    Example:
    >>> round(float(tensor_l2_norm([3e30, 4e30])) / 1e30, 4)  # squares overflow float32
    5.0
    """
    x = tf.reshape(_checks.tensor("x", x), [-1])
    if not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    ax = tf.abs(x)
    scale = tf.reduce_max(tf.concat([tf.where(tf.math.is_finite(ax), ax, 0.0),
                                     tf.zeros([1], x.dtype)], 0))
    safe = tf.where(scale > 0, scale, tf.ones_like(scale))
    norm = safe * tf.sqrt(tf.reduce_sum(tf.square(x / safe)))
    zero = tf.zeros_like(scale)
    norm = tf.where(scale > 0, norm, zero)
    norm = tf.where(tf.reduce_any(tf.math.is_inf(x)), zero + float("inf"), norm)
    return tf.where(tf.reduce_any(tf.math.is_nan(x)), zero + float("nan"), norm)


def safe_cosine(a, b) -> tf.Tensor:
    """``<a, b> / (||a|| ||b||)`` clipped to [-1, 1], with the package's one convention
    where a vector is zero (:mod:`~tensorflow_kappa.quantization.geometry`): 1 if
    both are, 0 if one is.

    Returning 0 (not NaN) for one zero vector is deliberate: an applied update
    that underflowed to zero has no direction in common with the intended one;
    a step that asked for nothing and changed nothing was followed exactly.
    Each vector is scaled by its largest entry first, so neither overflow nor
    underflow of the squares matters.

    Example:
    >>> float(safe_cosine([1.0, 0.0], [1.0, 1.0]))  # doctest: +ELLIPSIS
    0.7071067...
    >>> float(safe_cosine([1.0, 0.0], [0.0, 0.0])), float(safe_cosine([0.0], [0.0]))
    (0.0, 1.0)
    """
    a = tf.reshape(_checks.tensor("a", a), [-1])
    b = tf.reshape(tf.cast(_checks.tensor("b", b), a.dtype), [-1])

    def scaled(x):
        top = tf.reduce_max(tf.concat([tf.abs(x), tf.zeros([1], x.dtype)], 0))
        return x / tf.where(top > 0, top, tf.ones_like(top))

    a, b = scaled(a), scaled(b)
    return update_geometry(tf.reduce_sum(a * a), tf.reduce_sum(b * b), tf.reduce_sum(a * b),
                           dtype=a.dtype).cosine


def analytic_single_dense_hessian(X, output_dim: int = 1, loss_mode: str = "half_mse",
                                  full: bool = True) -> tf.Tensor:
    """Exact Hessian of the batch loss of ``Y_pred = X @ W`` (one Dense, no bias).

    The loss is quadratic in ``W``, so the Hessian is constant:
    ``H = c * kron(X^T X / N, I_m)`` over ``W`` flattened row-major (the
    order of :func:`flatten_tensors`), with ``c = 1`` for ``"half_mse"`` and
    ``c = 2 / m`` for ``"keras_mse"`` (m = ``output_dim``).

    Args:
        X: the batch inputs, shape ``(N, d)``.
        output_dim: m, the number of outputs.
        loss_mode: ``"half_mse"`` or ``"keras_mse"``.
        full: return the ``(d*m, d*m)`` Hessian; False returns its ``(d, d)``
            block ``c * X^T X / N``, which has the same eigenvalues (each m
            times over) and is what the trainer uses.

    Example:
    >>> analytic_single_dense_hessian([[1.0, 0.0], [0.0, 2.0]], 1).numpy()
    array([[0.5, 0. ],
           [0. , 2. ]], dtype=float32)
    """
    if loss_mode not in LOSS_MODES:
        raise ValueError(f"loss_mode must be one of {LOSS_MODES}, got {loss_mode!r}")
    output_dim = _checks.integer("output_dim", output_dim, minimum=1, maximum=2**31 - 1)
    X = _checks.tensor("X", X)
    if X.shape.rank is not None and X.shape.rank != 2:
        raise ValueError(f"X must be a batch of inputs of shape (N, d), got shape {X.shape}")
    if not X.dtype.is_floating:
        X = tf.cast(X, tf.float32)
    n = tf.cast(tf.shape(X)[0], X.dtype)
    block = tf.matmul(X, X, transpose_a=True) / n
    if loss_mode == "keras_mse":
        block = block * tf.constant(2.0 / output_dim, X.dtype)
    if not full:
        return block
    d = tf.shape(block)[0]
    eye = tf.eye(output_dim, dtype=X.dtype)
    # kron(block, I_m)[i*m + j, k*m + l] = block[i, k] * I[j, l]
    kron = block[:, None, :, None] * eye[None, :, None, :]
    return tf.reshape(kron, [d * output_dim, d * output_dim])


def finite_eigvalsh(matrix) -> tf.Tensor:
    """The eigenvalues of a symmetric matrix (``tf.linalg.eigvalsh``), or all NaN when an
    entry is not finite: eigvalsh itself fails on those ("Self-adjoint eigen
    decomposition was not successful"), which would end a diverging run with an
    exception instead of a logged NaN.

    Example:
    >>> finite_eigvalsh([[2.0, 0.0], [0.0, float("inf")]]).numpy()
    array([nan, nan], dtype=float32)
    """
    matrix = tf.convert_to_tensor(matrix)
    ok = tf.reduce_all(tf.math.is_finite(matrix))
    eig = tf.linalg.eigvalsh(tf.where(ok, matrix, tf.zeros_like(matrix)))
    return tf.where(ok, eig, tf.fill(tf.shape(eig), tf.constant(float("nan"), eig.dtype)))


def _heavy_ball_radius(mu_eig: tf.Tensor, momentum: float) -> tf.Tensor:
    """Largest |r| solving r^2 - (1 + mu - z) r + mu = 0 for each z = eta*lambda."""
    b = 1.0 + momentum - mu_eig
    disc = b * b - 4.0 * momentum
    sq = tf.sqrt(tf.abs(disc))
    real = tf.maximum(tf.abs(b + sq), tf.abs(b - sq)) / 2.0
    complex_ = tf.fill(tf.shape(b), tf.cast(tf.sqrt(momentum), b.dtype))
    return tf.where(disc >= 0, real, complex_)


def _scalar(x, dtype) -> tf.Tensor:
    """A Python number straight in ``dtype`` (no detour through float32); a tensor cast."""
    if isinstance(x, (tf.Tensor, tf.Variable)):
        return tf.cast(x, dtype)
    return tf.constant(x, dtype)


def stability_metrics_from_hessian(hessian, learning_rate, alpha=1.0,
                                   momentum: float = 0.0) -> Dict[str, tf.Tensor]:
    """Stability of the gradient-descent update map on a quadratic with Hessian H.

    For plain SGD, ``theta' - theta* = (I - eta H)(theta - theta*)``: it is
    stable exactly when ``eta * lambda_max < 2`` (for H positive
    semi-definite), i.e. when the spectral radius ``max_i |1 - eta lambda_i|``
    is below 1. With momentum mu (``v' = mu v - eta g; theta' = theta + v'``)
    each eigenvalue gives ``r^2 - (1 + mu - eta lambda) r + mu = 0`` and the
    radius is the largest ``|r|`` (stable while ``eta lambda < 2 (1 + mu)``).

    Args:
        hessian: a symmetric ``(k, k)`` matrix (its eigenvalues are used).
        learning_rate: eta.
        alpha: the controller's throttle; the ``_ctrl`` entries use
            ``alpha * eta``.
        momentum: mu of the heavy-ball map (0: plain SGD).

    Returns:
        dict of scalars: ``hessian_lambda_max``,
        ``stability_margin_lambda_raw`` (eta lambda_max),
        ``stability_margin_lambda_ctrl`` (alpha eta lambda_max),
        ``spectral_radius_raw``, ``spectral_radius_ctrl``; all NaN when an
        entry of ``hessian`` is not finite.

    Example:
    >>> m = stability_metrics_from_hessian([[4.0, 0.0], [0.0, 1.0]], 0.6)
    >>> round(float(m["stability_margin_lambda_raw"]), 3), round(float(m["spectral_radius_raw"]), 3)
    (2.4, 1.4)
    """
    H = _checks.tensor("hessian", hessian)
    if H.shape.rank is not None and (H.shape.rank != 2 or (
            H.shape[0] is not None and H.shape[0] != H.shape[1])):
        raise ValueError(f"hessian must be a square matrix, got shape {H.shape}")
    if not H.dtype.is_floating:
        H = tf.cast(H, tf.float32)
    for name, value in (("learning_rate", learning_rate), ("alpha", alpha)):
        if not isinstance(value, (tf.Tensor, tf.Variable)):
            _checks.number(name, value, minimum=0.0)
    momentum = _checks.number("momentum", momentum, minimum=0.0)
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    eig = finite_eigvalsh(0.5 * (H + tf.transpose(H)))
    eta = _scalar(learning_rate, H.dtype)
    eta_ctrl = _scalar(alpha, H.dtype) * eta
    lam_max = tf.reduce_max(eig)

    def radius(step):
        if momentum:
            return tf.reduce_max(_heavy_ball_radius(step * eig, float(momentum)))
        return tf.reduce_max(tf.abs(1.0 - step * eig))

    return {
        "hessian_lambda_max": lam_max,
        "stability_margin_lambda_raw": eta * lam_max,
        "stability_margin_lambda_ctrl": eta_ctrl * lam_max,
        "spectral_radius_raw": radius(eta),
        "spectral_radius_ctrl": radius(eta_ctrl),
    }

"""The improved Neural Arithmetic Logic Unit (iNALU; Schlör, Ring & Hotho 2020)."""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.layers import _formula, _math
from tensorflow_kappa.layers._base import NALMLayer, check_initializer


def _default_w_hat() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(mean=1.0, stddev=0.1)


def _default_m_hat() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(mean=-1.0, stddev=0.1)


def _default_g() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.1)


@keras.saving.register_keras_serializable(package="Kappa")
class INALU(NALMLayer):
    """Improved Neural Arithmetic Logic Unit (iNALU).

    For inputs ``x`` of shape ``(..., I)`` and ``units = O``::

        W_A = tanh(Ŵ_A) ⊙ σ(M̂_A)          W_M = tanh(Ŵ_M) ⊙ σ(M̂_M)
        a   = x W_A                                        (additive path)
        m   = exp(min(log(max(|x|, ε)) W_M, ω))            (multiplicative path)
        msv = clip(∏_i (sign(x_i) |W_M[i]| + 1 − |W_M[i]|), −1, 1)
        g   = σ(G)                                         (one gate per unit, no input)
        y   = g ⊙ a + (1 − g) ⊙ m ⊙ msv

    This follows the iNALU authors' reference implementation, which refines the
    equations printed in the report (eq. 2.6–2.13): the logarithm takes ``max(|x|, ε)``
    rather than ``|x| + ε``, the exponent is clipped from above by ``ω`` (not the
    result), and the sign product is clipped to [−1, 1].

    With ``sparsity_regularization=True`` each call adds the report's regulariser
    (eq. 2.14–2.15) through ``add_loss``, so it appears in ``layer.losses`` and
    ``model.losses``::

        R = (1/t) Σ_{w ∈ {Ŵ_A, M̂_A, Ŵ_M, M̂_M, G}} mean(max(min(−w, w) + t, 0))

    It is up to the training loop (e.g. the loop controller) when that loss enters a
    step; plain ``fit`` adds it from the first step.

    Args:
        units: number of outputs ``O`` (positive int).
        omega: ``ω``, the upper clip of the exponent of the multiplicative path (> 0).
        epsilon: ``ε``, the floor of ``|x|`` inside the logarithm (> 0).
        share_weights: use one pair ``Ŵ, M̂`` for both paths (weights ``w_hat``,
            ``m_hat``) instead of ``w_hat_a, m_hat_a, w_hat_m, m_hat_m``.
        sparsity_regularization: add the regulariser ``R`` in ``call``.
        t: the regulariser's threshold ``t`` (> 0); 20 per the iNALU authors.
        w_hat_initializer: initializer of ``Ŵ``; default ``N(1, 0.1)``.
        m_hat_initializer: initializer of ``M̂``; default ``N(−1, 0.1)``.
        g_initializer: initializer of the gate ``G``; default ``N(0, 0.1)``.
            (The defaults are the best of the authors' grid study.)
        **kwargs: ``keras.layers.Layer`` options (``name``, ``dtype``, ...).

    The gate variable ``G`` (shape ``(units,)``) is ``layer.g``; the others are
    ``layer.w_hat_a`` etc.

    Use float32 or float64 (``dtype="float64"`` or a global float64 policy). Under
    ``mixed_float16`` the layer runs, but ``exp(ω)`` with the default ``ω = 20`` exceeds
    float16's range (about ``e^11``): lower ``omega`` or keep this layer in float32.

    Example:

    >>> import keras
    >>> from tensorflow_kappa.layers import INALU
    >>> model = keras.Sequential([keras.Input((2,)), INALU(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> model.layers[0].explain()  # after training, e.g. ['x1 * x2']  # doctest: +SKIP
    """

    _gated = True

    def __init__(self, units: int, omega: float = 20.0, epsilon: float = 1e-7,
                 share_weights: bool = False, sparsity_regularization: bool = True,
                 t: float = 20.0, w_hat_initializer: Any = None,
                 m_hat_initializer: Any = None, g_initializer: Any = None, **kwargs: Any):
        super().__init__(units, **kwargs)
        positive = dict(minimum=0.0, strict_minimum=True)
        self.omega = _checks.number("omega", omega, **positive)
        self.epsilon = _checks.number("epsilon", epsilon, **positive)
        self.share_weights = _checks.flag("share_weights", share_weights)
        self.sparsity_regularization = _checks.flag("sparsity_regularization",
                                                    sparsity_regularization)
        self.t = _checks.number("t", t, **positive)
        self.w_hat_initializer = check_initializer("w_hat_initializer", w_hat_initializer,
                                                   _default_w_hat())
        self.m_hat_initializer = check_initializer("m_hat_initializer", m_hat_initializer,
                                                   _default_m_hat())
        self.g_initializer = check_initializer("g_initializer", g_initializer, _default_g())

    def _build_weights(self, input_dim: int) -> None:
        shape = (input_dim, self.units)
        suffixes = ("",) if self.share_weights else ("_a", "_m")
        for suffix in suffixes:
            self._add_drawn_weight("w_hat" + suffix, shape, self.w_hat_initializer)
            self._add_drawn_weight("m_hat" + suffix, shape, self.m_hat_initializer)
        self._add_drawn_weight("g", (self.units,), self.g_initializer)

    def _raw_variables(self) -> list:
        """The variables the regulariser covers: ``Ŵ, M̂`` of each path, then ``G``."""
        if self.share_weights:
            return [self.w_hat, self.m_hat, self.g]
        return [self.w_hat_a, self.m_hat_a, self.w_hat_m, self.m_hat_m, self.g]

    def _path_weights(self) -> tuple:
        if self.share_weights:
            w = _math.nac_weight(self.w_hat, self.m_hat)
            return w, w
        return (_math.nac_weight(self.w_hat_a, self.m_hat_a),
                _math.nac_weight(self.w_hat_m, self.m_hat_m))

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x = self._inputs(inputs)
        w_a, w_m = self._path_weights()
        if self.sparsity_regularization:
            self._add_regularization_loss(self.sparsity_loss())
        return _math.inalu_output(x, w_a, w_m, tf.convert_to_tensor(self.g), self.epsilon,
                                  self.omega)

    def sparsity_loss(self) -> tf.Tensor:
        """The regulariser ``R`` at the current weights (whether or not it is switched on)."""
        return _math.inalu_sparsity_penalty(self._raw_variables(), self.t)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            omega=self.omega, epsilon=self.epsilon, share_weights=self.share_weights,
            sparsity_regularization=self.sparsity_regularization, t=self.t,
            w_hat_initializer=keras.initializers.serialize(self.w_hat_initializer),
            m_hat_initializer=keras.initializers.serialize(self.m_hat_initializer),
            g_initializer=keras.initializers.serialize(self.g_initializer))
        return config

    # ------------------------------------------------------------ read-out

    def effective_weights(self) -> dict:
        """``{"W_A": ..., "W_M": ...}`` (``{"W": ...}`` when shared), NumPy ``(inputs, units)``."""
        w_a, w_m = (np.asarray(keras.ops.convert_to_numpy(w)) for w in self._path_weights())
        if self.share_weights:
            return {"W": w_a}
        return {"W_A": w_a, "W_M": w_m}

    def gate(self) -> np.ndarray:
        """``σ(G)``, one value per unit: 1 selects the additive path, 0 the multiplicative."""
        return np.asarray(keras.ops.convert_to_numpy(tf.sigmoid(self.g)))

    def _unit_formulas(self, inputs: list, tolerance: float) -> list:
        weights = self.effective_weights()
        name_a, name_m = ("W", "W") if self.share_weights else ("W_A", "W_M")
        w_a, w_m = weights[name_a], weights[name_m]
        gates = self.gate()
        out = []
        for o in range(self.units):
            add_ints, add_problems = _formula.snap_column(
                w_a[:, o], (-1, 0, 1), tolerance, self._weight_label(name_a, o))
            mul_ints, mul_problems = _formula.snap_column(
                w_m[:, o], (-1, 0, 1), tolerance, self._weight_label(name_m, o))
            g = float(gates[o])
            if g >= 1.0 - tolerance:
                out.append(_formula.weighted_sum(add_ints, inputs) if add_ints is not None
                           else _formula.Undetermined(add_problems))
            elif g <= tolerance:
                # exp(Σ w log|x|) · ∏ sign(x)^|w| = ∏ x^w for w ∈ {−1, 0, 1}.
                out.append(_formula.power_product(mul_ints, inputs) if mul_ints is not None
                           else _formula.Undetermined(mul_problems))
            else:
                out.append(_formula.Undetermined(
                    [f"{self.name}: gate g[{o}] = {g:.3g}"]
                    + add_problems + [p for p in mul_problems if p not in add_problems]))
        return out

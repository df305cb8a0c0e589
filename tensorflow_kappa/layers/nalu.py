"""Trask et al.'s (2018) Neural Arithmetic Logic Unit and its two accumulators.

* :class:`NAC` -- the additive cell ``a = x W``;
* :class:`NACMultiplicative` -- the multiplicative cell ``m = exp(log(|x| + ε) W)``;
* :class:`NALU` -- both, with a shared ``W`` and an input-dependent gate ``σ(x G)``.

All three use ``W = tanh(Ŵ) ⊙ σ(M̂)`` (report eq. 2.1–2.5).
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa.layers import _formula, _math
from tensorflow_kappa import _checks
from tensorflow_kappa.layers._base import NALMLayer, check_initializer


class _NACWeights(NALMLayer):
    """A layer with one ``W = tanh(Ŵ) ⊙ σ(M̂)`` (weights ``w_hat``, ``m_hat``)."""

    def __init__(self, units: int, w_hat_initializer: Any = None,
                 m_hat_initializer: Any = None, **kwargs: Any):
        super().__init__(units, **kwargs)
        self.w_hat_initializer = check_initializer(
            "w_hat_initializer", w_hat_initializer, keras.initializers.GlorotUniform())
        self.m_hat_initializer = check_initializer(
            "m_hat_initializer", m_hat_initializer, keras.initializers.GlorotUniform())

    def _build_weights(self, input_dim: int) -> None:
        shape = (input_dim, self.units)
        self._add_drawn_weight("w_hat", shape, self.w_hat_initializer)
        self._add_drawn_weight("m_hat", shape, self.m_hat_initializer)

    def _weight(self) -> tf.Tensor:
        return _math.nac_weight(self.w_hat, self.m_hat)

    def effective_weights(self) -> dict:
        """``{"W": tanh(Ŵ) ⊙ σ(M̂)}`` as a NumPy ``(inputs, units)`` array."""
        return {"W": np.asarray(keras.ops.convert_to_numpy(self._weight()))}

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            w_hat_initializer=keras.initializers.serialize(self.w_hat_initializer),
            m_hat_initializer=keras.initializers.serialize(self.m_hat_initializer))
        return config

    def _snapped(self, tolerance: float) -> list:
        w = self.effective_weights()["W"]
        return [_formula.snap_column(w[:, o], (-1, 0, 1), tolerance,
                                     self._weight_label("W", o))
                for o in range(self.units)]


@keras.saving.register_keras_serializable(package="Kappa")
class NAC(_NACWeights):
    """Neural accumulator (Trask et al. 2018): ``a = x W``, ``W = tanh(Ŵ) ⊙ σ(M̂)``.

    Learns signed sums of its inputs; its weights are biased towards {−1, 0, 1}.

    Args:
        units: number of outputs (positive int).
        w_hat_initializer, m_hat_initializer: initializers of ``Ŵ`` and ``M̂``
            (default Glorot uniform, as in Trask et al.).
        **kwargs: ``keras.layers.Layer`` options.

    Example:

    >>> import numpy as np
    >>> from tensorflow_kappa.layers import NAC
    >>> NAC(4)(np.ones((8, 3), "float32")).shape
    TensorShape([8, 4])
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return _math.linear_map(self._inputs(inputs), self._weight())

    def _unit_formulas(self, inputs: list, tolerance: float) -> list:
        return [_formula.weighted_sum(ints, inputs) if ints is not None
                else _formula.Undetermined(problems)
                for ints, problems in self._snapped(tolerance)]


@keras.saving.register_keras_serializable(package="Kappa")
class NACMultiplicative(_NACWeights):
    """Multiplicative neural accumulator (Trask et al. 2018): ``m = exp(log(|x| + ε) W)``.

    Learns products and quotients of input *magnitudes*: the sign of the inputs is lost
    (``INALU`` restores it). Unclipped, as in the paper: very large inputs with weights
    near 1 can overflow the exponent.

    Args:
        units: number of outputs (positive int).
        epsilon: ``ε`` added to ``|x|`` inside the logarithm (> 0).
        w_hat_initializer, m_hat_initializer: initializers of ``Ŵ`` and ``M̂``.
        **kwargs: ``keras.layers.Layer`` options.

    Example:

    >>> import numpy as np
    >>> from tensorflow_kappa.layers import NACMultiplicative
    >>> NACMultiplicative(2)(np.ones((8, 3), "float32")).shape
    TensorShape([8, 2])
    """

    def __init__(self, units: int, epsilon: float = 1e-7, w_hat_initializer: Any = None,
                 m_hat_initializer: Any = None, **kwargs: Any):
        super().__init__(units, w_hat_initializer=w_hat_initializer,
                         m_hat_initializer=m_hat_initializer, **kwargs)
        self.epsilon = _checks.number("epsilon", epsilon, minimum=0.0, strict_minimum=True)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return _math.nalu_log_product(self._inputs(inputs), self._weight(), self.epsilon)

    def get_config(self) -> dict:
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config

    def _unit_formulas(self, inputs: list, tolerance: float) -> list:
        out = []
        for ints, problems in self._snapped(tolerance):
            if ints is None:
                out.append(_formula.Undetermined(problems))
                continue
            node = _formula.power_product(ints, inputs)
            out.append(node if isinstance(node, _formula.Undetermined)
                       else _formula.absolute(node))
        return out


@keras.saving.register_keras_serializable(package="Kappa")
class NALU(_NACWeights):
    """Neural Arithmetic Logic Unit (Trask et al. 2018; report eq. 2.1–2.5).

    ::

        W = tanh(Ŵ) ⊙ σ(M̂)
        a = x W                      m = exp(log(|x| + ε) W)
        g = σ(x G)                   (input-dependent gate, G of shape (inputs, units))
        y = g ⊙ a + (1 − g) ⊙ m

    One ``W`` serves both paths; the multiplicative path sees only magnitudes. The gate
    variable is ``layer.g``, so ``gate_variables(model)`` finds it as it finds iNALU's.
    Because the gate depends on the input, :meth:`explain` cannot name one path: it
    reports both path formulas and says the gate is input-dependent.

    Args:
        units: number of outputs (positive int).
        epsilon: ``ε`` added to ``|x|`` inside the logarithm (> 0).
        w_hat_initializer, m_hat_initializer, g_initializer: initializers of ``Ŵ``,
            ``M̂`` and ``G`` (default Glorot uniform).
        **kwargs: ``keras.layers.Layer`` options.

    Example:

    >>> import numpy as np
    >>> from tensorflow_kappa.layers import NALU
    >>> NALU(2)(np.ones((8, 3), "float32")).shape
    TensorShape([8, 2])
    """

    _gated = True

    def __init__(self, units: int, epsilon: float = 1e-7, w_hat_initializer: Any = None,
                 m_hat_initializer: Any = None, g_initializer: Any = None, **kwargs: Any):
        super().__init__(units, w_hat_initializer=w_hat_initializer,
                         m_hat_initializer=m_hat_initializer, **kwargs)
        self.epsilon = _checks.number("epsilon", epsilon, minimum=0.0, strict_minimum=True)
        self.g_initializer = check_initializer("g_initializer", g_initializer,
                                               keras.initializers.GlorotUniform())

    def _build_weights(self, input_dim: int) -> None:
        super()._build_weights(input_dim)
        self._add_drawn_weight("g", (input_dim, self.units), self.g_initializer)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x = self._inputs(inputs)
        w = self._weight()
        a = _math.linear_map(x, w)
        m = _math.nalu_log_product(x, w, self.epsilon)
        g = tf.sigmoid(_math.linear_map(x, tf.convert_to_tensor(self.g)))
        return g * a + (1.0 - g) * m

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(epsilon=self.epsilon,
                      g_initializer=keras.initializers.serialize(self.g_initializer))
        return config

    def _unit_formulas(self, inputs: list, tolerance: float) -> list:
        out = []
        for o, (ints, problems) in enumerate(self._snapped(tolerance)):
            if ints is None:
                out.append(_formula.Undetermined(problems))
                continue
            add = _formula.weighted_sum(ints, inputs)
            mul = _formula.power_product(ints, inputs)
            if isinstance(add, _formula.Undetermined):
                out.append(add)
                continue
            out.append(_formula.Undetermined([
                f"{self.name}: gate σ(x·G[:, {o}]) depends on the input "
                f"(additive path: {add}; multiplicative path: {_formula.absolute(mul)})"]))
        return out

"""The improved Neural Arithmetic Logic Unit (iNALU; Schlör, Ring & Hotho 2020)."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.layers import _formula, _math
from tensorflow_kappa.layers._base import NALMLayer, check_initializer

__all__ = ["INALU", "INIT_FAMILIES", "PUBLISHED_INIT", "draw_initial_weights",
           "draw_layer_weights"]

#: The published initial distributions ``(mean, standard deviation)`` of iNALU's raw
#: variables, the best of the iNALU authors' grid study: ``Ŵ ~ N(1, .1)``,
#: ``M̂ ~ N(−1, .1)``, ``G ~ N(0, .1)`` (both paths' ``Ŵ`` and ``M̂`` alike).  The
#: layer's default initializers and every init family start from them.
PUBLISHED_INIT: Dict[str, tuple] = {"w_hat": (1.0, 0.1), "m_hat": (-1.0, 0.1), "g": (0.0, 0.1)}

#: The init families an iNALU layer (or stack) can be redrawn from; every raw variable
#: is drawn from :data:`PUBLISHED_INIT` unless the family changes it:
#:
#: * ``"published"``: unchanged (the report's, the iNALU authors').
#: * ``"signed_a"``: the add path's ``Ŵ_A`` with a random sign per entry,
#:   ``±|N(1, .1)|`` (a layer with shared weights has no separate add path: unchanged).
#:   The published draw starts every add-path unit at a sum of positive weights; a
#:   difference needs a weight to cross zero through the saturated ``tanh·σ``.
#: * ``"lastadd_signed"``: ``"signed_a"``, and the output layer's gate
#:   ``G ~ N(2, .1)`` (the stack's output starts in the add path).
INIT_FAMILIES = ("published", "signed_a", "lastadd_signed")

_OUTPUT_ADD_GATE = (2.0, 0.1)  # lastadd_signed: G of the output layer


def _published(kind: str) -> keras.initializers.Initializer:
    mean, stddev = PUBLISHED_INIT[kind]
    return keras.initializers.RandomNormal(mean=mean, stddev=stddev)


def draw_layer_weights(family: str, rng: np.random.Generator, shapes: Mapping[str, tuple],
                       output_layer: bool = False) -> Dict[str, np.ndarray]:
    """One iNALU layer's raw variables from an init family, drawn from a NumPy generator.

    Args:
        family: a name of :data:`INIT_FAMILIES`.
        rng: the NumPy generator to draw from.
        shapes: ``{variable name: shape}`` in the layer's order (``w_hat_a``,
            ``m_hat_a``, ``w_hat_m``, ``m_hat_m``, ``g``; or ``w_hat``, ``m_hat``,
            ``g`` with shared weights); a leading member axis may be part of a shape.
        output_layer: the layer is its stack's output (``"lastadd_signed"``'s gate).

    Returns:
        ``{variable name: float32 array}``.  Every variable consumes the generator
        alike whatever the family (the published draw first; a family's change
        draws after it), so one generator gives a stack the same numbers layer by
        layer as :meth:`INALU.reinitialize` does.

    Example:
    >>> w = draw_layer_weights("signed_a", np.random.default_rng(0), {"w_hat_a": (2000,)})
    >>> bool(0.45 < np.mean(w["w_hat_a"] < 0) < 0.55)
    True
    """
    _checks.one_of("init family", family, INIT_FAMILIES)
    drawn = {}
    for name, shape in shapes.items():
        value = rng.normal(*PUBLISHED_INIT["g" if name == "g" else name[:5]], shape)
        if family != "published" and name == "w_hat_a":
            value = np.abs(value) * rng.choice([-1.0, 1.0], shape)
        if family == "lastadd_signed" and name == "g" and output_layer:
            value = rng.normal(*_OUTPUT_ADD_GATE, shape)
        drawn[name] = value.astype(np.float32)
    return drawn


def draw_initial_weights(family: str, rng: np.random.Generator,
                         shapes: Sequence[Mapping[str, tuple]]) -> List[Dict[str, np.ndarray]]:
    """A stack's raw iNALU variables from an init family: :func:`draw_layer_weights`
    layer by layer from one generator, the last layer the output.

    Args:
        family: a name of :data:`INIT_FAMILIES`.
        rng: the NumPy generator to draw from.
        shapes: per layer, ``{variable name: shape}`` (see :func:`draw_layer_weights`).

    Returns:
        Per layer, ``{variable name: float32 array}``.

    Example:
    >>> shapes = [{"w_hat_a": (3, 2), "g": (2,)}, {"w_hat_a": (2, 1), "g": (1,)}]
    >>> hidden, output = draw_initial_weights("lastadd_signed", np.random.default_rng(0), shapes)
    >>> bool(np.all(np.abs(hidden["g"]) < 1)), bool(output["g"][0] > 1)
    (True, True)
    """
    return [draw_layer_weights(family, rng, layer, output_layer=k == len(shapes) - 1)
            for k, layer in enumerate(shapes)]


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
            (The defaults, :data:`PUBLISHED_INIT`, are the best of the authors' grid
            study; :meth:`reinitialize` redraws from them or another of
            :data:`INIT_FAMILIES`.)
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
                                                   _published("w_hat"))
        self.m_hat_initializer = check_initializer("m_hat_initializer", m_hat_initializer,
                                                   _published("m_hat"))
        self.g_initializer = check_initializer("g_initializer", g_initializer, _published("g"))

    def _build_weights(self, input_dim: int) -> None:
        shape = (input_dim, self.units)
        suffixes = ("",) if self.share_weights else ("_a", "_m")
        for suffix in suffixes:
            self._add_drawn_weight("w_hat" + suffix, shape, self.w_hat_initializer)
            self._add_drawn_weight("m_hat" + suffix, shape, self.m_hat_initializer)
        self._add_drawn_weight("g", (self.units,), self.g_initializer)

    def reinitialize(self, family: str = "published",
                     rng: Optional[np.random.Generator] = None,
                     output_layer: bool = False) -> None:
        """Redraw every raw variable from an init family (the restart of the iNALU recipe).

        Optimizer slots are not touched.

        Args:
            family: a name of :data:`INIT_FAMILIES`.
            rng: a NumPy generator: draw what :func:`draw_layer_weights` draws for
                this layer's shapes (from the family's distributions, whatever
                initializers the layer was built with).  ``None``: draw from the
                layer's own initializers through Keras' random stream (what
                ``keras.utils.set_random_seed`` seeds); only ``"published"`` has
                initializers, the other families need ``rng``.
            output_layer: this layer is its stack's output (``"lastadd_signed"``
                starts its gate in the add path).

        Raises:
            ValueError: an unknown family (the families are listed), or another
                family than ``"published"`` without ``rng``.
            RuntimeError: the layer is not built yet.

        Example:
        >>> layer = INALU(8)
        >>> layer.build((None, 8))
        >>> layer.reinitialize("signed_a", rng=np.random.default_rng(0))
        >>> bool(np.any(layer.w_hat_a.numpy() < 0)), bool(np.all(layer.m_hat_a.numpy() < 0))
        (True, True)
        >>> layer.reinitialize("random")
        Traceback (most recent call last):
        ...
        ValueError: init family must be one of 'published', 'signed_a', ..., got 'random'
        """
        family = _checks.one_of("init family", family, INIT_FAMILIES)
        output_layer = _checks.flag("output_layer", output_layer)
        if rng is None:
            if family != "published":
                raise ValueError(f"init family {family!r} draws from a NumPy generator: pass "
                                 f"rng (e.g. np.random.default_rng(seed))")
            return super().reinitialize()
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be None or a numpy.random.Generator, got {rng!r}")
        if not self.built:
            raise RuntimeError(f"{self.name} is not built yet; call it on data first")
        shapes = {name: tuple(getattr(self, name).shape) for name in self._drawn}
        for name, value in draw_layer_weights(family, rng, shapes, output_layer).items():
            variable = getattr(self, name)
            variable.assign(value.astype(variable.dtype))
        self._reset_state()

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

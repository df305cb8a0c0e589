"""Madsen & Johansen's (2020) Neural Addition Unit and Neural Multiplication Unit."""
from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.layers import _formula, _math
from tensorflow_kappa.layers._base import NALMLayer, check_initializer


@keras.saving.register_keras_serializable(package="Kappa")
class Clip(keras.constraints.Constraint):
    """Clamp every weight into ``[min_value, max_value]`` after each optimizer update."""

    def __init__(self, min_value: float, max_value: float):
        if not min_value < max_value:
            raise ValueError(f"Clip needs min_value < max_value, got {min_value!r}, {max_value!r}")
        self.min_value = float(min_value)
        self.max_value = float(max_value)

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        return keras.ops.clip(w, self.min_value, self.max_value)

    def get_config(self) -> dict:
        return {"min_value": self.min_value, "max_value": self.max_value}


@keras.saving.register_keras_serializable(package="Kappa")
class NAUUniform(keras.initializers.Initializer):
    """Madsen & Johansen's NAU initialisation ``U(−r, r)``, ``r = min(0.5, √(6 / (I + O)))``.

    That is Glorot's variance ``2 / (I + O)``, capped so no weight starts beyond ±0.5.
    """

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self._uniform = keras.initializers.RandomUniform(-1.0, 1.0, seed=seed)

    def __call__(self, shape: tuple, dtype: Any = None) -> tf.Tensor:
        fan_in, fan_out = shape[0], shape[-1]
        r = min(0.5, math.sqrt(6.0 / (fan_in + fan_out)))
        return self._uniform(shape, dtype) * r

    def get_config(self) -> dict:
        return {"seed": self.seed}


class _RegularizedUnit(NALMLayer):
    """One weight matrix ``w`` with a constraint and a linearly warmed-up sparsity loss.

    The warm-up (Madsen & Johansen) scales the regulariser by
    ``λ = regularization_scale · clip((step − warmup_start) / (warmup_end − warmup_start), 0, 1)``.
    ``step`` is the non-trainable int64 variable ``layer.regularization_step``: it is
    part of ``layer.weights`` (so it is saved) but never of ``trainable_variables``. The
    layer adds 1 to it on every call with ``training=True`` (one per step of plain
    ``fit``; a training loop that calls the model several times per batch advances it
    several times). Assign it to drive the schedule yourself, e.g. from a callback.
    :meth:`reinitialize` resets it to 0 (a restarted run warms up again).
    """

    _low: float
    _high: float
    _discrete: tuple  # the weight values a read-out snaps to
    _combine: Any     # (snapped column, input names) -> the unit's formula

    def __init__(self, units: int, sparsity_regularization: bool = True,
                 regularization_scale: float = 10.0, warmup_start: int = 20000,
                 warmup_end: int = 35000, kernel_initializer: Any = None, **kwargs: Any):
        super().__init__(units, **kwargs)
        self.sparsity_regularization = _checks.flag("sparsity_regularization",
                                                    sparsity_regularization)
        self.regularization_scale = _checks.number("regularization_scale",
                                                   regularization_scale, minimum=0.0)
        self.warmup_start = _checks.integer("warmup_start", warmup_start, minimum=0)
        self.warmup_end = _checks.integer("warmup_end", warmup_end, minimum=self.warmup_start)
        self.kernel_initializer = check_initializer("kernel_initializer", kernel_initializer,
                                                    self._default_initializer())

    def _default_initializer(self) -> keras.initializers.Initializer:
        raise NotImplementedError

    def _build_weights(self, input_dim: int) -> None:
        self._add_drawn_weight("w", (input_dim, self.units), self.kernel_initializer,
                               constraint=Clip(self._low, self._high))
        # On-read synchronisation: under a distribution strategy each replica counts its own
        # copy (all replicas take the same steps), so the increment in `call` needs no
        # cross-replica merge_call; reads outside a replica see the first replica's count.
        with keras.name_scope(self.name, caller=self):
            self.regularization_step = keras.Variable(
                initializer="zeros", shape=(), dtype="int64", trainable=False,
                synchronization="on_read", aggregation="only_first_replica",
                name="regularization_step")

    def _reset_state(self) -> None:
        self.regularization_step.assign(0)

    def _clipped(self) -> tf.Tensor:
        """``W`` clamped into its range (the constraint keeps it there after updates)."""
        return tf.clip_by_value(tf.convert_to_tensor(self.w), self._low, self._high)

    def regularization_strength(self) -> tf.Tensor:
        """``λ`` at the current ``regularization_step``."""
        return self.regularization_scale * _math.linear_warmup(
            self.regularization_step, self.warmup_start, self.warmup_end, self.w.dtype)

    def sparsity_loss(self) -> tf.Tensor:
        """``λ · penalty(W)`` at the current step (whether or not it is switched on)."""
        return self.regularization_strength() * self._penalty(self._clipped())

    def _penalty(self, w: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def _forward(self, x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = self._inputs(inputs)
        w = self._clipped()
        if self.sparsity_regularization:
            self._add_regularization_loss(self.sparsity_loss())
        if training:
            self.regularization_step.assign_add(1)
        return self._forward(x, w)

    def effective_weights(self) -> dict:
        """``{"W": clamped W}`` as a NumPy ``(inputs, units)`` array."""
        return {"W": np.asarray(keras.ops.convert_to_numpy(self._clipped()))}

    def _unit_formulas(self, inputs: list, tolerance: float) -> list:
        w = self.effective_weights()["W"]
        out = []
        for o in range(self.units):
            ints, problems = _formula.snap_column(w[:, o], self._discrete, tolerance,
                                                  self._weight_label("W", o))
            out.append(self._combine(ints, inputs) if ints is not None
                       else _formula.Undetermined(problems))
        return out

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            sparsity_regularization=self.sparsity_regularization,
            regularization_scale=self.regularization_scale,
            warmup_start=self.warmup_start, warmup_end=self.warmup_end,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config


@keras.saving.register_keras_serializable(package="Kappa")
class NAU(_RegularizedUnit):
    """Neural Addition Unit (Madsen & Johansen 2020): ``z = x W``, ``W`` clamped to [−1, 1].

    The sparsity regulariser ``λ · mean(min(|W|, 1 − |W|))`` is added through
    ``add_loss`` (switch it off with ``sparsity_regularization=False``); ``λ`` ramps up
    linearly from 0 at ``warmup_start`` to ``regularization_scale`` at ``warmup_end``.
    Defaults are Madsen & Johansen's single-layer benchmark settings (λ̂ = 10,
    20 000 → 35 000 steps).
    ``W`` is clamped by a constraint after each optimizer step, as in their code, and
    in the forward pass.

    Args:
        units: number of outputs (positive int).
        sparsity_regularization: add the regulariser in ``call``.
        regularization_scale: ``λ̂`` (≥ 0).
        warmup_start, warmup_end: the warm-up's first and last step (ints, start ≤ end).
        kernel_initializer: initializer of ``W``; default :class:`NAUUniform`.
        **kwargs: ``keras.layers.Layer`` options.

    Warm-up step counter: ``layer.regularization_step`` (int64, non-trainable, saved with
    the model, reset by :meth:`reinitialize`) advances by one on every call with
    ``training=True``; assign it to drive the schedule from outside.

    Example:

    >>> import numpy as np
    >>> from tensorflow_kappa.layers import NAU
    >>> NAU(2, warmup_start=0, warmup_end=1000)(np.ones((8, 3), "float32")).shape
    TensorShape([8, 2])
    """

    _low, _high = -1.0, 1.0
    _discrete = (-1, 0, 1)
    _combine = staticmethod(_formula.weighted_sum)

    def _default_initializer(self) -> keras.initializers.Initializer:
        return NAUUniform()

    def _penalty(self, w: tf.Tensor) -> tf.Tensor:
        return _math.nau_sparsity_penalty(w)

    def _forward(self, x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
        return _math.linear_map(x, w)


@keras.saving.register_keras_serializable(package="Kappa")
class NMU(_RegularizedUnit):
    """Neural Multiplication Unit (Madsen & Johansen 2020).

    ``z_o = ∏_i (W_io x_i + 1 − W_io)`` with ``W`` clamped to [0, 1]: weight 1 takes
    ``x_i`` into the product, weight 0 leaves it out. Signs are kept; division is not
    representable. The regulariser is ``λ · mean(min(W, 1 − W))`` with the same linear
    warm-up and step counter as :class:`NAU`.

    Args:
        units: number of outputs (positive int).
        sparsity_regularization: add the regulariser in ``call``.
        regularization_scale: ``λ̂`` (≥ 0).
        warmup_start, warmup_end: the warm-up's first and last step (ints, start ≤ end).
        kernel_initializer: initializer of ``W``; default ``U(0.25, 0.75)`` (theirs).
        **kwargs: ``keras.layers.Layer`` options.

    Example:

    >>> import numpy as np
    >>> from tensorflow_kappa.layers import NMU
    >>> NMU(2)(np.ones((8, 3), "float32")).shape
    TensorShape([8, 2])
    """

    _low, _high = 0.0, 1.0
    _discrete = (0, 1)
    _combine = staticmethod(_formula.power_product)

    def _default_initializer(self) -> keras.initializers.Initializer:
        return keras.initializers.RandomUniform(0.25, 0.75)

    def _penalty(self, w: tf.Tensor) -> tf.Tensor:
        return _math.nmu_sparsity_penalty(w)

    def _forward(self, x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
        return _math.nmu_product(x, w)

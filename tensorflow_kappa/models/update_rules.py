"""The trainer's update rules (SGD and SGD with momentum), float and quantized.

Each rule applies one step to every trainable variable and returns what the
geometry metrics need: the squared norms of the intended update (before any
quantization or storage effect) and of the applied one (``new - old``), and
their dot product, plus the per-variable rail statistics of the quantized
path.

* SGD, float: ``var -= eta_eff * g`` (``assign_sub``, bit for bit a
  hand-written loop); geometry from the flattened before/after weights.
* SGD, quantized: ``update_quantize_store(var, g, eta_eff, update_fmt,
  storage_fmt)`` per variable: the fused op applies the step and returns the
  geometry terms and the underflow/saturation fractions in the same pass.
* Momentum (Keras's SGD form): ``u = v * mu - g * eta_eff`` is the intended
  update; the stored velocity is ``v = q_momentum(u)``; the weights get
  ``var += v`` (float) or ``update_quantize_store(var, -v, 1.0, ...)``
  (quantized: the op's raw update is then ``v`` itself). The geometry
  compares ``u`` (flattened) with the flattened ``new - old``, so momentum
  quantization shows up in the update cosine as update and storage
  quantization do.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional

import keras
import tensorflow as tf

from tensorflow_kappa.models.stability import flatten_tensors
from tensorflow_kappa.quantization import (FixedPoint, quantize_tensor, rail_stats,
                                           update_quantize_store)
from tensorflow_kappa.quantization.seeds import SeedStream

__all__ = ["UPDATE_RULES", "UpdateResult", "VarSpec", "apply_update"]

UPDATE_RULES = ("sgd", "momentum")


class VarSpec(NamedTuple):
    """A trainable variable and its formats (None: float)."""

    variable: keras.Variable
    layer: str
    field: str  # storage field: weight, bias or value
    storage: Optional[FixedPoint]
    update: Optional[FixedPoint]
    gradient: Optional[FixedPoint]
    momentum: Optional[FixedPoint]


class UpdateResult(NamedTuple):
    raw_sq: tf.Tensor          # ||intended||^2
    actual_sq: tf.Tensor       # ||new - old||^2
    dot: tf.Tensor             # <intended, new - old>
    quant: dict                # rail metric name -> max over variables (quantized path)


def _tf_variable(var):
    """The tf.Variable behind a Keras variable (``.value`` on the TF backend)."""
    value = getattr(var, "value", None)
    return value if isinstance(value, tf.Variable) else var


def _max(values: List[tf.Tensor]) -> tf.Tensor:
    if not values:
        return tf.constant(0.0, tf.float32)
    return tf.reduce_max(tf.stack(values))


def _geometry_from_flat(intended: tf.Tensor, actual: tf.Tensor):
    intended = tf.cast(intended, tf.float64)
    actual = tf.cast(actual, tf.float64)
    return (tf.reduce_sum(intended * intended), tf.reduce_sum(actual * actual),
            tf.reduce_sum(intended * actual))


def _next_seed(seeds: Optional[SeedStream], *formats: Optional[FixedPoint]):
    return None if seeds is None else seeds.next(*formats)


def apply_update(rule: str, specs: List[VarSpec], grads: List[tf.Tensor], eta_eff: tf.Tensor,
                 *, quantized: bool, velocities: Optional[List[tf.Variable]] = None,
                 momentum: float = 0.0, seeds: Optional[SeedStream] = None) -> UpdateResult:
    """Apply one step of ``rule`` to every variable; see the module docstring."""
    variables = [s.variable for s in specs]
    quant = {}
    if rule == "sgd" and quantized:
        raw_sq, act_sq, dot = [], [], []
        underflow, storage_sat, update_sat = [], [], []
        for spec, g in zip(specs, grads):
            if spec.update is not None:
                update_sat.append(rail_stats(-eta_eff * g, spec.update).saturation_fraction)
            stats = update_quantize_store(_tf_variable(spec.variable), g, eta_eff,
                                          update_format=spec.update,
                                          storage_format=spec.storage,
                                          seed=_next_seed(seeds, spec.update, spec.storage))
            raw_sq.append(tf.square(tf.cast(stats.raw_update_norm, tf.float64)))
            act_sq.append(tf.square(tf.cast(stats.actual_update_norm, tf.float64)))
            dot.append(tf.cast(stats.update_dot, tf.float64))
            if spec.update is not None:
                underflow.append(stats.update_underflow_fraction)
            if spec.storage is not None:
                storage_sat.append(stats.storage_saturation_fraction)
        quant["update_saturation_fraction_max"] = _max(update_sat)
        quant["update_underflow_fraction_max"] = _max(underflow)
        quant["weight_saturation_fraction_max"] = _max(storage_sat)
        return UpdateResult(tf.add_n(raw_sq), tf.add_n(act_sq), tf.add_n(dot), quant)

    before = flatten_tensors(variables)
    if rule == "sgd":
        intended = [-eta_eff * g for g in grads]
        for v, g in zip(variables, grads):
            v.assign_sub(eta_eff * g)
    elif rule == "momentum":
        mu = tf.constant(momentum, tf.float32)
        intended = []
        mom_sat, mom_under, underflow, storage_sat, update_sat = [], [], [], [], []
        for spec, vel, g in zip(specs, velocities, grads):
            u = vel * mu - g * eta_eff
            intended.append(u)
            stored = u
            if quantized and spec.momentum is not None:
                rs = rail_stats(u, spec.momentum)
                mom_sat.append(rs.saturation_fraction)
                mom_under.append(rs.underflow_fraction)
                stored = quantize_tensor(u, spec.momentum, ste=False,
                                         seed=_next_seed(seeds, spec.momentum))
            vel.assign(stored)
            if not quantized:
                spec.variable.assign_add(stored)
                continue
            if spec.update is not None:
                update_sat.append(rail_stats(stored, spec.update).saturation_fraction)
            stats = update_quantize_store(_tf_variable(spec.variable), -stored, tf.constant(1.0),
                                          update_format=spec.update,
                                          storage_format=spec.storage,
                                          seed=_next_seed(seeds, spec.update, spec.storage))
            if spec.update is not None:
                underflow.append(stats.update_underflow_fraction)
            if spec.storage is not None:
                storage_sat.append(stats.storage_saturation_fraction)
        if quantized:
            quant["update_saturation_fraction_max"] = _max(update_sat)
            quant["update_underflow_fraction_max"] = _max(underflow)
            quant["weight_saturation_fraction_max"] = _max(storage_sat)
            quant["momentum_saturation_fraction_max"] = _max(mom_sat)
            quant["momentum_underflow_fraction_max"] = _max(mom_under)
    else:
        raise ValueError(f"update_rule must be one of {UPDATE_RULES}, got {rule!r}")
    after = flatten_tensors(variables)
    raw_sq, act_sq, dot = _geometry_from_flat(flatten_tensors(intended), after - before)
    return UpdateResult(raw_sq, act_sq, dot, quant)

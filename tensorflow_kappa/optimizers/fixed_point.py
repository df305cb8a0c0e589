"""``FixedPointOptimizer``: fixed-point training around any Keras 3 optimizer.

How it works, without re-implementing any optimizer's rule: every Keras 3
optimizer's ``update_step(gradient, variable, learning_rate)`` writes only
through the optimizer's ``assign``, ``assign_add`` and ``assign_sub``. The
wrapper routes those three (and ``update_step`` itself) of the optimizer it
wraps through its own methods, which know, per variable and by the
precision dict's layer and field, what to quantize:

* ``update_step``: the gradient (after the all-reduce under a distribution
  strategy, so every replica rounds the same numbers) to ``gradient``;
* a write to a model variable: the step the optimizer computed (``value``
  of ``assign_add``, ``-value`` of ``assign_sub``, ``value - old`` of
  ``assign``) goes through the fused ``update_quantize_store`` op with the
  ``update`` and storage (``weight``/``bias``/``value``) formats, so the
  stored variable is on its grid after every step, and the op's statistics
  are kept per variable;
* a write to the optimizer's state: the new state is rounded to its field
  (``momentum``, ``second_moment``; see :data:`DEFAULT_STATE_FIELDS`).

Which state variable belongs to which model variable is recorded while the
wrapped optimizer is built (its ``add_variable_from_reference`` calls).
"""
from __future__ import annotations

import math
import numbers
import random
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

import keras
import tensorflow as tf

from tensorflow_kappa.quantization.fixed_point import FixedPoint
from tensorflow_kappa.quantization.precision import (PrecisionDict, ensure_precision_dict,
                                                     variable_layer_and_field)
from tensorflow_kappa.quantization.quantize import quantize_tensor
from tensorflow_kappa.quantization.rail_stats import rail_stats
from tensorflow_kappa.quantization.recording import is_recording
from tensorflow_kappa.quantization.seeds import SeedStream
from tensorflow_kappa.quantization.update_store import update_quantize_store

__all__ = ["DEFAULT_STATE_FIELDS", "FixedPointOptimizer"]

#: The precision field of each kind of per-variable optimizer state, by the name
#: Keras 3's optimizers give it (``add_variable_from_reference(var, name)``);
#: None keeps that state in float.
DEFAULT_STATE_FIELDS: Dict[str, Optional[str]] = {
    "momentum": "momentum",               # SGD, Adam/AdamW/Nadam/Lamb/Lion/Adamax m, RMSprop
    "average_gradient": "momentum",       # centered RMSprop's mean gradient
    "linear": "momentum",                 # Ftrl's z
    "velocity": "second_moment",          # Adam v, RMSprop's mean square, Adafactor
    "velocity_hat": "second_moment",      # AMSGrad's max of v
    "norm": "second_moment",              # Adamax's infinity norm
    "accumulator": "second_moment",       # Adagrad, Ftrl
    "accumulated_grad": "second_moment",  # Adadelta
    "accumulated_delta_var": "second_moment",
    "gradient_accumulator": None,         # gradient_accumulation_steps
    "average": None,                      # use_ema's moving averages
}
_STATE_FIELDS = ("momentum", "second_moment")

#: What the fused op reports per variable, every step.
UPDATE_STATS = ("requested_sq", "applied_sq", "dot", "update_underflow", "storage_saturation")
#: What a monitored step adds per variable (see QuantizationMonitor).
MONITOR_STATS = ("lost", "gradient_saturation", "gradient_near_rail", "gradient_underflow",
                 "weight_near_rail")
# Seed sites per variable: gradient, store, regrid, then one per state variable.
_GRADIENT, _STORE, _REGRID, _FIRST_STATE = range(4)
_SITES_PER_VARIABLE = 16


class _Role(NamedTuple):
    """A model variable's place in the precision dict and its formats (None: float)."""

    layer: str
    field: str
    storage: Optional[FixedPoint]
    update: Optional[FixedPoint]
    gradient: Optional[FixedPoint]
    size: int

    @property
    def quantized_store(self) -> bool:
        return self.storage is not None or self.update is not None


class _State(NamedTuple):
    """A state variable of the wrapped optimizer: whose, which field, its format."""

    index: int
    name: str
    field: Optional[str]
    fmt: Optional[FixedPoint]
    site: int


def _check_seed(seed: Any) -> int:
    if seed is None:
        return random.SystemRandom().randrange(2**31)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be None or an integer in [0, 2**63), got seed={seed!r}")
    return int(seed)


def _check_state_fields(state_fields: Optional[Mapping[str, Optional[str]]]) -> Dict:
    fields = dict(DEFAULT_STATE_FIELDS)
    if state_fields is None:
        return fields
    if not isinstance(state_fields, Mapping):
        raise ValueError(f"state_fields must be a mapping {{state name: field or None}}, got "
                         f"state_fields={state_fields!r}")
    for name, field in state_fields.items():
        if not isinstance(name, str) or (field is not None and field not in _STATE_FIELDS):
            raise ValueError(f"state_fields maps optimizer state names to one of "
                             f"{_STATE_FIELDS} or None, got {name!r}: {field!r}")
        fields[name] = field
    return fields


def _dense(value: Any, like: Any) -> tf.Tensor:
    """``value`` as a dense tensor of ``like``'s dtype (IndexedSlices summed, as
    ``scatter_add`` would)."""
    return tf.cast(tf.convert_to_tensor(value), like.dtype)


def _read(variable: Any) -> tf.Tensor:
    return tf.convert_to_tensor(variable.value if isinstance(variable, keras.Variable)
                                else variable)


def _new_value(kind: str, variable: Any, value: Any) -> tf.Tensor:
    """The value ``kind`` (assign, assign_add, assign_sub) would store."""
    old = _read(variable)
    if kind == "assign":
        if isinstance(value, tf.IndexedSlices):
            return tf.tensor_scatter_nd_update(old, tf.expand_dims(value.indices, -1),
                                               tf.cast(value.values, old.dtype))
        return tf.cast(value, old.dtype) + tf.zeros_like(old)
    delta = _dense(value, old)
    return old + delta if kind == "assign_add" else old - delta


def _fraction(count: tf.Tensor, of: tf.Tensor) -> tf.Tensor:
    return tf.where(of > 0, count / tf.maximum(of, 1.0), 0.0)


@keras.saving.register_keras_serializable(package="Kappa")
class FixedPointOptimizer(keras.optimizers.Optimizer):
    """Trains any Keras 3 optimizer's step in fixed point, per a precision dict.

    Per model variable, by its layer (the innermost layer in its path that
    the precision dict names, else the innermost one) and
    field (``weight`` for kernels and embeddings, ``bias``, else ``value``;
    see :func:`~tensorflow_kappa.quantization.precision.variable_layer_and_field`),
    every step:

    1. the gradient is rounded to the layer's ``gradient`` format;
    2. the wrapped optimizer computes its step as usual; each write of its
       state is rounded to the layer's ``momentum`` or ``second_moment``
       format (state names in :data:`DEFAULT_STATE_FIELDS`, extended by
       ``state_fields``; other state, and state not created per variable
       such as Adafactor's factored moments, stays float);
    3. its write to the variable goes through the fused
       :func:`~tensorflow_kappa.quantization.update_quantize_store`: the step
       rounded to ``update``, the new value to the storage format, in one
       pass, so the stored variable is always on its grid. Variables whose
       storage format is set are rounded onto it when the optimizer is
       built, and again after the wrapped optimizer's direct writes
       (constraints, ``overwrite_with_gradient``, EMA overwrite); weight
       decay is applied before the step and rounds with it.

    A precision dict that quantizes nothing leaves the wrapped optimizer's
    step unchanged, bit for bit. Stochastic formats draw a fresh stream per
    step and per variable from ``seed`` and the optimizer's iteration count,
    so a run is reproducible from its seed (also across replicas).

    Statistics: per variable, the fused op's requested and applied update
    norms, their dot product, the fraction of the update that underflowed
    the update format and the storage saturation are kept in non-trainable
    optimizer variables; :meth:`statistics` gives them per layer (and
    :class:`~tensorflow_kappa.callbacks.QuantizationMonitor` puts them into
    the logs, with what a monitored step adds).

    Distribution: under ``tf.distribute`` the wrapped optimizer updates
    each replica's copy (``strategy.extended.update``) after the gradients
    are all-reduced; the quantization runs there, on the same numbers with
    the same seeds on every replica.

    Args:
        optimizer: a Keras 3 optimizer that has not been built (SGD with or
            without momentum, Adam, RMSprop, ... or your own whose
            ``update_step`` writes through ``self.assign*``). It belongs to
            the wrapper from now on.
        precision: a :class:`~tensorflow_kappa.quantization.PrecisionDict`, a
            mapping ``{layer: {field: format}}``, one format for every field,
            or None (nothing quantized).
        seed: seed of stochastic rounding (an int in ``[0, 2**63)``); None
            draws one (kept in the config, so a saved run continues it).
        state_fields: ``{state name: "momentum" | "second_moment" | None}``
            for state names not in :data:`DEFAULT_STATE_FIELDS` (or to
            override them).
        name: the optimizer's name.

    Raises:
        ValueError: ``optimizer`` is not an unbuilt Keras optimizer (or is a
            FixedPointOptimizer), or a bad precision dict, seed or
            ``state_fields``; at build time, a variable outside any layer.

    Example:
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    >>> opt = FixedPointOptimizer(keras.optimizers.SGD(0.1, momentum=0.9),
    ...                           {"dense": {"weight": "s8.6", "bias": "s8.6",
    ...                                      "momentum": "s8.8"}}, seed=0)
    >>> model.compile(optimizer=opt, loss="mse")
    >>> _ = model.fit(np.ones((8, 3)), np.zeros((8, 2)), epochs=2, verbose=0)
    >>> w = model.layers[0].kernel.numpy()
    >>> bool(np.all(w * 64 == np.round(w * 64)))   # on the s8.6 grid
    True
    >>> sorted(opt.statistics())[:3]
    ['cosine/dense/update', 'progress/dense/update', 'saturation/dense/storage']
    """

    def __init__(self, optimizer: keras.optimizers.Optimizer, precision: Any = None,
                 seed: Optional[int] = None,
                 state_fields: Optional[Mapping[str, Optional[str]]] = None,
                 name: Optional[str] = None, **kwargs):
        if kwargs:
            raise ValueError(
                f"FixedPointOptimizer does not take {sorted(kwargs)}: set learning "
                "rate, clipping, weight decay, EMA, ... on the wrapped optimizer")
        if not isinstance(optimizer, keras.optimizers.Optimizer) or \
                isinstance(optimizer, FixedPointOptimizer):
            raise ValueError(
                "optimizer must be a Keras 3 optimizer (keras.optimizers.SGD(...), Adam, ...) "
                f"that is not itself a FixedPointOptimizer, got optimizer={optimizer!r}")
        if optimizer.built:
            raise ValueError(
                f"optimizer {optimizer.name!r} is already built: wrap a new optimizer, "
                "so that FixedPointOptimizer sees which state belongs to which variable")
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = optimizer
        self.precision = ensure_precision_dict(precision) or PrecisionDict()
        self.seed = _check_seed(seed)
        self.state_fields = _check_state_fields(state_fields)
        self._roles: List[_Role] = []
        self._states: Dict[Any, _State] = {}
        self._update_stats: List[Optional[keras.Variable]] = []
        self._monitor_stats: List[Optional[keras.Variable]] = []
        self._seeds: Optional[SeedStream] = None
        self._pending: Dict[str, tf.Tensor] = {}
        self._route_writes()

    # ------------------------------------------------------------------
    # Delegation (as keras.optimizers.LossScaleOptimizer does)
    # ------------------------------------------------------------------
    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        raise ValueError("FixedPointOptimizer updates variables in place (TensorFlow backend); "
                         "stateless_apply is not supported")

    # ------------------------------------------------------------------
    # Build
    # ------------------------------------------------------------------
    def build(self, var_list):
        var_list = list(var_list)
        self._roles = [self._role(v) for v in var_list]
        created: List[Tuple[Any, Any, str]] = []
        inner = self.inner_optimizer
        original = inner.add_variable_from_reference

        def recording_add(reference_variable, name=None, initializer="zeros"):
            state = original(reference_variable, name=name, initializer=initializer)
            created.append((state, reference_variable, name or "var"))
            return state

        object.__setattr__(inner, "add_variable_from_reference", recording_add)
        try:
            inner.build(var_list)
        finally:
            object.__delattr__(inner, "add_variable_from_reference")
        super().build(var_list)
        self._states = self._map_states(created)
        with tf.init_scope():  # build may run inside the first trace of the train step
            self._seeds = SeedStream(self.seed, inner.iterations,
                                     sites_per_step=_SITES_PER_VARIABLE * len(var_list) + 1)
        self._update_stats, self._monitor_stats = [], []
        for v, role in zip(var_list, self._roles):
            tracked = role.quantized_store or role.gradient is not None
            base = self._path(v).replace("/", "_")
            self._update_stats.append(self.add_variable(
                (len(UPDATE_STATS),), name=f"{base}_update_stats") if role.quantized_store
                else None)
            self._monitor_stats.append(self.add_variable(
                (len(MONITOR_STATS),), name=f"{base}_monitor_stats") if tracked else None)
        self._round_onto_grids(var_list)

    @staticmethod
    def _path(variable) -> str:
        return getattr(variable, "path", None) or variable.name.split(":")[0]

    def _role(self, variable) -> _Role:
        layer, field = variable_layer_and_field(variable, named=self.precision.layer_names)
        fmt = self.precision.format
        return _Role(layer, field, fmt(layer, field), fmt(layer, "update"), fmt(layer, "gradient"),
                     int(math.prod(variable.shape)))

    def _map_states(self, created) -> Dict[Any, _State]:
        inner = self.inner_optimizer
        states, per_variable = {}, {}
        for state, reference, name in created:
            index = inner._get_variable_index(reference)
            field = self.state_fields.get(name, "unknown")
            role = self._roles[index]
            if field == "unknown":
                if any(self.precision.format(role.layer, f) is not None for f in _STATE_FIELDS):
                    raise ValueError(
                        f"{type(inner).__name__} keeps per-variable state {name!r}, which "
                        f"FixedPointOptimizer cannot place: pass state_fields={{{name!r}: "
                        f"'momentum' | 'second_moment' | None}}")
                field = None
            n = per_variable.get(index, 0)
            per_variable[index] = n + 1
            if _FIRST_STATE + n >= _SITES_PER_VARIABLE:
                raise ValueError(f"more than {_SITES_PER_VARIABLE - _FIRST_STATE} state variables "
                                 f"for {self._path(reference)!r}")
            fmt = None if field is None else self.precision.format(role.layer, field)
            states[inner._var_key(state)] = _State(index, name, field, fmt, _FIRST_STATE + n)
        return states

    def _round_onto_grids(self, var_list) -> None:
        """Put every variable with a storage format onto its grid (eagerly)."""
        with tf.init_scope():
            for i, (v, role) in enumerate(zip(var_list, self._roles)):
                if role.storage is not None:
                    seed = self._seeds.initial(i) if role.storage.rounding == "stochastic" \
                        else None
                    v.assign(quantize_tensor(_read(v), role.storage, ste=False, seed=seed))

    # ------------------------------------------------------------------
    # Apply
    # ------------------------------------------------------------------
    def apply(self, grads, trainable_variables=None):
        if not self.built:
            if trainable_variables is None:
                raise ValueError("Build the optimizer (optimizer.build(variables)) or pass "
                                 "trainable_variables to its first apply")
            trainable_variables = list(trainable_variables)
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
        self.inner_optimizer.apply(grads, trainable_variables)
        self._regrid_direct_writes(trainable_variables)

    def _regrid_direct_writes(self, trainable_variables) -> None:
        """Round again the variables the wrapped optimizer may have written directly."""
        inner = self.inner_optimizer
        variables = trainable_variables or inner._trainable_variables
        ema = bool(inner.use_ema and inner.ema_overwrite_frequency)
        targets = []
        for v in variables:
            i = inner._get_variable_index(v)
            direct = ema or getattr(v, "constraint", None) is not None or \
                getattr(v, "overwrite_with_gradient", False)
            if direct and self._roles[i].storage is not None:
                targets.append((i, v))
        if not targets:
            return

        def regrid(strategy=None):
            for i, v in targets:
                fmt = self._roles[i].storage
                seed = self._seeds.at(self._site(i, _REGRID), fmt)

                def fn(var, fmt=fmt, seed=seed):
                    var.assign(quantize_tensor(_read(var), fmt, ste=False, seed=seed))

                if strategy is None:
                    fn(v.value if isinstance(v, keras.Variable) else v)
                else:
                    strategy.extended.update(v.value if isinstance(v, keras.Variable) else v,
                                             fn, group=False)

        context = tf.distribute.get_replica_context()
        if context is not None and tf.distribute.has_strategy():
            context.merge_call(regrid)
        else:
            regrid()

    # ------------------------------------------------------------------
    # The routed writes
    # ------------------------------------------------------------------
    def _route_writes(self) -> None:
        inner = self.inner_optimizer
        originals = {name: getattr(inner, name)
                     for name in ("update_step", "assign", "assign_add", "assign_sub")}
        self._originals = originals

        def update_step(gradient, variable, learning_rate):
            return self._update_step(gradient, variable, learning_rate)

        object.__setattr__(inner, "update_step", update_step)
        for kind in ("assign", "assign_add", "assign_sub"):
            object.__setattr__(inner, kind, self._writer(kind))

    def _site(self, index: int, kind: int) -> int:
        return _SITES_PER_VARIABLE * index + 1 + kind

    def _update_step(self, gradient, variable, learning_rate):
        inner = self.inner_optimizer
        i = inner._get_variable_index(variable)
        role = self._roles[i]
        monitored = is_recording() and self._monitor_stats[i] is not None
        self._pending = {}
        if role.gradient is not None:
            if monitored:
                values = gradient.values if isinstance(gradient, tf.IndexedSlices) else gradient
                stats = rail_stats(values, role.gradient)
                self._pending["gradient_saturation"] = stats.saturation_fraction
                self._pending["gradient_near_rail"] = stats.near_rail_fraction
                self._pending["gradient_underflow"] = stats.underflow_fraction
            gradient = self._quantize_gradient(gradient, role.gradient,
                                               self._seeds.at(self._site(i, _GRADIENT),
                                                              role.gradient))
        result = self._originals["update_step"](gradient, variable, learning_rate)
        if monitored:
            values = [self._pending.get(name, tf.constant(0.0)) for name in MONITOR_STATS]
            self._monitor_stats[i].assign(tf.stack([tf.cast(v, tf.float32) for v in values]))
        self._pending = {}
        return result

    @staticmethod
    def _quantize_gradient(gradient, fmt: FixedPoint, seed):
        if isinstance(gradient, tf.IndexedSlices):
            return tf.IndexedSlices(quantize_tensor(gradient.values, fmt, ste=False, seed=seed),
                                    gradient.indices, gradient.dense_shape)
        return quantize_tensor(gradient, fmt, ste=False, seed=seed)

    def _writer(self, kind: str) -> Callable:
        def write(variable, value):
            inner = self.inner_optimizer
            key = inner._var_key(variable)
            if key in inner._trainable_variables_indices:
                return self._write_variable(kind, inner._trainable_variables_indices[key],
                                            variable, value)
            state = self._states.get(key)
            if state is None or state.fmt is None:
                return self._originals[kind](variable, value)
            new = _new_value(kind, variable, value)
            seed = self._seeds.at(self._site(state.index, state.site), state.fmt)
            return self._originals["assign"](variable, quantize_tensor(new, state.fmt, ste=False,
                                                                      seed=seed))

        return write

    def _write_variable(self, kind: str, i: int, variable, value):
        role = self._roles[i]
        if not role.quantized_store:
            return self._originals[kind](variable, value)
        monitored = is_recording()
        old = _read(variable) if monitored or kind == "assign" else None
        if kind == "assign_add":
            delta = _dense(value, variable)
        elif kind == "assign_sub":
            delta = -_dense(value, variable)
        else:
            delta = _new_value(kind, variable, value) - old
        seed = self._seeds.at(self._site(i, _STORE), role.update, role.storage)
        stats = update_quantize_store(variable, -delta, tf.constant(1.0, delta.dtype),
                                      role.update, role.storage, seed)
        self._update_stats[i].assign(tf.stack([
            tf.square(stats.raw_update_norm), tf.square(stats.actual_update_norm),
            stats.update_dot, stats.update_underflow_fraction,
            stats.storage_saturation_fraction]))
        if monitored:
            new = _read(variable)
            nonzero = tf.logical_and(tf.not_equal(delta, 0), tf.equal(delta, delta))
            lost = tf.logical_and(nonzero, tf.equal(new, old))
            self._pending["lost"] = _fraction(tf.reduce_sum(tf.cast(lost, tf.float32)),
                                              tf.reduce_sum(tf.cast(nonzero, tf.float32)))
            if role.storage is not None:
                self._pending["weight_near_rail"] = rail_stats(new, role.storage).near_rail_fraction
        return None

    # ------------------------------------------------------------------
    # Statistics
    # ------------------------------------------------------------------
    def statistics(self, monitored: bool = False) -> Dict[str, tf.Tensor]:
        """What quantization did to the last step, per layer (float32 scalars).

        From the fused op, for every layer with an update or storage format:
        ``update_norm/<layer>/requested`` and ``.../applied`` (the norms of the
        step the optimizer computed and of the change actually stored, over
        the layer's variables), ``cosine/<layer>/update`` (their cosine; 1
        where nothing moved), ``progress/<layer>/update`` (the stored change
        projected on the requested step, over its squared norm: 1 in float
        and, in expectation, under stochastic rounding; it falls below 1 as
        round-to-nearest loses updates), ``underflow/<layer>/update_format`` (the
        fraction of the step's nonzero entries the update format rounded to
        0) and ``saturation/<layer>/storage`` (the fraction of entries pushed
        beyond the storage rails). Fractions are element-weighted means over
        the layer's variables.

        With ``monitored=True`` (QuantizationMonitor's steps), also what the
        step measured when it was traced as a monitored step:
        ``underflow/<layer>/update`` (the fraction of the step's nonzero
        entries that left the stored variable unchanged, whether the update
        format or the storage rounding swallowed them: learning that died),
        ``saturation|near_rail|underflow/<layer>/gradient`` (the gradient
        against its format, before rounding) and ``near_rail/<layer>/weight``
        (the stored variables against their storage format).

        Raises:
            ValueError: the optimizer is not built.
        """
        if not self.built:
            raise ValueError("FixedPointOptimizer.statistics(): the optimizer is not built")
        out: Dict[str, tf.Tensor] = {}
        for layer, indices in self._layers().items():
            update = [i for i in indices if self._update_stats[i] is not None]
            if update:
                out.update(self._update_statistics(layer, update))
            if monitored:
                out.update(self._monitor_statistics(layer, indices))
        return dict(sorted(out.items()))

    def _layers(self) -> Dict[str, List[int]]:
        layers: Dict[str, List[int]] = {}
        for i, role in enumerate(self._roles):
            layers.setdefault(role.layer, []).append(i)
        return layers

    def _weights(self, indices: List[int]) -> tf.Tensor:
        sizes = [self._roles[i].size for i in indices]
        total = float(sum(sizes)) or 1.0
        return tf.constant([s / total for s in sizes], tf.float32)

    def _update_statistics(self, layer: str, indices: List[int]) -> Dict[str, tf.Tensor]:
        rows = tf.stack([_read(self._update_stats[i]) for i in indices])
        requested = tf.sqrt(tf.reduce_sum(rows[:, 0]))
        applied = tf.sqrt(tf.reduce_sum(rows[:, 1]))
        dot = tf.reduce_sum(rows[:, 2])
        both = requested * applied
        cosine = tf.where(both > 0, dot / tf.maximum(both, 1e-30),
                          tf.where(requested == applied, 1.0, 0.0))
        w = self._weights(indices)
        out = {
            f"update_norm/{layer}/requested": requested,
            f"update_norm/{layer}/applied": applied,
            f"cosine/{layer}/update": cosine,
            # How far the stored change went along the requested step: 1 in float and,
            # in expectation, under stochastic rounding; below 1 where rounding loses it.
            f"progress/{layer}/update": tf.where(requested > 0,
                                                 dot / tf.maximum(requested * requested, 1e-30),
                                                 1.0),
        }
        if any(self._roles[i].update is not None for i in indices):
            out[f"underflow/{layer}/update_format"] = tf.reduce_sum(w * rows[:, 3])
        if any(self._roles[i].storage is not None for i in indices):
            out[f"saturation/{layer}/storage"] = tf.reduce_sum(w * rows[:, 4])
        return out

    def _monitor_statistics(self, layer: str, indices: List[int]) -> Dict[str, tf.Tensor]:
        roles = self._roles

        def mean(column: int, applies: Callable[[_Role], bool]) -> Optional[tf.Tensor]:
            chosen = [i for i in indices if applies(roles[i])]
            if not chosen:
                return None
            values = tf.stack([_read(self._monitor_stats[i])[column] for i in chosen])
            return tf.reduce_sum(self._weights(chosen) * values)

        out = {}
        lost = mean(0, lambda r: r.quantized_store)
        if lost is not None:
            out[f"underflow/{layer}/update"] = lost
        for column, stat in enumerate(("saturation", "near_rail", "underflow"), start=1):
            value = mean(column, lambda r: r.gradient is not None)
            if value is not None:
                out[f"{stat}/{layer}/gradient"] = value
        near = mean(4, lambda r: r.storage is not None)
        if near is not None:
            out[f"near_rail/{layer}/weight"] = near
        return out

    # ------------------------------------------------------------------
    # Serialization
    # ------------------------------------------------------------------
    def get_config(self) -> dict:
        overrides = {k: v for k, v in self.state_fields.items()
                     if DEFAULT_STATE_FIELDS.get(k, "unset") != v}
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "precision": self.precision.to_dict(),
            "seed": self.seed,
            "state_fields": overrides or None,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        optimizer = keras.saving.deserialize_keras_object(config.pop("optimizer"),
                                                          custom_objects=custom_objects)
        return cls(optimizer, **config)

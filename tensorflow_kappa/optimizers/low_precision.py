"""``LowPrecisionOptimizer``: low-precision training around any Keras 3 optimizer.

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

Keras' own wrappers: a ``LossScaleOptimizer`` may sit on either side. Wrapped
inside (``LowPrecisionOptimizer(LossScaleOptimizer(SGD(...)))``), the writes
routed are those of the optimizer it wraps (SGD's), which sees the gradients
unscaled; outside (what ``compile`` makes under a ``mixed_float16`` policy), it
hands this wrapper unscaled gradients. EMA (``use_ema``) and gradient
accumulation are the wrapped optimizer's, and stay on the grid: its direct
writes, the EMA overwrite at the end of ``fit`` included, are rounded again.
"""
from __future__ import annotations

from typing import (Any, Callable, Dict, FrozenSet, List, Mapping, NamedTuple, Optional,
                    Sequence)

import keras
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.optimizers.statistics import (ALL_STATS, GEOMETRY_STATS, GRADIENT_STATS,
                                                    MONITOR_STATS, STATE_STATS, UPDATE_STATS,
                                                    StepRecord,
                                                    geometry_columns, layer_statistics,
                                                    measured_columns, rail_columns, stat_rows,
                                                    update_columns)
from tensorflow_kappa.quantization.fixed_point import FixedPoint
from tensorflow_kappa.quantization.precision import PrecisionDict, ensure_precision_dict
from tensorflow_kappa.quantization.quantize import quantize_tensor
from tensorflow_kappa.quantization.recording import is_recording
from tensorflow_kappa.quantization.seeds import SeedStream
from tensorflow_kappa.quantization.update_store import update_quantize_store
from tensorflow_kappa.optimizers.state import (DEFAULT_STATE_FIELDS, StateVariable,
                                               build_recording_states, check_named_states,
                                               check_state_fields, map_states)
from tensorflow_kappa.quantization.variables import (STATE_FIELDS, VariableRecord,
                                                     check_entries, variable_path,
                                                     variable_records)

__all__ = ["DEFAULT_STATE_FIELDS", "LowPrecisionOptimizer", "low_precision_optimizer"]

# Seed sites per variable: gradient, store, regrid, then one per state variable.
_GRADIENT, _STORE, _REGRID, _FIRST_STATE = range(4)
_SITES_PER_VARIABLE = 16
#: Set on an optimizer whose writes a LowPrecisionOptimizer routes (a second wrapper
#: would take them over and leave the first one's records stale).
_ROUTED = "_kappa_routed_by"


class _Recording(NamedTuple):
    """What :meth:`LowPrecisionOptimizer.apply_and_record` collects while it applies a step."""

    columns: FrozenSet[str]                  # the statistics to measure
    keep_steps: bool                         # whether to keep each variable's step
    rounded: Dict[int, Any]                  # variable index -> its gradient, rounded already
    rows: Dict[int, Dict[str, tf.Tensor]]    # variable index -> its measured columns
    steps: Dict[int, tf.Tensor]              # variable index -> the step it was asked to take


def _step_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer whose ``update_step`` writes the variables: ``optimizer``, or the
    one inside its ``LossScaleOptimizer`` s (which delegate ``apply`` to it, after
    unscaling the gradients)."""
    while isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    return optimizer


def low_precision_optimizer(optimizer: Any) -> Optional["LowPrecisionOptimizer"]:
    """The :class:`LowPrecisionOptimizer` of a model's optimizer: itself, or the one a
    ``LossScaleOptimizer`` wraps (``compile`` wraps it so under ``mixed_float16``);
    None if there is none.

    Example:
    >>> opt = LowPrecisionOptimizer(keras.optimizers.SGD(0.1))
    >>> low_precision_optimizer(keras.optimizers.LossScaleOptimizer(opt)) is opt
    True
    """
    while optimizer is not None and not isinstance(optimizer, LowPrecisionOptimizer):
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return optimizer


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


class _Step:
    """A write of the wrapped optimizer to a model variable as a step: ``delta`` (what
    it adds) and ``descent`` (``-delta``, what the fused update takes as its gradient
    with a learning rate of 1), each computed once and only where used."""

    def __init__(self, kind: str, variable: Any, value: Any, old: Optional[tf.Tensor]):
        self._kind, self._variable, self._value, self._old = kind, variable, value, old
        self._delta: Optional[tf.Tensor] = None
        self._descent: Optional[tf.Tensor] = None

    @property
    def delta(self) -> tf.Tensor:
        if self._delta is None:
            if self._kind == "assign_add":
                self._delta = _dense(self._value, self._variable)
            elif self._kind == "assign_sub":
                self._delta = -self.descent
            else:
                self._delta = _new_value(self._kind, self._variable, self._value) - self._old
        return self._delta

    @property
    def descent(self) -> tf.Tensor:
        if self._descent is None:
            self._descent = (_dense(self._value, self._variable) if self._kind == "assign_sub"
                             else -self.delta)
        return self._descent


def _fraction(count: tf.Tensor, of: tf.Tensor) -> tf.Tensor:
    return tf.where(of > 0, count / tf.maximum(of, 1.0), 0.0)


@keras.saving.register_keras_serializable(package="Kappa")
class LowPrecisionOptimizer(keras.optimizers.Optimizer):
    """Trains any Keras 3 optimizer's step in low precision, per a precision dict.

    Per model variable, by its layer (the innermost layer in its path that
    the precision dict names, else the innermost one) and
    field (``weight`` for kernels and embeddings, ``bias``, else ``value``;
    see :func:`~tensorflow_kappa.quantization.variables.variable_layer_and_field`),
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

    Statistics (:mod:`~tensorflow_kappa.optimizers.statistics`): per
    variable, the fused op's requested and applied update norms, their dot
    product, the fraction of the update that underflowed the update format
    and the storage saturation, every step; on monitored steps also the
    rail statistics of gradients, updates, weights and optimizer state.
    They are kept in non-trainable optimizer variables; :meth:`statistics`
    gives them per layer (and
    :class:`~tensorflow_kappa.callbacks.QuantizationMonitor` puts them into
    the logs); :meth:`apply_and_record` returns them per variable.

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
        seed: seed of stochastic rounding (an int in ``[0, 2**63 - 1]``); None
            draws one as Keras draws its own (reproducible under
            ``keras.utils.set_random_seed``), kept in the config, so a saved
            run continues it.
        state_fields: ``{state name: "momentum" | "second_moment" | None}``
            for state names not in :data:`DEFAULT_STATE_FIELDS` (or to
            override them); each must be a state the optimizer keeps
            (checked at build time).
        name: the optimizer's name.

    Raises:
        ValueError: ``optimizer`` is not an unbuilt Keras optimizer (or is a
            LowPrecisionOptimizer, or one already wrapped), or a bad precision
            dict, seed or ``state_fields``; at build time, a variable outside
            any layer, a precision dict entry or ``state_fields`` name that
            matches nothing (:func:`~tensorflow_kappa.quantization.variables.check_entries`;
            the message lists what exists).

    Example:
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    >>> opt = LowPrecisionOptimizer(keras.optimizers.SGD(0.1, momentum=0.9),
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
                f"LowPrecisionOptimizer does not take {sorted(kwargs)}: set learning "
                "rate, clipping, weight decay, EMA, ... on the wrapped optimizer")
        if not isinstance(optimizer, keras.optimizers.Optimizer) or \
                isinstance(_step_optimizer(optimizer), LowPrecisionOptimizer):
            raise ValueError(
                "optimizer must be a Keras 3 optimizer (keras.optimizers.SGD(...), Adam, ...) "
                f"that is not itself a LowPrecisionOptimizer, got optimizer={optimizer!r}")
        step = _step_optimizer(optimizer)
        if optimizer.built or step.built:
            raise ValueError(
                f"optimizer {optimizer.name!r} is already built: wrap a new optimizer, "
                "so that LowPrecisionOptimizer sees which state belongs to which variable")
        if getattr(step, _ROUTED, None) is not None:
            raise ValueError(
                f"optimizer {step.name!r} is already wrapped by LowPrecisionOptimizer "
                f"{getattr(step, _ROUTED)!r}: wrap a new optimizer (each wrapper routes the "
                "writes of its own optimizer)")
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = optimizer
        self._step = step
        self.precision = ensure_precision_dict(precision) or PrecisionDict()
        self.seed = _checks.seed_or_drawn("seed", seed)
        self.state_fields = check_state_fields(state_fields)
        self._named_states = tuple(state_fields or ())  # each must be a state it keeps
        self._records: List[VariableRecord] = []
        self._states: Dict[Any, StateVariable] = {}
        self._update_stats: List[Optional[keras.Variable]] = []
        self._monitor_stats: List[Optional[keras.Variable]] = []
        self._seeds: Optional[SeedStream] = None
        self._pending: Dict[str, tf.Tensor] = {}
        self._record: Optional[_Recording] = None
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
        """The wrapped optimizer's end of ``fit`` (with ``use_ema``, the moving averages
        written into the variables), then those variables rounded onto their grids
        again: what is evaluated and saved is on the grid."""
        self.inner_optimizer.finalize_variable_values(var_list)
        if self.built and self._step.use_ema:
            self._regrid([v for v in var_list if self._step._var_key(v)
                          in self._step._trainable_variables_indices])

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        raise ValueError("LowPrecisionOptimizer updates variables in place (TensorFlow backend); "
                         "stateless_apply is not supported")

    # ------------------------------------------------------------------
    # Build
    # ------------------------------------------------------------------
    def build(self, var_list):
        var_list = list(var_list)
        self._records = variable_records(var_list, self.precision)
        inner, step = self.inner_optimizer, self._step
        created = build_recording_states(inner, var_list, step)
        check_named_states(step, created, self._named_states)
        super().build(var_list)
        self._states = map_states(step, created, self._records, self.state_fields)
        states: Dict[int, List] = {}
        for state in self._states.values():
            states.setdefault(state.index, []).append((state.name, state.field))
        check_entries(self._records, self.precision, states)
        too_many = [s for s in self._states.values() if _FIRST_STATE + s.ordinal >= _SITES_PER_VARIABLE]
        if too_many:
            raise ValueError(f"more than {_SITES_PER_VARIABLE - _FIRST_STATE} state variables "
                             f"for {self._records[too_many[0].index].path!r}")
        with tf.init_scope():  # build may run inside the first trace of the train step
            self._seeds = SeedStream(self.seed, inner.iterations,
                                     sites_per_step=_SITES_PER_VARIABLE * len(var_list) + 1)
        self._update_stats, self._monitor_stats = [], []
        for v, record in zip(var_list, self._records):
            base = variable_path(v).replace("/", "_")
            self._update_stats.append(self.add_variable(
                (len(UPDATE_STATS),), name=f"{base}_update_stats")
                if record.quantized_store else None)
            self._monitor_stats.append(self.add_variable(
                (len(MONITOR_STATS),), name=f"{base}_monitor_stats")
                if self._tracked(record) else None)
        self._round_onto_grids(var_list)

    @staticmethod
    def _tracked(record: VariableRecord) -> bool:
        """Whether a monitored step measures anything of the variable."""
        return record.quantized_store or record.gradient is not None or any(
            record.state_format(field) is not None for field in STATE_FIELDS)

    def _round_onto_grids(self, var_list) -> None:
        """Put every variable with a storage format onto its grid (eagerly)."""
        with tf.init_scope():
            for i, (v, record) in enumerate(zip(var_list, self._records)):
                if record.storage is not None:
                    seed = self._seeds.initial(i) if record.storage.rounding == "stochastic" \
                        else None
                    v.assign(quantize_tensor(_read(v), record.storage, ste=False, seed=seed))

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

    def quantize_gradients(self, grads, trainable_variables) -> List[Any]:
        """The gradients as this step's :meth:`apply` rounds them: each to its
        variable's ``gradient`` format, with the same seeds (None stays None).

        For training loops that need the rounded gradients before applying them
        (a step size computed from them, as the instrumented trainer's
        controller does). Hand them on to :meth:`apply_and_record` as
        ``rounded_gradients`` (with the original gradients, whose rail
        statistics it measures), which then does not round them again; plain
        :meth:`apply` rounds the originals itself (to the same values).

        Raises:
            ValueError: the optimizer is not built, or a variable is not one it
                was built with.

        Example:
        >>> v = tf.Variable([0.0, 0.0], name="dense/kernel")
        >>> opt = LowPrecisionOptimizer(keras.optimizers.SGD(0.1), {"dense": {"gradient": "s8.2"}})
        >>> opt.build([v])
        >>> [g.numpy().tolist() for g in opt.quantize_gradients([tf.constant([0.3, -0.6])], [v])]
        [[0.25, -0.5]]
        """
        if not self.built:
            raise ValueError("LowPrecisionOptimizer.quantize_gradients(): build the optimizer first "
                             "(optimizer.build(variables))")
        step = self._step
        return [g if g is None else self._quantize_gradient(step._get_variable_index(v), g)
                for g, v in zip(grads, trainable_variables)]

    def apply_and_record(self, grads, trainable_variables, columns: Sequence[str] = ALL_STATS,
                         rounded_gradients: Optional[Sequence[Any]] = None,
                         steps: bool = True) -> StepRecord:
        """:meth:`apply` one step, measuring the statistics ``columns``, and return them
        per variable with the steps the wrapped optimizer asked for (for training loops
        that log every step, such as the instrumented trainer). What
        :meth:`statistics` reports is left as the last other step left it.

        Args:
            grads: the gradients, one per variable.
            trainable_variables: the variables (the optimizer's, or a subset).
            columns: the columns of :mod:`~tensorflow_kappa.optimizers.statistics`
                to measure (default: all); a loop that needs fewer pays for fewer.
            rounded_gradients: ``quantize_gradients(grads, trainable_variables)``
                of this step, where the loop has them already: then not rounded
                again.
            steps: whether to return each variable's requested step (else None).

        Returns:
            A :class:`~tensorflow_kappa.optimizers.statistics.StepRecord`: each
            column of ``columns`` as a float32 vector over ``trainable_variables``
            (NaN where not measured; the geometry columns are measured for every
            variable, float ones included), and each variable's requested step.

        Raises:
            ValueError: called under a ``tf.distribute`` strategy (each
                replica updates its own copy there; use
                :class:`~tensorflow_kappa.callbacks.QuantizationMonitor`).

        Example:
        >>> v = tf.Variable([0.5, -0.25], name="dense/kernel")
        >>> opt = LowPrecisionOptimizer(keras.optimizers.SGD(0.1), {"dense": {"weight": "s8.4"}})
        >>> record = opt.apply_and_record([tf.constant([0.4, 0.1])], [v])
        >>> v.numpy().tolist(), float(record.statistics["lost"][0])
        ([0.4375, -0.25], 0.5)
        >>> [round(float(s), 6) for s in record.steps[0].numpy()]      # -0.1 * gradient
        [-0.04, -0.01]
        """
        if tf.distribute.has_strategy():
            raise ValueError("apply_and_record runs outside tf.distribute strategies; under one, "
                             "use QuantizationMonitor for the statistics")
        variables = list(trainable_variables)
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(variables)
        step = self._step
        indices = [step._get_variable_index(v) for v in variables]
        rounded = {} if rounded_gradients is None else {
            i: g for i, g in zip(indices, rounded_gradients) if g is not None}
        self._record = _Recording(frozenset(columns), steps, rounded, {}, {})
        try:
            self.apply(grads, variables)
            record = self._record
        finally:
            self._record = None
        nan = tf.constant(float("nan"))
        rows = [record.rows.get(i, {}) for i in indices]
        return StepRecord({name: tf.stack([row.get(name, nan) for row in rows])
                           for name in columns}, [record.steps.get(i) for i in indices])

    def _regrid_direct_writes(self, trainable_variables) -> None:
        """Round again the variables the wrapped optimizer may have written directly."""
        step = self._step
        ema = bool(step.use_ema and step.ema_overwrite_frequency)
        self._regrid([v for v in trainable_variables or step._trainable_variables
                      if ema or getattr(v, "constraint", None) is not None
                      or getattr(v, "overwrite_with_gradient", False)])

    def _regrid(self, variables) -> None:
        """Round ``variables`` (the wrapped optimizer's) onto their storage grids, each
        replica's copy under a distribution strategy."""
        step = self._step
        targets = [(i, v) for i, v in ((step._get_variable_index(v), v) for v in variables)
                   if self._records[i].storage is not None]
        if not targets:
            return

        def regrid(strategy=None):
            for i, v in targets:
                fmt = self._records[i].storage
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
        step = self._step
        originals = {name: getattr(step, name)
                     for name in ("update_step", "assign", "assign_add", "assign_sub")}
        self._originals = originals

        def update_step(gradient, variable, learning_rate):
            return self._update_step(gradient, variable, learning_rate)

        object.__setattr__(step, "update_step", update_step)
        for kind in ("assign", "assign_add", "assign_sub"):
            object.__setattr__(step, kind, self._writer(kind))
        object.__setattr__(step, _ROUTED, self.name)

    def _site(self, index: int, kind: int) -> int:
        return _SITES_PER_VARIABLE * index + 1 + kind

    def _wants(self, *columns: str) -> bool:
        """Whether this step measures any of ``columns``: a monitored step measures
        every column it keeps; a recorded step those it was asked for."""
        if is_recording():
            return True
        return self._record is not None and not self._record.columns.isdisjoint(columns)

    def _update_step(self, gradient, variable, learning_rate):
        i = self._step._get_variable_index(variable)
        record, recording = self._records[i], self._record
        self._pending = {}
        if record.gradient is not None:
            if self._wants(*GRADIENT_STATS):
                values = gradient.values if isinstance(gradient, tf.IndexedSlices) else gradient
                self._pending.update(rail_columns("gradient", values, record.gradient))
            rounded = None if recording is None else recording.rounded.get(i)
            gradient = self._quantize_gradient(i, gradient) if rounded is None else rounded
        result = self._originals["update_step"](gradient, variable, learning_rate)
        if is_recording() and self._monitor_stats[i] is not None:
            nan = tf.constant(float("nan"))
            self._monitor_stats[i].assign(tf.stack([self._pending.get(name, nan)
                                                    for name in MONITOR_STATS]))
        if recording is not None:
            recording.rows[i] = self._pending
        self._pending = {}
        return result

    def _quantize_gradient(self, i: int, gradient):
        """Variable ``i``'s gradient rounded to its format with this step's seed."""
        fmt = self._records[i].gradient
        if fmt is None:
            return gradient
        seed = self._seeds.at(self._site(i, _GRADIENT), fmt)
        if isinstance(gradient, tf.IndexedSlices):
            return tf.IndexedSlices(quantize_tensor(gradient.values, fmt, ste=False, seed=seed),
                                    gradient.indices, gradient.dense_shape)
        return quantize_tensor(gradient, fmt, ste=False, seed=seed)

    def _writer(self, kind: str) -> Callable:
        def write(variable, value):
            step = self._step
            key = step._var_key(variable)
            if key in step._trainable_variables_indices:
                return self._write_variable(kind, step._trainable_variables_indices[key],
                                            variable, value)
            state = self._states.get(key)
            if state is None or state.fmt is None:
                return self._originals[kind](variable, value)
            new = _new_value(kind, variable, value)
            if self._wants(*STATE_STATS):
                self._note_state(state, new)
            seed = self._seeds.at(self._site(state.index, _FIRST_STATE + state.ordinal), state.fmt)
            return self._originals["assign"](variable, quantize_tensor(new, state.fmt, ste=False,
                                                                      seed=seed))

        return write

    def _note_state(self, state: StateVariable, new: tf.Tensor) -> None:
        """Add the new state's rail statistics to the step's columns (the largest over
        the variable's states of one field)."""
        for name, value in rail_columns(state.field, new, state.fmt,
                                        ("saturation", "underflow")).items():
            old = self._pending.get(name)
            self._pending[name] = value if old is None else tf.maximum(old, value)

    def _write_variable(self, kind: str, i: int, variable, value):
        record, recording = self._records[i], self._record
        if not record.quantized_store and recording is None:
            return self._originals[kind](variable, value)
        geometry = not record.quantized_store and self._wants(*GEOMETRY_STATS)
        old = _read(variable) if kind == "assign" or geometry or self._wants("lost") else None
        step = _Step(kind, variable, value, old)
        if recording is not None and recording.keep_steps:
            recording.steps[i] = step.delta
        if not record.quantized_store:
            result = self._originals[kind](variable, value)
            if geometry:
                self._pending.update(geometry_columns(step.delta, _read(variable) - old))
            return result
        seed = self._seeds.at(self._site(i, _STORE), record.update, record.storage)
        stats = update_columns(update_quantize_store(
            variable, step.descent, tf.constant(1.0, step.descent.dtype), record.update,
            record.storage, seed))
        if recording is None:
            self._update_stats[i].assign(tf.stack([stats[name] for name in UPDATE_STATS]))
        else:
            self._pending.update(stats)
        self._note_write(record, step, old, variable)
        return None

    def _note_write(self, record: VariableRecord, step: "_Step", old: Optional[tf.Tensor],
                    variable: Any) -> None:
        """Add what a quantized write did to the step's columns, those this step
        measures: the share of the step lost, the update format's saturation, the
        stored value near its rails."""
        wants_near = record.storage is not None and self._wants("weight_near_rail")
        new = _read(variable) if wants_near or self._wants("lost") else None
        if self._wants("lost"):
            descent = step.descent   # nonzero and finite exactly where the step is
            nonzero = tf.logical_and(tf.not_equal(descent, 0), tf.equal(descent, descent))
            lost = tf.logical_and(nonzero, tf.equal(new, old))
            self._pending["lost"] = _fraction(tf.reduce_sum(tf.cast(lost, tf.float32)),
                                              tf.reduce_sum(tf.cast(nonzero, tf.float32)))
        if record.update is not None and self._wants("update_saturation"):
            self._pending.update(rail_columns("update", step.delta, record.update,
                                              ("saturation",)))
        if wants_near:
            self._pending.update(rail_columns("weight", new, record.storage, ("near_rail",)))

    # ------------------------------------------------------------------
    # Statistics
    # ------------------------------------------------------------------
    def statistics(self, monitored: bool = False) -> Dict[str, tf.Tensor]:
        """What quantization did to the last step, per layer (float32 scalars).

        Every step, for each layer with an update or storage format:
        ``update_norm/<layer>/requested`` and ``.../applied``,
        ``cosine/<layer>/update``, ``progress/<layer>/update``,
        ``underflow/<layer>/update_format`` and ``saturation/<layer>/storage``.
        With ``monitored=True`` (QuantizationMonitor's steps), also what the
        step measured when it was traced as a monitored step:
        ``underflow/<layer>/update`` (the share of the step lost: learning
        that died), ``saturation/<layer>/update_format``,
        ``saturation|near_rail|underflow/<layer>/gradient``,
        ``near_rail/<layer>/weight`` and
        ``saturation|underflow/<layer>/momentum|second_moment``. Each key is
        defined in :mod:`~tensorflow_kappa.optimizers.statistics`; fractions
        are element-weighted means over the layer's variables.

        Raises:
            ValueError: the optimizer is not built.
        """
        if not self.built:
            raise ValueError("LowPrecisionOptimizer.statistics(): the optimizer is not built")
        rows = stat_rows(self._update_stats, UPDATE_STATS)
        if monitored:
            rows.update(stat_rows(self._monitor_stats, MONITOR_STATS))
        return layer_statistics(self._records, rows, measured_columns(
            self._records, {(s.index, s.field) for s in self._states.values() if s.fmt}))

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

"""Every run of one module kind trained together: the NALM benchmark's population.

A :class:`ModulePopulation` is a
:class:`~tensorflow_kappa.experiments.population.PopulationTrainer` whose members
are one module kind's runs (one per operation × range × seed).  The forward pass
is the package's own Keras layer, called through ``layer.stateless_call`` inside
``tf.vectorized_map`` with each member's weights; training batches are drawn in
the graph from each member's training range.  A chunk is ``eval_every`` steps;
between chunks the members are evaluated on their fixed sets, the recipe's
per-member reinitialisation rule is applied, and the run ends once every member
meets the success criterion.  :meth:`ModulePopulation.finish` loads each member's
selected weights into the real layer to recompute its extrapolation MSE and read
its formula.
"""
from __future__ import annotations

import inspect
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa.datasets.arithmetic import check_range, sample_range
from tensorflow_kappa.evaluation import perturbed_threshold
from tensorflow_kappa.experiments.nalm.results import Member
from tensorflow_kappa.experiments.nalm.specs import OPS, ModelSpec
from tensorflow_kappa.experiments.population import MaskedOptimizer, PopulationTrainer
from tensorflow_kappa.layers import sparsity_error

__all__ = ["ModulePopulation", "member_seed"]

_OP_CODE = {name: i for i, name in enumerate(OPS)}


def member_seed(member: Member) -> int:
    """The seed of a member's data and weights, from what the member is."""
    text = f"{member.model}/{member.op}/{member.range_index}/{member.seed}"
    return int.from_bytes(text.encode(), "little") % (2 ** 31 - 1)


def _interval_table(ranges: Sequence[Any]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per member: lows, widths and cumulative probabilities of its range's intervals."""
    k = max(len(check_range(r)) for r in ranges)
    lows = np.zeros((len(ranges), k), np.float32)
    widths = np.zeros((len(ranges), k), np.float32)
    cum = np.ones((len(ranges), k), np.float32)
    for i, r in enumerate(ranges):
        intervals = check_range(r)
        w = np.array([hi - lo for lo, hi in intervals])
        lows[i, :len(intervals)] = [lo for lo, _ in intervals]
        widths[i, :len(intervals)] = w
        cum[i, :len(intervals)] = np.cumsum(w) / w.sum()
    return lows, widths, cum


class _BatchSampler:
    """Fresh training batches ``(x, y)`` of shape ``(members, batch, 2)``, drawn in the
    graph from each member's training range, with its operation's exact targets."""

    def __init__(self, members: Sequence[Member], ranges, batch_size: int, seed: int):
        self.shape = (len(members), batch_size, 2)
        self.op_code = tf.constant([_OP_CODE[m.op] for m in members], tf.int32)
        lows, widths, cum = _interval_table([ranges[m.range_index][0] for m in members])
        self.lows, self.widths, self.cum = (tf.constant(a) for a in (lows, widths, cum))
        self.generator = tf.random.Generator.from_seed(seed)

    def __call__(self) -> Tuple[tf.Tensor, tf.Tensor]:
        u = self.generator.uniform(self.shape)
        pick = self.generator.uniform(self.shape)
        k = self.cum.shape[1]
        index = tf.reduce_sum(tf.cast(pick[..., None] > self.cum[:, None, None, :k - 1],
                                      tf.int32), axis=-1) if k > 1 else tf.zeros(self.shape,
                                                                                   tf.int32)
        x = (tf.gather(self.lows, index, batch_dims=1)
             + u * tf.gather(self.widths, index, batch_dims=1))
        a, b = x[..., 0], x[..., 1]
        code = self.op_code[:, None]
        y = tf.where(code == 0, a + b, tf.where(code == 1, a - b,
                     tf.where(code == 2, a * b, a / b)))
        return x, y


class _EvaluationSets(NamedTuple):
    """Each member's fixed interpolation and extrapolation sets (float32, stacked)."""

    x_int: np.ndarray
    y_int: np.ndarray
    x_ext: np.ndarray
    y_ext: np.ndarray


def _evaluation_sets(members: Sequence[Member], ranges, n_eval: int,
                     epsilon: float) -> _EvaluationSets:
    """Draw every member's sets; fill in its ``threshold`` (float64) and target ``scale``."""
    sets: List[List[np.ndarray]] = [[], [], [], []]
    for m in members:
        rng = np.random.default_rng(member_seed(m))
        expr = OPS[m.op]
        train_r, extra_r = ranges[m.range_index]
        x_int = sample_range(rng, train_r, (n_eval, 2)).astype(np.float32)
        x_ext = sample_range(rng, extra_r, (n_eval, 2)).astype(np.float32)
        for out, value in zip(sets, (x_int, expr.evaluate(x_int).astype(np.float32),
                                     x_ext, expr.evaluate(x_ext).astype(np.float32))):
            out.append(value)
        m.threshold = perturbed_threshold(expr, x_ext, epsilon)
    result = _EvaluationSets(*(np.stack(s) for s in sets))
    scale = np.mean(np.square(result.y_int.astype(np.float64)), axis=1)
    for m, value in zip(members, scale):
        m.scale = float(value)
    return result


class ModulePopulation(PopulationTrainer):
    """The members of one module kind, trained by its spec (and recipe) as one population.

    Args:
        spec: how the module kind is built and trained.
        members: the runs (their ``threshold`` and ``scale`` are filled in here,
            their results by :meth:`finish`).
        ranges: the ``(train_range, extrapolation_range)`` pairs members index.
        steps: training steps (a multiple of ``eval_every``).
        eval_every: steps per chunk: between chunks the members are evaluated and
            the recipe's stuck rule applied.
        batch_size: training rows per member and step.
        n_eval: rows in each member's evaluation sets.
        epsilon: the success criterion's ε.
        base_seed: seeds the in-graph training batches.

    Attributes:
        member_steps: ``(P,)`` steps since each member's last (re)draw (the
            layer's step counter, e.g. NAU's regulariser warm-up, and the
            recipe's epochs count them).
        reg_on: ``(P,)`` whether the last step regularised each member.
    """

    def __init__(self, spec: ModelSpec, members: List[Member], ranges, steps: int,
                 eval_every: int, batch_size: int, n_eval: int, epsilon: float,
                 base_seed: int):
        self.spec = spec
        self.members = members
        self.steps = steps
        self.layer = spec.make_layer()
        self.layer.build((None, 2))
        self.takes_training = "training" in inspect.signature(self.layer.call).parameters
        self.variables_template = list(self.layer.trainable_variables)
        self.ntv_template = list(self.layer.non_trainable_variables)
        self.constraints = [getattr(v, "constraint", None) for v in self.variables_template]
        gate = getattr(self.layer, "g", None)
        self.is_gate = [gate is not None and v is gate for v in self.variables_template]
        # spec.recipe: the InaluRecipe record whose rules run here, or None (plain steps)
        super().__init__(len(members), spec.recipe, MaskedOptimizer(spec.keras_optimizer()),
                         eval_every, jit_compile=False, reset_slots_on_redraw=True)
        self._start()  # each member's own seed
        self.best = [w.copy() for w in self.weights]
        self.sample = _BatchSampler(members, ranges, batch_size, base_seed)
        self.eval_sets = _evaluation_sets(members, ranges, n_eval, epsilon)
        self.thresholds = np.array([m.threshold for m in members])
        self.loss_scale = (np.array([m.scale for m in members]) if spec.relative_thresholds
                           else np.ones(self.P))
        # per-member recipe state and the best evaluation so far
        self.member_steps = np.zeros(self.P, np.int64)
        self.reg_on = np.zeros(self.P, bool)
        self.best_int = np.full(self.P, np.inf)
        self.best_ext = np.full(self.P, np.nan)
        self.best_step = np.full(self.P, -1)
        self.solved_at: List[Optional[int]] = [None] * self.P
        self._reg_by_epoch = self._regularize_by_epoch() if self.recipe is not None else None
        self._evaluate = self._evaluation()

    def _draw(self, p: int, attempt: int) -> List[np.ndarray]:
        """Member ``p``'s weights for its ``attempt`` (0: first draw), from the recipe's
        init family for that attempt (``recipe.family(0, attempt)``; the layer's own
        initializers for ``"published"`` and without a recipe)."""
        seed = member_seed(self.members[p]) + attempt
        keras.utils.set_random_seed(seed)
        family = "published" if self.recipe is None else self.recipe.family(0, attempt)
        if family == "published":
            self.layer.reinitialize()
        else:
            self.layer.reinitialize(family, np.random.default_rng(seed), output_layer=True)
        return [v.numpy() for v in self.variables_template]

    # -------------------------------------------------------------- graph pieces
    def forward(self, x, values, steps, training) -> Tuple[tf.Tensor, tf.Tensor]:
        """Every member's layer on its own inputs ``x[p]`` with weights ``values[.][p]``
        and step counter ``steps[p]``: ``(predictions (P, n), regularisation losses (P,))``."""
        ntv_template = self.ntv_template
        kwargs = {"training": training} if self.takes_training else {}

        def member(args):
            xm, step, *vals = args
            ntv = [tf.cast(step, v.dtype) for v in ntv_template]
            y, _, losses = self.layer.stateless_call(list(vals), ntv, xm, return_losses=True,
                                                     **kwargs)
            reg = tf.add_n(losses) if losses else tf.zeros((), y.dtype)
            return y[..., 0], reg

        return tf.vectorized_map(member, [x, steps] + list(values))

    def _apply(self, grads, values, slots, selected, mask) -> Tuple[list, list]:
        """The optimizer's step for the ``selected`` variables (their ``grads`` in
        order; None: no step), for the members where ``mask`` holds."""
        values, slots = list(values), list(slots)
        chosen = [j for j, s in enumerate(selected) if s]
        for j, g in zip(chosen, grads):
            if g is not None:
                values[j], slots[j] = self.optimizer.update(values[j], g, slots[j], mask,
                                                            self.constraints[j])
        return values, slots

    def _data_step(self, x, y, values, slots, steps, active, selected, mae=False,
                   clipping=None):
        """One optimizer step on the members' data losses for the ``selected`` variables,
        gradients clipped to ``clipping`` (``None``: not clipped):
        ``(values, slots, per-member MSE)``."""
        with tf.GradientTape() as tape:
            tape.watch(values)
            pred, reg = self.forward(x, values, steps, True)
            per_member = tf.reduce_mean(tf.square(pred - y), axis=1)
            trained = tf.reduce_mean(tf.abs(pred - y), axis=1) if mae else per_member
            objective = tf.reduce_sum(tf.where(tf.math.is_finite(trained), trained, 0.0))
            if self.recipe is None:
                objective += tf.reduce_sum(reg)
        chosen = [v for v, s in zip(values, selected) if s]
        grads = [tf.where(tf.math.is_finite(g), g, 0.0) for g in tape.gradient(objective, chosen)]
        if clipping is not None:
            grads = [tf.clip_by_value(g, *clipping) for g in grads]
        values, slots = self._apply(grads, values, slots, selected, active)
        return values, slots, per_member

    def _reg_step(self, x, values, slots, steps, reg_on) -> Tuple[list, list]:
        """One step on the regulariser alone, for the members where ``reg_on`` holds."""
        with tf.GradientTape() as tape:
            tape.watch(values)
            _, reg = self.forward(x[:, :1], values, steps, True)
            objective = tf.reduce_sum(tf.where(reg_on, reg, 0.0))
        grads = tape.gradient(objective, values)
        clipping = self.recipe.regularization_clipping
        if clipping is not None:
            grads = [tf.clip_by_value(g, *clipping) for g in grads]
        return self._apply(grads, values, slots, [True] * len(values), reg_on)

    def _recipe_step(self, x, y, step, values, slots, steps, active, reg_on):
        """The recipe's step: ``recipe.gate_open(step)`` picks the branch, then the
        regulariser alone for the members ``recipe.regularize`` allows (its epoch
        condition tabulated, see :meth:`_regularize_by_epoch`)."""
        r = self.recipe
        if any(self.is_gate) and r.gate_batches > 0:
            weights_only = [not g for g in self.is_gate]
            values, slots, per_member = tf.cond(
                r.gate_open(step),
                lambda: self._data_step(x, y, values, slots, steps, active, weights_only,
                                        clipping=r.clipping),
                lambda: self._data_step(x, y, values, slots, steps, active, self.is_gate,
                                        r.gate_loss == "mae", r.gate_clipping))
        else:
            values, slots, per_member = self._data_step(
                x, y, values, slots, steps, active, [True] * len(values), clipping=r.clipping)
        if r.regularization:
            reg_by_epoch = self._reg_by_epoch
            epochs = steps // self.spec.steps_per_epoch
            allowed = tf.gather(reg_by_epoch, tf.minimum(epochs, reg_by_epoch.shape[0] - 1))
            limit = r.regularization_loss_threshold * tf.constant(self.loss_scale, tf.float32)
            reg_on = tf.logical_and(allowed, per_member < limit)
            values, slots = tf.cond(
                tf.reduce_any(reg_on),
                lambda: self._reg_step(x, values, slots, steps, reg_on),
                lambda: (values, slots))
        return values, slots, per_member, reg_on

    def _regularize_by_epoch(self) -> tf.Tensor:
        """``recipe.regularize``'s epoch condition for 0, 1, … completed epochs since a
        member's last (re)initialisation (the loss condition is checked per step)."""
        epochs = self.steps // self.spec.steps_per_epoch + 2
        return tf.constant([self.recipe.regularize(e, -np.inf) for e in range(epochs)])

    def _state(self) -> tuple:
        return self.member_steps, self.reg_on

    def _set_state(self, state: tuple) -> None:
        self.member_steps, self.reg_on = state

    def _chunk_inputs(self, start: int) -> tuple:
        return tf.constant(start), tf.constant(self.active)

    def _step(self, i, state, inputs):
        values, slots, steps, reg_on = state
        start, active = inputs
        x, y = self.sample()
        if self.recipe is not None:
            values, slots, per_member, reg_on = self._recipe_step(
                x, y, start + i, values, slots, steps, active, reg_on)
        else:
            values, slots, per_member = self._data_step(x, y, values, slots, steps, active,
                                                        [True] * len(values))
        return (values, slots, steps + tf.ones((self.P,), tf.int64), reg_on), (per_member,)

    def _evaluation(self):
        sets = self.eval_sets

        @tf.function
        def evaluate(values, steps):
            mse = []
            for x, y in ((sets.x_int, sets.y_int), (sets.x_ext, sets.y_ext)):
                pred, _ = self.forward(tf.constant(x), values, steps, False)
                mse.append(tf.reduce_mean(
                    tf.square(tf.cast(pred, tf.float64) - tf.cast(y, tf.float64)), axis=1))
            return tuple(mse)

        return evaluate

    # -------------------------------------------------------------- Python side
    def run(self, progress: Optional[keras.utils.Progbar]) -> int:
        """Train chunk by chunk until every member is solved or ``steps`` are done;
        returns the steps run."""
        self._progress = progress
        return self.train(self.steps // self.steps_per_chunk) * self.steps_per_chunk

    def _after_chunk(self, chunk: int, start: int, records: List[np.ndarray]) -> None:
        step = chunk * self.steps_per_chunk
        mse_int, mse_ext = (v.numpy() for v in self._evaluate(
            [tf.constant(w) for w in self.weights], tf.constant(self.member_steps)))
        self._record(step, mse_int, mse_ext)
        self._solved = int(np.sum(self._currently_solved(mse_ext)))
        if self._progress is not None:
            self._progress.update(min(step, self.steps), [("solved", self._solved)])

    def _finished(self) -> bool:
        return self._solved == self.P

    def _rule_losses(self, p: int) -> np.ndarray:
        """Step losses since the member's last (re)draw in units of its target scale
        (see ``ModelSpec.relative_thresholds``)."""
        return self.member_losses(p) / self.loss_scale[p]

    def _on_redraw(self, p: int) -> None:
        self.member_steps[p] = 0

    def _currently_solved(self, mse_ext: np.ndarray) -> np.ndarray:
        return np.isfinite(self.best_ext) & (self.best_ext < self.thresholds) & \
            np.isfinite(mse_ext) & (mse_ext < self.thresholds)

    def _record(self, step: int, mse_int: np.ndarray, mse_ext: np.ndarray) -> None:
        for p, m in enumerate(self.members):
            m.history.append((int(step), float(mse_int[p]), float(mse_ext[p])))
        better = np.isfinite(mse_int) & (mse_int < self.best_int)
        self.best_int = np.where(better, mse_int, self.best_int)
        self.best_ext = np.where(better, mse_ext, self.best_ext)
        self.best_step = np.where(better, step, self.best_step)
        for b, w in zip(self.best, self.weights):
            b[better] = w[better]
        for p in np.flatnonzero(np.isfinite(mse_ext) & (mse_ext < self.thresholds)):
            if self.solved_at[p] is None:
                self.solved_at[p] = step

    def finish(self) -> float:
        """Fill in the members' results from the real layer.

        Returns the largest difference between a member's extrapolation MSE as the
        population computed it and as its real layer computes it, relative to the larger
        of that MSE and the member's threshold.
        """
        worst = 0.0
        steps = self.member_steps
        for p, m in enumerate(self.members):
            m.best_step = int(self.best_step[p])
            m.interpolation_mse = float(self.best_int[p])
            m.extrapolation_mse = float(self.best_ext[p])
            m.success = bool(np.isfinite(m.extrapolation_mse)
                             and m.extrapolation_mse < m.threshold)
            m.solved_at = self.solved_at[p]
            m.reinitializations = int(self.redraws[p])
            if m.best_step < 0:
                continue
            for v, values in zip(self.variables_template, self.best):
                v.assign(values[p])
            for v in self.ntv_template:
                v.assign(tf.cast(steps[p], v.dtype))
            pred = np.asarray(self.layer(self.eval_sets.x_ext[p]), np.float64)[:, 0]
            with np.errstate(over="ignore", invalid="ignore"):
                m.layer_mse = float(np.mean((pred - self.eval_sets.y_ext[p]) ** 2))
            if np.isfinite(m.layer_mse) and np.isfinite(m.extrapolation_mse):
                # relative to the verdict's scale: the larger of the MSE and the threshold
                scale = max(abs(m.extrapolation_mse), m.threshold)
                worst = max(worst, abs(m.layer_mse - m.extrapolation_mse) / scale)
            m.sparsity_error = float(sparsity_error(self.layer))
            m.formula = str(self.layer.explain()[0])
        return worst

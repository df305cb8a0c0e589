"""Every run of one module kind trained together in one TensorFlow graph.

A :class:`Population` stacks the weights of its members (one per operation × range
× seed) along a leading axis. The forward pass is the package's own Keras layer,
called through ``layer.stateless_call`` inside ``tf.vectorized_map`` with each
member's weights; the loss is the sum of the members' own losses, so each member
gets exactly its own gradient; :class:`~.optimizers.MaskedOptimizer` updates the
members the recipe selects. Training runs ``eval_every`` steps per ``tf.function``
call; between calls the members are evaluated on their fixed sets, the recipe's
per-member reinitialisation rule is applied, and the run ends once every member
meets the success criterion. :meth:`Population.finish` loads each member's
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
from tensorflow_kappa.experiments.nalm.optimizers import MaskedOptimizer
from tensorflow_kappa.experiments.nalm.results import Member
from tensorflow_kappa.experiments.nalm.specs import OPS, ModelSpec
from tensorflow_kappa.layers import sparsity_error

__all__ = ["Population", "quiet_retracing"]

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


class Population:
    """The members of one module kind, their stacked weights, optimizer and recipe state.

    Args:
        spec: how the module kind is built and trained.
        members: the runs (their ``threshold`` and ``scale`` are filled in here,
            their results by :meth:`finish`).
        ranges: the ``(train_range, extrapolation_range)`` pairs members index.
        steps: training steps (a multiple of the ``eval_every`` given to :meth:`run`).
        batch_size: training rows per member and step.
        n_eval: rows in each member's evaluation sets.
        epsilon: the success criterion's ε.
        base_seed: seeds the in-graph training batches.
    """

    def __init__(self, spec: ModelSpec, members: List[Member], ranges, steps: int,
                 batch_size: int, n_eval: int, epsilon: float, base_seed: int):
        self.spec = spec
        self.recipe = spec.recipe  # the InaluRecipe record whose rules run here, or None
        self.members = members
        self.P = len(members)
        self.steps = steps
        self.layer = spec.make_layer()
        self.layer.build((None, 2))
        self.takes_training = "training" in inspect.signature(self.layer.call).parameters
        self.variables_template = list(self.layer.trainable_variables)
        self.ntv_template = list(self.layer.non_trainable_variables)
        self.constraints = [getattr(v, "constraint", None) for v in self.variables_template]
        gate = getattr(self.layer, "g", None)
        self.is_gate = [gate is not None and v is gate for v in self.variables_template]
        initial = zip(*(self._draw(m, 0) for m in members))  # each member's own seed
        self.vars = [tf.Variable(np.stack(values), trainable=True) for values in initial]
        self.best = [tf.Variable(v) for v in self.vars]
        self.optimizer = MaskedOptimizer(spec.optimizer, spec.learning_rate, self.vars, self.P)
        self.sample = _BatchSampler(members, ranges, batch_size, base_seed)
        self.eval_sets = _evaluation_sets(members, ranges, n_eval, epsilon)
        self.thresholds = np.array([m.threshold for m in members])
        self.loss_scale = (np.array([m.scale for m in members]) if spec.relative_thresholds
                           else np.ones(self.P))
        # per-member recipe state and the best evaluation so far
        self.since_reinit = np.zeros(self.P, np.int64)
        self.member_steps = tf.Variable(tf.zeros((self.P,), tf.int64), trainable=False)
        self.reg_on = tf.Variable(tf.zeros((self.P,), tf.bool), trainable=False)
        self.loss_log: List[List[np.ndarray]] = [[] for _ in range(self.P)]
        self.best_int = np.full(self.P, np.inf)
        self.best_ext = np.full(self.P, np.nan)
        self.best_step = np.full(self.P, -1)
        self.solved_at: List[Optional[int]] = [None] * self.P
        self.reinits = np.zeros(self.P, np.int64)

    def _draw(self, member: Member, attempt: int) -> List[np.ndarray]:
        """A member's weights for its ``attempt`` (0: first draw), from the recipe's
        init family for that attempt (``recipe.family(0, attempt)``; the layer's own
        initialisers for ``"published"`` and without a recipe)."""
        seed = member_seed(member) + attempt
        keras.utils.set_random_seed(seed)
        family = "published" if self.recipe is None else self.recipe.family(0, attempt)
        if family == "published":
            self.layer.reinitialize()
        else:
            self.layer.reinitialize(family, np.random.default_rng(seed), output_layer=True)
        return [v.numpy() for v in self.variables_template]

    # -------------------------------------------------------------- graph pieces
    def forward(self, x, values, steps, training) -> Tuple[tf.Tensor, tf.Tensor]:
        """Every member's layer on its own inputs ``x[p]`` with weights ``values[.][p]``:
        ``(predictions (P, n), regularisation losses (P,))``."""
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

    def _data_step(self, x, y, selected, mae=False, clipping=None):
        """One optimizer step on the members' data losses for the ``selected`` variables,
        gradients clipped to ``clipping`` (``None``: not clipped)."""
        variables = self.vars
        with tf.GradientTape() as tape:
            pred, reg = self.forward(x, variables, self.member_steps, True)
            per_member = tf.reduce_mean(tf.square(pred - y), axis=1)
            trained = tf.reduce_mean(tf.abs(pred - y), axis=1) if mae else per_member
            objective = tf.reduce_sum(tf.where(tf.math.is_finite(trained), trained, 0.0))
            if self.recipe is None:
                objective += tf.reduce_sum(reg)
        chosen = [v for v, s in zip(variables, selected) if s]
        grads = [tf.where(tf.math.is_finite(g), g, 0.0) for g in tape.gradient(objective, chosen)]
        if clipping is not None:
            grads = [tf.clip_by_value(g, *clipping) for g in grads]
        constraints = [c for c, s in zip(self.constraints, selected) if s]
        self.optimizer.apply(grads, chosen, tf.ones((self.P,), tf.bool), constraints)
        return per_member

    def _reg_step(self, x) -> None:
        """One step on the regulariser alone, for the members whose ``reg_on`` holds."""
        with tf.GradientTape() as tape:
            _, reg = self.forward(x[:, :1], self.vars, self.member_steps, True)
            objective = tf.reduce_sum(tf.where(self.reg_on, reg, 0.0))
        grads = tape.gradient(objective, self.vars)
        clipping = self.recipe.regularization_clipping
        if clipping is not None:
            grads = [tf.clip_by_value(g, *clipping) for g in grads]
        self.optimizer.apply(grads, self.vars, self.reg_on, self.constraints)

    def _recipe_step(self, x, y, step, reg_by_epoch):
        """The recipe's step: ``recipe.gate_open(step)`` picks the branch, then the
        regulariser alone for the members ``recipe.regularize`` allows (its epoch
        condition tabulated in ``reg_by_epoch``, see :meth:`_regularize_by_epoch`)."""
        r = self.recipe
        if any(self.is_gate) and r.gate_batches > 0:
            weights_only = [not g for g in self.is_gate]
            per_member = tf.cond(
                r.gate_open(step),
                lambda: self._data_step(x, y, weights_only, clipping=r.clipping),
                lambda: self._data_step(x, y, self.is_gate, r.gate_loss == "mae",
                                        r.gate_clipping))
        else:
            per_member = self._data_step(x, y, [True] * len(self.vars), clipping=r.clipping)
        if r.regularization:
            epochs = self.member_steps // self.spec.steps_per_epoch
            allowed = tf.gather(reg_by_epoch, tf.minimum(epochs, reg_by_epoch.shape[0] - 1))
            limit = r.regularization_loss_threshold * tf.constant(self.loss_scale, tf.float32)
            self.reg_on.assign(tf.logical_and(allowed, per_member < limit))
            if tf.reduce_any(self.reg_on):
                self._reg_step(x)
        return per_member

    def _regularize_by_epoch(self) -> tf.Tensor:
        """``recipe.regularize``'s epoch condition for 0, 1, … completed epochs since a
        member's last (re)initialisation (the loss condition is checked per step)."""
        epochs = self.steps // self.spec.steps_per_epoch + 2
        return tf.constant([self.recipe.regularize(e, -np.inf) for e in range(epochs)])

    def _build(self, chunk: int) -> None:
        reg_by_epoch = self._regularize_by_epoch() if self.recipe is not None else None

        @tf.function
        def train_chunk(start):
            log = tf.TensorArray(tf.float32, size=chunk)
            for i in tf.range(chunk):
                x, y = self.sample()
                per_member = (self._recipe_step(x, y, start + i, reg_by_epoch)
                              if self.recipe is not None else self._data_step(x, y, [True] * len(self.vars)))
                self.member_steps.assign_add(tf.ones((self.P,), tf.int64))
                log = log.write(i, per_member)
            return log.stack()

        sets = self.eval_sets

        @tf.function
        def evaluate():
            mse = []
            for x, y in ((sets.x_int, sets.y_int), (sets.x_ext, sets.y_ext)):
                pred, _ = self.forward(tf.constant(x), self.vars, self.member_steps, False)
                mse.append(tf.reduce_mean(
                    tf.square(tf.cast(pred, tf.float64) - tf.cast(y, tf.float64)), axis=1))
            return tuple(mse)

        self._train_chunk = train_chunk
        self._evaluate = evaluate

    # -------------------------------------------------------------- Python side
    def run(self, eval_every: int, progress: Optional[keras.utils.Progbar]) -> int:
        """Train in chunks of ``eval_every`` steps until every member is solved or
        ``steps`` are done; returns the steps run."""
        self._build(eval_every)
        step = 0
        while step < self.steps:
            log = self._train_chunk(tf.constant(step)).numpy()  # (chunk, P)
            step += eval_every
            self.since_reinit += eval_every
            for p in range(self.P):
                self.loss_log[p].append(log[:, p])
            mse_int, mse_ext = (v.numpy() for v in self._evaluate())
            self._record(step, mse_int, mse_ext)
            if self.recipe is not None:
                self._reinitialize_stuck()
            solved = int(np.sum(self._currently_solved(mse_ext)))
            if progress is not None:
                progress.update(min(step, self.steps), [("solved", solved)])
            if solved == self.P:
                break
        return step

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
        if better.any():
            mask = tf.constant(better)
            for b, v in zip(self.best, self.vars):
                b.assign(tf.where(tf.reshape(mask, [-1] + [1] * (v.shape.rank - 1)), v, b))
        for p in np.flatnonzero(np.isfinite(mse_ext) & (mse_ext < self.thresholds)):
            if self.solved_at[p] is None:
                self.solved_at[p] = step

    def _reinitialize_stuck(self) -> None:
        """Redraw the members for which ``recipe.stuck`` holds on their step losses since
        their last (re)initialisation (in units of their target scale, see
        ``ModelSpec.relative_thresholds``)."""
        redo = np.zeros(self.P, bool)
        for p in range(self.P):
            losses = np.concatenate(self.loss_log[p])[-int(self.since_reinit[p]):]
            redo[p] = self.recipe.stuck(losses / self.loss_scale[p], int(self.reinits[p]))
        if not redo.any():
            return
        values = [v.numpy() for v in self.vars]
        for p in np.flatnonzero(redo):
            self.reinits[p] += 1
            for i, new in enumerate(self._draw(self.members[p], int(self.reinits[p]))):
                values[i][p] = new
            self.since_reinit[p] = 0
            self.loss_log[p] = []
        for v, new in zip(self.vars, values):
            v.assign(new)
        self.optimizer.reset(redo)
        steps = self.member_steps.numpy()
        steps[redo] = 0
        self.member_steps.assign(steps)

    def finish(self) -> float:
        """Fill in the members' results from the real layer.

        Returns the largest difference between a member's extrapolation MSE as the
        population computed it and as its real layer computes it, relative to the larger
        of that MSE and the member's threshold.
        """
        worst = 0.0
        best = [b.numpy() for b in self.best]
        steps = self.member_steps.numpy()
        for p, m in enumerate(self.members):
            m.best_step = int(self.best_step[p])
            m.interpolation_mse = float(self.best_int[p])
            m.extrapolation_mse = float(self.best_ext[p])
            m.success = bool(np.isfinite(m.extrapolation_mse)
                             and m.extrapolation_mse < m.threshold)
            m.solved_at = self.solved_at[p]
            m.reinitializations = int(self.reinits[p])
            if m.best_step < 0:
                continue
            for v, values in zip(self.variables_template, best):
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


class quiet_retracing:
    """Silence TensorFlow's "triggered tf.function retracing" warning while populations run.

    Each module kind builds its own train and evaluation functions from the same code;
    TensorFlow counts those first traces together and warns, although every function is
    traced exactly once.
    """

    def __enter__(self):
        self.logger = tf.get_logger()
        self.level = self.logger.level
        self.logger.setLevel("ERROR")

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)
        return False

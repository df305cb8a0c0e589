"""The single-module arithmetic benchmark of the NALM literature, many runs in one graph.

Protocol (Madsen & Johansen 2020; Mistry, Farrahi & Hare's NALM primer 2022; the iNALU
authors' single-layer experiments): one module with two inputs learns ``y = a ∘ b``
for ``∘ ∈ {+, −, ×, ÷}``; inputs are drawn from a training range, the module is
judged on an extrapolation range.  A run *succeeds* when its extrapolation MSE, at the
evaluation with the best interpolation MSE, is below the MSE of the ε-perturbed exact
solution (ε = 1e-5; :mod:`tensorflow_kappa.evaluation`).  Per cell (module × operation
× range) :func:`run_nalm_benchmark` reports the success rate over seeds with a Wilson
95 % interval, the median step at which successful runs first met the criterion
("solved at"), the median sparsity error of successful runs, and, for comparison with
the iNALU paper, how many runs reached an extrapolation MSE below 1e-5.

How it runs fast: every run of one module kind (all operations × ranges × seeds) is a
*member* of a population trained in one TensorFlow graph.  The member's forward pass is
the package's own Keras layer, called through ``layer.stateless_call`` inside
``tf.vectorized_map`` with the member's weights; the loss is the sum of the members'
own losses, so every member gets exactly its own gradient; the optimizers are
element-wise (RMSprop, Adam with the Keras formulas), with per-member masks where the
recipe trains a member selectively and per-member slot resets when it is
reinitialised.  Training runs ``eval_every`` steps per ``tf.function`` call; between
calls the members are evaluated, the recipe's per-member rules are applied and the run
ends early once every member meets the criterion.  At the end each member's selected
weights are loaded into a real layer: its extrapolation MSE is recomputed there (the
``check`` column of :attr:`Member.layer_mse`), and its formula read with ``explain``.

Module kinds and their training (each a :class:`ModelSpec`, see :data:`MODELS`):

* ``inalu`` (separate weights) and ``inalu-shared``: the report's recipe per member,
  with RMSprop(0.01), batch 64, up to 100 000 steps: gates trained alone on 2 of every
  10 steps, gradients clipped to ±0.1 in both branches, the sparsity regulariser as its
  own step once 10 000 steps have passed since the last (re)initialisation (the report's
  10 epochs of 1 000 steps) and while the member's last step loss is below 1, and the
  authors' reinitialisation rule, checked every 1 000 steps (the report: every epoch).
  Deviations from the report's values, for single modules: the rule looks at the last
  5 000 step losses once more than 5 000 are recorded (report: all, more than 10 000)
  and calls a member bad above a loss of 1e-5 (report: 1.0; on U(0.1, 0.2) the targets
  are below 0.04, so "loss above 1" would never reinitialise a stuck member there).
* ``nalu``: Adam(0.01), no regulariser, 20 000 steps (Trask et al. use none).
* ``nau`` (``+ −``) and ``nmu`` (``×``): Adam(0.01), their own regulariser (λ̂ = 10)
  warmed up linearly from 20 % to 35 % of the 20 000 steps (Madsen & Johansen: from
  step 1e6 to 2e6 of 5e6, with Adam(1e-3); compressed here to fit the time budget).

Data: fresh training batches every step, drawn in the graph; each run has its own
interpolation and extrapolation sets of ``n_eval`` samples.
"""
from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import math
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa.datasets.arithmetic import check_range, sample_range
from tensorflow_kappa.datasets.expression import parse_expression
from tensorflow_kappa.evaluation import EPSILON, perturbed_threshold, wilson_interval
from tensorflow_kappa.recipes import stuck

__all__ = [
    "DEFAULT_RANGES",
    "MODELS",
    "OPS",
    "BenchmarkResult",
    "CellResult",
    "Member",
    "ModelSpec",
    "format_table",
    "run_nalm_benchmark",
]

#: The four operations, as expressions over the two inputs.
OPS: Dict[str, str] = {"add": "x1 + x2", "sub": "x1 - x2", "mul": "x1 * x2", "div": "x1 / x2"}
_OP_CODE = {name: i for i, name in enumerate(OPS)}
_OP_SYMBOL = {"add": "+", "sub": "−", "mul": "×", "div": "÷"}

#: (training range, extrapolation range) pairs of the default table.
DEFAULT_RANGES: Tuple[Tuple[Any, Any], ...] = (
    ((-1, 1), [(-5, -1), (1, 5)]),
    ((-5, 5), [(-10, -5), (5, 10)]),
    ((1, 2), (2, 6)),
    ((0.1, 0.2), (0.2, 2)),
    ((-2, -1), (-6, -2)),
)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How one module kind is built and trained in the benchmark.

    Attributes:
        name: table label.
        make_layer: ``fn() -> layer`` with one output unit.
        ops: the operations it is benchmarked on (NAU cannot multiply, NMU cannot add).
        optimizer: ``"rmsprop"`` or ``"adam"``; ``learning_rate``.
        steps: default training steps.
        recipe: train with the iNALU recipe (gate schedule, clipping, delayed
            regulariser as its own step, reinitialisation) instead of plain steps
            on the compiled objective (data loss plus the layer's own ``add_loss``).
        gate_period, gate_batches, clipping: the recipe's gate schedule and clip
            (recipe only).
        regularization_delay: steps after a (re)initialisation before the regulariser
            may start; ``regularization_loss_threshold``: ... and only while the
            member's last step loss is below it.
        reinit_min_steps, reinit_loss_threshold, reinit_window: the authors' rule
            (:func:`~tensorflow_kappa.recipes.stuck`), checked every ``eval_every``.
        gate_loss: ``"mse"`` (Fig. 6.4) or ``"mae"`` (Fig. 4.9) for the gate steps.
        relative_thresholds: multiply ``regularization_loss_threshold`` and
            ``reinit_loss_threshold`` by the member's target scale ``mean(y²)`` on
            its interpolation set, so that "loss below 1" means the same on
            U(0.1, 0.2) as on U(−5, 5).
    """

    name: str
    make_layer: Callable[[], keras.layers.Layer]
    ops: Tuple[str, ...]
    optimizer: str = "adam"
    learning_rate: float = 0.01
    steps: int = 20000
    recipe: bool = False
    gate_period: int = 10
    gate_batches: int = 2
    clipping: Optional[Tuple[float, float]] = (-0.1, 0.1)
    regularization_delay: int = 10000
    regularization_loss_threshold: float = 1.0
    reinit_min_steps: int = 5000
    reinit_loss_threshold: float = 1e-5
    reinit_window: Optional[int] = 5000
    relative_thresholds: bool = False
    gate_loss: str = "mse"


def _inalu(shared: bool):
    def make():
        from tensorflow_kappa.layers import INALU
        return INALU(1, share_weights=shared)
    return make


def _nalu():
    from tensorflow_kappa.layers import NALU
    return NALU(1)


def _nau(steps: int):
    def make():
        from tensorflow_kappa.layers import NAU
        return NAU(1, warmup_start=int(0.2 * steps), warmup_end=int(0.35 * steps))
    return make


def _nmu(steps: int):
    def make():
        from tensorflow_kappa.layers import NMU
        return NMU(1, warmup_start=int(0.2 * steps), warmup_end=int(0.35 * steps))
    return make


_ALL = tuple(OPS)

#: The module kinds of the benchmark, by command-line name.
MODELS: Dict[str, ModelSpec] = {
    "inalu": ModelSpec("INALU (separate)", _inalu(False), _ALL, optimizer="rmsprop",
                       steps=100000, recipe=True),
    "inalu-shared": ModelSpec("INALU (shared)", _inalu(True), _ALL, optimizer="rmsprop",
                              steps=100000, recipe=True),
    "nalu": ModelSpec("NALU", _nalu, _ALL, optimizer="adam"),
    "nau": ModelSpec("NAU", _nau(20000), ("add", "sub"), optimizer="adam"),
    "nmu": ModelSpec("NMU", _nmu(20000), ("mul",), optimizer="adam"),
}


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class Member:
    """One run: a module kind on one operation, range pair and seed."""

    model: str
    op: str
    range_index: int
    seed: int
    threshold: float = float("nan")
    success: bool = False
    best_step: int = -1
    interpolation_mse: float = float("nan")
    extrapolation_mse: float = float("nan")
    layer_mse: float = float("nan")
    solved_at: Optional[int] = None
    sparsity_error: float = float("nan")
    formula: str = ""
    reinitializations: int = 0
    scale: float = float("nan")
    history: List[Tuple[int, float, float]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CellResult:
    """Aggregate of one module × operation × range cell."""

    model: str
    op: str
    range_index: int
    train_range: Any
    extrapolation_range: Any
    runs: int
    successes: int
    wilson_95: Tuple[float, float]
    solved_at_median: Optional[float]
    sparsity_error_median: Optional[float]
    below_1e5: int

    @property
    def success_rate(self) -> float:
        return self.successes / self.runs if self.runs else float("nan")


@dataclasses.dataclass
class BenchmarkResult:
    """What :func:`run_nalm_benchmark` returns."""

    cells: List[CellResult]
    members: List[Member]
    config: Dict[str, Any]
    wall_time_s: float
    max_layer_discrepancy: float

    def table(self) -> str:
        return format_table(self.cells)

    def to_dict(self) -> Dict[str, Any]:
        from tensorflow_kappa.arithmetic import _jsonable
        return _jsonable({
            "config": self.config, "wall_time_s": self.wall_time_s,
            "max_layer_discrepancy": self.max_layer_discrepancy,
            "cells": [dict(dataclasses.asdict(c), success_rate=c.success_rate)
                      for c in self.cells],
            "members": [dataclasses.asdict(m) for m in self.members]})


def _range_label(value) -> str:
    parts = [f"U({_num(lo)}, {_num(hi)})" for lo, hi in check_range(value)]
    return " ∪ ".join(parts)


def _num(v: float) -> str:
    return f"{v:g}"


def format_table(cells: Sequence[CellResult]) -> str:
    """A Markdown table, one row per cell."""
    head = ("| module | op | train → extrapolation | success | Wilson 95 % | solved at "
            "(median step) | sparsity error (median) | MSE < 1e-5 |\n"
            "|---|---|---|---|---|---|---|---|")
    rows = [head]
    for c in cells:
        low, high = c.wilson_95
        solved = "—" if c.solved_at_median is None else f"{c.solved_at_median:.0f}"
        sparsity = "—" if c.sparsity_error_median is None else f"{c.sparsity_error_median:.1e}"
        rows.append(
            f"| {c.model} | {_OP_SYMBOL.get(c.op, c.op)} | {_range_label(c.train_range)} → "
            f"{_range_label(c.extrapolation_range)} | {c.successes}/{c.runs} "
            f"| {low:.2f}–{high:.2f} | {solved} | {sparsity} | {c.below_1e5}/{c.runs} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------
# Element-wise optimizers over stacked member variables
# ---------------------------------------------------------------------------
class _Optimizer:
    """RMSprop or Adam (Keras 3 formulas, no weight decay) on stacked variables.

    ``apply(grads, variables, mask)`` updates only members with ``mask`` true (slots
    included); ``reset(members)`` zeroes the slots and step counts of members.
    """

    def __init__(self, kind: str, learning_rate: float, variables: Sequence[tf.Variable],
                 members: int):
        if kind not in ("rmsprop", "adam"):
            raise ValueError(f"optimizer must be 'rmsprop' or 'adam', got {kind!r}")
        self.kind = kind
        self.lr = float(learning_rate)
        self.slots = {}
        for v in variables:
            self.slots[v.ref()] = [tf.Variable(tf.zeros_like(v), trainable=False)
                                   for _ in range(1 if kind == "rmsprop" else 2)]
        self.count = {v.ref(): tf.Variable(tf.zeros((members,), tf.float32), trainable=False)
                      for v in variables}

    @staticmethod
    def _expand(mask, like):
        return tf.reshape(mask, [-1] + [1] * (like.shape.rank - 1))

    def apply(self, grads, variables, mask, constraints=None):
        for i, (g, v) in enumerate(zip(grads, variables)):
            if g is None:
                continue
            m = self._expand(mask, v)
            slots = self.slots[v.ref()]
            if self.kind == "rmsprop":
                rho, eps = 0.9, 1e-7
                (velocity,) = slots
                new_v = rho * velocity + (1.0 - rho) * tf.square(g)
                step = self.lr * g / tf.sqrt(new_v + eps)
                velocity.assign(tf.where(m, new_v, velocity))
            else:
                b1, b2, eps = 0.9, 0.999, 1e-7
                first, second = slots
                count = self.count[v.ref()]
                new_count = tf.where(mask, count + 1.0, count)
                count.assign(new_count)
                t = self._expand(new_count, v)
                new_m = first + (g - first) * (1.0 - b1)
                new_s = second + (tf.square(g) - second) * (1.0 - b2)
                alpha = self.lr * tf.sqrt(1.0 - tf.pow(b2, t)) / (1.0 - tf.pow(b1, t))
                step = alpha * new_m / (tf.sqrt(new_s) + eps)
                first.assign(tf.where(m, new_m, first))
                second.assign(tf.where(m, new_s, second))
            new = v - step
            if constraints and constraints[i] is not None:
                new = constraints[i](new)
            v.assign(tf.where(m, new, v))

    def reset(self, members: np.ndarray) -> None:
        keep = tf.constant(~members)
        for ref, slots in self.slots.items():
            for s in slots:
                s.assign(tf.where(self._expand(keep, s), s, tf.zeros_like(s)))
        for count in self.count.values():
            count.assign(tf.where(keep, count, tf.zeros_like(count)))


# ---------------------------------------------------------------------------
# The population trainer
# ---------------------------------------------------------------------------
def _member_seed(model: str, op: str, range_index: int, seed: int) -> int:
    text = f"{model}/{op}/{range_index}/{seed}"
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


class _Population:
    def __init__(self, spec: ModelSpec, members: List[Member], ranges, steps: int,
                 batch_size: int, n_eval: int, epsilon: float, base_seed: int):
        self.spec = spec
        self.members = members
        self.P = len(members)
        self.steps = steps
        self.batch_size = batch_size
        self.layer = spec.make_layer()
        self.layer.build((None, 2))
        self.takes_training = "training" in inspect.signature(self.layer.call).parameters
        self.variables_template = list(self.layer.trainable_variables)
        self.ntv_template = list(self.layer.non_trainable_variables)
        self.constraints = [getattr(v, "constraint", None) for v in self.variables_template]
        gate = getattr(self.layer, "g", None)
        self.is_gate = [gate is not None and v is gate for v in self.variables_template]
        # stacked member weights, drawn from each member's own seed
        initial = [[] for _ in self.variables_template]
        for m in members:
            for i, v in enumerate(self._draw(m, 0)):
                initial[i].append(v)
        self.vars = [tf.Variable(np.stack(vals), trainable=True) for vals in initial]
        self.best = [tf.Variable(v) for v in self.vars]
        self.optimizer = _Optimizer(spec.optimizer, spec.learning_rate, self.vars, self.P)
        self.op_code = tf.constant([_OP_CODE[m.op] for m in members], tf.int32)
        train_ranges = [ranges[m.range_index][0] for m in members]
        lows, widths, cum = _interval_table(train_ranges)
        self.lows, self.widths, self.cum = (tf.constant(a) for a in (lows, widths, cum))
        self.generator = tf.random.Generator.from_seed(base_seed)
        # fixed evaluation sets, float32 inputs, thresholds in float64
        xi, yi, xe, ye = [], [], [], []
        for m in members:
            rng = np.random.default_rng(_member_seed(m.model, m.op, m.range_index, m.seed))
            expr = parse_expression(OPS[m.op], 2)
            train_r, extra_r = ranges[m.range_index]
            x_int = sample_range(rng, train_r, (n_eval, 2)).astype(np.float32)
            x_ext = sample_range(rng, extra_r, (n_eval, 2)).astype(np.float32)
            xi.append(x_int)
            yi.append(expr.evaluate(x_int).astype(np.float32))
            xe.append(x_ext)
            ye.append(expr.evaluate(x_ext).astype(np.float32))
            m.threshold = perturbed_threshold(expr, x_ext, epsilon)
        self.x_int, self.y_int = tf.constant(np.stack(xi)), tf.constant(np.stack(yi))
        self.x_ext, self.y_ext = tf.constant(np.stack(xe)), tf.constant(np.stack(ye))
        self.x_ext_np, self.y_ext_np = np.stack(xe), np.stack(ye)
        self.thresholds = np.array([m.threshold for m in members])
        scale = np.mean(np.square(np.stack(yi).astype(np.float64)), axis=1)
        for m, value in zip(members, scale):
            m.scale = float(value)
        self.loss_scale = scale if spec.relative_thresholds else np.ones(self.P)
        self.loss_scale_t = tf.constant(self.loss_scale, tf.float32)
        # per-member recipe state
        self.since_reinit = np.zeros(self.P, np.int64)
        self.member_steps = tf.Variable(tf.zeros((self.P,), tf.int64), trainable=False)
        self.reg_on = tf.Variable(tf.zeros((self.P,), tf.bool), trainable=False)
        self.loss_log: List[List[np.ndarray]] = [[] for _ in range(self.P)]
        self.best_int = np.full(self.P, np.inf)
        self.best_ext = np.full(self.P, np.nan)
        self.best_step = np.full(self.P, -1)
        self.solved_at: List[Optional[int]] = [None] * self.P
        self.reinits = np.zeros(self.P, np.int64)
        self._train_chunk = None

    def _draw(self, member: Member, attempt: int) -> List[np.ndarray]:
        keras.utils.set_random_seed(
            _member_seed(member.model, member.op, member.range_index, member.seed) + attempt)
        self.layer.reinitialize()
        return [v.numpy() for v in self.variables_template]

    # -------------------------------------------------------------- graph pieces
    def _forward(self, x, values, steps, training):
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

    def _batch(self):
        shape = (self.P, self.batch_size, 2)
        u = self.generator.uniform(shape)
        pick = self.generator.uniform(shape)
        k = self.cum.shape[1]
        index = tf.reduce_sum(tf.cast(pick[..., None] > self.cum[:, None, None, :k - 1],
                                      tf.int32), axis=-1) if k > 1 else tf.zeros(shape, tf.int32)
        lows = tf.gather(self.lows, index, batch_dims=1)
        widths = tf.gather(self.widths, index, batch_dims=1)
        x = lows + u * widths
        a, b = x[..., 0], x[..., 1]
        code = self.op_code[:, None]
        y = tf.where(code == 0, a + b, tf.where(code == 1, a - b,
                     tf.where(code == 2, a * b, a / b)))
        return x, y

    def _build(self, chunk: int):
        spec = self.spec
        variables = self.vars
        all_members = tf.ones((self.P,), tf.bool)
        clip = spec.clipping if spec.recipe else None

        def data_step(x, y, selected, mae=False):
            with tf.GradientTape() as tape:
                pred, reg = self._forward(x, variables, self.member_steps, True)
                per_member = tf.reduce_mean(tf.square(pred - y), axis=1)
                trained = tf.reduce_mean(tf.abs(pred - y), axis=1) if mae else per_member
                objective = tf.reduce_sum(tf.where(tf.math.is_finite(trained), trained, 0.0))
                if not spec.recipe:
                    objective += tf.reduce_sum(reg)
            chosen = [v for v, s in zip(variables, selected) if s]
            grads = tape.gradient(objective, chosen)
            grads = [tf.where(tf.math.is_finite(g), g, 0.0) for g in grads]
            if clip is not None:
                grads = [tf.clip_by_value(g, clip[0], clip[1]) for g in grads]
            cons = [c for c, s in zip(self.constraints, selected) if s]
            self.optimizer.apply(grads, chosen, all_members, cons)
            return per_member

        def reg_step(x):
            with tf.GradientTape() as tape:
                _, reg = self._forward(x[:, :1], variables, self.member_steps, True)
                objective = tf.reduce_sum(tf.where(self.reg_on, reg, 0.0))
            grads = tape.gradient(objective, variables)
            self.optimizer.apply(grads, variables, self.reg_on, self.constraints)

        everything = [True] * len(variables)
        weights_only = [not g for g in self.is_gate]
        gates_only = list(self.is_gate)
        gated = spec.recipe and any(self.is_gate) and spec.gate_batches > 0
        open_steps = spec.gate_period - spec.gate_batches

        @tf.function
        def train_chunk(start):
            log = tf.TensorArray(tf.float32, size=chunk)
            for i in tf.range(chunk):
                x, y = self._batch()
                if spec.recipe:
                    if gated:
                        per_member = tf.cond(
                            (start + i) % spec.gate_period < open_steps,
                            lambda: data_step(x, y, weights_only),
                            lambda: data_step(x, y, gates_only, spec.gate_loss == "mae"))
                    else:
                        per_member = data_step(x, y, everything)
                    self.reg_on.assign(self._reg_condition(per_member))
                    if tf.reduce_any(self.reg_on):
                        reg_step(x)
                else:
                    per_member = data_step(x, y, everything)
                self.member_steps.assign_add(tf.ones((self.P,), tf.int64))
                log = log.write(i, per_member)
            return log.stack()

        @tf.function
        def evaluate():
            steps = self.member_steps
            p_int, _ = self._forward(self.x_int, variables, steps, False)
            p_ext, _ = self._forward(self.x_ext, variables, steps, False)
            se_int = tf.square(tf.cast(p_int, tf.float64) - tf.cast(self.y_int, tf.float64))
            se_ext = tf.square(tf.cast(p_ext, tf.float64) - tf.cast(self.y_ext, tf.float64))
            return tf.reduce_mean(se_int, axis=1), tf.reduce_mean(se_ext, axis=1)

        self._train_chunk = train_chunk
        self._evaluate = evaluate

    def _reg_condition(self, per_member):
        spec = self.spec
        old_enough = self.member_steps >= spec.regularization_delay
        limit = spec.regularization_loss_threshold * self.loss_scale_t
        return tf.logical_and(old_enough, per_member < limit)

    # -------------------------------------------------------------- Python side
    def run(self, eval_every: int, progress: Optional[keras.utils.Progbar]) -> int:
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
            if self.spec.recipe:
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
        finite = np.isfinite(mse_int)
        better = finite & (mse_int < self.best_int)
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
        spec = self.spec
        redo = np.zeros(self.P, bool)
        for p in range(self.P):
            if self.since_reinit[p] <= spec.reinit_min_steps:
                continue
            losses = np.concatenate(self.loss_log[p])[-int(self.since_reinit[p]):]
            if stuck(losses, spec.reinit_min_steps,
                     spec.reinit_loss_threshold * self.loss_scale[p], spec.reinit_window):
                redo[p] = True
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
        from tensorflow_kappa.layers import sparsity_error

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
            pred = np.asarray(self.layer(self.x_ext_np[p]), np.float64)[:, 0]
            with np.errstate(over="ignore", invalid="ignore"):
                m.layer_mse = float(np.mean((pred - self.y_ext_np[p]) ** 2))
            if np.isfinite(m.layer_mse) and np.isfinite(m.extrapolation_mse):
                # relative to the verdict's scale: the larger of the MSE and the threshold
                scale = max(abs(m.extrapolation_mse), m.threshold)
                worst = max(worst, abs(m.layer_mse - m.extrapolation_mse) / scale)
            m.sparsity_error = float(sparsity_error(self.layer))
            m.formula = str(self.layer.explain()[0])
        return worst


class _quiet_retracing:
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


def _parse_ranges(ranges) -> Tuple[Tuple[Any, Any], ...]:
    out = []
    for pair in ranges:
        try:
            train, extra = pair
        except (TypeError, ValueError):
            raise ValueError(f"each range entry must be (train_range, extrapolation_range), "
                             f"got {pair!r}") from None
        check_range(train, "train range")
        check_range(extra, "extrapolation range")
        out.append((train, extra))
    if not out:
        raise ValueError("ranges must not be empty")
    return tuple(out)


def run_nalm_benchmark(
    ops: Sequence[str] = tuple(OPS),
    ranges: Sequence[Tuple[Any, Any]] = DEFAULT_RANGES,
    models: Sequence[str] = tuple(MODELS),
    seeds: int = 10,
    steps: Optional[int] = None,
    batch_size: int = 64,
    eval_every: int = 1000,
    n_eval: int = 10000,
    epsilon: float = EPSILON,
    out_dir: Optional[str] = None,
    verbose: int = 1,
    specs: Optional[Mapping[str, ModelSpec]] = None,
) -> BenchmarkResult:
    """Run the single-module arithmetic benchmark (module docstring).

    Args:
        ops: subset of ``("add", "sub", "mul", "div")``.
        ranges: ``(train_range, extrapolation_range)`` pairs; each range a pair or a
            union of pairs (:func:`~tensorflow_kappa.datasets.arithmetic_task`).
        models: subset of :data:`MODELS` keys; each runs only on the ops it supports.
        seeds: runs per cell (seeds ``0 … seeds-1``).
        steps: training steps per run (default: each module's ``steps``); runs end
            early once every run of a module meets the criterion.
        batch_size: training batch per step (fresh samples each step).
        eval_every: steps between evaluations (and reinitialisation checks).
        n_eval: samples in each run's interpolation and extrapolation sets.
        epsilon: the success criterion's ε.
        out_dir: if given, writes ``nalm_benchmark.md`` and ``nalm_benchmark.json``.
        verbose: 1 shows a Keras progress bar per module.
        specs: replaces :data:`MODELS` (e.g. with other optimiser settings).

    Returns:
        A :class:`BenchmarkResult` (``.table()`` gives the Markdown table).
    """
    specs = dict(MODELS if specs is None else specs)
    ops = tuple(ops)
    for op in ops:
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}; choose from {', '.join(OPS)}")
    for name in models:
        if name not in specs:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(specs)}")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be positive, got {eval_every!r}")
    ranges = _parse_ranges(ranges)
    start = time.perf_counter()
    members_all: List[Member] = []
    worst = 0.0
    used_steps = {}
    for k, name in enumerate(models):
        spec = specs[name]
        run_ops = [op for op in ops if op in spec.ops]
        if not run_ops:
            continue
        members = [Member(spec.name, op, r, s)
                   for op, r, s in itertools.product(run_ops, range(len(ranges)),
                                                     range(int(seeds)))]
        total = int(steps if steps is not None else spec.steps)
        chunk = min(eval_every, total)
        total = int(math.ceil(total / chunk) * chunk)
        population = _Population(spec, members, ranges, total, batch_size, n_eval, epsilon,
                                 base_seed=1000 + k)
        progress = None
        if verbose:
            print(f"{spec.name}: {len(members)} runs ({', '.join(run_ops)} × "
                  f"{len(ranges)} ranges × {seeds} seeds), up to {total} steps", flush=True)
            progress = keras.utils.Progbar(total, unit_name="step", stateful_metrics=["solved"])
        t0 = time.perf_counter()
        with _quiet_retracing():
            used_steps[name] = population.run(chunk, progress)
        worst = max(worst, population.finish())
        if verbose:
            solved = sum(m.success for m in members)
            print(f"{spec.name}: {solved}/{len(members)} succeeded, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        members_all.extend(members)
    cells = _aggregate(members_all, ranges)
    config = dict(ops=list(ops), ranges=[[r[0], r[1]] for r in ranges], models=list(models),
                  seeds=int(seeds), steps=steps, steps_run=used_steps, batch_size=batch_size,
                  eval_every=eval_every, n_eval=n_eval, epsilon=epsilon,
                  specs={name: {f.name: getattr(specs[name], f.name)
                                for f in dataclasses.fields(ModelSpec)
                                if f.name != "make_layer"} for name in models})
    result = BenchmarkResult(cells, members_all, config, time.perf_counter() - start, worst)
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "nalm_benchmark.md"), "w") as f:
            f.write(result.table() + "\n")
        with open(os.path.join(out_dir, "nalm_benchmark.json"), "w") as f:
            json.dump(result.to_dict(), f, indent=1)
    return result


def _aggregate(members: Sequence[Member], ranges) -> List[CellResult]:
    cells = []
    keys = []
    for m in members:
        key = (m.model, m.op, m.range_index)
        if key not in keys:
            keys.append(key)
    for model, op, r in keys:
        group = [m for m in members if (m.model, m.op, m.range_index) == (model, op, r)]
        wins = [m for m in group if m.success]
        solved = [m.solved_at for m in wins if m.solved_at is not None]
        sparsity = [m.sparsity_error for m in wins if np.isfinite(m.sparsity_error)]
        cells.append(CellResult(
            model=model, op=op, range_index=r, train_range=ranges[r][0],
            extrapolation_range=ranges[r][1], runs=len(group), successes=len(wins),
            wilson_95=wilson_interval(len(wins), len(group)),
            solved_at_median=float(np.median(solved)) if solved else None,
            sparsity_error_median=float(np.median(sparsity)) if sparsity else None,
            below_1e5=sum(np.isfinite(m.extrapolation_mse) and m.extrapolation_mse < 1e-5
                          for m in group)))
    return cells

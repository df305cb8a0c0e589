"""Many seeds of the main job as one vectorised population (``kappa arithmetic --seeds/--suite``).

:class:`ArithmeticPopulation` trains the runs of several seeds at once: every
seed's run is ``recipe.candidates`` candidate iNALU stacks (a portfolio
multi-start), and every candidate of every seed is one *member* of one
population, trained by the package's population trainer
(:mod:`tensorflow_kappa.experiments.population`): the members' variables are
stacked on a leading axis, each member trains as if alone (Keras' RMSprop,
element-wise), and one epoch is one XLA-compiled loop.  What is the job's own:
the INALU stack, the data and its shuffling, the recipe's rules per member, the
suite's table.

The recipe is the same :class:`~tensorflow_kappa.recipes.InaluRecipe` record
the ``model.fit`` path runs with :class:`~tensorflow_kappa.recipes.InaluController`,
and its rules are the same methods, called per member:

* every batch: ``recipe.gate_open(step)`` (which branch trains; the gradients
  clipped to ``clipping`` / ``gate_clipping``), then the regularisation step
  where ``recipe.regularize(epochs since the member's last reinit, its last
  batch MSE)`` holds;
* every epoch end, per member: interpolation and extrapolation MSE, then
  ``recipe.stuck(losses since its last reinit)`` (reinitialise that member
  only, from ``recipe.family(candidate, attempt)``), then
  ``recipe.converged(...)`` (the member stops, and with it its seed's other
  candidates: the seed is solved).

A seed's result is its candidate with the lowest interpolation MSE (at that
candidate's best epoch), judged by Madsen & Johansen's criterion and read back
with :func:`~tensorflow_kappa.layers.explain`.  Candidate 0 of a seed starts
from exactly the weights ``train_arithmetic(seed=s)`` starts from; the other
candidates and every redraw come from NumPy generators seeded by
``(seed, candidate)``; a redraw leaves the optimizer slots as they are (as
``model.fit``'s does).  What differs from ``model.fit``: the shuffling stream
(NumPy instead of ``tf.data``), so single runs and members share decisions
(rules) but not bit-identical losses.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.datasets.arithmetic import arithmetic_task
from tensorflow_kappa.datasets.expression import Expression
from tensorflow_kappa.experiments.arithmetic import check_layers
from tensorflow_kappa.evaluation import (formula_matches, perturbed_threshold, succeeded,
                                         wilson_interval)
from tensorflow_kappa.experiments.population import MaskedOptimizer, PopulationTrainer
from tensorflow_kappa.experiments.reporting import jsonable, try_write, write_json
from tensorflow_kappa.layers import INALU, _math, explain
from tensorflow_kappa.layers.inalu import draw_initial_weights
from tensorflow_kappa.recipes import InaluRecipe

__all__ = ["ArithmeticPopulation", "DEFAULT_POPULATION_EPOCHS", "SeedResult", "SuiteRow",
           "estimated_seconds", "format_suite_table", "train_population"]

#: Epoch budget of a population run: a candidate's first attempt (about 15
#: epochs when it succeeds) and room for restarts of the stuck ones (at 20
#: epochs every failed seed of the suite had run out of budget; BENCHMARKS.md).
DEFAULT_POPULATION_EPOCHS = 30

VARIABLES = ("w_hat_a", "m_hat_a", "w_hat_m", "m_hat_m", "g")


def _forward(x: tf.Tensor, flat: Sequence[tf.Tensor], epsilon: float, omega: float):
    """The INALU stack for every member at once: ``x`` (P, B, I) → (P, B, 1).

    The layer's own equations (``layers/_math.py``) on weights with a leading
    member axis; tested against the Keras layers member by member.
    """
    h = tf.convert_to_tensor(x)
    for k in range(len(flat) // 5):
        w_hat_a, m_hat_a, w_hat_m, m_hat_m, g = flat[5 * k:5 * k + 5]
        h = _math.inalu_output(h, _math.nac_weight(w_hat_a, m_hat_a),
                               _math.nac_weight(w_hat_m, m_hat_m), g, epsilon, omega)
    return h


def _sparsity(flat: Sequence[tf.Tensor], t: float) -> tf.Tensor:
    """Per member, the sum over layers of INALU's regulariser R (eq. 2.15), shape (P,)."""
    return tf.add_n([_math.inalu_sparsity_penalty(flat[5 * k:5 * k + 5], t, members=True)
                     for k in range(len(flat) // 5)])


@dataclasses.dataclass
class SeedResult:
    """One seed's outcome: its best candidate, judged."""

    expression: str
    seed: int
    success: bool
    formula: str
    formula_correct: bool
    candidate: int
    family: str
    best_epoch: int
    threshold: float
    epochs: int
    reinitializations: int
    interpolation_mse: List[float]
    extrapolation_mse: List[float]


@dataclasses.dataclass
class SuiteRow:
    """One expression of a population run: what ``kappa arithmetic --seeds/--suite`` prints."""

    expression: str
    successes: int
    seeds: int
    wilson_95: Tuple[float, float]
    formula_recovered: int
    median_epochs: float
    wall_time_s: float
    reinitializations: int
    results: List[SeedResult]

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dictionary of the row (non-finite floats become ``None``)."""
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_record(cls, record: Dict[str, Any]) -> "SuiteRow":
        """The row :func:`dataclasses.asdict` gave (as a finished unit keeps it)."""
        fields = dict(record)
        fields["wilson_95"] = tuple(fields["wilson_95"])
        fields["results"] = [SeedResult(**r) for r in fields["results"]]
        return cls(**fields)


class ArithmeticPopulation(PopulationTrainer):
    """Seeds × candidates iNALU stacks trained as one population by one recipe record.

    Args:
        expression: the task (text or parsed), over ``num_inputs`` inputs.
        seeds: one run per seed (its data: ``arithmetic_task(..., seed=s)``).
        recipe: the :class:`InaluRecipe` (default: ``InaluRecipe()``); each
            seed gets ``recipe.candidates`` members.
        layers, n, batch_size, learning_rate, train_range, extrapolation_range:
            as for :func:`~tensorflow_kappa.experiments.arithmetic.train_arithmetic`.
        initial_weights: optional per member (seed-major, then candidate) list
            of per-layer ``{variable: array}`` replacing the initial draw.

    Example (a few steps of two seeds):
    >>> pop = ArithmeticPopulation("x1 * x2", [0, 1], InaluRecipe(candidates=1),
    ...                            layers=(1,), n=640, num_inputs=2)
    >>> [r.seed for r in pop.run(epochs=1)]
    [0, 1]
    """

    def __init__(self, expression: Union[str, Expression], seeds: Sequence[int],
                 recipe: Optional[InaluRecipe] = None, layers: Sequence[int] = (3, 2, 1),
                 num_inputs: int = 7, n: int = 64000, batch_size: int = 64,
                 learning_rate: float = 0.01, train_range=(-3, 3),
                 extrapolation_range=(10, 15),
                 initial_weights: Optional[List[List[Dict[str, np.ndarray]]]] = None):
        recipe = InaluRecipe() if recipe is None else recipe
        if not isinstance(recipe, InaluRecipe):
            raise ValueError(f"recipe must be an InaluRecipe, got {recipe!r}")
        # Keras' global seeding (the initial weights) takes seeds up to 2**32 - 1.
        self.seeds = _checks.random_seeds("seeds", seeds, _checks.SEED32_MAX)
        self.layers = check_layers(layers)
        self.batch_size = _checks.integer("batch_size", batch_size, minimum=1)
        self.learning_rate = _checks.number("learning_rate", learning_rate, minimum=0.0)
        self.tasks = [arithmetic_task(expression, num_inputs, n=n, train_range=train_range,
                                      extrapolation_range=extrapolation_range, seed=s)
                      for s in self.seeds]
        self.expression = self.tasks[0].expression
        self.num_inputs = self.expression.num_inputs
        self.n = len(self.tasks[0].train[0])
        self.steps_per_epoch = self.n // self.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"n ({n}) must be at least batch_size ({batch_size})")
        self.candidates = recipe.candidates
        self.members = [(i, c) for i in range(len(self.seeds)) for c in range(self.candidates)]
        super().__init__(len(self.members), recipe,
                         MaskedOptimizer(keras.optimizers.RMSprop(self.learning_rate)),
                         self.steps_per_epoch, jit_compile=True, reset_slots_on_redraw=False)
        self.rngs = [np.random.default_rng([self.seeds[i], c]) for i, c in self.members]
        self.thresholds = [perturbed_threshold(t.expression, t.extrapolation[0])
                           for t in self.tasks]
        self._x = tf.constant(np.concatenate([t.train[0] for t in self.tasks]))
        self._y = tf.constant(np.concatenate([t.train[1][:, 0] for t in self.tasks]))
        self._start(None if initial_weights is None else
                    [self._flat(member) for member in initial_weights])
        self._predict = tf.function(lambda x, flat: _forward(x, flat, 1e-7, 20.0)[..., 0],
                                    jit_compile=True, reduce_retracing=True)

    # ------------------------------------------------------------ weights
    def _shapes(self) -> List[Dict[str, tuple]]:
        shapes, fan_in = [], self.num_inputs
        for units in self.layers:
            shapes.append({v: ((units,) if v == "g" else (fan_in, units)) for v in VARIABLES})
            fan_in = units
        return shapes

    @staticmethod
    def _flat(layers: List[Dict[str, np.ndarray]]) -> List[np.ndarray]:
        """Per-layer ``{variable: array}`` as the flat list of :attr:`weights`."""
        return [layer[v] for layer in layers for v in VARIABLES]

    def _draw(self, p: int, attempt: int) -> List[np.ndarray]:
        """Attempt ``attempt`` of member ``p`` from ``recipe.family(candidate, attempt)``:
        candidate 0's published first draw is what ``train_arithmetic(seed=s)`` starts
        from; every other draw comes from the member's generator."""
        i, c = self.members[p]
        family = self.recipe.family(c, attempt)
        if attempt == 0 and c == 0 and family == "published":
            keras.utils.set_random_seed(self.seeds[i])
            model = self.keras_model()
            return [getattr(layer, v).numpy() for layer in model.layers for v in VARIABLES]
        return self._flat(draw_initial_weights(family, self.rngs[p], self._shapes()))

    def keras_model(self, p: Optional[int] = None) -> keras.Model:
        """A Keras ``Sequential`` of INALU layers (with member ``p``'s weights if given),
        named ``inalu_0``, ``inalu_1``, ... (not by how many layers this process made
        before: a formula that names them reads the same in a resumed run)."""
        model = keras.Sequential([keras.Input((self.num_inputs,))]
                                 + [INALU(u, name=f"inalu_{k}") for k, u in enumerate(self.layers)])
        if p is not None:
            values = iter(self.member_weights(p))
            for layer in model.layers:
                for v in VARIABLES:
                    getattr(layer, v).assign(next(values))
        return model

    # ------------------------------------------------------------ the compiled step
    def _state(self) -> tuple:
        return (self._last_loss,)

    def _set_state(self, state: tuple) -> None:
        (self._last_loss,) = state

    def _record_dtypes(self) -> Tuple[tf.DType, ...]:
        return tf.float32, tf.bool

    def _chunk_inputs(self, start: int) -> tuple:
        steps, r = self.steps_per_epoch, self.recipe
        rows = np.stack([i * self.n + rng.permutation(self.n)[:steps * self.batch_size]
                         .reshape(steps, self.batch_size)
                         for (i, _), rng in zip(self.members, self._shufflers)]).astype(np.int32)
        self._gate_open = np.array([r.gate_open(start + k) for k in range(steps)])
        reg_allowed = np.array([r.regularize(self._epochs_since[p], -np.inf)
                                for p in range(self.P)])
        return (self._x, self._y, tf.constant(rows), tf.constant(self._gate_open),
                tf.constant(self.active), tf.constant(reg_allowed))

    def _step(self, i, state, inputs):
        """One batch of every member: the gate branch ``recipe.gate_open`` picks (its
        gradients clipped), then the regulariser alone where ``recipe.regularize``
        allows it on the member's last batch MSE."""
        (flat, slots, last_loss), r = state, self.recipe
        x, y, rows, gate_open, active, reg_allowed = inputs
        update = self.optimizer.update

        def clip(grad, bounds):
            return grad if bounds is None else tf.clip_by_value(grad, bounds[0], bounds[1])

        xb, yb = tf.gather(x, rows[:, i]), tf.gather(y, rows[:, i])
        with tf.GradientTape() as tape:
            tape.watch(flat)
            mse = tf.reduce_mean(tf.square(_forward(xb, flat, 1e-7, 20.0)[..., 0] - yb), axis=1)
            total = tf.reduce_sum(mse)
        grads = tape.gradient(total, flat)
        reg_on = tf.logical_and(tf.logical_and(active, reg_allowed),
                                last_loss < r.regularization_loss_threshold)
        on_open = tf.logical_and(active, gate_open[i])
        on_gate = tf.logical_and(active, tf.logical_not(gate_open[i]))
        stepped = [update(w, clip(g, r.gate_clipping if j % 5 == 4 else r.clipping), s,
                          on_gate if j % 5 == 4 else on_open)
                   for j, (w, s, g) in enumerate(zip(flat, slots, grads))]
        flat, slots = [w for w, _ in stepped], [s for _, s in stepped]
        if r.regularization:
            with tf.GradientTape() as tape:
                tape.watch(flat)
                reg = tf.reduce_sum(_sparsity(flat, 20.0))
            stepped = [update(w, clip(g, r.regularization_clipping), s, reg_on)
                       for w, s, g in zip(flat, slots, tape.gradient(reg, flat))]
            flat, slots = [w for w, _ in stepped], [s for _, s in stepped]
        last_loss = tf.where(active, mse, last_loss)
        return (flat, slots, last_loss), (mse, reg_on)

    def _evaluate(self, which: str, chunk: int = 8000) -> np.ndarray:
        flat = [tf.constant(w) for w in self.weights]
        sets = [getattr(self.tasks[i], which) for i, _ in self.members]
        total = np.zeros(self.P)
        for start in range(0, self.n, chunk):
            x = tf.constant(np.stack([s[0][start:start + chunk] for s in sets]))
            y = np.stack([s[1][start:start + chunk, 0] for s in sets]).astype(np.float64)
            pred = self._predict(x, flat).numpy().astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                total += np.sum((pred - y) ** 2, axis=1)
        return total / self.n

    # ------------------------------------------------------------ the run
    def run(self, epochs: int = DEFAULT_POPULATION_EPOCHS, verbose: int = 0,
            stream=None) -> List[SeedResult]:
        """Train up to ``epochs`` epochs; one :class:`SeedResult` per seed.

        After the run, ``self.events`` holds per member the recipe's decisions:
        ``gate_steps`` (global steps that trained the gates),
        ``regularization_started`` and ``reinitializations`` (epochs, 1-based),
        ``stopped`` (epoch or ``None``).
        """
        r, members = self.recipe, self.members
        self._epochs_since = np.zeros(self.P, int)
        self._last_loss = np.full(self.P, np.inf, np.float32)
        self._interp, self._extrap = [[] for _ in members], [[] for _ in members]
        self.events = [dict(gate_steps=[], regularization_started=[], reinitializations=[],
                            families=[r.family(c, 0)], stopped=None) for _, c in members]
        self._regularizing = np.zeros(self.P, bool)
        self._shufflers = [np.random.default_rng([self.seeds[i], c, 1]) for i, c in members]
        self._verbose, self._stream = verbose, stream
        self.train(int(epochs))
        return [self._seed_result(i) for i in range(len(self.seeds))]

    def _after_chunk(self, epoch: int, start: int, records: List[np.ndarray]) -> None:
        losses, regs = records
        mse_int, mse_ext = self._evaluate("interpolation"), self._evaluate("extrapolation")
        for p in np.flatnonzero(self.active):
            self.events[p]["gate_steps"].extend((start + np.flatnonzero(~self._gate_open))
                                                .tolist())
            self._epochs_since[p] += 1
            self._interp[p].append(float(mse_int[p]))
            self._extrap[p].append(float(mse_ext[p]))
            if regs[:, p].any() and not self._regularizing[p]:
                self.events[p]["regularization_started"].append(epoch)
                self._regularizing[p] = True
        self._epoch = epoch

    def _on_redraw(self, p: int) -> None:
        events = self.events[p]
        events["families"].append(self.recipe.family(self.members[p][1], int(self.redraws[p])))
        events["reinitializations"].append(self._epoch)
        self._epochs_since[p], self._regularizing[p] = 0, False
        self._last_loss[p] = np.inf

    def _not_stuck(self, p: int, losses: np.ndarray) -> None:
        """A converged member stops, and with it its seed's other candidates."""
        if self.recipe.converged(losses):
            seed_index = self.members[p][0]
            for q, (i, _) in enumerate(self.members):
                if i == seed_index and self.active[q]:
                    self.active[q] = False
                    self.events[q]["stopped"] = self._epoch

    def _end_of_chunk(self) -> None:
        super()._end_of_chunk()
        if self._verbose:
            print(f"epoch {self._epoch}: members running {int(self.active.sum())}/{self.P}, "
                  f"reinitialisations {int(self.redraws.sum())}",
                  file=self._stream or sys.stdout, flush=True)

    def _seed_result(self, i: int) -> SeedResult:
        interp, extrap = self._interp, self._extrap
        mine = [p for p, (j, _) in enumerate(self.members) if j == i]
        best = min(mine, key=lambda p: np.nanmin(np.asarray(interp[p], float))
                   if interp[p] and not np.all(np.isnan(interp[p])) else np.inf)
        task = self.tasks[i]
        success, best_epoch = succeeded(interp[best], extrap[best], self.thresholds[i])
        formula = explain(self.keras_model(best), input_names=list(task.input_names))[0]
        return SeedResult(
            expression=str(self.expression), seed=self.seeds[i], success=bool(success),
            formula=str(formula), formula_correct=bool(formula_matches(formula, task.expression)),
            candidate=self.members[best][1], family=self.events[best]["families"][-1],
            best_epoch=int(best_epoch), threshold=float(self.thresholds[i]),
            epochs=max(len(interp[p]) for p in mine),
            reinitializations=sum(len(self.events[p]["reinitializations"]) for p in mine),
            interpolation_mse=interp[best], extrapolation_mse=extrap[best])


def train_population(expression: Union[str, Expression], seeds: Sequence[int],
                     recipe: Optional[InaluRecipe] = None,
                     epochs: int = DEFAULT_POPULATION_EPOCHS, verbose: int = 0,
                     **options: Any) -> SuiteRow:
    """Train ``seeds`` of one expression as one :class:`ArithmeticPopulation`; one table row.

    Args:
        expression, seeds, recipe: see :class:`ArithmeticPopulation`.
        epochs: epoch budget.
        verbose: 1 prints one line per epoch.
        **options: further :class:`ArithmeticPopulation` arguments.

    Returns:
        A :class:`SuiteRow`.
    """
    epochs = _checks.integer("epochs", epochs, minimum=1)
    start = time.perf_counter()
    population = ArithmeticPopulation(expression, seeds, recipe, **options)
    results = population.run(epochs, verbose=verbose)
    wall = time.perf_counter() - start
    successes = sum(r.success for r in results)
    return SuiteRow(expression=str(population.expression), successes=successes,
                    seeds=len(results), wilson_95=wilson_interval(successes, len(results)),
                    formula_recovered=sum(r.formula_correct for r in results),
                    median_epochs=float(np.median([r.epochs for r in results])),
                    wall_time_s=wall, reinitializations=sum(r.reinitializations
                                                            for r in results),
                    results=results)


#: Seconds per member, epoch and training sample of a population run, measured on the
#: shared 2-core machine (BENCHMARKS.md: about 100 s per expression of the suite, 10
#: seeds x 12 candidates, about 15 epochs of 64 000 samples, layers 3,2,1).
SECONDS_PER_MEMBER_SAMPLE = 9e-7


def estimated_seconds(expressions: int, seeds: int, candidates: int, epochs: int,
                      n: int) -> float:
    """A rough time of ``expressions`` populations at their whole epoch budget.

    Example:
    >>> round(estimated_seconds(6, 10, 12, 30, 64000) / 60)  # the suite, in minutes
    21
    """
    return expressions * seeds * candidates * epochs * n * SECONDS_PER_MEMBER_SAMPLE


def format_suite_table(rows: Sequence[SuiteRow]) -> str:
    """A Markdown table: expression, successes/seeds (Wilson 95 %), formula, epochs, wall, reinits."""
    lines = ["| expression | successes | Wilson 95 % | formula recovered | median epochs "
             "| wall time | reinitialisations |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        low, high = row.wilson_95
        lines.append(f"| `{row.expression}` | {row.successes}/{row.seeds} | "
                     f"{low:.0%}–{high:.0%} | {row.formula_recovered}/{row.seeds} | "
                     f"{row.median_epochs:g} | {row.wall_time_s:.0f} s | "
                     f"{row.reinitializations} |")
    return "\n".join(lines)


def write_suite(rows: Sequence[SuiteRow], out_dir: str, recipe: InaluRecipe,
                ranges: Optional[Dict[str, Any]] = None) -> Tuple[Optional[str], Optional[str]]:
    """Write ``arithmetic_suite.md`` (the table) and ``arithmetic_suite.json`` (with the
    recipe and, when given, the ``train_range``/``extrapolation_range`` used) into the
    folder ``out_dir`` (check it first with
    :func:`~tensorflow_kappa._checks.writable_folder`, as ``kappa
    arithmetic`` does before training); their paths, None for a file that could not
    be written (an OutputWriteWarning names it)."""
    table = format_suite_table(rows) + "\n"

    def write_table(path: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(table)

    record = dict(recipe=jsonable(recipe.to_dict()), **jsonable(dict(ranges or {})),
                  rows=[r.to_dict() for r in rows])
    md = try_write(write_table, os.path.join(out_dir, "arithmetic_suite.md"))
    js = try_write(lambda p: write_json(p, record), os.path.join(out_dir, "arithmetic_suite.json"))
    return md, js

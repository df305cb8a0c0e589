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
*member* of a population trained in one TensorFlow graph
(:mod:`~tensorflow_kappa.experiments.nalm.module_population`, on the package's one
population trainer, :mod:`tensorflow_kappa.experiments.population`, whose masked
optimizer steps each member by Keras' RMSprop or Adam where the recipe says so).  At
the end each member's selected weights are loaded into a real layer: its
extrapolation MSE is recomputed there (:attr:`Member.layer_mse`), and its formula
read with ``explain``.

The package: :mod:`.specs` (operations, ranges, module kinds),
:mod:`.module_population`, :mod:`.results` (records and the table), and here
:func:`run_nalm_benchmark`, what ``kappa nalm-benchmark`` runs.

Module kinds and their training (each a :class:`~.specs.ModelSpec`, see
:data:`~.specs.MODELS`):

* ``inalu`` (separate weights) and ``inalu-shared``: RMSprop(0.01), batch 64, up to
  100 000 steps, each member trained by the one record of the iNALU recipe,
  :data:`~.specs.INALU_RECIPE` (an :class:`~tensorflow_kappa.recipes.InaluRecipe`,
  executed through its rule methods: ``gate_open``, ``regularize``, ``stuck``,
  ``family``).  It is the report's record (:meth:`InaluRecipe.report`): gates trained
  alone on 2 of every 10 steps, gradients clipped to ±0.1 in both branches, the
  sparsity regulariser as its own step once enough epochs of 1 000 steps
  (``ModelSpec.steps_per_epoch``, the one unit conversion) have completed since the
  last (re)initialisation and while the member's last step loss is below 1, and the
  authors' reinitialisation rule, checked every ``eval_every`` steps (the report: every
  epoch) on the member's per-step data losses.  Deviations from the report's values,
  for single modules, are fields of that record: the rule looks at the last 5 000 step
  losses once more than 5 000 are recorded (report: all, more than 10 000) and calls a
  member bad above a loss of 1e-5 (report: 1.0; on U(0.1, 0.2) the targets are below
  0.04, so "loss above 1" would never reinitialise a stuck member there); the
  regulariser waits for more than 20 epochs (report: 10; why: the comment at
  :data:`~.specs.INALU_RECIPE`).  Early stopping is the benchmark's own: the run ends
  once every member is solved.
* ``nalu``: Adam(0.01), no regulariser, 20 000 steps (Trask et al. use none).
* ``nau`` (``+ −``) and ``nmu`` (``×``): Adam(0.01), their own regulariser (λ̂ = 10)
  warmed up linearly from 20 % to 35 % of the 20 000 steps (Madsen & Johansen: from
  step 1e6 to 2e6 of 5e6, with Adam(1e-3); compressed here to fit the time budget).

Data: fresh training batches every step, drawn in the graph; each run has its own
interpolation and extrapolation sets of ``n_eval`` samples.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import os
import time
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import keras

from tensorflow_kappa import _checks
from tensorflow_kappa.datasets.arithmetic import check_range
from tensorflow_kappa.evaluation import EPSILON
from tensorflow_kappa.experiments.nalm.module_population import ModulePopulation
from tensorflow_kappa.experiments.nalm.results import (BenchmarkResult, CellResult, Member,
                                                       aggregate, format_table)
from tensorflow_kappa.experiments.nalm.specs import (DEFAULT_RANGES, INALU_RECIPE, MODELS, OPS,
                                                     ModelSpec)
from tensorflow_kappa.experiments.population import quiet_retracing
from tensorflow_kappa.experiments import resumable
from tensorflow_kappa.experiments.reporting import try_write, write_json, write_text
from tensorflow_kappa.experiments.resumable import RunFolder

__all__ = [
    "DEFAULT_RANGES",
    "INALU_RECIPE",
    "MODELS",
    "OPS",
    "SECONDS_PER_MEMBER_STEP",
    "BenchmarkResult",
    "CellResult",
    "Member",
    "ModelSpec",
    "estimated_seconds",
    "format_table",
    "parse_ranges",
    "run_nalm_benchmark",
]


def parse_ranges(ranges) -> Tuple[Tuple[Any, Any], ...]:
    """The benchmark's ``(train_range, extrapolation_range)`` pairs, each range checked.

    A range is ``(lo, hi)`` or a union of such pairs (see ``check_range``).

    Raises:
        ValueError: not a list of pairs, an empty list or a bad range (named).

    Example:
    >>> parse_ranges([((-2, 2), (2, 6))])
    (((-2, 2), (2, 6)),)
    """
    if isinstance(ranges, (str, bytes)) or not hasattr(ranges, "__iter__"):
        raise ValueError(f"ranges must be a list of (train_range, extrapolation_range) pairs, "
                         f"got {ranges!r}")
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


def _run_module(spec: ModelSpec, members: List[Member], ranges, total: int, chunk: int,
                batch_size: int, n_eval: int, epsilon: float, base_seed: int,
                verbose: int) -> Tuple[int, float]:
    """Train one module kind's population; returns (steps run, layer discrepancy)."""
    population = ModulePopulation(spec, members, ranges, total, chunk, batch_size, n_eval,
                                  epsilon, base_seed=base_seed)
    progress = None
    if verbose:
        ops = list(dict.fromkeys(m.op for m in members))
        seeds = len({m.seed for m in members})
        print(f"{spec.name}: {len(members)} runs ({', '.join(ops)} × "
              f"{len(ranges)} ranges × {seeds} seeds), up to {total} steps", flush=True)
        progress = keras.utils.Progbar(total, unit_name="step", stateful_metrics=["solved"])
    t0 = time.perf_counter()
    with quiet_retracing():
        used = population.run(progress)
    worst = population.finish()
    if verbose:
        solved = sum(m.success for m in members)
        print(f"{spec.name}: {solved}/{len(members)} succeeded, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return used, worst


#: Seconds per member and training step of a module population, measured on the shared
#: 2-core machine (BENCHMARKS.md: the default benchmark, about 4.7e7 member-steps at
#: full budget, in 8 min 10 s).
SECONDS_PER_MEMBER_STEP = 1e-5


def estimated_seconds(ops: Sequence[str], ranges: Sequence[Any], models: Sequence[str],
                      seeds: int, steps: Optional[int] = None,
                      specs: Optional[Mapping[str, ModelSpec]] = None) -> float:
    """A rough time of :func:`run_nalm_benchmark` with these arguments, every run at its
    whole step budget.

    Example:
    >>> round(estimated_seconds(list(OPS), DEFAULT_RANGES, list(MODELS), seeds=10) / 60)
    8
    """
    specs = MODELS if specs is None else specs
    return SECONDS_PER_MEMBER_STEP * sum(
        len([op for op in ops if op in specs[name].ops]) * len(ranges) * seeds
        * (steps if steps is not None else specs[name].steps) for name in models)


def _module_record(done: Mapping[str, Any]) -> dict:
    """A module kind's finished runs as a unit keeps them."""
    return {**done, "members": [dataclasses.asdict(m) for m in done["members"]]}


def _module_from_record(record: Mapping[str, Any]) -> dict:
    members = [Member(**{**m, "history": [tuple(h) for h in m["history"]]})
               for m in record["members"]]
    return {**record, "members": members}


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
    first_seed: int = 0,
    units: Optional[RunFolder] = None,
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
        out_dir: if given, writes ``nalm_benchmark.md`` and ``nalm_benchmark.json``
            there (the folder is checked before any work; a failed write warns
            and the result is still returned).
        verbose: 1 shows a Keras progress bar per module.
        specs: replaces :data:`MODELS` (e.g. with other optimiser settings).
        first_seed: runs use seeds ``first_seed … first_seed + seeds - 1`` (their
            weights and evaluation sets), and each module's stream of training
            batches is seeded from ``first_seed`` too: another ``first_seed`` is
            another random stream throughout.
        units: keeps each module kind's runs there as they finish (a
            :class:`~tensorflow_kappa.experiments.resumable.RunFolder`), and reads
            back those a resumed run has finished (``kappa nalm-benchmark``).

    Returns:
        A :class:`BenchmarkResult` (``.table()`` gives the Markdown table).

    Example:
    >>> result = run_nalm_benchmark(ops=["add"], models=["nau"], seeds=2,
    ...                             steps=500, verbose=0)  # doctest: +SKIP
    >>> print(result.table())  # doctest: +SKIP
    """
    specs = dict(MODELS if specs is None else specs)
    ops = tuple(ops)
    for op in ops:
        _checks.one_of("op", op, tuple(OPS))
    for name in models:
        _checks.one_of("model", name, tuple(specs))
    _checks.integer("first_seed", first_seed, minimum=0)
    for name, value in (("seeds", seeds), ("eval_every", eval_every),
                        ("batch_size", batch_size), ("n_eval", n_eval)):
        _checks.integer(name, value, minimum=1)
    if steps is not None:
        _checks.integer("steps", steps, minimum=1)
    _checks.number("epsilon", epsilon, minimum=0.0, strict_minimum=True)
    ranges = parse_ranges(ranges)
    if out_dir is not None:
        out_dir = _checks.writable_folder("out_dir", out_dir)
    start = time.perf_counter()
    members_all: List[Member] = []
    worst = 0.0
    used_steps = {}
    for k, name in enumerate(models):
        spec = specs[name]
        run_ops = [op for op in ops if op in spec.ops]
        if not run_ops:
            continue
        total = int(steps if steps is not None else spec.steps)
        chunk = min(eval_every, total)
        total = int(math.ceil(total / chunk) * chunk)

        def module(spec=spec, run_ops=run_ops, total=total, chunk=chunk, k=k):
            members = [Member(spec.name, op, r, s)
                       for op, r, s in itertools.product(run_ops, range(len(ranges)),
                                                         range(first_seed, first_seed + seeds))]
            used, discrepancy = _run_module(
                spec, members, ranges, total, chunk, batch_size, n_eval, epsilon,
                base_seed=1000 + 100 * first_seed + k, verbose=verbose)
            return {"members": members, "steps": used, "discrepancy": discrepancy}

        done = resumable.unit(units, f"module-{name}", module, encode=_module_record,
                              decode=_module_from_record)
        used_steps[name] = done["steps"]
        worst = max(worst, done["discrepancy"])
        members_all.extend(done["members"])
    config = dict(ops=list(ops), ranges=[[r[0], r[1]] for r in ranges], models=list(models),
                  seeds=int(seeds), first_seed=int(first_seed), steps=steps, steps_run=used_steps, batch_size=batch_size,
                  eval_every=eval_every, n_eval=n_eval, epsilon=epsilon,
                  specs={name: specs[name].settings() for name in models})
    result = BenchmarkResult(aggregate(members_all, ranges), members_all, config,
                             time.perf_counter() - start, worst)
    if out_dir is not None:
        try_write(lambda p: write_text(p, result.table() + "\n"),
                  os.path.join(out_dir, "nalm_benchmark.md"))
        try_write(lambda p: write_json(p, result.to_dict(), indent=1),
                  os.path.join(out_dir, "nalm_benchmark.json"))
    return result

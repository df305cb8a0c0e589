"""Single-module arithmetic benchmark with success rates.

Train one-unit INALU (separate and shared weights), NALU, NAU and NMU modules on y = x1
op x2 for op in + - * / over training/extrapolation range pairs, many seeds in one
graph; print success rates (Madsen & Johansen 2020) with Wilson 95% intervals, the
median step at which runs were solved and the sparsity error.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time

from tensorflow_kappa import _checks
from tensorflow_kappa.cli import options
from tensorflow_kappa.cli.command import Command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ops", default="add,sub,mul,div", help="subset of add,sub,mul,div")
    parser.add_argument("--ranges", default=None,
                        help="indices of the default range pairs (e.g. 0,2) or JSON "
                        "[[train, extrapolation], ...] with ranges [lo, hi] or [[lo, hi], ...]")
    parser.add_argument("--models", default="inalu,inalu-shared,nalu,nau,nmu",
                        help="subset of inalu,inalu-shared,nalu,nau,nmu")
    parser.add_argument("--steps", type=options.count, default=None,
                        help="training steps per run (default: per module)")
    parser.add_argument("--eval-every", type=options.count, default=1000)
    parser.add_argument("--n-eval", type=options.count, default=10000,
                        help="interpolation/extrapolation samples per run")


def run(args: argparse.Namespace) -> int:
    """Check the options, run the benchmark (each module kind's runs kept in ``--out`` as
    they finish, the unit ``--resume`` skips), print its table."""
    from tensorflow_kappa.experiments import nalm
    from tensorflow_kappa.experiments.resumable import check_size

    ranges = nalm.DEFAULT_RANGES if not args.ranges else _ranges(args.ranges)
    ops = options.subset("--ops", args.ops, nalm.OPS)
    models = options.subset("--models", args.models, nalm.MODELS)
    options.check_out(args.out)
    kinds = [m for m in models if set(ops) & set(nalm.MODELS[m].ops)]
    check_size(nalm.estimated_seconds(ops, ranges, models, args.seeds, args.steps),
               f"{len(kinds)} module kind(s) on {len(ops)} op(s) x {len(ranges)} range "
               f"pair(s) x {args.seeds} seeds", args.yes)
    folder = options.run_folder(args, "nalm-benchmark")
    start = time.time()
    with folder.running(len(kinds), "module kind"):
        result = nalm.run_nalm_benchmark(
            ops=ops, ranges=ranges, models=models, seeds=args.seeds,
            first_seed=args.first_seed, steps=args.steps, eval_every=args.eval_every,
            n_eval=args.n_eval, out_dir=args.out, verbose=1, units=folder)
    print()
    print(result.table())
    print()
    print(f"success: extrapolation MSE below the eps-perturbed exact solution's (eps = "
          f"{result.config['epsilon']:g}) at the best interpolation evaluation; "
          f"{result.wall_time_s:.0f} s; layer check max relative difference "
          f"{result.max_layer_discrepancy:.1e}")
    files = options.written([os.path.join(args.out, name) for name in
                             ("nalm_benchmark.md", "nalm_benchmark.json")], since=start)
    if files:
        print(f"wrote {' and '.join(files)}")
    return 0


def _ranges(text: str) -> list:
    """``--ranges``: indices of the default range pairs (``0,2``) or JSON pairs, checked by
    :func:`~tensorflow_kappa.experiments.nalm.parse_ranges`."""
    from tensorflow_kappa.experiments import nalm

    defaults = nalm.DEFAULT_RANGES
    items = [v.strip() for v in text.split(",")]
    if all(re.fullmatch(r"-?\d+", v) for v in items):
        with options.option("--ranges"):
            return [defaults[_checks.integer(f"each index of {text!r} into the default "
                                             "range pairs", int(v), minimum=0,
                                             maximum=len(defaults) - 1)] for v in items]
    try:
        ranges = json.loads(text)
    except json.JSONDecodeError as err:
        raise options.OptionError("--ranges", f"{text!r} is neither indices such as 0,2 nor "
                                  f"JSON [[train, extrapolation], ...] ({err})") from None
    with options.option("--ranges"):
        nalm.parse_ranges(ranges if isinstance(ranges, list) else [ranges])
    return ranges


COMMAND = Command("nalm-benchmark", __doc__, _arguments, run, parents=lambda: [
    options.population(10, "runs per cell (default %(default)s); the first seed also seeds "
                       "the batches"),
    options.output("runs/nalm-benchmark"), options.resumable()])

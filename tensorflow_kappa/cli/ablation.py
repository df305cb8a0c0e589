"""2x2 ablation: float vs fixed point, controller off vs on.

Train a one-layer teacher-student regression four times (float vs fixed point,
controller off vs on) plus a silent-learning-death case, print a summary table and write
FitHistory files and PNGs.
"""
from __future__ import annotations

import argparse
import os
import time

from tensorflow_kappa.cli import options
from tensorflow_kappa.cli.command import Command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default=None,
                        help="fixed-point side: one format for every field (e.g. s8.6) or a "
                        "JSON file {layer: {field: format}}; default: 16-bit formats")
    parser.add_argument("--chi", type=options.positive, default=1.5)
    parser.add_argument("--n", type=options.count, default=1024, help="examples")
    parser.add_argument("--input-dim", type=options.count, default=16)
    parser.add_argument("--output-dim", type=options.count, default=4)
    parser.add_argument("--noise", type=options.nonnegative, default=0.1)
    parser.add_argument("--death-update", default="s8.4",
                        help="coarse update format of the learning-death case")
    parser.add_argument("--death-learning-rate", type=options.positive, default=0.1)
    parser.add_argument("--no-death", action="store_true",
                        help="skip the learning-death case")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="progress bars")


def run(args: argparse.Namespace) -> int:
    """Check the formats and the folder, run the ablation (each run kept in ``--out`` as
    it finishes, the unit ``--resume`` skips), print its table and summary."""
    from tensorflow_kappa.experiments import ablation
    from tensorflow_kappa.experiments.resumable import check_size
    from tensorflow_kappa.quantization import FixedPoint, PrecisionDict, ensure_precision_dict

    precision = args.precision
    with options.option("--precision"):
        if precision is not None and (precision.endswith(".json") or os.path.isfile(precision)):
            precision = PrecisionDict.from_json(precision)
        ensure_precision_dict(precision)
    with options.option("--death-update"):
        FixedPoint.coerce(args.death_update)
    options.check_out(args.out)
    total = 4 if args.no_death else 6
    check_size(ablation.estimated_seconds(total, args.epochs, args.n, args.batch_size),
               f"{total} runs x {args.epochs} epochs of {args.n} examples", args.yes)
    folder = options.run_folder(args, "ablation")
    start = time.time()
    print(f"kappa ablation: teacher-student n={args.n}, {args.input_dim}->{args.output_dim}, "
          f"lr={args.learning_rate}, chi={args.chi}, epochs={args.epochs}, seed={args.seed}")
    with folder.running(total, "run"):
        runs = ablation.run_ablation(
            precision, learning_rate=args.learning_rate, chi=args.chi, epochs=args.epochs,
            batch_size=args.batch_size, seed=args.seed, n=args.n, input_dim=args.input_dim,
            output_dim=args.output_dim, noise=args.noise,
            death_update=None if args.no_death else args.death_update,
            death_learning_rate=args.death_learning_rate, out_dir=args.out,
            plots=not args.no_plots, verbose=args.verbose, log=print, units=folder)
    print()
    print(ablation.format_table(runs))
    print()
    print(ablation.describe(runs))
    summary = os.path.join(args.out, "summary.txt")
    files = [f for r in runs for f in r.files] + options.written([summary], since=start)
    print(f"\nwrote {len(files)} files (histories, plots, summary.txt) in {args.out}")
    return 0


COMMAND = Command("ablation", __doc__, _arguments, run, parents=lambda: [
    options.training(epochs=10, learning_rate=1.8), options.seed(),
    options.output("runs/ablation"), options.resumable()])

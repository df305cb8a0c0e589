"""Float32 vs 16-bit fixed-point training of a CNN on 8x8 digits.

Train a small CNN on scikit-learn's bundled 8x8 digits (no download) with model.fit in
float32 and with its weights stored in each 16-bit fixed-point format, with
round-to-nearest and stochastic rounding (activations, errors, gradients and input in
16-bit fixed point too); print a table (test accuracy, epochs to a target, update
underflow, progress along the requested step, saturation) and write it with a JSON
record and a PNG of accuracy and underflow per epoch. Reproduces Gupta et al. 2015.
Needs scikit-learn.
"""
from __future__ import annotations

import argparse

from tensorflow_kappa.cli import options
from tensorflow_kappa.cli.command import Command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--formats", type=options.formats, default="s16.14,s16.12,s16.10,s16.8",
                        help="storage formats of weights and biases, comma-separated")
    parser.add_argument("--roundings", default="nearest_even,stochastic",
                        help="rounding modes, comma-separated")
    parser.add_argument("--every", type=options.count, default=10,
                        help="QuantizationMonitor interval in steps")
    parser.add_argument("--target", type=options.fraction, default=0.9,
                        help="test accuracy whose first epoch the table reports")
    parser.add_argument("--limit", type=options.integer(minimum=2), default=None,
                        help="use only this many images, at least 2: one to train on, one to "
                        "test (smoke runs)")


def run(args: argparse.Namespace) -> int:
    """Check the formats, roundings and the folder, run the study (each run kept in
    ``--out`` as it finishes, the unit ``--resume`` skips), print and write its table."""
    from tensorflow_kappa.experiments import fixed_point
    from tensorflow_kappa.experiments.resumable import check_size

    roundings = options.subset("--roundings", args.roundings, fixed_point.ROUNDINGS)
    with options.option("--formats"):  # each run's precision dict, before any training
        plan = fixed_point.study_plan(args.formats, roundings)
    options.check_out(args.out)
    check_size(fixed_point.estimated_seconds(len(plan), args.epochs, args.limit),
               f"{len(plan)} runs x {args.epochs} epochs", args.yes)
    folder = options.run_folder(args, "fixed-point")
    print(f"kappa fixed-point: digits CNN, SGD(lr={args.learning_rate}), batch "
          f"{args.batch_size}, {args.epochs} epochs, seed {args.seed}; float32, then weights "
          f"stored in {', '.join(args.formats)} with {', '.join(roundings)}", flush=True)
    try:
        with folder.running(len(plan), "run"):
            runs = fixed_point.run_study(
                args.formats, roundings, epochs=args.epochs, learning_rate=args.learning_rate,
                batch_size=args.batch_size, seed=args.seed, every=args.every,
                limit=args.limit, log=lambda line: print(line, flush=True), units=folder)
    except ImportError as err:  # scikit-learn missing: say how to get it
        raise SystemExit(f"kappa fixed-point: error: {err}") from None
    config = options.run_settings(args)
    paths = fixed_point.write_results(runs, args.out, args.target, {**config,
                                                                     "roundings": roundings})
    print()
    print(fixed_point.format_table(runs, args.target))
    print(f"\nwrote {paths['table']}, {paths['json']} and {paths['plot']}")
    return 0


COMMAND = Command("fixed-point", __doc__, _arguments, run, parents=lambda: [
    options.training(epochs=30, learning_rate=0.05), options.seed(),
    options.output("runs/fixed-point"), options.resumable()])

"""What storing saved weights in fixed point would do to them.

Read the weights of a saved model (.keras, .weights.h5 or other Keras HDF5, .npz, .npy)
without TensorFlow and print, per layer and weight and per format, the fractions
saturated, near a rail and underflowing and the maximum and RMS quantization error; with
several formats, a table comparing them and a suggestion. Optimizer state is left out.
"""
from __future__ import annotations

import argparse
import sys

from tensorflow_kappa.cli import options
from tensorflow_kappa.cli.command import Command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_file", metavar="MODEL_FILE")
    parser.add_argument("--format", "--formats", dest="formats", type=options.formats,
                        required=True, metavar="FORMATS",
                        help="one format (s8.4) or several, comma-separated (s8.4,s8.6,s16.12)")
    parser.add_argument("--near-rail", type=options.fraction, default=0.9,
                        help="rail_stats' near_rail (default %(default)s)")
    parser.add_argument("--seed", type=options.op_seed, default=(0, 0), metavar="A,B",
                        help="seed of stochastic formats (default 0,0)")
    parser.add_argument("--per-weight", action="store_true",
                        help="the per-weight table for every format (always shown for one)")


def run(args: argparse.Namespace) -> int:
    """Load the weights, report every format, compare them and suggest one."""
    from tensorflow_kappa.experiments import inspect_weights as iw

    try:
        with options.option("MODEL_FILE"):
            weights = iw.load_weights(args.model_file)
        reports = iw.inspect_weights(weights, args.formats, args.near_rail, args.seed)
    except ImportError as err:
        print(f"kappa inspect: {err}", file=sys.stderr)
        return 1
    summaries = iw.summarize(reports)
    values = sum(w.values.size for w in weights)
    print(f"kappa inspect: {args.model_file}: {len(weights)} weights, {values} values; "
          f"near rail: in the outer {100 * (1 - args.near_rail):.3g}% of each half-range")
    if len(summaries) == 1 or args.per_weight:
        print()
        print(iw.format_weights(reports))
    print()
    print(iw.format_comparison(summaries))
    print()
    print(iw.suggest(summaries, weights))
    return 0


COMMAND = Command("inspect", __doc__, _arguments, run, needs_tensorflow=False)

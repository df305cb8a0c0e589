"""Timings: ops (default), xla, loop-controller, trainer, core or fixed-point.

ops: quantize_tensor, rail_stats and update_quantize_store as custom ops, as pure-TF
twins (tf.function and XLA) and TensorFlow's nearest built-ins, side by side on one
tensor; ratios against the performance targets and GPU bandwidth where a GPU is visible.
xla: the ops' XLA lowerings, fused into quantize(x @ W + b) against the same graph
without the quantize and with the pure-TF twin, and alone against the CPU kernel.
loop-controller: LoopController against plain model.fit (time per step, traces, tracing
time). trainer: train_instrumented compiled, eager and against model.fit. core: the
NumPy binding (tensorflow_kappa.core) against the custom ops. fixed-point: model.fit of
the digits CNN in fixed point (custom ops, pure-TF twins, with QuantizationMonitor)
against float. All: medians of interleaved rounds, one table.

A bench keeps no partial results: its candidates are timed in interleaved rounds, so no
cell of its table is finished before the last round; Ctrl-C ends it with one line saying
so.
"""
from __future__ import annotations

import argparse
import importlib

from tensorflow_kappa.cli import options
from tensorflow_kappa.cli.command import Command

#: The suites: subcommand -> module of tensorflow_kappa.experiments.
SUITES = {"ops": "op_bench", "xla": "xla_bench", "loop-controller": "loop_controller_bench",
          "trainer": "trainer_bench", "core": "core_bench", "fixed-point": "fixed_point_bench"}
#: The suites whose ``run`` takes ``size``.
SIZED = ("ops", "xla", "core")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", nargs="?", default="ops", choices=tuple(SUITES))
    parser.add_argument("--size", type=options.count, default=None,
                        help="float32 elements (ops, core; xla: the standalone op; default "
                        "2**24)")
    parser.add_argument("--repeats", type=options.count, default=None,
                        help="timed rounds (default: ops 7, xla 15, loop-controller 7, "
                             "trainer 5, core 7, fixed-point 10)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run (a small size or few rounds; --size and --repeats "
                        "still apply)")


def run(args: argparse.Namespace) -> int:
    """Run the chosen suite and print its report."""
    from tensorflow_kappa.experiments.resumable import Interrupted
    from tensorflow_kappa.experiments.timing import format_report

    bench = importlib.import_module(f"tensorflow_kappa.experiments.{SUITES[args.suite]}")
    settings = dict(bench.QUICK) if args.quick else {}
    if args.size is not None and args.suite in SIZED:
        settings["size"] = args.size
    if args.repeats is not None:
        settings["repeats"] = args.repeats
    try:
        report = bench.run(**settings)
    except Interrupted as stop:
        stop.summary = ("no timing is kept: the candidates are timed in interleaved rounds, "
                        "so no cell is finished before the last round (run it again, or "
                        "with fewer --repeats)")
        raise
    print(format_report(report))
    return 0


COMMAND = Command("bench", __doc__, _arguments, run)

"""``kappa bench [ops|xla|loop-controller|trainer|core|fixed-point]``: timings."""
from __future__ import annotations

import argparse
from functools import partial

from tensorflow_kappa.cli import options


def register(commands: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Add ``bench`` to the subcommands ``commands``."""
    parser = commands.add_parser(
        "bench", help="timings: ops (default), xla, loop-controller, trainer, core or "
        "fixed-point",
        description="ops: quantize_tensor, rail_stats and update_quantize_store as custom "
        "ops, as pure-TF twins (tf.function and XLA) and TensorFlow's nearest built-ins, "
        "side by side on one tensor; ratios against the performance targets and GPU "
        "bandwidth where a GPU is visible. xla: the ops' XLA lowerings, fused into "
        "quantize(x @ W + b) against the same graph without the quantize and with the "
        "pure-TF twin, and alone against the CPU kernel. loop-controller: LoopController "
        "against plain model.fit (time per step, traces, tracing time). trainer: "
        "train_instrumented compiled, eager and against model.fit. core: the NumPy binding "
        "(tensorflow_kappa.core) against the custom ops. fixed-point: model.fit of the "
        "digits CNN in fixed point (custom ops, pure-TF twins, with QuantizationMonitor) "
        "against float. All: medians of interleaved rounds.")
    parser.add_argument("suite", nargs="?", default="ops",
                        choices=("ops", "xla", "loop-controller", "trainer", "core",
                                 "fixed-point"))
    parser.add_argument("--size", type=options.count, default=1 << 24,
                        help="float32 elements (ops, core; xla: the standalone op)")
    parser.add_argument("--repeats", type=options.count, default=None,
                        help="timed rounds (default: ops 7, xla 15, loop-controller 7, "
                             "trainer 5, core 7, fixed-point 10)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run (loop-controller, trainer, fixed-point)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the chosen benchmark and print its report."""
    from tensorflow_kappa.experiments import (core_bench, fixed_point_bench,
                                              loop_controller_bench, op_bench,
                                              trainer_bench, xla_bench)

    if args.suite == "ops":
        print(op_bench.format_report(op_bench.run(size=args.size, repeats=args.repeats or 7)))
        return 0
    if args.suite == "xla":
        print(xla_bench.format_report(xla_bench.run(size=args.size, repeats=args.repeats or 15)))
        return 0
    if args.suite == "core":
        repeats = args.repeats or 7
        candidates, targets = core_bench.run(size=args.size, repeats=repeats)
        print(core_bench.format_report(candidates, targets, args.size, repeats))
        return 0
    bench = {"loop-controller": loop_controller_bench, "trainer": trainer_bench,
             "fixed-point": fixed_point_bench}[args.suite]
    settings = dict(bench.QUICK) if args.quick else {}
    if args.repeats:
        settings["rounds"] = args.repeats
    bench.run(log=partial(print, flush=True), **settings)
    return 0

"""The ``kappa`` command line: thin commands over :mod:`tensorflow_kappa.experiments`.

    kappa info     versions, the op library, its kernels, the active ops
    kappa ablation 2x2 float/fixed-point x controller ablation, with plots
    kappa arithmetic  a deep iNALU stack on the report's arithmetic task, end to end
    kappa nalm-benchmark  single-module arithmetic benchmark: INALU, NALU, NAU, NMU
    kappa bench [ops|loop-controller|trainer]  timings: the quantization ops against
                   their twins and TF built-ins (default), LoopController against
                   plain fit, the instrumented trainer against fit

TensorFlow is imported by :func:`main` after the arguments are parsed, not
by this module, so ``kappa --help`` and argument errors need no TensorFlow.
TensorFlow 2.21 writes its native start-up lines (oneDNN, CPU features, absl's
"before InitializeLog" banner) to stderr whatever ``TF_CPP_MIN_LOG_LEVEL``
says; :func:`import_tensorflow_quietly` drops those below the level that
variable names (default 2: errors only, as TensorFlow documents it; a user's
own setting is respected), so every command prints only its own output.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import re
import tempfile
from functools import partial
from typing import Sequence

# A native log line: severity letter, MMDD, time (glog/absl format).
_NATIVE_LINE = re.compile(r"^([IWEF])\d{4} \d")
_NATIVE_LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called"


def _keep_native_lines(text: str, min_level: int) -> list:
    """The lines of TensorFlow's native start-up output at or above ``min_level``
    (continuation lines follow their first line's fate)."""
    kept, keep = [], True
    for line in text.splitlines():
        match = _NATIVE_LINE.match(line)
        if match:
            keep = _NATIVE_LEVELS[match.group(1)] >= min_level
        elif line.startswith(_ABSL_BANNER):
            keep = min_level <= 1
        if keep:
            kept.append(line)
    return kept


def import_tensorflow_quietly() -> None:
    """Import TensorFlow, dropping its native start-up lines below
    ``TF_CPP_MIN_LOG_LEVEL`` (set to 2 here unless the user set it)."""
    if "tensorflow" in sys.modules:
        return
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    min_level = int(level) if level.strip().isdigit() else 0
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
    for line in _keep_native_lines(text, min_level):
        print(line, file=sys.stderr)


def _cmd_info(args: argparse.Namespace) -> int:
    import keras
    import tensorflow as tf

    import tensorflow_kappa as tk
    from tensorflow_kappa import _ops

    print(f"tensorflow_kappa {tk.__version__} at {tk.__path__[0]}")
    print(f"TensorFlow       {tf.__version__} (Keras {keras.__version__})")
    gpus = tf.config.list_physical_devices("GPU")
    print(f"GPUs visible     {len(gpus)}" + (f" ({', '.join(g.name for g in gpus)})" if gpus else ""))
    print(f"op library       {_ops.LIBRARY_PATH}")
    try:
        lib = _ops.load_library()
    except ImportError as err:
        print(f"  not loadable:  {err}")
        return 1
    info = json.loads(lib.kappa_build_info().numpy().decode())
    print(f"  built for      TensorFlow {info['tf_version']}")
    print("  CPU kernels    yes")
    if info["cuda"]:
        print(f"  CUDA kernels   yes (sm_{', sm_'.join(info['cuda_archs'])})")
    else:
        print("  CUDA kernels   no")
    if _ops.fallback_requested():
        print(f"active ops       pure TensorFlow ({_ops.FALLBACK_ENV} is set)")
    else:
        print("active ops       custom kernels")
    return 0


def _cmd_ablation(args: argparse.Namespace) -> int:
    from tensorflow_kappa.experiments import ablation
    from tensorflow_kappa.quantization import PrecisionDict

    precision = args.precision
    if precision is not None and (precision.endswith(".json") or os.path.isfile(precision)):
        precision = PrecisionDict.from_json(precision)
    print(f"kappa ablation: teacher-student n={args.n}, {args.input_dim}->{args.output_dim}, "
          f"lr={args.learning_rate}, chi={args.chi}, epochs={args.epochs}, seed={args.seed}")
    runs = ablation.run_ablation(
        precision, learning_rate=args.learning_rate, chi=args.chi, epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, n=args.n, input_dim=args.input_dim,
        output_dim=args.output_dim, noise=args.noise,
        death_update=None if args.no_death else args.death_update,
        death_learning_rate=args.death_learning_rate, out_dir=args.out,
        plots=not args.no_plots, verbose=args.verbose, log=print)
    print()
    print(ablation.format_table(runs))
    print()
    print(ablation.describe(runs))
    print(f"\nhistories, plots and summary.txt in {args.out}")
    return 0


def _cmd_arithmetic(args: argparse.Namespace) -> int:
    from tensorflow_kappa.datasets.expression import parse_expression
    from tensorflow_kappa.experiments.arithmetic import train_arithmetic
    from tensorflow_kappa.recipes import InaluRecipe

    recipe = InaluRecipe.report() if args.report else InaluRecipe()
    if args.candidates is not None:
        recipe = dataclasses.replace(recipe, candidates=args.candidates)
    name = "the report's recipe" if args.report else "the default recipe"
    if args.suite or args.seeds is not None:
        return _arithmetic_population(args, recipe, name)
    expression = parse_expression(args.expression, args.inputs)  # parsed once; fails early
    options = dict(expression=expression, num_inputs=args.inputs, layers=args.layers,
                   epochs=args.epochs or 60, n=args.n, out_dir=args.out, verbose=args.verbose,
                   controller_options={"report": args.report})
    print(f"kappa arithmetic: y = {args.expression} on {args.inputs} inputs, INALU layers "
          f"{args.layers}, up to {options['epochs']} epochs of {args.n} samples, batch 64, "
          f"RMSprop(0.01), {name}")
    r = train_arithmetic(seed=args.seed, **options)
    e = r.best_epoch
    verdict = "SUCCESS" if r.success else "NO SUCCESS"
    print(f"verdict: {verdict}: extrapolation MSE {r.extrapolation_mse[e]:.3g} "
          f"{'<' if r.success else '>='} {r.threshold:.3g} (the ε-perturbed exact "
          f"solution) at epoch {e + 1}, the epoch with the best interpolation MSE "
          f"({r.interpolation_mse[e]:.3g})")
    print(f"formula: {r.formula}  "
          f"({'matches' if r.formula_correct else 'does not match'} {r.expression})")
    print(f"{r.epochs} epochs, {r.steps} steps, {len(r.reinitializations)} "
          f"reinitialisations, {r.wall_time_s:.0f} s")
    print(f"wrote {r.plot_path} and {r.summary_path}")
    return 0


def _arithmetic_population(args: argparse.Namespace, recipe, name: str) -> int:
    """``--seeds M`` / ``--suite``: each expression's seeds as one population; one table."""
    from tensorflow_kappa.datasets import ARITHMETIC_SUITE
    from tensorflow_kappa.datasets.expression import parse_expression
    from tensorflow_kappa.experiments import arithmetic_population as pop

    texts = list(ARITHMETIC_SUITE) if args.suite else [args.expression]
    expressions = [parse_expression(text, args.inputs) for text in texts]  # fail early
    os.makedirs(args.out, exist_ok=True)  # a bad --out fails before the training, not after
    seeds = list(range(args.first_seed, args.first_seed + (args.seeds or 10)))
    epochs = args.epochs or pop.DEFAULT_POPULATION_EPOCHS
    print(f"kappa arithmetic: {len(expressions)} expression(s) on {args.inputs} inputs, "
          f"seeds {seeds[0]}-{seeds[-1]}, {recipe.candidates} candidate(s) per seed, up to "
          f"{epochs} epochs of {args.n} samples, {name}, one population per expression")
    rows = []
    for expression in expressions:
        row = pop.train_population(expression, seeds, recipe, epochs=epochs,
                                   verbose=int(args.verbose >= 2), layers=args.layers,
                                   num_inputs=args.inputs, n=args.n)
        rows.append(row)
        print(pop.format_suite_table([row]).splitlines()[-1], flush=True)
    print()
    print(pop.format_suite_table(rows))
    md, js = pop.write_suite(rows, args.out, recipe)
    print(f"wrote {md} and {js}")
    return 0


def _cmd_nalm_benchmark(args: argparse.Namespace) -> int:
    from tensorflow_kappa.experiments import nalm

    def names(text):
        return [v.strip() for v in text.split(",") if v.strip()]

    ranges = nalm.DEFAULT_RANGES
    if args.ranges:
        try:
            ranges = [nalm.DEFAULT_RANGES[int(i)] for i in names(args.ranges)]
        except ValueError:
            ranges = json.loads(args.ranges)
    result = nalm.run_nalm_benchmark(
        ops=names(args.ops), ranges=ranges, models=names(args.models), seeds=args.seeds,
        steps=args.steps, eval_every=args.eval_every, n_eval=args.n_eval, out_dir=args.out,
        verbose=1)
    print()
    print(result.table())
    print()
    print(f"success: extrapolation MSE below the eps-perturbed exact solution's (eps = "
          f"{result.config['epsilon']:g}) at the best interpolation evaluation; "
          f"{result.wall_time_s:.0f} s; layer check max relative difference "
          f"{result.max_layer_discrepancy:.1e}")
    if args.out:
        print(f"wrote {args.out}/nalm_benchmark.md and {args.out}/nalm_benchmark.json")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from tensorflow_kappa.experiments import loop_controller_bench, op_bench, trainer_bench

    if args.suite == "ops":
        print(op_bench.format_report(op_bench.run(size=args.size, repeats=args.repeats or 7)))
        return 0
    bench = loop_controller_bench if args.suite == "loop-controller" else trainer_bench
    options = dict(bench.QUICK) if args.quick else {}
    if args.repeats:
        options["rounds"] = args.repeats
    bench.run(log=partial(print, flush=True), **options)
    return 0


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1, else argparse's usage error naming it."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kappa", description="tensorflow_kappa command line"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, op library and its kernels")
    info.set_defaults(func=_cmd_info)
    abl = sub.add_parser(
        "ablation", help="2x2 ablation: float vs fixed point, controller off vs on",
        description="Train a one-layer teacher-student regression four times (float vs "
        "fixed point, controller off vs on) plus a silent-learning-death case, print a "
        "summary table and write FitHistory files and PNGs.")
    abl.add_argument("--precision", default=None,
                     help="fixed-point side: one format for every field (e.g. s8.6) or a "
                     "JSON file {layer: {field: format}}; default: 16-bit formats")
    abl.add_argument("--learning-rate", "--lr", type=float, default=1.8)
    abl.add_argument("--chi", type=float, default=1.5)
    abl.add_argument("--epochs", type=_positive_int, default=10)
    abl.add_argument("--batch-size", type=_positive_int, default=32)
    abl.add_argument("--seed", type=int, default=0)
    abl.add_argument("--n", type=_positive_int, default=1024, help="examples")
    abl.add_argument("--input-dim", type=_positive_int, default=16)
    abl.add_argument("--output-dim", type=_positive_int, default=4)
    abl.add_argument("--noise", type=float, default=0.1)
    abl.add_argument("--death-update", default="s8.4",
                     help="coarse update format of the learning-death case")
    abl.add_argument("--death-learning-rate", type=float, default=0.1)
    abl.add_argument("--no-death", action="store_true", help="skip the learning-death case")
    abl.add_argument("--out", default="runs/ablation", help="output folder")
    abl.add_argument("--no-plots", action="store_true")
    abl.add_argument("--verbose", action="store_true", help="progress bars")
    abl.set_defaults(func=_cmd_ablation)
    ari = sub.add_parser(
        "arithmetic", help="train an iNALU stack on the report's arithmetic task",
        description="Train a deep iNALU stack on an arithmetic task with model.fit and "
        "the report's recipe (gate schedule, clipping, delayed regularisation, "
        "reinitialisation, early stopping); print losses, interpolation and "
        "extrapolation MSE per epoch, the success verdict (Madsen & Johansen 2020) and "
        "the learned formula; write a PNG and a JSON summary.")
    ari.add_argument("--expression", default="(x1 - x2) * (x3 - x4) + x5 * x6",
                     help="over x1 ... xN with + - * / and parentheses")
    ari.add_argument("--inputs", type=_positive_int, default=7, help="N, the number of inputs")
    ari.add_argument("--layers", default="3,2,1", help="INALU units per layer")
    ari.add_argument("--epochs", type=_positive_int, default=None,
                     help="epoch budget (default 60 for one seed, 30 for --seeds/--suite; "
                     "early stopping usually ends sooner)")
    ari.add_argument("--n", type=_positive_int, default=64000, help="samples per set")
    seeds = ari.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0)
    seeds.add_argument("--seeds", type=_positive_int, default=None, metavar="M",
                       help="train seeds 0 ... M-1 as one population and print the "
                       "success rate")
    ari.add_argument("--suite", action="store_true",
                     help="run every expression of datasets.ARITHMETIC_SUITE (10 seeds "
                     "unless --seeds) and print one table")
    ari.add_argument("--first-seed", type=int, default=0,
                     help="with --seeds/--suite: seeds start here (e.g. 10 for 10 ... 19)")
    ari.add_argument("--report", action="store_true",
                     help="the report's published recipe instead of the default one")
    ari.add_argument("--candidates", type=_positive_int, default=None, metavar="K",
                     help="with --seeds/--suite: candidates per seed (default: the "
                     "recipe's)")
    ari.add_argument("--out", default="runs/arithmetic", help="output folder")
    ari.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                     help="Keras verbosity (1: progress bar)")
    ari.set_defaults(func=_cmd_arithmetic)
    nb = sub.add_parser(
        "nalm-benchmark", help="single-module arithmetic benchmark with success rates",
        description="Train one-unit INALU (separate and shared weights), NALU, NAU and NMU "
        "modules on y = x1 op x2 for op in + - * / over training/extrapolation range "
        "pairs, many seeds in one graph; print success rates (Madsen & Johansen 2020) with "
        "Wilson 95% intervals, the median step at which runs were solved and the sparsity "
        "error.")
    nb.add_argument("--ops", default="add,sub,mul,div", help="subset of add,sub,mul,div")
    nb.add_argument("--ranges", default=None,
                    help="indices of the default range pairs (e.g. 0,2) or JSON "
                    "[[train, extrapolation], ...] with ranges [lo, hi] or [[lo, hi], ...]")
    nb.add_argument("--models", default="inalu,inalu-shared,nalu,nau,nmu",
                    help="subset of inalu,inalu-shared,nalu,nau,nmu")
    nb.add_argument("--seeds", type=_positive_int, default=10, help="runs per cell")
    nb.add_argument("--steps", type=_positive_int, default=None,
                    help="training steps per run (default: per module)")
    nb.add_argument("--eval-every", type=_positive_int, default=1000)
    nb.add_argument("--n-eval", type=_positive_int, default=10000,
                    help="interpolation/extrapolation samples per run")
    nb.add_argument("--out", default="runs/nalm-benchmark", help="output folder")
    nb.set_defaults(func=_cmd_nalm_benchmark)
    bench = sub.add_parser(
        "bench", help="timings: ops (default), loop-controller or trainer",
        description="ops: quantize_tensor, rail_stats and update_quantize_store as custom "
        "ops, as pure-TF twins (tf.function and XLA) and TensorFlow's nearest built-ins, "
        "side by side on one tensor; ratios against the performance targets and GPU "
        "bandwidth where a GPU is visible. loop-controller: LoopController against plain "
        "model.fit (time per step, traces, tracing time). trainer: train_instrumented "
        "compiled, eager and against model.fit. All: medians of interleaved rounds.")
    bench.add_argument("suite", nargs="?", default="ops",
                       choices=("ops", "loop-controller", "trainer"))
    bench.add_argument("--size", type=_positive_int, default=1 << 24,
                       help="float32 elements (ops)")
    bench.add_argument("--repeats", type=_positive_int, default=None,
                       help="timed rounds (default: ops 7, loop-controller 7, trainer 5)")
    bench.add_argument("--quick", action="store_true",
                       help="smoke run (loop-controller, trainer)")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Bad input (the package's ValueErrors, which name the bad
    value and what was expected) ends with that message and exit status 2,
    as argparse's own errors do, not with a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "needs_tensorflow", True):  # a command without TF sets it False
        import_tensorflow_quietly()
    try:
        return args.func(args)
    except ValueError as err:
        parser.exit(2, f"kappa {args.command}: error: {err}\n")


if __name__ == "__main__":
    sys.exit(main())

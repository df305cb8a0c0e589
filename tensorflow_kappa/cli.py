"""The ``kappa`` command line: thin commands over :mod:`tensorflow_kappa.experiments`.

    kappa info     versions, the op library, its kernels, the active ops
    kappa ablation 2x2 float/fixed-point x controller ablation, with plots
    kappa arithmetic  a deep iNALU stack on the report's arithmetic task, end to end
    kappa nalm-benchmark  single-module arithmetic benchmark: INALU, NALU, NAU, NMU
    kappa fixed-point  a small CNN on 8x8 digits, float32 vs 16-bit fixed point with
                   round-to-nearest and stochastic rounding (Gupta et al. 2015)
    kappa bench [ops|xla|loop-controller|trainer|core|fixed-point]  timings:
                   the quantization ops against their twins and TF built-ins
                   (default), the ops' XLA lowerings,
                   LoopController against plain fit, the instrumented trainer
                   against fit, the NumPy binding against the op, fixed-point fit
                   against float fit and the twins
    kappa inspect MODEL_FILE --format s8.4  what storing saved weights in fixed
                   point would do to them (no TensorFlow)

TensorFlow is imported by :func:`main` after the arguments are parsed, not
by this module, so ``kappa --help`` and argument errors need no TensorFlow.

Bad input ends with one line that names the option and the value, and exit
status 2, before any work: argparse's own errors (without the usage block),
the option checks of each command (``--out`` must be a writable folder,
``--precision`` a readable JSON file or a format, ...), and the package's
ValueErrors. A result file that cannot be written at the end of a run does
not lose the run: the command prints its results, then says which files are
missing, and exits with status 1.

TensorFlow 2.21 writes its native start-up lines (oneDNN, CPU features, absl's
"before InitializeLog" banner) to stderr whatever ``TF_CPP_MIN_LOG_LEVEL``
says; :func:`import_tensorflow_quietly` drops those below the level that
variable names (default 2: errors only, as TensorFlow documents it; a user's
own setting is respected), so every command prints only its own output.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import re
import tempfile
import time
import warnings
from functools import partial
from typing import Iterator, Optional, Sequence

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
        info = _ops.library_info()
    except (ImportError, ValueError) as err:
        print(f"  not loadable:  {err}")
        return 1
    print(f"  built for      TensorFlow {info['tf_version']}")
    print("  CPU kernels    yes")
    runtime = _ops.runtime_info()
    target = info.get("cpu_march") or "the compiler's default target"
    dispatch = ", AVX2/AVX-512 chosen at run time" if info.get("cpu_dispatch") else ""
    print(f"  CPU path       {runtime['cpu_path']} (built for {target}{dispatch}; "
          f"this CPU runs: {', '.join(runtime['cpu_paths'])}; {_ops.CPU_PATH_ENV} forces one)")
    if info.get("cuda_route") == "nvrtc":
        print("  CUDA kernels   yes: compiled at first use for the GPU by NVRTC, launched "
              "through the CUDA driver")
    elif info["cuda"]:
        print(f"  CUDA kernels   yes (sm_{', sm_'.join(info['cuda_archs'])}, static CUDA "
              f"{info.get('cuda_version') or ''} runtime)")
    else:
        print("  CUDA kernels   no")
    if info["cuda"]:
        print(f"  CUDA needs     {_ops.cuda_requirement(info)}")
    if info.get("cuda_route") == "nvrtc":
        cuda = _ops.cuda_runtime_info()
        driver = cuda["driver"]
        print("  CUDA driver    " + (f"CUDA {driver // 1000}.{driver % 1000 // 10}" if driver
                                     else f"none ({cuda['driver_error']})"))
        print("  NVRTC          " + (f"{cuda['nvrtc']} ({cuda['nvrtc_path']})" if cuda["nvrtc"]
                                     else f"none ({cuda['nvrtc_error']})"))
    if info["xla"]:
        print("  XLA lowerings  yes (the ops compile under jit_compile=True)")
    else:
        print("  XLA lowerings  no (built against a TensorFlow without XLA's headers or "
              "symbols: wrap jit-compiled calls in tk.composite_ops())")
    if _ops.fallback_requested():
        print(f"active ops       pure TensorFlow ({_ops.FALLBACK_ENV} is set)")
    else:
        print("active ops       custom kernels")
    return 0


class _OptionError(Exception):
    """A bad option value; :func:`main` prints ``argument <option>: <reason>``, exit 2."""

    def __init__(self, option: str, reason: str):
        super().__init__(f"argument {option}: {reason}")


@contextlib.contextmanager
def _option(option: str) -> Iterator[None]:
    """Turn a ValueError (or an OSError reading a file) raised while checking ``option``
    into an :class:`_OptionError`."""
    try:
        yield
    except ValueError as err:
        raise _OptionError(option, str(err)) from None
    except OSError as err:
        raise _OptionError(option, f"cannot read {err.filename!r}: {err.strerror or err}"
                           ) from None


def _range(text: Optional[str], option: str, default: tuple):
    """``--train-range`` / ``--extrapolation-range``: JSON ``[lo, hi]`` or a union
    ``[[lo, hi], ...]``, checked as :func:`~tensorflow_kappa.datasets.check_range` does."""
    from tensorflow_kappa.datasets.arithmetic import check_range

    if text is None:
        return default
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise _OptionError(option, f"{text!r} is not JSON [lo, hi] or [[lo, hi], ...]"
                           ) from None
    with _option(option):
        check_range(value, option)
    return value


def _check_out(folder: str) -> str:
    from tensorflow_kappa.experiments.reporting import check_output_dir

    with _option("--out"):
        return check_output_dir(folder, name="")


def _cmd_ablation(args: argparse.Namespace) -> int:
    from tensorflow_kappa.experiments import ablation
    from tensorflow_kappa.quantization import FixedPoint, PrecisionDict, ensure_precision_dict

    precision = args.precision
    with _option("--precision"):
        if precision is not None and (precision.endswith(".json") or os.path.isfile(precision)):
            precision = PrecisionDict.from_json(precision)
        ensure_precision_dict(precision)
    with _option("--death-update"):
        FixedPoint.coerce(args.death_update)
    _check_out(args.out)
    start = time.time()
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
    summary = os.path.join(args.out, "summary.txt")
    written = [f for r in runs for f in r.files] + _written([summary], since=start)
    print(f"\nwrote {len(written)} files (histories, plots, summary.txt) in {args.out}")
    return 0


def _cmd_arithmetic(args: argparse.Namespace) -> int:
    from tensorflow_kappa.datasets import ARITHMETIC_SUITE
    from tensorflow_kappa.experiments.arithmetic import check_layers, train_arithmetic
    from tensorflow_kappa.recipes import InaluRecipe

    texts = list(ARITHMETIC_SUITE) if args.suite else [args.expression]
    expressions = [_expression(text, args.inputs) for text in texts]  # parsed once
    with _option("--layers"):
        check_layers(args.layers)
    ranges = dict(train_range=_range(args.train_range, "--train-range", (-3, 3)),
                  extrapolation_range=_range(args.extrapolation_range,
                                             "--extrapolation-range", (10, 15)))
    _check_out(args.out)
    recipe = InaluRecipe.report() if args.report else InaluRecipe()
    if args.candidates is not None:
        recipe = dataclasses.replace(recipe, candidates=args.candidates)
    name = "the report's recipe" if args.report else "the default recipe"
    if args.suite or args.seeds is not None:
        return _arithmetic_population(args, expressions, recipe, name, ranges)
    expression = expressions[0]
    options = dict(expression=expression, num_inputs=args.inputs, layers=args.layers,
                   epochs=args.epochs or 60, n=args.n, out_dir=args.out, verbose=args.verbose,
                   controller_options={"report": args.report}, **ranges)
    print(f"kappa arithmetic: y = {args.expression} on {args.inputs} inputs, INALU layers "
          f"{args.layers}, up to {options['epochs']} epochs of {args.n} samples, batch 64, "
          f"RMSprop(0.01), {name}; {_ranges_text(ranges)}")
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
    written = [path for path in (r.plot_path, r.summary_path) if path is not None]
    if written:
        print(f"wrote {' and '.join(written)}")
    return 0


def _expression(text: str, num_inputs: int):
    """``--expression`` parsed (once), or an :class:`_OptionError` at the position."""
    from tensorflow_kappa.datasets.expression import ExpressionError, parse_expression

    try:
        return parse_expression(text, num_inputs)
    except ExpressionError as err:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise _OptionError("--expression", f"{err.reason} at position {err.position} of "
                           f"{shown!r}") from None


def _ranges_text(ranges: dict) -> str:
    return (f"training range {json.dumps(ranges['train_range'])}, extrapolation range "
            f"{json.dumps(ranges['extrapolation_range'])}")


def _arithmetic_population(args: argparse.Namespace, expressions: list, recipe,
                           name: str, ranges: dict) -> int:
    """``--seeds M`` / ``--suite``: each expression's seeds as one population; one table."""
    from tensorflow_kappa.experiments import arithmetic_population as pop

    seeds = list(range(args.first_seed, args.first_seed + (args.seeds or 10)))
    epochs = args.epochs or pop.DEFAULT_POPULATION_EPOCHS
    print(f"kappa arithmetic: {len(expressions)} expression(s) on {args.inputs} inputs, "
          f"seeds {seeds[0]}-{seeds[-1]}, {recipe.candidates} candidate(s) per seed, up to "
          f"{epochs} epochs of {args.n} samples, {name}, one population per expression; "
          f"{_ranges_text(ranges)}")
    rows = []
    for expression in expressions:
        row = pop.train_population(expression, seeds, recipe, epochs=epochs,
                                   verbose=int(args.verbose >= 2), layers=args.layers,
                                   num_inputs=args.inputs, n=args.n, **ranges)
        rows.append(row)
        print(pop.format_suite_table([row]).splitlines()[-1], flush=True)
    print()
    print(pop.format_suite_table(rows))
    written = [path for path in pop.write_suite(rows, args.out, recipe, ranges)
               if path is not None]
    if written:
        print(f"wrote {' and '.join(written)}")
    return 0


def _cmd_nalm_benchmark(args: argparse.Namespace) -> int:
    from tensorflow_kappa.experiments import nalm

    def names(text, option, known):
        chosen = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in chosen if v not in known]
        if unknown or not chosen:
            raise _OptionError(option, f"{text!r}: expected a comma-separated subset of "
                               f"{','.join(known)}")
        return chosen

    ranges = nalm.DEFAULT_RANGES if not args.ranges else _nalm_ranges(args.ranges)
    ops = names(args.ops, "--ops", nalm.OPS)
    models = names(args.models, "--models", nalm.MODELS)
    _check_out(args.out)
    start = time.time()
    result = nalm.run_nalm_benchmark(
        ops=ops, ranges=ranges, models=models, seeds=args.seeds, first_seed=args.first_seed,
        steps=args.steps, eval_every=args.eval_every, n_eval=args.n_eval, out_dir=args.out,
        verbose=1)
    print()
    print(result.table())
    print()
    print(f"success: extrapolation MSE below the eps-perturbed exact solution's (eps = "
          f"{result.config['epsilon']:g}) at the best interpolation evaluation; "
          f"{result.wall_time_s:.0f} s; layer check max relative difference "
          f"{result.max_layer_discrepancy:.1e}")
    written = _written([os.path.join(args.out, name) for name in
                        ("nalm_benchmark.md", "nalm_benchmark.json")], since=start)
    if written:
        print(f"wrote {' and '.join(written)}")
    return 0


def _cmd_fixed_point(args: argparse.Namespace) -> int:
    from tensorflow_kappa.experiments import fixed_point
    from tensorflow_kappa.quantization import FixedPoint

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    roundings = [r.strip() for r in args.roundings.split(",") if r.strip()]
    with _option("--formats"):
        for fmt in formats or [args.formats]:
            FixedPoint.parse(fmt)
    with _option("--roundings"):
        for rounding in roundings or [args.roundings]:
            FixedPoint(16, 8, rounding=rounding)
    _check_out(args.out)
    print(f"kappa fixed-point: digits CNN, SGD(lr={args.learning_rate}), batch "
          f"{args.batch_size}, {args.epochs} epochs, seed {args.seed}; float32, then weights "
          f"stored in {', '.join(formats)} with {', '.join(roundings)}", flush=True)
    try:
        runs = fixed_point.run_study(
            formats, roundings, epochs=args.epochs, learning_rate=args.learning_rate,
            batch_size=args.batch_size, seed=args.seed, every=args.every, limit=args.limit,
            log=lambda line: print(line, flush=True))
    except ImportError as err:  # scikit-learn missing: say how to get it
        raise SystemExit(f"kappa fixed-point: error: {err}") from None
    config = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    paths = fixed_point.write_results(runs, args.out, args.target, config)
    print()
    print(fixed_point.format_table(runs, args.target))
    print(f"\nwrote {paths['table']}, {paths['json']} and {paths['plot']}")
    return 0


def _written(paths: list, since: float) -> list:
    """The files of ``paths`` written since ``since`` (a failed write is reported by
    :func:`main` instead)."""
    return [p for p in paths if os.path.exists(p) and os.path.getmtime(p) >= since]


def _nalm_ranges(text: str) -> list:
    """``--ranges``: indices of the default range pairs (``0,2``) or JSON pairs, checked."""
    from tensorflow_kappa.experiments import nalm

    defaults = nalm.DEFAULT_RANGES
    items = [v.strip() for v in text.split(",")]
    if all(re.fullmatch(r"-?\d+", v) for v in items):
        bad = [v for v in items if not 0 <= int(v) < len(defaults)]
        if bad:
            raise _OptionError("--ranges", f"{text!r}: there are {len(defaults)} default "
                               f"range pairs, indices 0 to {len(defaults) - 1}")
        return [defaults[int(v)] for v in items]
    try:
        ranges = json.loads(text)
    except json.JSONDecodeError as err:
        raise _OptionError("--ranges", f"{text!r} is neither indices such as 0,2 nor JSON "
                           f"[[train, extrapolation], ...] ({err})") from None
    with _option("--ranges"):
        nalm.parse_ranges(ranges if isinstance(ranges, list) else [ranges])
    return ranges


def _cmd_bench(args: argparse.Namespace) -> int:
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
    options = dict(bench.QUICK) if args.quick else {}
    if args.repeats:
        options["rounds"] = args.repeats
    bench.run(log=partial(print, flush=True), **options)
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from tensorflow_kappa.experiments import inspect_weights as iw

    try:
        with _option("MODEL_FILE"):
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


def _formats(text: str) -> list:
    """argparse type: comma-separated fixed-point formats, each parsed."""
    from tensorflow_kappa.core.fixed_point import FixedPoint

    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no format (e.g. s8.4,s16.12)")
    try:
        return [FixedPoint.parse(v) for v in names]
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _seed_pair(text: str) -> tuple:
    """argparse type: 'A,B', two integers (the seed of stochastic rounding)."""
    from tensorflow_kappa.core.seeds import check_seed

    try:
        return tuple(check_seed([int(v) for v in text.split(",")]).tolist())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not two integers A,B in the int64 "
                                         "range") from None


def _unit_float(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 1]")
    return value


def _int_between(low: int, high: int | None = None):
    """argparse type: an integer in [low, high] (no upper bound without ``high``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"{value} is not an integer {bounds}")
        return value
    parse.__name__ = "integer"
    return parse


#: argparse type of counts (epochs, seeds, sizes, repeats, ...).
_positive_int = _int_between(1)


def _inputs(text: str) -> int:
    """argparse type of ``--inputs``: 1 to the parser's bound, checked before names are built."""
    from tensorflow_kappa.datasets.expression import MAX_INPUTS

    return _int_between(1, MAX_INPUTS)(text)


#: Seeds on the command line: what NumPy's legacy seeding (Keras) takes.
_seed = _int_between(0, 2**32 - 1)


def _finite_float(minimum: float, strict: bool):
    """argparse type: a finite float above (``strict``) or at least ``minimum``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(
                f"{text} is not a finite number {'>' if strict else '>='} {minimum:g}")
        return value
    parse.__name__ = "number"
    return parse


_positive_float = _finite_float(0.0, strict=True)
_nonnegative_float = _finite_float(0.0, strict=False)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``kappa <command>: error: argument --x: ...``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    abl.add_argument("--learning-rate", "--lr", type=_positive_float, default=1.8)
    abl.add_argument("--chi", type=_positive_float, default=1.5)
    abl.add_argument("--epochs", type=_positive_int, default=10)
    abl.add_argument("--batch-size", type=_positive_int, default=32)
    abl.add_argument("--seed", type=_seed, default=0)
    abl.add_argument("--n", type=_positive_int, default=1024, help="examples")
    abl.add_argument("--input-dim", type=_positive_int, default=16)
    abl.add_argument("--output-dim", type=_positive_int, default=4)
    abl.add_argument("--noise", type=_nonnegative_float, default=0.1)
    abl.add_argument("--death-update", default="s8.4",
                     help="coarse update format of the learning-death case")
    abl.add_argument("--death-learning-rate", type=_positive_float, default=0.1)
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
    ari.add_argument("--inputs", type=_inputs, default=7, help="N, the number of inputs")
    ari.add_argument("--layers", default="3,2,1", help="INALU units per layer")
    ari.add_argument("--epochs", type=_positive_int, default=None,
                     help="epoch budget (default 60 for one seed, 30 for --seeds/--suite; "
                     "early stopping usually ends sooner)")
    ari.add_argument("--n", type=_positive_int, default=64000, help="samples per set")
    seeds = ari.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_seed, default=0)
    seeds.add_argument("--seeds", type=_positive_int, default=None, metavar="M",
                       help="train seeds 0 ... M-1 as one population and print the "
                       "success rate")
    ari.add_argument("--suite", action="store_true",
                     help="run every expression of datasets.ARITHMETIC_SUITE (10 seeds "
                     "unless --seeds) and print one table")
    ari.add_argument("--first-seed", type=_seed, default=0,
                     help="with --seeds/--suite: seeds start here (e.g. 10 for 10 ... 19)")
    ari.add_argument("--report", action="store_true",
                     help="the report's published recipe instead of the default one")
    ari.add_argument("--candidates", type=_positive_int, default=None, metavar="K",
                     help="with --seeds/--suite: candidates per seed (default: the "
                     "recipe's)")
    ari.add_argument("--train-range", default=None, metavar="JSON",
                     help="where training and interpolation inputs are drawn: [lo, hi] or "
                     "a union [[lo, hi], ...] (default [-3, 3], the report's)")
    ari.add_argument("--extrapolation-range", default=None, metavar="JSON",
                     help="the same for the extrapolation set (default [10, 15], the "
                     "report's; e.g. [[-15, -10], [10, 15]] for both signs)")
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
    nb.add_argument("--first-seed", type=_seed, default=0,
                    help="seeds start here (e.g. 10 for 10 ... 19); also seeds the batches")
    nb.add_argument("--steps", type=_positive_int, default=None,
                    help="training steps per run (default: per module)")
    nb.add_argument("--eval-every", type=_positive_int, default=1000)
    nb.add_argument("--n-eval", type=_positive_int, default=10000,
                    help="interpolation/extrapolation samples per run")
    nb.add_argument("--out", default="runs/nalm-benchmark", help="output folder")
    nb.set_defaults(func=_cmd_nalm_benchmark)
    fp = sub.add_parser(
        "fixed-point", help="float32 vs 16-bit fixed-point training of a CNN on 8x8 digits",
        description="Train a small CNN on scikit-learn's bundled 8x8 digits (no download) "
        "with model.fit in float32 and with its weights stored in each 16-bit fixed-point "
        "format, with round-to-nearest and stochastic rounding (activations, errors, "
        "gradients and input in 16-bit fixed point too); print a table (test accuracy, "
        "epochs to a target, update underflow, progress along the requested step, "
        "saturation) and write it with a JSON record and a PNG of accuracy and underflow "
        "per epoch. Reproduces Gupta et al. 2015. Needs scikit-learn.")
    fp.add_argument("--formats", default="s16.14,s16.12,s16.10,s16.8",
                    help="storage formats of weights and biases, comma-separated")
    fp.add_argument("--roundings", default="nearest_even,stochastic",
                    help="rounding modes, comma-separated")
    fp.add_argument("--epochs", type=_positive_int, default=30)
    fp.add_argument("--learning-rate", "--lr", type=_positive_float, default=0.05)
    fp.add_argument("--batch-size", type=_positive_int, default=32)
    fp.add_argument("--seed", type=_seed, default=0)
    fp.add_argument("--every", type=_positive_int, default=10,
                    help="QuantizationMonitor interval in steps")
    fp.add_argument("--target", type=_unit_float, default=0.9,
                    help="test accuracy whose first epoch the table reports")
    fp.add_argument("--limit", type=_positive_int, default=None,
                    help="use only this many images (smoke runs)")
    fp.add_argument("--out", default="runs/fixed-point", help="output folder")
    fp.set_defaults(func=_cmd_fixed_point)
    bench = sub.add_parser(
        "bench", help="timings: ops (default), xla, loop-controller, trainer, core or "
        "fixed-point",
        description="ops: quantize_tensor, rail_stats and update_quantize_store as custom "
        "ops, as pure-TF twins (tf.function and XLA) and TensorFlow's nearest built-ins, "
        "side by side on one tensor; ratios against the performance targets and GPU "
        "bandwidth where a GPU is visible. xla: the ops' XLA lowerings, fused into "
        "quantize(x @ W + b) against the same graph without the quantize and with the "
        "pure-TF twin, and alone against the CPU kernel. loop-controller: LoopController against plain "
        "model.fit (time per step, traces, tracing time). trainer: train_instrumented "
        "compiled, eager and against model.fit. core: the NumPy binding "
        "(tensorflow_kappa.core) against the custom ops. fixed-point: model.fit of the "
        "digits CNN in fixed point (custom ops, pure-TF twins, with QuantizationMonitor) "
        "against float. All: medians of interleaved rounds.")
    bench.add_argument("suite", nargs="?", default="ops",
                       choices=("ops", "xla", "loop-controller", "trainer", "core",
                                "fixed-point"))
    bench.add_argument("--size", type=_positive_int, default=1 << 24,
                       help="float32 elements (ops, core; xla: the standalone op)")
    bench.add_argument("--repeats", type=_positive_int, default=None,
                       help="timed rounds (default: ops 7, xla 15, loop-controller 7, "
                            "trainer 5, core 7, fixed-point 10)")
    bench.add_argument("--quick", action="store_true",
                       help="smoke run (loop-controller, trainer, fixed-point)")
    bench.set_defaults(func=_cmd_bench)
    ins = sub.add_parser(
        "inspect", help="what storing saved weights in fixed point would do to them",
        description="Read the weights of a saved model (.keras, .weights.h5 or other Keras "
        "HDF5, .npz, .npy) without TensorFlow and print, per layer and weight and per "
        "format, the fractions saturated, near a rail and underflowing and the maximum "
        "and RMS quantization error; with several formats, a table comparing them and a "
        "suggestion. Optimizer state is left out.")
    ins.add_argument("model_file", metavar="MODEL_FILE")
    ins.add_argument("--format", "--formats", dest="formats", type=_formats, required=True,
                     metavar="FORMATS",
                     help="one format (s8.4) or several, comma-separated (s8.4,s8.6,s16.12)")
    ins.add_argument("--near-rail", type=_unit_float, default=0.9,
                     help="rail_stats' near_rail (default %(default)s)")
    ins.add_argument("--seed", type=_seed_pair, default=(0, 0), metavar="A,B",
                     help="seed of stochastic formats (default 0,0)")
    ins.add_argument("--per-weight", action="store_true",
                     help="the per-weight table for every format (always shown for one)")
    ins.set_defaults(func=_cmd_inspect, needs_tensorflow=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Bad input ends with one line naming the option (or, for the
    package's ValueErrors, the parameter) and the value, and exit status 2, as
    argparse's own errors do, not with a traceback. Returns the command's exit
    status, or 1 when result files could not be written (the results were
    printed)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "needs_tensorflow", True):  # a command without TF sets it False
        import_tensorflow_quietly()
    failed_writes: list = []
    try:
        with _collect_write_failures(failed_writes):
            status = args.func(args)
    except _OptionError as err:
        parser.exit(2, f"kappa {args.command}: error: {err}\n")
    except ValueError as err:
        parser.exit(2, f"kappa {args.command}: error: {err}\n")
    for message in failed_writes:
        print(f"kappa {args.command}: error: {message}", file=sys.stderr)
    return 1 if failed_writes else status


@contextlib.contextmanager
def _collect_write_failures(messages: list) -> Iterator[None]:
    """Collect the OutputWriteWarnings of a command (files it could not write at the
    end); other warnings are shown as usual."""
    from tensorflow_kappa.experiments.reporting import OutputWriteWarning

    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, *args, **kwargs):
            if issubclass(category, OutputWriteWarning):
                messages.append(str(message))
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        warnings.simplefilter("always", OutputWriteWarning)
        yield


if __name__ == "__main__":
    sys.exit(main())

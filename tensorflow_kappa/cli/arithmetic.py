"""Train an iNALU stack on the report's arithmetic task.

Train a deep iNALU stack on an arithmetic task with model.fit and the report's recipe
(gate schedule, clipping, delayed regularisation, reinitialisation, early stopping);
print losses, interpolation and extrapolation MSE per epoch, the success verdict (Madsen
& Johansen 2020) and the learned formula; write a PNG and a JSON summary.
"""
from __future__ import annotations

import argparse
import dataclasses
import json

from tensorflow_kappa.cli import options
from tensorflow_kappa.cli.command import Command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expression", default="(x1 - x2) * (x3 - x4) + x5 * x6",
                        help="over x1 ... xN with + - * / and parentheses")
    parser.add_argument("--inputs", type=options.inputs, default=7,
                        help="N, the number of inputs")
    parser.add_argument("--layers", default="3,2,1", help="INALU units per layer")
    parser.add_argument("--epochs", type=options.count, default=None,
                        help="epoch budget (default 60 for one seed, 30 for --seeds/--suite; "
                        "early stopping usually ends sooner)")
    parser.add_argument("--n", type=options.count, default=64000, help="samples per set")
    parser.add_argument("--suite", action="store_true",
                        help="run every expression of datasets.ARITHMETIC_SUITE (10 seeds "
                        "unless --seeds) and print one table")
    parser.add_argument("--report", action="store_true",
                        help="the report's published recipe instead of the default one")
    parser.add_argument("--candidates", type=options.count, default=None, metavar="K",
                        help="with --seeds/--suite: candidates per seed (default: the "
                        "recipe's)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras verbosity (1: progress bar)")


def run(args: argparse.Namespace) -> int:
    """Check the options, train one seed (or a population), print the verdict."""
    from tensorflow_kappa.datasets import ARITHMETIC_SUITE
    from tensorflow_kappa.experiments.arithmetic import check_layers, train_arithmetic
    from tensorflow_kappa.recipes import InaluRecipe

    texts = list(ARITHMETIC_SUITE) if args.suite else [args.expression]
    expressions = [_expression(text, args.inputs) for text in texts]  # parsed once
    with options.option("--layers"):
        check_layers(args.layers)
    ranges = dict(train_range=args.train_range, extrapolation_range=args.extrapolation_range)
    options.check_out(args.out)
    recipe = InaluRecipe.report() if args.report else InaluRecipe()
    if args.candidates is not None:
        recipe = dataclasses.replace(recipe, candidates=args.candidates)
    name = "the report's recipe" if args.report else "the default recipe"
    if args.suite or args.seeds is not None:
        return _population(args, expressions, recipe, name, ranges)
    if args.resume:
        raise options.OptionError("--resume", "continues --seeds/--suite runs, which keep "
                                  "each expression's population as it finishes; a single "
                                  "run is one unit, with nothing to resume")
    expression = expressions[0]
    settings = dict(expression=expression, num_inputs=args.inputs, layers=args.layers,
                    epochs=args.epochs or 60, n=args.n, out_dir=args.out, verbose=args.verbose,
                    controller_options={"report": args.report}, **ranges)
    print(f"kappa arithmetic: y = {args.expression} on {args.inputs} inputs, INALU layers "
          f"{args.layers}, up to {settings['epochs']} epochs of {args.n} samples, batch 64, "
          f"RMSprop(0.01), {name}; {_ranges_text(ranges)}")
    r = train_arithmetic(seed=args.seed, **settings)
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
    files = [path for path in (r.plot_path, r.summary_path) if path is not None]
    if files:
        print(f"wrote {' and '.join(files)}")
    return 0


def _expression(text: str, num_inputs: int):
    """``--expression`` parsed (once), or an :class:`~options.OptionError` at the position."""
    from tensorflow_kappa.datasets.expression import ExpressionError, parse_expression

    try:
        return parse_expression(text, num_inputs)
    except ExpressionError as err:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise options.OptionError("--expression", f"{err.reason} at position "
                                  f"{err.position} of {shown!r}") from None


def _ranges_text(ranges: dict) -> str:
    return (f"training range {json.dumps(ranges['train_range'])}, extrapolation range "
            f"{json.dumps(ranges['extrapolation_range'])}")


def _population(args: argparse.Namespace, expressions: list, recipe, name: str,
                ranges: dict) -> int:
    """``--seeds M`` / ``--suite``: each expression's seeds as one population, kept in
    ``--out`` as it finishes (the unit ``--resume`` skips); one table."""
    from tensorflow_kappa.experiments import arithmetic_population as pop
    from tensorflow_kappa.experiments.resumable import check_size

    seeds = list(range(args.first_seed, args.first_seed + (args.seeds or 10)))
    epochs = args.epochs or pop.DEFAULT_POPULATION_EPOCHS
    check_size(pop.estimated_seconds(len(expressions), len(seeds), recipe.candidates, epochs,
                                     args.n),
               f"{len(expressions)} expression(s) x {len(seeds)} seeds x {recipe.candidates} "
               f"candidates x {epochs} epochs of {args.n} samples", args.yes)
    folder = options.run_folder(args, "arithmetic")
    print(f"kappa arithmetic: {len(expressions)} expression(s) on {args.inputs} inputs, "
          f"seeds {seeds[0]}-{seeds[-1]}, {recipe.candidates} candidate(s) per seed, up to "
          f"{epochs} epochs of {args.n} samples, {name}, one population per expression; "
          f"{_ranges_text(ranges)}", flush=True)
    rows = []
    with folder.running(len(expressions), "expression"):
        for k, expression in enumerate(expressions):
            row = folder.unit(
                f"expression-{k}",
                lambda: pop.train_population(expression, seeds, recipe, epochs=epochs,
                                             verbose=int(args.verbose >= 2), layers=args.layers,
                                             num_inputs=args.inputs, n=args.n, **ranges),
                encode=dataclasses.asdict, decode=pop.SuiteRow.from_record)
            rows.append(row)
            print(pop.format_suite_table([row]).splitlines()[-1], flush=True)
    print()
    print(pop.format_suite_table(rows))
    files = [path for path in pop.write_suite(rows, args.out, recipe, ranges)
             if path is not None]
    if files:
        print(f"wrote {' and '.join(files)}")
    return 0


COMMAND = Command("arithmetic", __doc__, _arguments, run, parents=lambda: [
    options.population(None, "train seeds S ... S+M-1 as one population and print the "
                       "success rate", one_seed=True),
    options.ranges(train=(-3, 3), extrapolation=(10, 15)), options.output("runs/arithmetic"),
    options.resumable()])

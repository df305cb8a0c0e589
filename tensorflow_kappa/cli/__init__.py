"""The ``kappa`` command line: thin commands over :mod:`tensorflow_kappa.experiments`.

The commands::

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

One module per command holds its parser and its handler, declared as one
:class:`~tensorflow_kappa.cli.command.Command` (``COMMAND``): its module docstring is
its text, ``_arguments(parser)`` its options, ``run(args)`` its handler; the options
several commands share are parent parsers in :mod:`~tensorflow_kappa.cli.options`. This
module only registers the commands and runs one.

TensorFlow is imported by :func:`main` after the arguments are parsed
(:func:`~tensorflow_kappa.cli.quiet.import_tensorflow_quietly`, without its native
start-up lines), not by this package, so ``kappa --help`` and argument errors need no
TensorFlow.

Long runs keep their results: ``arithmetic --seeds/--suite``, ``nalm-benchmark``,
``fixed-point`` and ``ablation`` keep each finished unit in ``--out`` as it finishes
(:mod:`tensorflow_kappa.experiments.resumable`), say how long they should take
(``--yes`` for more than an hour), and continue an interrupted run with ``--resume``.
SIGINT (Ctrl-C) and SIGTERM end any command with one line saying what is kept and how
to go on, exit status 130 or 143.

Bad input ends with one line that names the option and the value, and exit
status 2, before any work: argparse's own errors (without the usage block),
the option checks of each command (``--out`` must be a writable folder,
``--precision`` a readable JSON file or a format, ...), and the package's
ValueErrors. A result file that cannot be written at the end of a run does
not lose the run: the command prints its results, then says which files are
missing, and exits with status 1.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from typing import Iterator, List, Sequence

from tensorflow_kappa.cli import (ablation, arithmetic, bench, fixed_point, info, inspect,
                                  nalm_benchmark)
from tensorflow_kappa.cli.options import OptionError, Parser
from tensorflow_kappa.cli.quiet import import_tensorflow_quietly

__all__ = ["COMMANDS", "build_parser", "main"]

#: The commands, in the order ``kappa --help`` lists them.
COMMANDS = tuple(module.COMMAND for module in (info, ablation, arithmetic, nalm_benchmark,
                                               fixed_point, bench, inspect))


def build_parser() -> argparse.ArgumentParser:
    """The ``kappa`` parser with every command of :data:`COMMANDS` registered."""
    parser = Parser(prog="kappa", description="tensorflow_kappa command line")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Bad input ends with one line naming the option (or, for the
    package's ValueErrors, the parameter) and the value, and exit status 2, as
    argparse's own errors do, not with a traceback. SIGINT (Ctrl-C) and SIGTERM end
    a command with one line saying what of its run is kept and how to continue it,
    and exit status 128 + the signal (130, 143). Returns the command's exit status,
    or 1 when result files could not be written (the results were printed)."""
    from tensorflow_kappa.experiments.resumable import Interrupted, interrupts

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    failed_writes: List[str] = []
    try:
        with interrupts():
            if getattr(args, "needs_tensorflow", True):  # a command without TF sets it False
                import_tensorflow_quietly()
            with _collect_write_failures(failed_writes):
                status = args.func(args)
    except (OptionError, ValueError) as err:
        parser.exit(2, f"kappa {args.command}: error: {err}\n")
    except Interrupted as stop:
        print(f"\nkappa {args.command}: interrupted ({stop}): {stop.summary}", file=sys.stderr)
        return 128 + stop.signum
    for message in failed_writes:
        print(f"kappa {args.command}: error: {message}", file=sys.stderr)
    return 1 if failed_writes else status


@contextlib.contextmanager
def _collect_write_failures(messages: List[str]) -> Iterator[None]:
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

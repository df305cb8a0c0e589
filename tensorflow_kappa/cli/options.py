"""What the ``kappa`` commands share: the parser, option errors, argparse types and the
parent parsers of the options several commands take.

Every argparse type here is a thin adapter: it turns the text into a value and hands
it to the one rule for that kind of value (:mod:`tensorflow_kappa._checks`; formats in
:mod:`tensorflow_kappa.core.fixed_point`, op seeds in :mod:`tensorflow_kappa.core.seeds`,
ranges in :mod:`tensorflow_kappa.datasets.arithmetic`), so the command line and the
Python API say the same thing about the same mistake. argparse prints the rule's
message after the option and exits with status 2:

>>> count("3")
3
>>> count("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: must be an integer >= 1, got 0
>>> parser = Parser(prog="kappa demo", parents=[output("runs/demo")])
>>> parser.parse_args([]).out
'runs/demo'

Checks that need TensorFlow-backed modules (a precision dict, an expression's
layers) run in the command's handler, inside :func:`option`, after :func:`main
<tensorflow_kappa.cli.main>` has imported TensorFlow quietly: importing them while the
arguments are parsed would print TensorFlow's start-up lines.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence

from tensorflow_kappa import _checks

#: The name the rules are called with; the message argparse prints starts after it.
_VALUE = "value"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``kappa <command>: error: argument --x: ...``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class OptionError(Exception):
    """A bad option value; :func:`~tensorflow_kappa.cli.main` prints
    ``argument <option>: <reason>`` and exits with status 2."""

    def __init__(self, option: str, reason: str):
        super().__init__(f"argument {option}: {reason}")


@contextlib.contextmanager
def option(name: str) -> Iterator[None]:
    """Turn a ValueError (or an OSError reading a file) raised while checking the option
    ``name`` into an :class:`OptionError`."""
    try:
        yield
    except ValueError as err:
        raise OptionError(name, str(err)) from None
    except OSError as err:
        raise OptionError(name, f"cannot read {err.filename!r}: {err.strerror or err}"
                          ) from None


def _reason(err: ValueError) -> str:
    """A rule's message without the leading name it was called with (:data:`_VALUE`)."""
    text = str(err)
    for prefix in (_VALUE + " ", _VALUE + ": "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def _rule(check: Callable[..., Any], value: Any, **bounds: Any) -> Any:
    """``check(name, value, **bounds)``, its ValueError as argparse's type error."""
    try:
        return check(_VALUE, value, **bounds)
    except ValueError as err:
        raise argparse.ArgumentTypeError(_reason(err)) from None


def _literal(text: str) -> Any:
    """``text`` as an int, else a float, else the text itself (for the rule to reject)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def integer(minimum: Optional[int] = None, maximum: Optional[int] = None
            ) -> Callable[[str], int]:
    """argparse type: an integer within the bounds (:func:`_checks.integer`)."""
    def parse(text: str) -> int:
        return _rule(_checks.integer, _literal(text), minimum=minimum, maximum=maximum)
    parse.__name__ = "integer"
    return parse


def number(minimum: Optional[float] = None, maximum: Optional[float] = None,
           strict_minimum: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number within the bounds (:func:`_checks.number`)."""
    def parse(text: str) -> float:
        return _rule(_checks.number, _literal(text), minimum=minimum, maximum=maximum,
                     strict_minimum=strict_minimum)
    parse.__name__ = "number"
    return parse


#: Counts: epochs, seeds, sizes, repeats, ...
count = integer(minimum=1)
positive = number(minimum=0.0, strict_minimum=True)
nonnegative = number(minimum=0.0)
#: A fraction or probability, in [0, 1].
fraction = number(minimum=0.0, maximum=1.0)


def keras_seed(text: str) -> int:
    """argparse type: a seed that reaches ``keras.utils.set_random_seed``
    (:func:`_checks.random_seed` up to :data:`_checks.SEED32_MAX`)."""
    return _rule(_checks.random_seed, _literal(text), maximum=_checks.SEED32_MAX)


def inputs(text: str) -> int:
    """argparse type of ``--inputs``: 1 to the expression parser's bound, checked before
    the input names are built."""
    from tensorflow_kappa.datasets.expression import MAX_INPUTS

    return integer(1, MAX_INPUTS)(text)


def op_seed(text: str) -> tuple:
    """argparse type: ``A,B``, the seed of stochastic rounding (:func:`core.seeds.check_seed`)."""
    from tensorflow_kappa.core.seeds import check_seed

    try:
        return tuple(check_seed([_literal(v) for v in text.split(",")]).tolist())
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _names(text: str) -> List[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def formats(text: str) -> List[str]:
    """argparse type: comma-separated formats (``s8.4,s16.12``), each parsed by
    :meth:`FixedPoint.parse <tensorflow_kappa.core.fixed_point.FixedPoint.parse>`."""
    from tensorflow_kappa.core.fixed_point import FixedPoint

    names = _names(text)
    if not names:
        raise argparse.ArgumentTypeError(f"must name at least one format (e.g. "
                                         f"s8.4,s16.12), got {text!r}")
    try:
        for name in names:
            FixedPoint.parse(name)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return names


def subset(name: str, text: str, choices: Iterable[str]) -> List[str]:
    """The comma-separated names of ``text`` (the option ``name``), each one of ``choices``
    (:func:`_checks.one_of`), at least one; else an :class:`OptionError`."""
    choices = list(choices)
    chosen = _names(text)
    with option(name):
        if not chosen:
            raise ValueError(f"must name at least one of {', '.join(choices)}, got {text!r}")
        for value in chosen:
            _checks.one_of(f"each entry of {text!r}", value, choices)
    return chosen


def json_range(text: str) -> Any:
    """argparse type: JSON ``[lo, hi]`` or a union ``[[lo, hi], ...]``, checked by
    :func:`~tensorflow_kappa.datasets.arithmetic.check_range`; the JSON value as given."""
    from tensorflow_kappa.datasets.arithmetic import check_range

    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON [lo, hi] or "
                                         "[[lo, hi], ...]") from None
    try:
        check_range(value, _VALUE)
    except ValueError as err:  # name the text: JSON's true reads back as Python's True
        raise argparse.ArgumentTypeError(f"{text!r}: {_reason(err)}") from None
    return value


# -- parent parsers: one definition of each option several commands take -----------------

def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def output(default: str) -> argparse.ArgumentParser:
    """``--out FOLDER``: where the command writes its files; :func:`check_out` checks
    that files can be written there before any work."""
    parent = _parent()
    parent.add_argument("--out", default=default, metavar="FOLDER",
                        help="output folder, created if needed (default %(default)s)")
    return parent


def seed() -> argparse.ArgumentParser:
    """``--seed S``: the seed of one run (Keras' global seeding, weights and data)."""
    parent = _parent()
    _add_seed(parent)
    return parent


def _add_seed(container) -> None:
    container.add_argument("--seed", type=keras_seed, default=0, metavar="S",
                           help="seed of the run: weights and data (default %(default)s)")


def population(seeds: Optional[int], seeds_help: str, one_seed: bool = False
               ) -> argparse.ArgumentParser:
    """``--seeds M --first-seed S``: runs with seeds S ... S+M-1; with ``one_seed``, also
    ``--seed`` (one run), which excludes ``--seeds``."""
    parent = _parent()
    group = parent.add_mutually_exclusive_group() if one_seed else parent
    if one_seed:
        _add_seed(group)
    group.add_argument("--seeds", type=count, default=seeds, metavar="M", help=seeds_help)
    parent.add_argument("--first-seed", type=keras_seed, default=0, metavar="S",
                        help="the population's seeds start here (e.g. 10 for 10 ... 19)")
    return parent


def ranges(train: Sequence[float], extrapolation: Sequence[float]
           ) -> argparse.ArgumentParser:
    """``--train-range`` and ``--extrapolation-range``: where the inputs are drawn."""
    parent = _parent()
    parent.add_argument("--train-range", type=json_range, default=tuple(train),
                        metavar="JSON",
                        help="where training and interpolation inputs are drawn: [lo, hi] "
                        f"or a union [[lo, hi], ...] (default {json.dumps(list(train))}, "
                        "the report's)")
    parent.add_argument("--extrapolation-range", type=json_range,
                        default=tuple(extrapolation), metavar="JSON",
                        help="the same for the extrapolation set (default "
                        f"{json.dumps(list(extrapolation))}, the report's; e.g. "
                        "[[-15, -10], [10, 15]] for both signs)")
    return parent


def training(epochs: int, learning_rate: float, batch_size: int = 32
             ) -> argparse.ArgumentParser:
    """``--epochs``, ``--learning-rate`` (``--lr``) and ``--batch-size`` of a ``fit``."""
    parent = _parent()
    parent.add_argument("--epochs", type=count, default=epochs,
                        help="epochs (default %(default)s)")
    parent.add_argument("--learning-rate", "--lr", type=positive, default=learning_rate,
                        help="the optimizer's learning rate (default %(default)s)")
    parent.add_argument("--batch-size", type=count, default=batch_size,
                        help="examples per step (default %(default)s)")
    return parent


def resumable() -> argparse.ArgumentParser:
    """``--resume`` and ``--yes``: a long command keeps each finished unit in ``--out``
    (:mod:`tensorflow_kappa.experiments.resumable`); ``--resume`` continues an
    interrupted run there, ``--yes`` starts a run estimated at more than an hour."""
    parent = _parent()
    parent.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --out: its finished units are "
                        "read back (the options must be the same)")
    parent.add_argument("--yes", action="store_true",
                        help="start the run even if it is estimated at more than an hour")
    return parent


#: Arguments that do not decide a run's results: a resumed run may change them.
_NOT_RESULTS = ("func", "command", "needs_tensorflow", "argv", "out", "resume", "yes",
                "verbose")


def run_settings(args: argparse.Namespace) -> dict:
    """The options of ``args`` that decide a run's results (what a resumed run must
    repeat, and what a result file records)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in _NOT_RESULTS}


def run_folder(args: argparse.Namespace, command: str):
    """The :class:`~tensorflow_kappa.experiments.resumable.RunFolder` of ``--out`` for
    ``args`` (started afresh, or resumed with ``--resume``: then the recorded options
    must be these; an :class:`OptionError` names ``--resume`` otherwise). Call it
    after the other options are checked, before any work."""
    from tensorflow_kappa.experiments.resumable import RunFolder

    again = list(args.argv) + ([] if args.resume else ["--resume"])
    try:
        return RunFolder(args.out, command, run_settings(args), resume=args.resume,
                         resume_command="kappa " + shlex.join(again))
    except ValueError as err:
        reason = re.sub(r"^(--resume|out_dir): ", "", str(err))
        raise OptionError("--resume" if args.resume else "--out", reason) from None


def check_out(folder: str) -> str:
    """``--out``: the folder, created, once a file can be written in it; else an
    :class:`OptionError`. Call it before any work."""
    try:
        return _checks.writable_folder(_VALUE, folder)
    except ValueError as err:
        raise OptionError("--out", _reason(err)) from None


def written(paths: Sequence[str], since: float) -> List[str]:
    """The files of ``paths`` written since ``since`` (a failed write is reported by
    :func:`~tensorflow_kappa.cli.main` instead)."""
    return [p for p in paths if os.path.exists(p) and os.path.getmtime(p) >= since]

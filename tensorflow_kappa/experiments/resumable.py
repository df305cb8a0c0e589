"""Long runs that keep their results: finished units on disk, interrupts that say how to
go on, ``--resume``, and a size estimate before a run of hours.

A ``kappa`` command that runs for minutes does its work in *units* (one expression's
population, one benchmark module's runs, one row of a study, one ablation run). Its
output folder is a :class:`RunFolder`:

* ``<out>/kappa-run.json`` records the command and the options that decide its results;
* ``<out>/units/<key>.json`` holds each finished unit, written when it finishes, to a
  temporary file first and then renamed (:func:`atomic_write`), so a unit on disk is
  always whole;
* :meth:`RunFolder.unit` computes a unit, or, when resuming, reads it back.

:func:`interrupts` turns SIGINT (Ctrl-C) and SIGTERM into :class:`Interrupted`; a
command's :meth:`RunFolder.running` block adds the resumable summary to it (how many
units are kept, where, and the command line that continues the run), and the command
line prints it and exits with ``128 + signal``. A run started with ``resume=True``
checks that its options are those recorded, then skips the finished units; without
it, units of an earlier run in the folder are replaced.

:func:`check_size` prints the estimated time of a run first and refuses a run of more
than an hour unless told to go ahead (``--yes``).

Example:
>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> folder = RunFolder(out, "demo", {"seeds": 2}, log=lambda line: None)
>>> folder.unit("a", lambda: {"loss": 0.5})
{'loss': 0.5}
>>> again = RunFolder(out, "demo", {"seeds": 2}, resume=True, log=lambda line: None)
>>> again.finished, again.unit("a", lambda: 1 / 0)  # read back, not computed
(['a'], {'loss': 0.5})
>>> RunFolder(out, "demo", {"seeds": 3}, resume=True)
Traceback (most recent call last):
...
ValueError: --resume: the run in ... was started with other options: seeds=2 there, 3 now; ...
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import tempfile
import threading
from typing import Any, Callable, Iterator, List, Mapping, Optional, TypeVar

import numpy as np

from tensorflow_kappa import _checks

__all__ = ["HOUR", "Interrupted", "RunFolder", "atomic_write", "check_size", "format_duration",
           "interrupts", "unit"]

T = TypeVar("T")
MANIFEST = "kappa-run.json"
UNITS = "units"
#: A run estimated to take longer than this needs ``--yes``.
HOUR = 3600.0


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived (:func:`interrupts`); ``summary`` says what was kept.

    A ``KeyboardInterrupt``, so that ``except Exception`` blocks let it pass."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.summary = "nothing of this run is kept: it finishes as one unit"


@contextlib.contextmanager
def interrupts() -> Iterator[None]:
    """Raise :class:`Interrupted` in the main thread on SIGINT and SIGTERM inside the
    block (elsewhere, or off the main thread, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def atomic_write(path: str, write: Callable[[str], Any]) -> str:
    """``write(temporary path)`` beside ``path``, then rename it to ``path``: a reader
    (or a resumed run) sees the whole file or none. The temporary file keeps
    ``path``'s suffix (``np.savez`` adds ``.npz`` to a name without it)."""
    folder = os.path.dirname(path) or "."
    handle, partial = tempfile.mkstemp(dir=folder, prefix=".partial-",
                                       suffix=os.path.splitext(path)[1])
    os.close(handle)
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def _plain(value: Any) -> Any:
    """``value`` as JSON values that read back equal: NumPy scalars as Python ones,
    tuples as lists; NaN and infinities stay (Python's JSON writes and reads them)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _key_ok(key: str) -> str:
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=-]*", key):
        raise ValueError(f"a unit key is a file name of letters, digits and _.=-, got {key!r}")
    return key


class RunFolder:
    """An output folder whose finished units survive an interrupted run.

    Args:
        out_dir: the folder (created; it must be writable).
        command: the command's name (``"arithmetic"``), recorded.
        options: the options that decide the results (JSON values), recorded; a
            resumed run must have the same.
        resume: continue the run recorded in ``out_dir`` (its finished units are
            read back, not computed); else start afresh, replacing any units there.
        resume_command: the command line that resumes (shown when interrupted).
        log: where the folder says what it does (e.g. ``print``).

    Raises:
        ValueError: ``out_dir`` is not writable; with ``resume``, no run is
            recorded there, or one of another command or other options (each
            difference named).
    """

    def __init__(self, out_dir: Any, command: str, options: Mapping[str, Any],
                 resume: bool = False, resume_command: str = "",
                 log: Callable[[str], None] = print):
        self.out_dir = _checks.writable_folder("out_dir", out_dir)
        self.units_dir = os.path.join(self.out_dir, UNITS)
        self.command = command
        self.options = json.loads(json.dumps(_plain(dict(options))))
        self.resume_command = resume_command
        self._log = log
        manifest = os.path.join(self.out_dir, MANIFEST)
        if resume:
            self._check_recorded(manifest)
        else:
            self._start_afresh()
            os.makedirs(self.units_dir, exist_ok=True)
            atomic_write(manifest, lambda p: _dump(p, {"command": command,
                                                       "options": self.options}))
        self.finished: List[str] = sorted(
            name[:-len(".json")] for name in os.listdir(self.units_dir)
            if name.endswith(".json") and not name.startswith("."))
        if resume:
            log(f"resuming the run in {self.out_dir}: {len(self.finished)} finished "
                f"unit(s) are read back, not run again")

    def _check_recorded(self, manifest: str) -> None:
        try:
            with open(manifest, encoding="utf-8") as handle:
                recorded = json.load(handle)
        except (OSError, ValueError):
            raise ValueError(f"--resume: {self.out_dir!r} holds no run to resume (no readable "
                             f"{MANIFEST}); start it without --resume") from None
        if recorded.get("command") != self.command:
            raise ValueError(f"--resume: {self.out_dir!r} holds a run of "
                             f"'kappa {recorded.get('command')}', not of "
                             f"'kappa {self.command}'; use another --out")
        before = recorded.get("options", {})
        differ = [f"{k}={before.get(k)!r} there, {self.options.get(k)!r} now"
                  for k in sorted(set(before) | set(self.options))
                  if before.get(k) != self.options.get(k)]
        if differ:
            raise ValueError(f"--resume: the run in {self.out_dir!r} was started with other "
                             f"options: {'; '.join(differ)}; resume it with its own options, "
                             "or start afresh without --resume")
        os.makedirs(self.units_dir, exist_ok=True)

    def _start_afresh(self) -> None:
        if not os.path.isdir(self.units_dir):
            return
        old = [n for n in os.listdir(self.units_dir) if n.endswith(".json")]
        for name in os.listdir(self.units_dir):
            os.remove(os.path.join(self.units_dir, name))
        if old:
            self._log(f"starting afresh: the {len(old)} finished unit(s) of an earlier run "
                      f"in {self.out_dir} are replaced (--resume continues a run)")

    def path(self, key: str, suffix: str = ".json") -> str:
        """Where unit ``key`` is (or a file of it with another ``suffix``) is kept."""
        return os.path.join(self.units_dir, _key_ok(key) + suffix)

    def done(self, key: str) -> bool:
        """Whether unit ``key`` is finished (kept on disk)."""
        return _key_ok(key) in self.finished

    def save(self, key: str, record: Any) -> None:
        """Keep ``record`` (JSON values, NumPy scalars, tuples) as unit ``key``."""
        atomic_write(self.path(key), lambda p: _dump(p, _plain(record)))
        if key not in self.finished:
            self.finished.append(key)

    def load(self, key: str) -> Any:
        """The record of the finished unit ``key``, as JSON values."""
        with open(self.path(key), encoding="utf-8") as handle:
            return json.load(handle)

    def unit(self, key: str, compute: Callable[[], T],
             encode: Callable[[T], Any] = lambda value: value,
             decode: Callable[[Any], T] = lambda record: record) -> T:
        """Unit ``key``: read back (``decode``) when it is finished, else computed and
        kept (``encode``) as soon as ``compute`` returns.

        Raises:
            ValueError: a finished unit that cannot be read back (edited, or of
                another version): the message names its file.
        """
        if self.done(key):
            try:
                return decode(self.load(key))
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise ValueError(f"the finished unit {self.path(key)!r} cannot be read back "
                                 f"({type(err).__name__}: {err}); remove it to run that unit "
                                 "again") from None
        value = compute()
        self.save(key, encode(value))
        return value

    @contextlib.contextmanager
    def running(self, total: int, unit: str) -> Iterator["RunFolder"]:
        """The block that runs ``total`` units (``unit``: what one is, e.g.
        "expression"): an :class:`Interrupted` leaving it carries the summary."""
        try:
            yield self
        except Interrupted as stop:
            stop.summary = (f"{len(self.finished)} of {total} {unit}(s) finished and kept in "
                            f"{self.units_dir}"
                            + (f"; continue with: {self.resume_command}"
                               if self.resume_command else ""))
            raise


def _dump(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)


def unit(folder: Optional[RunFolder], key: str, compute: Callable[[], T],
         encode: Callable[[T], Any] = lambda value: value,
         decode: Callable[[Any], T] = lambda record: record) -> T:
    """:meth:`RunFolder.unit` where there is a folder, else ``compute()``: what an
    experiment runs whether or not the command line keeps its units."""
    if folder is None:
        return compute()
    return folder.unit(key, compute, encode, decode)


def format_duration(seconds: float) -> str:
    """``seconds`` as people read it.

    Example:
    >>> format_duration(42), format_duration(5400), format_duration(2e6)
    ('42 s', '1 h 30 min', '555 h')
    """
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < HOUR:
        return f"{seconds / 60:.0f} min"
    hours = math.floor(seconds / HOUR)
    minutes = round((seconds - hours * HOUR) / 60)
    return f"{hours} h" + (f" {minutes} min" if minutes and hours < 10 else "")


def check_size(seconds: float, what: str, yes: bool,
               log: Callable[[str], None] = print) -> None:
    """Say how long the run should take (``what``: its size, in words); refuse one of
    more than :data:`HOUR` unless ``yes``.

    The estimate is rough: measured rates of the shared 2-core machine
    (BENCHMARKS.md) times the run's size at its full budget, before early stopping.

    Raises:
        ValueError: a run of more than an hour without ``yes``, before any work.
    """
    if seconds > HOUR and not yes:
        raise ValueError(f"this run ({what}) is estimated at about {format_duration(seconds)} "
                         "(rough: BENCHMARKS.md's rates, the whole budget); pass --yes to "
                         "start it, or make it smaller")
    log(f"estimated: about {format_duration(seconds)} for {what} (rough, at the whole "
        "budget; early stopping ends sooner)")

"""The one timing harness of the ``kappa bench`` subcommands: candidates timed in
interleaved rounds after a warm-up, medians, ratios to a baseline, one report format.

A benchmark builds :class:`Candidate` s (a group, a name and a function that runs the
candidate once), times them with :func:`measure`, and returns a :class:`Report`, which
:func:`format_report` prints: a table of the candidates (medians of wall-clock and
process-CPU time, the bandwidth a candidate's compulsory memory traffic implies where
it names that traffic, and both ratios to the first candidate of its group), then the
report's targets (ratios of medians, each with its limit and verdict, or shown for
comparison) and any further tables.

Why interleaved: on a shared machine the load from other processes comes and goes;
calling the candidates in turn, round after round, spreads it over all of them alike,
and the median over rounds drops the rounds it hit hardest. Wall-clock time is what a
user waits for; process CPU time (all threads of this process) is steadier under other
processes' load.

Example:
>>> numbers = list(range(10000))
>>> builtin = Candidate("sum", "builtin", lambda: sum(numbers))
>>> loop = Candidate("sum", "Python loop", lambda: [n + 1 for n in numbers])
>>> measure([builtin, loop], repeats=5)
>>> len(builtin.wall_ms), len(loop.cpu_ms)
(5, 5)
>>> report = Report("two sums", [builtin, loop],
...                 [target("Python loop / builtin", loop, builtin, limit=1000.0)])
>>> print(format_report(report))  # doctest: +ELLIPSIS
two sums
<BLANKLINE>
group  candidate    wall ms  cpu ms  wall/1st  cpu/1st
---...
sum    builtin      ...
sum    Python loop  ...
<BLANKLINE>
targets (ratios of medians in this run: wall clock, process CPU):
  Python loop / builtin  wall ...  cpu ...  (target <= 1000)  met
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from tensorflow_kappa import _checks
from tensorflow_kappa.experiments.reporting import text_table

__all__ = ["Candidate", "Report", "Samples", "Stopwatch", "Table", "Target", "format_report",
           "measure", "target"]


class Stopwatch:
    """Wall-clock and process-CPU time (milliseconds) from :meth:`start` to :meth:`stop`.

    >>> watch = Stopwatch()
    >>> wall_ms, cpu_ms = watch.stop()
    >>> wall_ms >= 0 and cpu_ms >= 0
    True
    """

    def __init__(self):
        self.start()

    def start(self) -> None:
        """Start (or restart) the interval."""
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self) -> Tuple[float, float]:
        """(wall ms, CPU ms) since :meth:`start`."""
        return ((time.perf_counter() - self._wall) * 1e3,
                (time.process_time() - self._cpu) * 1e3)


class Samples(list):
    """What a candidate's function returns when it times its own steady state (the
    epochs after the first, which traces; the first batch against the others): its
    (wall ms, CPU ms) intervals, taken with a :class:`Stopwatch`. :func:`measure` records
    these instead of the whole call's time."""


@dataclass
class Candidate:
    """One thing timed: ``fn`` runs it once.

    Attributes:
        group: candidates compared with each other; the first of a group is the
            baseline of the table's ratios.
        bytes_moved: compulsory memory traffic of one unit, for the GB/s column
            (0: none shown).
        units: how many units (steps, inner calls) one timed interval covers; the
            recorded times are per unit.
    """
    group: str
    name: str
    fn: Callable[[], Any]
    bytes_moved: int = 0
    units: int = 1
    wall_ms: List[float] = field(default_factory=list)
    cpu_ms: List[float] = field(default_factory=list)

    def record(self, wall_ms: float, cpu_ms: float) -> None:
        """Add one interval's times (divided by :attr:`units`)."""
        self.wall_ms.append(wall_ms / self.units)
        self.cpu_ms.append(cpu_ms / self.units)

    @property
    def median_ms(self) -> float:
        """The median wall-clock time per unit, in ms."""
        return statistics.median(self.wall_ms)

    @property
    def median_cpu_ms(self) -> float:
        """The median process-CPU time per unit, in ms."""
        return statistics.median(self.cpu_ms)

    @property
    def gb_per_s(self) -> float:
        """Memory traffic per second at the median time, ``bytes_moved`` per unit."""
        return self.bytes_moved / self.median_ms / 1e6


def measure(candidates: Sequence[Candidate], repeats: int, warmup: int = 2,
            rotate: bool = False, block: Optional[Callable[[Any], None]] = None) -> None:
    """Time every candidate: ``warmup`` untimed calls each, then ``repeats`` rounds of one
    call per candidate in turn, each call's wall and process CPU time recorded.

    Args:
        rotate: start each round one candidate later, so that no candidate always
            runs right after the same other one.
        block: called with a call's result before its clock stops (to wait for
            asynchronous work, e.g. a device); the call's time includes it.
    """
    _checks.integer("repeats", repeats, minimum=1)
    _checks.integer("warmup", warmup, minimum=0)
    wait = block or (lambda result: None)
    for _ in range(warmup):
        for c in candidates:
            wait(c.fn())
    order = list(candidates)
    for r in range(repeats):
        shift = r % len(order) if rotate and order else 0
        for c in order[shift:] + order[:shift]:
            watch = Stopwatch()
            result = c.fn()
            wait(result)
            for wall_ms, cpu_ms in result if isinstance(result, Samples) else [watch.stop()]:
                c.record(wall_ms, cpu_ms)


@dataclass
class Target:
    """A ratio of medians: judged against ``limit`` by ``comparison`` (``"<="``, ``">="``
    or ``">"``), or, without a limit, shown for comparison. ``cpu_ratio`` is the same
    ratio in process CPU time, where it means something."""
    description: str
    ratio: float
    limit: Optional[float] = None
    comparison: str = "<="
    cpu_ratio: Optional[float] = None

    def __post_init__(self):
        _checks.one_of("comparison", self.comparison, _COMPARISONS)

    @property
    def met(self) -> Optional[bool]:
        """Whether the ratio meets the limit; None without one."""
        return None if self.limit is None else _COMPARISONS[self.comparison](self.ratio,
                                                                             self.limit)


_COMPARISONS: Dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, ">": lambda a, b: a > b}


def target(description: str, a: Candidate, b: Candidate, limit: Optional[float] = None,
           comparison: str = "<=") -> Target:
    """The ratio of ``a``'s medians to ``b``'s (wall clock, and process CPU unless ``b``'s
    is 0: below the clock's resolution)."""
    cpu = a.median_cpu_ms / b.median_cpu_ms if b.median_cpu_ms else None
    return Target(description, a.median_ms / b.median_ms, limit, comparison, cpu)


@dataclass
class Table:
    """A further measurement of a report (counts, derived times): a header row, then rows."""
    title: str
    rows: List[Sequence[str]]


@dataclass
class Report:
    """What a benchmark's ``run`` returns and :func:`format_report` prints.

    Attributes:
        title: the first lines: what was timed, where, over how many rounds.
        unit: what one recorded time covers ("ms": a call; "ms/step": one step).
        notes: lines printed last.
    """
    title: str
    candidates: List[Candidate]
    targets: List[Target] = field(default_factory=list)
    tables: List[Table] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    unit: str = "ms"

    def candidate(self, group: str, name: str) -> Candidate:
        """The candidate ``name`` of ``group``."""
        for c in self.candidates:
            if (c.group, c.name) == (group, name):
                return c
        raise KeyError(f"no candidate {name!r} in group {group!r}")


def format_report(report: Report) -> str:
    """The report as text: title, candidates table, targets, further tables, notes."""
    bandwidth = any(c.bytes_moved for c in report.candidates)
    header = ["group", "candidate", f"wall {report.unit}", f"cpu {report.unit}"]
    rows = [header + (["GB/s"] if bandwidth else []) + ["wall/1st", "cpu/1st"]]
    first: Dict[str, Candidate] = {}
    for c in report.candidates:
        base = first.setdefault(c.group, c)
        rows.append([c.group, c.name, f"{c.median_ms:.3f}", f"{c.median_cpu_ms:.3f}"]
                    + ([f"{c.gb_per_s:.2f}" if c.bytes_moved else "-"] if bandwidth else [])
                    + [f"{c.median_ms / base.median_ms:.3f}",
                       _ratio(c.median_cpu_ms, base.median_cpu_ms)])
    lines = [report.title, "", text_table(rows, left=2)]
    if report.targets:
        lines += ["", "targets (ratios of medians in this run: wall clock, process CPU):"]
        width = max(len(t.description) for t in report.targets)
        for t in report.targets:
            cpu = "" if t.cpu_ratio is None else f"  cpu {t.cpu_ratio:6.3f}"
            verdict = "" if t.limit is None else (
                f"  (target {t.comparison} {t.limit:g})  {'met' if t.met else 'MISSED'}")
            lines.append(f"  {t.description:<{width}}  wall {t.ratio:6.3f}{cpu}{verdict}")
    for table in report.tables:
        lines += ["", table.title, text_table(table.rows)]
    if report.notes:
        lines += [""] + report.notes
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    """``a / b`` formatted, "-" where ``b`` is 0 (a CPU time below the clock's resolution)."""
    return f"{a / b:.3f}" if b else "-"

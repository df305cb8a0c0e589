"""The timing harness every ``kappa bench`` suite uses: interleaving, warm-up, medians,
ratios, targets and the one report format."""
import statistics
import time

import pytest

from tensorflow_kappa.experiments.timing import (Candidate, Report, Samples, Stopwatch, Table,
                                                 Target, format_report, measure, target)


def logging_candidates(log, names, group="g"):
    return [Candidate(group, name, lambda name=name: log.append(name)) for name in names]


def test_rounds_interleave_the_candidates_after_the_warm_up():
    log = []
    candidates = logging_candidates(log, "abc")
    measure(candidates, repeats=3, warmup=2)
    assert log == list("abc" * 5)  # two warm-up rounds, then three timed ones
    assert all(len(c.wall_ms) == len(c.cpu_ms) == 3 for c in candidates)


def test_rotated_rounds_start_one_candidate_later_each_round():
    log = []
    measure(logging_candidates(log, "abc"), repeats=4, warmup=0, rotate=True)
    assert "".join(log) == "abc" + "bca" + "cab" + "abc"


def test_medians_follow_the_time_each_call_takes():
    sleeper = Candidate("g", "sleep 20 ms", lambda: time.sleep(0.02))
    idle = Candidate("g", "nothing", lambda: None)
    measure([idle, sleeper], repeats=3, warmup=0)
    assert 19 < sleeper.median_ms < 200 and idle.median_ms < 5
    assert sleeper.median_cpu_ms < 10  # sleeping costs no CPU
    assert sleeper.median_ms == statistics.median(sleeper.wall_ms)


def test_times_are_per_unit_and_self_timed_calls_record_their_samples():
    own = Candidate("g", "own", lambda: Samples([(10.0, 4.0), (30.0, 8.0)]), units=5)
    measure([own], repeats=2, warmup=1)
    assert own.wall_ms == [2.0, 6.0, 2.0, 6.0] and own.cpu_ms == [0.8, 1.6, 0.8, 1.6]
    assert own.median_ms == 4.0 and own.median_cpu_ms == pytest.approx(1.2)
    own.bytes_moved = 8_000_000
    assert own.gb_per_s == pytest.approx(2.0)  # 8 MB in 4 ms


def test_block_waits_inside_the_timed_call():
    seen = []
    slow_result = Candidate("g", "c", lambda: 7)
    measure([slow_result], repeats=2, warmup=1,
            block=lambda result: (seen.append(result), time.sleep(0.01)))
    assert seen == [7, 7, 7] and min(slow_result.wall_ms) >= 9


def test_stopwatch_measures_from_start():
    watch = Stopwatch()
    time.sleep(0.01)
    watch.start()
    wall, cpu = watch.stop()
    assert 0 <= wall < 9 and cpu >= 0


def test_targets_judge_the_ratio_of_medians():
    a, b = Candidate("g", "a", None), Candidate("g", "b", None)
    a.wall_ms, a.cpu_ms, b.wall_ms, b.cpu_ms = [3.0, 9.0, 6.0], [2.0], [2.0, 4.0, 3.0], [4.0]
    t = target("a / b", a, b, 2.0)
    assert (t.ratio, t.cpu_ratio, t.met) == (2.0, 0.5, True)
    assert target("a / b", a, b, 2.0, ">").met is False
    assert target("a / b", a, b, 2.1, ">=").met is False
    assert target("a / b", a, b).met is None
    with pytest.raises(ValueError, match="comparison must be one of '<=', '>=', '>', got '<'"):
        Target("x", 1.0, 2.0, "<")


def test_the_report_format_shows_every_number():
    first, second = Candidate("g1", "first", None, bytes_moved=4_000_000), \
        Candidate("g1", "second", None)
    other = Candidate("g2", "alone", None)
    for c, wall, cpu in ((first, 2.0, 1.0), (second, 5.0, 3.0), (other, 1.5, 0.0)):
        c.wall_ms, c.cpu_ms = [wall], [cpu]
    report = Report("title line", [first, second, other],
                    [target("second / first", second, first, 3.0), Target("derived", 1.25)],
                    [Table("counts", [("what", "n"), ("traces", "2")])], ["a note"], "ms/step")
    lines = format_report(report).splitlines()
    assert lines[:3] == ["title line", "",
                         "group  candidate  wall ms/step  cpu ms/step  GB/s  wall/1st  cpu/1st"]
    assert lines[4].split() == ["g1", "first", "2.000", "1.000", "2.00", "1.000", "1.000"]
    assert lines[5].split() == ["g1", "second", "5.000", "3.000", "-", "2.500", "3.000"]
    assert lines[6].split() == ["g2", "alone", "1.500", "0.000", "-", "1.000", "-"]
    assert lines[9].split() == ["second", "/", "first", "wall", "2.500", "cpu", "3.000",
                                "(target", "<=", "3)", "met"]
    assert lines[10].split() == ["derived", "wall", "1.250"]
    assert lines[12:16] == ["counts", "what    n", "---------", "traces  2"]
    assert lines[-1] == "a note"
    assert report.candidate("g1", "second") is second
    with pytest.raises(KeyError, match="no candidate 'second' in group 'g2'"):
        report.candidate("g2", "second")

"""Smoke test of ``kappa bench core`` (the NumPy binding against the custom ops)."""
import re

from tensorflow_kappa import cli
from tensorflow_kappa.experiments import core_bench


def test_kappa_bench_core_small_runs_every_candidate(capsys):
    assert cli.main(["bench", "core", "--size", "65536", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "65536 float32 elements" in out and "median of 2 interleaved rounds" in out
    rows = [line for line in out.splitlines()
            if line.startswith(("quantize ", "rail_stats ", "update "))]
    assert len(rows) == 10
    assert sum(core_bench.OP in row for row in rows) == 4
    for row in rows:  # wall ms, cpu ms, GB/s, both ratios to the op: positive numbers
        numbers = [float(v) for v in re.findall(r"\d+\.\d+", row)[-5:]]
        assert len(numbers) == 5 and all(v > 0 for v in numbers), row
    assert out.count(" / op ") == 6


def test_ratios_follow_the_medians():
    report = core_bench.run(size=4096, repeats=1)
    by = {(c.group, c.name): c.median_ms for c in report.candidates}
    first = report.targets[0]
    assert first.description == f"quantize nearest_even: {core_bench.CORE} / op"
    want = by[("quantize nearest_even", core_bench.CORE)] / by[("quantize nearest_even",
                                                                 core_bench.OP)]
    assert first.ratio == want and first.met == (want <= core_bench.TARGET)

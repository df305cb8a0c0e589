"""Smoke test of ``kappa bench xla`` (the XLA lowerings timed side by side)."""
import pytest

from tensorflow_kappa import cli
from tensorflow_kappa.experiments import xla_bench


def test_kappa_bench_xla_small_runs_every_candidate(capsys):
    assert cli.main(["bench", "xla", "--size", "65536", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "median of 2 interleaved rounds" in out and "standalone: 65536 float32" in out
    rows = [line for line in out.splitlines() if line.startswith(("fused ", "standalone "))]
    assert len(rows) == 6
    for row in rows:  # wall ms, cpu ms (then the ratios to the group's first)
        wall, cpu = (float(v) for v in row.split()[-4:-2])
        assert wall > 0 and cpu >= 0, row
    assert out.count("(target <= ") == 2


def test_ratios_follow_the_medians():
    report = xla_bench.run(size=4096, fused_size=4096, inner=8, repeats=1)
    by_name = {c.name: c for c in report.candidates}
    first = report.targets[0]
    assert first.description == "fused: lowered op / without quantize" and first.limit == 1.10
    assert first.ratio == (by_name["XLA, lowered op"].median_ms
                           / by_name["XLA, without quantize"].median_ms)
    assert first.met == (first.ratio <= 1.10)
    assert [t.limit for t in report.targets] == [1.10, None, None, 1.2]


def test_fused_size_must_fill_the_rows():
    with pytest.raises(ValueError, match="fused_size must be a multiple of 1024, got 1000"):
        xla_bench.run(fused_size=1000)

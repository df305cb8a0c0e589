"""Smoke test of ``kappa bench`` (the quantization ops' side-by-side benchmark)."""
import re

from tensorflow_kappa import cli
from tensorflow_kappa.experiments import op_bench


def test_kappa_bench_small_runs_every_candidate(capsys):
    assert cli.main(["bench", "--size", "65536", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "65536 float32 elements" in out and "median of 2 interleaved rounds" in out
    for name in ["kappa custom op, nearest_even", "kappa custom op, stochastic",
                 "kappa twin, tf.function", "kappa twin, XLA",
                 "tf fake_quant_with_min_max_args", "tf.reduce_sum",
                 "tf assign_sub(lr * grad)"]:
        assert name in out, name
    rows = [line for line in out.splitlines()
            if line.startswith(("quantize ", "rail_stats ", "update "))]
    assert len(rows) == 14
    for row in rows:  # wall ms, cpu ms, GB/s, both ratios to the group's first: positive
        numbers = [float(v) for v in re.findall(r"\d+\.\d+", row)[-5:]]
        assert len(numbers) == 5 and all(v > 0 for v in numbers), row
    assert out.count("(target ") == 7


def test_report_targets_follow_the_medians():
    report = op_bench.run(size=4096, repeats=1)
    by_name = {f"{c.group}/{c.name}": c for c in report.candidates}
    rail = [t for t in report.targets if t.description == "rail_stats / tf.reduce_sum"][0]
    want = (by_name["rail_stats/kappa custom op"].median_ms
            / by_name["rail_stats/tf.reduce_sum"].median_ms)
    assert rail.ratio == want and rail.met == (want <= 2.0)

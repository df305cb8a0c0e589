"""``kappa bench loop-controller`` and ``kappa bench trainer``: the modules run and report."""
import pytest

from tensorflow_kappa import cli
from tensorflow_kappa.experiments import loop_controller_bench
from tensorflow_kappa.experiments.timing import Report, format_report


def test_loop_controller_bench_reports_its_three_tables():
    report = loop_controller_bench.run(repeats=1, steps=4, epochs=2, trace_actions=(1, 2))
    assert [c.name for c in report.candidates] == [
        "plain fit", "plain fit + no-op batch callback", "1 action (all variables)",
        "2 actions"]
    for c in report.candidates:  # one round of epochs 2..2, per step
        assert len(c.wall_ms) == 1 and c.median_ms > 0 and c.median_cpu_ms > 0, c.name
    counts, tracing = report.tables
    rows = {row[0]: tuple(row[1:]) for row in counts.rows[1:]}
    # a control flipping every batch traces each of its two states once
    assert rows == {"flips every batch": ("8", "7", "2"), "constant": ("8", "0", "1")}
    assert [row[0] for row in tracing.rows[1:]] == ["1", "2"]
    text = format_report(report)
    [plain] = [line.split() for line in text.splitlines()
               if line.split()[:3] == ["step", "plain", "fit"] and len(line.split()) == 7]
    assert plain[-2:] == ["1.000", "1.000"]  # the ratios are against plain fit
    assert "Traces per fit" in text and "Tracing time" in text


def test_trainer_bench_reports_every_model_and_path(capsys):
    assert cli.main(["bench", "trainer", "--quick", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 interleaved rounds" in out and "eager timed over 8 steps" in out
    rows = [line.split(")", 1) for line in out.splitlines()
            if line.startswith(("linear ", "mlp-64-64 "))]
    groups = [group for group, _ in rows[::5]]
    assert groups == ["linear float (22 metrics", "linear fixed (28 metrics",
                      "mlp-64-64 float (22 metrics", "mlp-64-64 fixed (28 metrics"]
    assert [cells.split()[0] for _, cells in rows[:5]] == [
        "compiled", "eager", "fit", "compiled+trace", "fit+trace"]
    for _, cells in rows:  # wall, cpu, ratios: positive numbers
        assert all(float(v) > 0 for v in cells.split()[1:]), cells
    for label in ("eager / compiled", "compiled / fit", "compiled+trace / fit+trace"):
        assert out.count(f": {label}  ") == 4, label


@pytest.mark.parametrize("argv, expected", [
    (["bench", "loop-controller"], {}),
    (["bench", "loop-controller", "--quick"], loop_controller_bench.QUICK),
    (["bench", "loop-controller", "--quick", "--repeats", "3"],
     {**loop_controller_bench.QUICK, "repeats": 3}),
    (["bench", "loop-controller", "--size", "8"], {}),
])
def test_cli_passes_the_options_to_the_loop_controller_bench(argv, expected, monkeypatch):
    seen = {}

    def run(**options):
        seen.update(options)
        return Report("stub", [])

    monkeypatch.setattr(loop_controller_bench, "run", run)
    assert cli.main(argv) == 0
    assert seen == expected

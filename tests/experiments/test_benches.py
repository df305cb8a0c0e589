"""``kappa bench loop-controller`` and ``kappa bench trainer``: the modules run and report."""
import re

import pytest

from tensorflow_kappa import cli
from tensorflow_kappa.experiments import loop_controller_bench


def test_loop_controller_bench_reports_its_three_tables():
    lines = []
    loop_controller_bench.run(rounds=1, steps=4, epochs=2, trace_actions=(1, 2),
                              log=lines.append)
    text = "\n".join(lines)
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ")}
    assert rows["plain fit"].split(" | ")[2] == "1.000"  # ratios are against plain fit
    for name in ("plain fit + no-op batch callback", "1 action (all variables)", "2 actions"):
        assert float(rows[name].split(" | ")[2]) > 0, name
    # a control flipping every batch traces each of its two states once
    flips = rows["flips every batch"].strip("| ").split(" | ")
    assert flips[1:] == ["8", "7", "2"]
    assert rows["constant"].strip("| ").split(" | ")[1:] == ["8", "0", "1"]
    assert re.search(r"\| 2 \| -?\d+\.\d{3} \| -?\d+\.\d{3} \|", text)


def test_trainer_bench_reports_every_model_and_path(capsys):
    assert cli.main(["bench", "trainer", "--quick", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 interleaved rounds" in out and "eager timed over 8 steps" in out
    rows = [line.split() for line in out.splitlines()
            if line.startswith(("linear ", "mlp-64-64 "))]
    assert [(r[0], r[1]) for r in rows] == [("linear", "float"), ("linear", "fixed"),
                                            ("mlp-64-64", "float"), ("mlp-64-64", "fixed")]
    for row in rows:
        assert int(row[2]) >= 22 and all(float(v.rstrip("x")) > 0 for v in row[3:]), row


@pytest.mark.parametrize("argv, expected", [
    (["bench", "loop-controller"], {}),
    (["bench", "loop-controller", "--quick"], loop_controller_bench.QUICK),
    (["bench", "loop-controller", "--quick", "--repeats", "3"],
     {**loop_controller_bench.QUICK, "rounds": 3}),
])
def test_cli_passes_the_options_to_the_loop_controller_bench(argv, expected, monkeypatch):
    seen = {}
    monkeypatch.setattr(loop_controller_bench, "run", lambda log, **kw: seen.update(kw))
    assert cli.main(argv) == 0
    assert seen == expected

"""``kappa arithmetic``: a short smoke run writes its PNG and JSON and prints the verdict;
the library job's bookkeeping (epochs, seeds, Wilson interval) is consistent."""
import json

import numpy as np
import pytest

from tensorflow_kappa import cli
from tensorflow_kappa.experiments.arithmetic import train_arithmetic, train_arithmetic_seeds
from tensorflow_kappa.evaluation import wilson_interval


def test_kappa_arithmetic_one_epoch_smoke(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["arithmetic", "--epochs", "1", "--n", "3000", "--seed", "3",
                     "--out", str(out), "--verbose", "2"])
    assert code == 0
    text = capsys.readouterr().out
    assert "epoch 1: loss" in text and "interpolation MSE" in text and "controller:" in text
    assert "verdict: NO SUCCESS" in text  # one short epoch cannot solve the task
    assert "formula: " in text
    png, js = out / "arithmetic_seed3.png", out / "arithmetic_seed3.json"
    assert f"wrote {png} and {js}" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    summary = json.loads(js.read_text())
    assert summary["seed"] == 3 and summary["epochs"] == 1
    assert summary["summary_path"] == str(js) and summary["plot_path"] == str(png)
    assert summary["expression"] == "(x1 - x2) * (x3 - x4) + x5 * x6"
    assert summary["steps"] == int(np.ceil(3000 / 64))
    assert len(summary["interpolation_mse"]) == len(summary["extrapolation_mse"]) == 1
    assert summary["success"] is False and summary["formula_correct"] is False
    assert 1e-6 < summary["threshold"] < 1e-4
    assert summary["config"]["recipe"]["gate_period"] == 10
    assert summary["config"]["recipe"]["loss_key"] == "batch_mse"


def test_seeds_summary_and_arguments(tmp_path):
    summary = train_arithmetic_seeds([0, 1], out_dir=str(tmp_path), verbose=0,
                                     expression="x1 + x2", num_inputs=2, layers=(1,),
                                     epochs=1, n=640)
    assert [r.seed for r in summary.results] == [0, 1]
    assert summary.runs == 2
    assert summary.wilson_95 == wilson_interval(summary.successes, 2)
    data = json.loads((tmp_path / "arithmetic_summary.json").read_text())
    assert data["runs"] == 2 and len(data["results"]) == 2
    assert data["summary_path"] == summary.summary_path == str(tmp_path / "arithmetic_summary.json")
    assert (tmp_path / "arithmetic_seed1.png").exists()
    with pytest.raises(ValueError, match="layers must end with a 1-unit layer"):
        train_arithmetic(layers=(3, 2), epochs=1, n=64, verbose=0)
    with pytest.raises(ValueError, match="epochs"):
        train_arithmetic(epochs=0, n=64, verbose=0)
    with pytest.raises(SystemExit):
        cli.main(["arithmetic", "--seed", "1", "--seeds", "2"])


@pytest.mark.slow
def test_default_recipe_solves_the_report_task_for_seed_0():
    """The README's first command for seed 0 (about a minute on 2 cores)."""
    result = train_arithmetic(seed=0, verbose=0)
    assert result.success, result.to_dict()
    assert result.formula == "(x1 - x2) * (x3 - x4) + x5 * x6"
    assert result.formula_correct
    assert result.stopped_early
    assert result.regularization_started and result.regularization_started[0][0] == 11

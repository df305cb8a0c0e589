"""``kappa arithmetic``: a short smoke run writes its PNG and JSON and prints the verdict;
the library job's bookkeeping is consistent (many seeds: test_arithmetic_population.py)."""
import json

import numpy as np
import pytest

from tensorflow_kappa import cli
from tensorflow_kappa.experiments.arithmetic import train_arithmetic


def test_kappa_arithmetic_one_epoch_smoke(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["arithmetic", "--epochs", "1", "--n", "3000", "--seed", "3",
                     "--train-range", "[-2, 2]", "--out", str(out), "--verbose", "2"])
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
    assert summary["config"]["train_range"] == [-2, 2]
    assert summary["config"]["extrapolation_range"] == [10, 15]
    assert summary["config"]["recipe"]["gate_period"] == 10
    assert summary["config"]["recipe"]["loss_key"] == "batch_mse"


def test_bad_arguments():
    with pytest.raises(ValueError, match="layers must end with a 1-unit layer"):
        train_arithmetic(layers=(3, 2), epochs=1, n=64, verbose=0)
    with pytest.raises(ValueError, match="epochs"):
        train_arithmetic(epochs=0, n=64, verbose=0)


def test_report_option_runs_the_published_recipe(tmp_path):
    result = train_arithmetic("x1 + x2", num_inputs=2, layers=(1,), epochs=1, n=640, verbose=0,
                              controller_options={"report": True})
    assert result.config["recipe"]["detector"] == "authors"
    assert result.config["recipe"]["init_families"] == ["published"]


@pytest.mark.slow
def test_default_recipe_solves_the_report_task_for_seed_0():
    """The README's first command for seed 0 (about a minute on 2 cores)."""
    result = train_arithmetic(seed=0, verbose=0)
    assert result.success, result.to_dict()
    assert result.formula == "(x1 - x2) * (x3 - x4) + x5 * x6"
    assert result.formula_correct
    assert result.stopped_early
    assert result.regularization_started and result.regularization_started[0][0] == 11

"""``kappa ablation`` and tensorflow_kappa.experiments.ablation."""
import json

import numpy as np
import pytest

from tensorflow_kappa import cli
from tensorflow_kappa.experiments.ablation import run_ablation, summarize_history
from tensorflow_kappa.models.history import FitHistory

RUNS = ["float-off", "float-on", "fixed-off", "fixed-on", "lowlr-float-off", "lowlr-coarse-off"]


def _table_rows(out):
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("run "))
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        name = line.split()[0]
        rows[name] = line
    return lines[start], rows


@pytest.mark.slow
def test_cli_ablation_table_files_and_silent_learning_death(tmp_path, capsys):
    spec = tmp_path / "precision.json"
    spec.write_text(json.dumps({"*": {"weight": "s16.13", "update": "s16.13",
                                      "gradient": "s16.10"}}))
    out_dir = tmp_path / "out"
    rc = cli.main(["ablation", "--precision", str(spec), "--epochs", "3", "--n", "256",
                   "--input-dim", "8", "--output-dim", "2", "--seed", "1",
                   "--death-update", "s8.2", "--out", str(out_dir)])
    assert rc == 0
    out = capsys.readouterr().out
    header, rows = _table_rows(out)
    for column in ("final loss", "weight err", "max margin", "min cos", "max underflow",
                   "max sat", "died"):
        assert column in header
    assert list(rows) == RUNS
    for name in RUNS:
        assert (out_dir / f"{name}.npz").is_file() and (out_dir / f"{name}.png").is_file()
        h = FitHistory.load(str(out_dir / f"{name}.npz"))
        last = h.epoch == h.epoch[-1]
        final = np.mean(h.loss[last])
        # The table's final loss is the last epoch's mean batch loss of the saved history.
        assert f"{final:.3g}" in rows[name].split()
        died = rows[name].split()[-1] == "YES"
        assert died == (name == "lowlr-coarse-off"), name
    dead = FitHistory.load(str(out_dir / "lowlr-coarse-off.npz"))
    assert np.all(dead.update_underflow_fraction_max[dead.epoch == 2] == 1)
    assert np.all(dead.actual_update_norm[dead.epoch == 2] == 0)
    assert "SILENT LEARNING DEATH" in out
    assert (out_dir / "summary.txt").read_text().startswith("run ")


def test_precision_option_takes_one_format_and_bad_formats_fail_early(tmp_path):
    runs = run_ablation("s12.8", epochs=1, n=64, input_dim=4, output_dim=1,
                        death_update=None, learning_rate=0.1)
    assert [r.name for r in runs] == RUNS[:4]
    assert runs[2].history.metadata["precision_dict"]["*"]["weight"] == "s12.8"
    assert runs[2].precision == "s12.8"
    with pytest.raises(ValueError, match="Cannot parse"):
        run_ablation("s12", epochs=1, n=64, input_dim=4, output_dim=1)
    with pytest.raises(ValueError, match="Cannot parse"):
        run_ablation(None, epochs=1, n=64, input_dim=4, output_dim=1, death_update="x")


def test_summary_row_of_a_frozen_and_a_healthy_history():
    n = 20
    epoch = np.repeat([0, 1], 10)
    common = dict(epoch=epoch, loss=np.linspace(1, 0.5, n), weight_error_fro=np.ones(n),
                  stability_margin_lambda_ctrl=np.full(n, 0.3), raw_update_norm=np.full(n, 0.1),
                  finite=np.ones(n))
    frozen = FitHistory(update_cosine=np.r_[np.ones(10), np.zeros(10)],
                        update_radius_ratio=np.r_[np.ones(10), np.zeros(10)], **common)
    healthy = FitHistory(update_cosine=np.ones(n), update_radius_ratio=np.ones(n), **common)
    assert summarize_history(frozen)["died"] and not summarize_history(healthy)["died"]
    row = summarize_history(frozen)
    assert row["final_loss"] == pytest.approx(np.mean(np.linspace(1, 0.5, n)[10:]))
    assert row["min_cosine"] == 0 and row["max_margin"] == pytest.approx(0.3)

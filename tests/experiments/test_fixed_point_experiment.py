"""``kappa fixed-point`` and ``kappa bench fixed-point``: the study's parts and smoke runs."""
import json

import numpy as np
import pytest

from tensorflow_kappa import cli
from tensorflow_kappa.experiments import fixed_point, fixed_point_bench
from tensorflow_kappa.experiments.timing import format_report
from tensorflow_kappa.quantization import PrecisionDict



def test_digits_are_split_reproducibly_and_scaled():
    a = fixed_point.load_digits(seed=1)
    b = fixed_point.load_digits(seed=1)
    x_train, y_train, x_test, y_test = a
    assert x_train.shape[1:] == (8, 8, 1) and x_train.dtype == np.float32
    assert len(x_train) + len(x_test) == 1797 and len(x_test) == round(1797 * 0.25)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0 and set(y_test) == set(range(10))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(fixed_point.load_digits(seed=2)[0], x_train)


def test_the_precision_dict_stores_weights_in_the_studied_format():
    p = PrecisionDict(fixed_point.precision_for("s16.8", "stochastic"))
    assert str(p.format("conv1", "weight")) == "s16.8:stochastic"
    assert str(p.format("dense", "bias")) == "s16.8:stochastic"
    assert str(p.format("conv2", "activation")) == "s16.10:stochastic"
    assert str(p.format("input", "value")) == "s16.14:stochastic"
    assert str(PrecisionDict(fixed_point.precision_for("s16.12", "nearest_even"))
               .format("dense", "error")) == "s16.14"


def test_epochs_to_target():
    run = fixed_point.DigitsRun("r", "s16.8", "stochastic", [0.5, 0.92, 0.91], [1, 1, 1],
                                [0.1] * 3, [1.0] * 3, [0] * 3, [0] * 3, 1.0)
    assert run.epochs_to(0.9) == 2 and run.epochs_to(0.95) is None


def test_the_command_writes_its_table_json_and_png(tmp_path, capsys):
    out = tmp_path / "fp"
    assert cli.main(["fixed-point", "--epochs", "2", "--formats", "s16.8", "--limit", "240",
                     "--every", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = (out / "fixed_point.txt").read_text()
    assert table.strip() in printed
    lines = table.strip().splitlines()
    assert lines[0].split()[:3] == ["run", "test", "acc"]
    assert [line.split()[0:2] for line in lines[2:]] == [["float32", lines[2].split()[1]],
                                                        ["s16.8", "RN"], ["s16.8", "SR"]]
    record = json.loads((out / "fixed_point.json").read_text())
    names = [r["name"] for r in record["runs"]]
    assert names == ["float32", "s16.8 RN", "s16.8 SR"]
    for run in record["runs"][1:]:
        assert len(run["test_accuracy"]) == 2 and len(run["update_underflow"]) == 2
        assert all(0 <= u <= 1 for u in run["update_underflow"])
    # Stochastic rounding keeps the step in expectation; round-to-nearest loses part of it.
    assert record["runs"][2]["update_progress"][-1] == pytest.approx(1.0, abs=0.1)
    assert record["runs"][1]["update_progress"][-1] < 0.9
    assert (out / "fixed_point.png").stat().st_size > 20_000


def test_bad_formats_and_roundings_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fixed-point", "--formats", "q16.8", "--epochs", "1"])
    assert exit_info.value.code == 2 and "q16.8" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["fixed-point", "--roundings", "up", "--epochs", "1"])
    err = capsys.readouterr().err
    assert "argument --roundings" in err and "'up'" in err


def test_the_bench_reports_its_candidates_and_goals():
    report = fixed_point_bench.run(repeats=1, batch_sizes=(64,), limit=128)
    text = format_report(report)
    assert [(c.group, c.name) for c in report.candidates] == [
        ("batch 64", name) for name in fixed_point_bench.CANDIDATES]
    assert all(c.median_ms > 0 for c in report.candidates) and report.unit == "ms/step"
    for a, b, goal, op in fixed_point_bench.GOALS:
        assert f"batch 64: {a} / {b} " in text and f"(target {op} {goal:g})" in text
    derived = report.targets[-1]
    every = report.candidate("batch 64", "fixed + monitor every step").median_ms
    assert derived.ratio == 1 + (every / report.candidate("batch 64", "fixed").median_ms - 1) / 100

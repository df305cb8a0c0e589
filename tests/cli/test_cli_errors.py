"""Bad input on the command line ends with the package's message, not a traceback."""
import pytest

from tensorflow_kappa import cli


@pytest.mark.parametrize("argv, expected", [
    (["arithmetic", "--expression", "x1 + * x2", "--epochs", "1"], "at position 5 of 'x1 + * x2'"),
    (["arithmetic", "--layers", "3,a", "--epochs", "1"], "'3,a'"),
    (["ablation", "--precision", "s99.1", "--epochs", "1"], "bits=99"),
])
def test_bad_input_exits_with_message(argv, expected, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kappa {argv[0]}: error:") and expected in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, flag", [
    (["arithmetic", "--epochs", "-2"], "--epochs"),
    (["arithmetic", "--seeds", "0"], "--seeds"),
    (["bench", "--size", "0"], "--size"),
    (["nalm-benchmark", "--seeds", "x"], "--seeds"),
])
def test_counts_must_be_positive_integers(argv, flag, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err and argv[-1] in err


# -- the CLI rule: one line naming the option and the value, exit 2, before any work --------
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def bad_option_cases(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    malformed = tmp_path / "malformed.json"
    malformed.write_text("{not json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"*": {"weight": "s99.1"}}))
    return [
        (["ablation", "--precision", "missing.json"], "--precision", "missing.json"),
        (["ablation", "--precision", str(malformed)], "--precision", "malformed.json"),
        (["ablation", "--precision", str(wrong)], "--precision", "bits=99"),
        (["ablation", "--death-update", "s8.4:up"], "--death-update", "'up'"),
        (["ablation", "--out", str(a_file / "sub")], "--out", "a_file"),
        (["ablation", "--lr", "nan"], "--learning-rate", "nan"),
        (["ablation", "--seed", "-1"], "--seed", "-1"),
        (["arithmetic", "--expression", "x9999999999"], "--expression", "x9999999999"),
        (["arithmetic", "--inputs", "9999999999"], "--inputs", "9999999999"),
        (["arithmetic", "--out", str(a_file)], "--out", "a_file"),
        (["arithmetic", "--layers", "3,2"], "--layers", "(3, 2)"),
        (["arithmetic", "--train-range", "[-3"], "--train-range", "[-3"),
        (["arithmetic", "--extrapolation-range", "[15, 10]"], "--extrapolation-range",
         "[15, 10]"),
        (["arithmetic", "--suite", "--extrapolation-range", "[[10, 15], 3]"],
         "--extrapolation-range", "[[10, 15], 3]"),
        (["nalm-benchmark", "--ranges", "99"], "--ranges", "'99'"),
        (["nalm-benchmark", "--ranges", "[[1, 2"], "--ranges", "[[1, 2"),
        (["nalm-benchmark", "--ranges", "[[[3, -3], [10, 15]]]"], "--ranges", "[3, -3]"),
        (["nalm-benchmark", "--ops", "add,pow"], "--ops", "add,pow"),
        (["nalm-benchmark", "--models", "resnet"], "--models", "resnet"),
        (["nalm-benchmark", "--out", str(a_file / "x")], "--out", "a_file"),
        (["bench", "--size", "0"], "--size", "0"),
        (["fixed-point", "--formats", "s16.8,s99.1"], "--formats", "bits=99"),
        (["fixed-point", "--roundings", "nearest_even,up"], "--roundings", "'up'"),
        (["fixed-point", "--formats", "s16.8,s30.20"], "--formats", "s30.20"),
        (["fixed-point", "--limit", "1"], "--limit", "1"),
        (["arithmetic", "--train-range", "[true, 3]"], "--train-range", "[true, 3]"),
        (["arithmetic", "--extrapolation-range", "[[10, 15], [false, 2]]"],
         "--extrapolation-range", "[[10, 15], [false, 2]]"),
        (["nalm-benchmark", "--ranges", "[[[true, 2], [2, 6]]]"], "--ranges", "True"),
        (["fixed-point", "--lr", "inf"], "--learning-rate", "inf"),
        (["fixed-point", "--target", "1.5"], "--target", "1.5"),
        (["fixed-point", "--out", str(a_file / "sub")], "--out", "a_file"),
        (["inspect", str(tmp_path / "missing.keras"), "--format", "s8.4"], "MODEL_FILE",
         "missing.keras"),
        (["inspect", str(a_file), "--format", "s8.40x"], "--format", "s8.40x"),
    ]


def test_bad_options_end_in_one_line_naming_the_option_and_the_value(tmp_path, capsys):
    for argv, option, value in bad_option_cases(tmp_path):
        code, out, err = run_main(argv, capsys)
        assert code == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (argv, err)
        assert lines[0].startswith(f"kappa {argv[0]}: error: argument {option}"), (argv, err)
        assert value in lines[0], (argv, err)
        assert "Traceback" not in err and out == "", (argv, out)


def test_the_output_folder_is_checked_before_any_work(tmp_path, capsys, monkeypatch):
    from tensorflow_kappa.experiments import arithmetic
    monkeypatch.setattr(arithmetic, "train_arithmetic", lambda **kw: pytest.fail("trained"))
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code, _, err = run_main(["arithmetic", "--out", str(blocker / "runs")], capsys)
    assert code == 2 and "argument --out: cannot write files in" in err


def test_a_write_that_fails_at_the_end_still_prints_the_results(tmp_path, capsys, monkeypatch):
    """The run is not lost: the verdict and the formula are printed, the missing file is
    named, and the exit status says that something went wrong."""
    from tensorflow_kappa.experiments import arithmetic

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(arithmetic, "plot_run", full_disk)
    status = cli.main(["arithmetic", "--expression", "x1 + x2", "--inputs", "2", "--layers",
                       "1", "--epochs", "1", "--n", "64", "--verbose", "0",
                       "--out", str(tmp_path / "runs")])
    out, err = capsys.readouterr()
    assert status == 1
    assert "verdict:" in out and "formula:" in out
    assert "arithmetic_seed0.json" in out  # the file that could be written, was
    assert "could not write" in err and "arithmetic_seed0.png" in err
    assert "No space left on device" in err
    summary = json.loads((tmp_path / "runs" / "arithmetic_seed0.json").read_text())
    assert summary["plot_path"] is None and summary["expression"] == "x1 + x2"


@pytest.mark.parametrize("argv", [
    ["arithmetic", "--out", "{file}"],
    ["ablation", "--out", "{file}/x"],
    ["nalm-benchmark", "--out", "{file}/x"],
])
def test_every_command_prints_only_its_own_output(argv, tmp_path):
    """In a fresh process with the user's environment (no TF_CPP_MIN_LOG_LEVEL), a command
    that stops at a bad option prints one line: no TensorFlow start-up lines."""
    a_file = tmp_path / "file"
    a_file.write_text("x")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow_kappa.cli", *[a.format(file=a_file) for a in argv]],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"kappa {argv[0]}: error: argument --out")

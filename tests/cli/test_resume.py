"""Long runs keep their results: for every kappa command that runs for minutes, a SIGINT
or SIGTERM sent mid-run (to a subprocess, at tiny sizes) leaves the finished units on
disk, ends with one line saying what is kept and how to continue (exit 130 or 143, no
traceback), and ``--resume`` completes the run to the same table as an uninterrupted
one. A resumed run with other options, and a run of hours without ``--yes``, stop
before any work."""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tensorflow_kappa import cli
from tensorflow_kappa.experiments import resumable

REPO = Path(__file__).resolve().parents[2]


def _wall_free(path):
    """A result file with its wall-clock times left out (they differ run to run)."""
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return json.dumps(_drop(data, ("wall_time_s", "wall_time")), sort_keys=True)
    return re.sub(r"\| \d+ s \|", "| _ |", path.read_text())


def _drop(value, keys):
    if isinstance(value, dict):
        return {k: _drop(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_drop(v, keys) for v in value]
    return value


#: command -> (argv at tiny sizes, units in all, what a unit is, the result files that
#: must come out the same, the signal sent).
COMMANDS = {
    "arithmetic-suite": (["arithmetic", "--suite", "--seeds", "2", "--candidates", "1",
                          "--epochs", "1", "--n", "640", "--layers", "1", "--verbose", "0"],
                         6, "expression", ["arithmetic_suite.md", "arithmetic_suite.json"],
                         signal.SIGINT),
    "nalm-benchmark": (["nalm-benchmark", "--models", "nau,nmu,nalu,inalu", "--ops", "add,mul",
                        "--ranges", "0", "--seeds", "2", "--steps", "400", "--eval-every",
                        "200", "--n-eval", "200"],
                       4, "module kind", ["nalm_benchmark.md", "nalm_benchmark.json"],
                       signal.SIGTERM),
    "fixed-point": (["fixed-point", "--formats", "s16.10", "--epochs", "1", "--limit", "48"],
                    3, "run", ["fixed_point.txt", "fixed_point.json"], signal.SIGINT),
    "ablation": (["ablation", "--epochs", "2", "--n", "128", "--no-plots"],
                 6, "run", ["summary.txt"], signal.SIGTERM),
}


def kappa(argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "tensorflow_kappa.cli", *argv], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def finished_units(out):
    folder = out / "units"
    return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_interrupted_run_keeps_its_units_and_resumes_to_the_same_table(name, tmp_path):
    argv, total, unit, results, sig = COMMANDS[name]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    whole = kappa([*argv, "--out", str(reference)])

    run = kappa([*argv, "--out", str(interrupted)])
    deadline = time.monotonic() + 600
    while not finished_units(interrupted) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(sig)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 128 + sig, (out, err)
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    match = re.fullmatch(rf"kappa {argv[0]}: interrupted \({sig.name}\): (\d+) of {total} "
                         rf"{unit}\(s\) finished and kept in (\S+); continue with: (kappa .*)",
                         last)
    assert match, last
    kept = int(match.group(1))
    assert 1 <= kept < total, last
    assert len(finished_units(interrupted)) == kept
    assert not any(p.name.startswith(".partial") for p in (interrupted / "units").iterdir())
    assert all(not (interrupted / f).exists() for f in results)  # the run did not end

    continued = shlex.split(match.group(3))
    assert continued[-1] == "--resume"
    again = kappa(continued[1:])
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert f"{kept} finished unit(s) are read back" in out
    assert len(finished_units(interrupted)) == total

    whole_out, whole_err = whole.communicate(timeout=600)
    assert whole.returncode == 0, whole_err[-3000:]
    for result in results:
        assert _wall_free(interrupted / result) == _wall_free(reference / result), result


def run_main(argv, capsys):
    try:
        status = cli.main(argv)
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_resumed_run_must_have_the_recorded_options(tmp_path, capsys):
    resumable.RunFolder(tmp_path, "fixed-point", cli.options.run_settings(
        cli.build_parser().parse_args(["fixed-point", "--epochs", "1"])), log=lambda _: None)
    status, out, err = run_main(["fixed-point", "--epochs", "2", "--out", str(tmp_path),
                                 "--resume"], capsys)
    assert status == 2 and "argument --resume: the run in" in err
    assert "epochs=1 there, 2 now" in err and "Traceback" not in err
    status, _, err = run_main(["ablation", "--out", str(tmp_path), "--resume"], capsys)
    assert status == 2 and "holds a run of 'kappa fixed-point', not of 'kappa ablation'" in err
    status, _, err = run_main(["ablation", "--out", str(tmp_path / "empty"), "--resume"],
                              capsys)
    assert status == 2 and "holds no run to resume" in err


def test_a_single_arithmetic_run_has_nothing_to_resume(tmp_path, capsys):
    status, _, err = run_main(["arithmetic", "--out", str(tmp_path), "--resume"], capsys)
    assert status == 2 and "argument --resume: continues --seeds/--suite runs" in err


@pytest.mark.parametrize("argv, size", [
    (["arithmetic", "--seeds", "100000"], "100000 seeds"),
    (["arithmetic", "--suite", "--seeds", "2000"], "2000 seeds"),
    (["nalm-benchmark", "--seeds", "500"], "500 seeds"),
    (["fixed-point", "--epochs", "3000"], "3000 epochs"),
    (["ablation", "--n", "10000000"], "10000000 examples"),
])
def test_a_run_of_hours_asks_for_yes_before_any_work(argv, size, tmp_path, capsys):
    """--seeds 100000 started silently on a run of hours."""
    status, out, err = run_main([*argv, "--out", str(tmp_path / "run")], capsys)
    assert status == 2, (out, err)
    assert re.search(rf"error: this run \(.*{size}.*\) is estimated at about \d+ h", err), err
    assert "pass --yes to start it" in err
    assert not (tmp_path / "run" / "units").exists()


def test_the_default_runs_need_no_yes():
    from tensorflow_kappa.experiments import ablation, arithmetic_population, fixed_point, nalm

    for seconds in (arithmetic_population.estimated_seconds(6, 10, 12, 30, 64000),
                    nalm.estimated_seconds(list(nalm.OPS), nalm.DEFAULT_RANGES,
                                           list(nalm.MODELS), 10),
                    fixed_point.estimated_seconds(9, 30), ablation.estimated_seconds(6, 10, 1024, 32)):
        assert seconds < resumable.HOUR


def test_a_unit_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """The write goes to a temporary file, renamed when complete: a write that fails
    half way leaves neither a unit nor a partial file."""
    folder = resumable.RunFolder(tmp_path, "demo", {}, log=lambda _: None)

    def failing_dump(path, data):
        Path(path).write_text('{"half": ')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(resumable, "_dump", failing_dump)
    with pytest.raises(OSError):
        folder.save("a", {"loss": 1.0})
    assert os.listdir(tmp_path / "units") == [] and folder.finished == []
    monkeypatch.undo()
    folder.save("a", {"loss": float("nan"), "pair": (1, 2)})
    assert folder.load("a")["pair"] == [1, 2] and folder.load("a")["loss"] != 0.0


def test_starting_afresh_replaces_the_units_of_an_earlier_run(tmp_path):
    said = []
    resumable.RunFolder(tmp_path, "demo", {"x": 1}, log=said.append).save("a", {})
    folder = resumable.RunFolder(tmp_path, "demo", {"x": 2}, log=said.append)
    assert folder.finished == [] and "the 1 finished unit(s) of an earlier run" in said[-1]


def test_an_interrupted_bench_says_it_keeps_nothing(monkeypatch, capsys):
    """A bench times its candidates in interleaved rounds: nothing is finished before
    the last round, and the line says so instead of a traceback."""
    from tensorflow_kappa.experiments import core_bench

    def interrupted(**settings):
        raise resumable.Interrupted(signal.SIGINT)

    monkeypatch.setattr(core_bench, "run", interrupted)
    status, out, err = run_main(["bench", "core", "--quick"], capsys)
    assert status == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "kappa bench: interrupted (SIGINT): no timing is kept: the candidates are timed in "
        "interleaved rounds, so no cell is finished before the last round (run it again, or "
        "with fewer --repeats)")


def test_a_damaged_unit_is_named(tmp_path):
    folder = resumable.RunFolder(tmp_path, "demo", {}, log=lambda _: None)
    folder.save("a", {"loss": 1.0})
    Path(folder.path("a")).write_text('{"loss": ')
    with pytest.raises(ValueError, match="the finished unit .*a.json' cannot be read back.*"
                                         "remove it to run that unit again"):
        folder.unit("a", lambda: {"loss": 2.0})
    folder.save("a", {"other": 1})
    with pytest.raises(ValueError, match="KeyError"):
        folder.unit("a", lambda: None, decode=lambda record: record["loss"])

"""The portable op library's CPU paths (cc/core/cpu_dispatch.h): every path this
machine runs gives the same bits, each matches the NumPy reference, the path in
use is reported, KAPPA_CPU_PATH forces one and bad values are refused."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import cpu_path_worker
from references.fixed_point import quantize_reference, same_bits
from references.stats import UpdateReference, rail_stats_reference
from tensorflow_kappa import _ops

WORKER = Path(cpu_path_worker.__file__)
PATHS = ("baseline", "avx2", "avx512")


def _machine_paths():
    """The CPU paths of the loaded library that this CPU runs (from the library)."""
    info = _ops.read_build_info()
    assert info.get("cpu_dispatch"), (
        "the op library was built without run-time dispatch (configure.py "
        f"--march={info.get('cpu_march')}); these tests are about the portable build, "
        "configure.py's default")
    return _ops.runtime_info()["cpu_paths"]


def _worker_env(path):
    # The worker imports the shared cases (the tests' `references` package).
    tests = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    env.pop("KAPPA_PY_OPS", None)
    if path is None:
        env.pop(_ops.CPU_PATH_ENV, None)
    else:
        env[_ops.CPU_PATH_ENV] = path
    return env


@pytest.fixture(scope="module")
def path_results(tmp_path_factory):
    """{path: results} of the worker run once per path this machine runs."""
    paths = _machine_paths()
    out = tmp_path_factory.mktemp("cpu_paths")
    procs = {p: subprocess.Popen([sys.executable, str(WORKER), str(out / f"{p}.npz")],
                                 cwd=WORKER.parent, env=_worker_env(p), text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for p in paths}
    results = {}
    for p, proc in procs.items():
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
        with np.load(out / f"{p}.npz") as data:
            results[p] = {k: data[k] for k in data.files}
    return results


def test_this_machine_runs_the_paths_its_cpu_has():
    paths = _machine_paths()
    assert paths[0] == "baseline" and set(paths) <= set(PATHS)
    flags = set(Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split())
    assert ("avx2" in paths) == ({"avx2", "bmi2", "fma", "movbe"} <= flags)
    assert ("avx512" in paths) == ({"avx512f", "avx512bw", "avx512cd", "avx512dq",
                                    "avx512vl"} <= flags)
    # Unforced, the library takes the best path the CPU runs.
    assert _ops.runtime_info()["cpu_path"] == paths[-1] or os.environ.get(_ops.CPU_PATH_ENV)


def test_every_path_runs_as_forced_and_gives_the_same_bits(path_results):
    paths = list(path_results)
    for p, results in path_results.items():
        assert json.loads(str(results["cpu_path"]))["cpu_path"] == p
    names = [n for n in path_results[paths[0]] if n != "cpu_path"]
    assert len(names) == len({name for name, _, _ in cpu_path_worker.cases()}) > 400
    for p in paths[1:]:
        assert sorted(names) == sorted(n for n in path_results[p] if n != "cpu_path")
        differ = [n for n in names
                  if not np.array_equal(path_results[p][n], path_results[paths[0]][n])]
        assert not differ, f"{p} differs from {paths[0]} in {len(differ)} cases: {differ[:5]}"


def _float(bits, dtype):
    return np.asarray(bits).astype(bits.dtype).view(dtype)


def test_every_path_matches_the_numpy_reference(path_results):
    for p, results in path_results.items():
        for name, op, args in cpu_path_worker.cases():
            got = results[name]
            if op == "quantize":
                x, fmt, dtype = args
                want = quantize_reference(x, fmt, cpu_path_worker.SEED)
                assert same_bits(got.view(x.dtype), want), f"{p}: {name}"
            elif op == "rail_stats":
                x, fmt, near_rail, _ = args
                want = np.array(rail_stats_reference(x, fmt, near_rail), np.float32)
                assert np.array_equal(got.view(np.float32), want), f"{p}: {name}"
            else:
                w, g, uf, sf = args
                ref = UpdateReference(w, g, cpu_path_worker.LEARNING_RATE, uf, sf,
                                      cpu_path_worker.SEED)
                new = got[:w.size].astype(cpu_path_worker.bits(w).dtype).view(w.dtype)
                np.testing.assert_array_equal(new, ref.new, f"{p}: {name}")
                stats = got[w.size:].astype(np.uint32).view(np.float32)
                assert stats[3] == ref.underflow_fraction, f"{p}: {name}"
                assert stats[4] == ref.saturation_fraction, f"{p}: {name}"


def _kappa_info(path):
    kappa = Path(sys.executable).with_name("kappa")
    return subprocess.run([str(kappa), "info"], env=_worker_env(path), capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("forced", [None, "baseline"])
def test_kappa_info_names_the_path_in_use(forced):
    paths = _machine_paths()
    run = _kappa_info(forced)
    assert run.returncode == 0, run.stderr
    line = next(l for l in run.stdout.splitlines() if l.strip().startswith("CPU path"))
    assert line.split()[2] == (forced or paths[-1])
    assert f"this CPU runs: {', '.join(paths)}" in line
    assert "built for x86-64-v2, AVX2/AVX-512 chosen at run time" in line


@pytest.mark.parametrize("value, message", [
    ("avx9", "KAPPA_CPU_PATH='avx9' is not a CPU path; expected one of: auto, baseline"),
    ("AVX2", "KAPPA_CPU_PATH='AVX2' is not a CPU path"),
])
def test_a_bad_cpu_path_is_a_value_error_naming_it(value, message):
    code = ("import tensorflow_kappa as tk\n"
            "try:\n    tk.quantize_tensor([0.3], 's8.4')\n"
            "except ValueError as err:\n    print('ValueError:', err)\n")
    run = subprocess.run([sys.executable, "-c", code], env=_worker_env(value),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"ValueError: {message}" in run.stdout
    assert "Traceback" not in run.stderr

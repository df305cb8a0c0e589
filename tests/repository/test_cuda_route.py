"""The CUDA route of the default build (configure.py --cuda-runtime=nvrtc,
cc/core/gpu_rtc.h): GPU kernels in every build, no CUDA library linked, every
kernel compiles with NVRTC 12, and `kappa info` states what the GPU kernels
need. Running them takes a GPU: cc/gpu_check/run.sh."""
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tensorflow_kappa import _ops

REPO = Path(__file__).resolve().parents[2]


def _configure():
    spec = importlib.util.spec_from_file_location("kappa_configure_cuda", REPO / "configure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nvrtc12():
    """libnvrtc.so.12 of the nvidia-cuda-nvrtc-cu12 wheel in this environment, or None."""
    try:
        import nvidia.cuda_nvrtc as package  # noqa: PLC0415
    except ImportError:
        return None
    found = [p for d in package.__path__ for p in glob.glob(os.path.join(d, "lib", "libnvrtc.so.12"))]
    return found[0] if found else None


def test_configure_defaults_to_the_nvrtc_route(tmp_path, monkeypatch):
    configure = _configure()
    monkeypatch.setattr(configure, "OUTPUT", tmp_path / "out.bazelrc")
    assert configure.find_cuda("auto", None, "nvrtc") == {"route": "nvrtc"}
    assert configure.find_cuda("no", None, "nvrtc") is None
    assert configure.main([]) == 0
    text = configure.OUTPUT.read_text()
    assert "build --repo_env=KAPPA_CUDA_ROUTE=nvrtc\n" in text
    assert "KAPPA_NVCC" not in text  # no toolkit needed


def test_the_op_library_has_gpu_kernels_and_links_no_cuda_library():
    info = _ops.read_build_info()
    assert info["cuda"] and info["cuda_route"] == "nvrtc"
    needed = subprocess.run(["readelf", "-d", str(_ops.LIBRARY_PATH)], capture_output=True,
                            text=True, check=True).stdout
    libraries = [line.split("[")[1].rstrip("]") for line in needed.splitlines() if "(NEEDED)" in line]
    assert not [lib for lib in libraries if "cuda" in lib or "nvrtc" in lib], libraries
    assert "libtensorflow_framework.so.2" in libraries


def test_kappa_info_states_the_driver_the_gpu_kernels_need():
    kappa = Path(sys.executable).with_name("kappa")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KAPPA_NVRTC="/nonexistent/libnvrtc.so.12")
    run = subprocess.run([str(kappa), "info"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "CUDA kernels   yes: compiled at first use for the GPU by NVRTC" in out
    assert ("CUDA needs     an NVIDIA driver for CUDA 12 or newer (Linux >= 525.60.13" in out)
    assert "NVRTC          none (NVRTC not found (tried /nonexistent/libnvrtc.so.12)" in out
    driver_line = next(line for line in out.splitlines() if line.startswith("  CUDA driver"))
    if shutil.which("nvidia-smi") is None:
        assert "none (no NVIDIA driver" in driver_line


@pytest.mark.slow
@pytest.mark.skipif(_nvrtc12() is None, reason="needs NVRTC 12 (pip install nvidia-cuda-nvrtc-cu12)")
def test_every_kernel_compiles_with_nvrtc_12():
    """Every kernel the CUDA functors can launch (10 quantize mode pairs, rail
    statistics, 121 update step pairs, per float and double) compiles with NVRTC
    12 for the oldest and newest default architectures, named as a launch names
    it (rtc_compile runs the functors' host code in compile-only mode)."""
    subprocess.run(["bazel", "build", "//cc/gpu_check:rtc_compile"], cwd=REPO, check=True,
                   timeout=3000, capture_output=True)
    env = dict(os.environ, KAPPA_NVRTC=_nvrtc12())
    run = subprocess.run([str(REPO / "bazel-bin/cc/gpu_check/rtc_compile"), "75", "90"],
                         env=env, capture_output=True, text=True, timeout=3000)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert "sm_75: 268 kernels compiled" in lines and "sm_90: 268 kernels compiled" in lines
    status = json.loads(next(line for line in lines if line.startswith("{")))
    assert status["nvrtc"].startswith("12.") and status["nvrtc_path"] == _nvrtc12()

"""The CUDA kernels run on the CPU: their unchanged source, compiled against the
host emulation of CUDA's execution model (cc/gpu_check/emulation/cuda_host.h)
by `cc/gpu_check/run.sh --emulate`, matches the CPU functors at the edge sizes;
every kernel of `cc/core/**/*_gpu.cu.cc` runs there; the emulation fails
mutants of the kernels; and it rejects kernels that break CUDA's rules.

All builds share one folder of object files, so that a mutant recompiles only
the sources its change reaches."""
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tensorflow_kappa.quantization import OVERFLOW_MODES, ROUNDING_MODES

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "cc/gpu_check/run.sh"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("g++") is None,
                       reason="the CUDA host emulation needs g++ on x86-64"),
]

# A kernel's instantiations: one per dtype (float, double) and, for quantize,
# per mode pair; for update_store, per pair of steps (none, or one per mode pair).
_MODES = len(ROUNDING_MODES) * len(OVERFLOW_MODES)
INSTANTIATIONS = {
    "QuantizeKernel": 2 * _MODES,
    "RailCountKernel": 2,
    "RailFinishKernel": 2,
    "UpdateKernel": 2 * (1 + _MODES) ** 2,
    "UpdateFinishKernel": 2,
}

# name: (file, text, replacement). Each text occurs once in its file.
MUTANTS = {
    "off-by-one bound": ("cc/core/quantize/quantize_gpu.cu.cc", "i < p.n;", "i <= p.n;"),
    "missing __syncthreads()": (
        "cc/core/gpu_reduce.h",
        "  if (lane == 0) shared[warp] = v;\n  __syncthreads();\n",
        "  if (lane == 0) shared[warp] = v;\n"),
    "wrong shuffle offset": ("cc/core/gpu_reduce.h", "int offset = 16;", "int offset = 8;"),
    "stream counter of the block": (
        "cc/core/quantize/quantize_gpu.cu.cc",
        "p.q, static_cast<uint64_t>(i));",
        "p.q, static_cast<uint64_t>(blockIdx.x));"),
}


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    return tmp_path_factory.mktemp("emulated_objects")


def _emulate(out_dir: Path, objects: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OUT=str(out_dir / "gpu_check"), OBJECTS=str(objects))
    return subprocess.run(["bash", str(RUN), "--emulate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)


def _tail(run: subprocess.CompletedProcess) -> str:
    return (run.stdout + run.stderr)[-4000:]


@pytest.fixture(scope="module")
def emulated(tmp_path_factory, objects):
    """The emulated run of the checkout's kernels."""
    return _emulate(tmp_path_factory.mktemp("emulated"), objects)


def test_every_kernel_matches_its_cpu_functor_on_the_emulated_device(emulated):
    assert emulated.returncode == 0, _tail(emulated)
    lines = emulated.stdout.splitlines()
    # The emulated device: 2 multiprocessors, so a full grid of 2 x 8 blocks of 256.
    assert "sizes: 0 1 31 32 33 1023 1025 4095 18435" in lines
    for verdict in (
            "quantize:     GPU == CPU bit for bit, 5 shapes x 10 modes x 2 dtypes x 9 sizes",
            "rail_stats:   counts and fractions equal, 4 formats x 4 near_rail x 2 dtypes x 9 sizes",
            "update_store: weights bit for bit, counts equal, sums within bound, "
            "11 x 11 step pairs x 2 dtypes x 9 sizes",
            "PASSED (0 mismatches)"):
        assert verdict in lines
    assert lines[-1].startswith("EMULATED: every kernel's logic")


def _kernels_in_sources() -> dict:
    """{(source file, kernel name)} of every __global__ function in cc/core."""
    kernels = set()
    for path in sorted((REPO / "cc/core").rglob("*_gpu.cu.cc")):
        names = re.findall(r"__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)\s*\(",
                           path.read_text())
        assert names, f"no kernel found in {path}"
        kernels |= {(str(path.relative_to(REPO)), name) for name in names}
    return kernels


def test_every_kernel_in_the_sources_runs_in_every_instantiation(emulated):
    ran = {(m[1], m[2]): int(m[3]) for m in re.finditer(
        r"^emulated kernel (\S+) (\w+): (\d+) instantiations", emulated.stdout, re.M)}
    kernels = _kernels_in_sources()
    assert len(kernels) >= len(INSTANTIATIONS)
    missing = sorted(f"{path} {name}" for path, name in kernels - ran.keys())
    assert not missing, ("kernels the emulated run never launched (check their functors in "
                         f"cc/gpu_check/gpu_check.cu.cc): {missing}")
    assert {name: n for (_, name), n in ran.items()} == INSTANTIATIONS


def _copy(root: Path, path: str, text: str = "", replacement: str = "") -> None:
    """Copies the checkout's `path` under `root`, with `text` replaced."""
    source = (REPO / path).read_text()
    if text:
        assert source.count(text) == 1, f"{path} no longer holds {text!r} once: update the mutant"
        source = source.replace(text, replacement)
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(source)


def test_an_unmutated_copy_of_the_mutated_files_passes(tmp_path, objects, emulated):
    for path, _, _ in MUTANTS.values():
        _copy(tmp_path / "copy", path)
    run = _emulate(tmp_path, objects, "--overlay", str(tmp_path / "copy"), "--", "--fail-fast")
    assert run.returncode == 0, _tail(run)
    assert "PASSED (0 mismatches)" in run.stdout.splitlines()


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_the_emulation_fails_a_mutant(mutant, tmp_path, objects, emulated):
    _copy(tmp_path / "mutant", *MUTANTS[mutant])
    run = _emulate(tmp_path, objects, "--overlay", str(tmp_path / "mutant"), "--", "--fail-fast")
    assert run.returncode == 1, _tail(run)
    assert "MISMATCH" in run.stderr or "cuda emulation:" in run.stderr, _tail(run)


@pytest.fixture(scope="module")
def emulation_test(tmp_path_factory):
    """cc/gpu_check/emulation/cuda_host_test.cu.cc, built against the emulation."""
    binary = tmp_path_factory.mktemp("cuda_host_test") / "cuda_host_test"
    subprocess.run(["g++", "-std=c++17", "-Og", "-Wall", "-Werror", "-I.", "-include",
                    "cc/gpu_check/emulation/cuda_runtime.h", "-x", "c++",
                    "cc/gpu_check/emulation/cuda_host_test.cu.cc", "-o", str(binary)],
                   cwd=REPO, check=True, timeout=600)
    return binary


@pytest.mark.parametrize("case, reason", [
    ("divergent_barrier", r"deadlock: of 256 threads, 128 wait at __syncthreads\(\), 0 at a "
                          r"shuffle, 128 returned"),
    ("caller_outside_mask", r"thread \((1[6-9]|2\d|3[01]),0,0\): __shfl_down_sync with mask "
                            r"0x0000ffff, which leaves out the calling lane"),
    ("source_outside_mask", r"thread \((\d+),0,0\): __shfl_down_sync: lane \1 reads lane "
                            r"(2[0-3]|1[6-9]), outside the mask 0x0000ffff"),
    ("overlapping_masks", r"with overlapping masks 0x[0f]{8} and 0x[0f]{8}: the warp diverged"),
    ("past_the_end", r"thread \(\d+,0,0\): invalid memory access at"),
])
def test_the_emulation_rejects_a_kernel_that_breaks_cudas_rules(emulation_test, case, reason):
    run = subprocess.run([str(emulation_test), case], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr
    assert run.stderr.startswith("cuda emulation: ") and re.search(reason, run.stderr), run.stderr


def test_lanes_with_disjoint_masks_shuffle_independently(emulation_test):
    run = subprocess.run([str(emulation_test), "disjoint_masks"], capture_output=True, text=True,
                         timeout=60, check=True)
    # Lane l reads lane l + 2 within its segment of 8 lanes, else keeps its own value.
    want = [lane + 2 if lane % 8 < 6 else lane for lane in range(32)]
    assert [int(v) for v in run.stdout.split()] == want


def test_a_warp_does_not_run_in_lockstep(emulation_test):
    """A warp-synchronous sum without __syncwarp() gives 64 only in lockstep."""
    run = subprocess.run([str(emulation_test), "warp_synchronous_sum"], capture_output=True,
                         text=True, timeout=60, check=True)
    assert float(run.stdout) != 64


def test_an_empty_grid_is_an_invalid_configuration(emulation_test):
    run = subprocess.run([str(emulation_test), "empty_grid"], capture_output=True, text=True,
                         timeout=60, check=True)
    assert run.stdout == "invalid configuration argument\n"

"""The portable build. CPU code, checked by disassembly
(scripts/check_portable.py): nothing outside the dispatched clones needs more
than x86-64-v2, no AVX-512 in the AVX2 clones, no FMA anywhere; configure.py's
default is that build. Runtime libraries, checked by symbol versions: the op
library and the NumPy binding need no newer glibc or libstdc++ than
TensorFlow's own libraries (scripts/release.sh checks the wheel's manylinux
tag the same way)."""
import importlib.util
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from tensorflow_kappa import _ops
from tensorflow_kappa.core import ops as core_ops

REPO = Path(__file__).resolve().parents[2]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


check_portable = _load("kappa_check_portable", REPO / "scripts" / "check_portable.py")
configure = _load("kappa_configure_flags", REPO / "configure.py")

needs_objdump = pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump")


@needs_objdump
def test_the_op_library_is_portable():
    info = _ops.read_build_info()
    assert info["cpu_dispatch"] and info["cpu_march"] == configure.PORTABLE_MARCH, (
        f"the op library was configured with --march={info.get('cpu_march')}; "
        "the portable build is configure.py's default")
    report = check_portable.check(check_portable.disassemble(_ops.LIBRARY_PATH))
    assert report.ok, "\n".join(report.violations[:20])
    summary = report.summary()
    # Every kernel of the three ops has its three clones (10 quantize mode
    # pairs, 121 update step pairs, rail_stats: per float and double).
    assert summary["clones"] == {"baseline": 264, "avx2": 264, "avx512": 264}
    assert summary["fma_instructions"] == 0


@needs_objdump
def test_functors_built_with_configures_portable_flags_pass(tmp_path):
    """Builds functors with exactly the flags configure.py writes for the
    portable build, independent of how this checkout was configured."""
    flags, dispatch = configure.cpu_flags("portable")
    assert dispatch and flags == ["-march=x86-64-v2", "-DKAPPA_CPU_DISPATCH=1"]
    library = tmp_path / "functors.so"
    sources = ["cc/core/cpu_dispatch.cc", "cc/core/quantize/quantize_cpu.cc",
               "cc/core/rail_stats/rail_stats_cpu.cc"]
    subprocess.run(["g++", "-std=c++17", "-shared", "-fPIC", *configure.CPU_FLAGS, *flags,
                    "-I", str(REPO), *[str(REPO / s) for s in sources], "-o", str(library)],
                   check=True, timeout=900)
    report = check_portable.check(check_portable.disassemble(library))
    assert report.ok, "\n".join(report.violations[:20])
    assert report.summary()["clones"] == {"baseline": 22, "avx2": 22, "avx512": 22}


@needs_objdump
def test_the_check_finds_avx_outside_the_clones(tmp_path):
    """A loop compiled for x86-64-v3 outside any clone is reported (the check
    can fail), and the same loop for x86-64-v2 is not."""
    source = tmp_path / "loop.cc"
    source.write_text("extern \"C\" void scale(float* x, int n) {\n"
                      "  for (int i = 0; i < n; ++i) x[i] = x[i] * 3.0f + 1.0f;\n}\n")
    findings = {}
    for march in ("x86-64-v2", "x86-64-v3"):
        library = tmp_path / f"{march}.so"
        subprocess.run(["g++", "-O3", "-ffp-contract=off", "-shared", "-fPIC",
                        f"-march={march}", str(source), "-o", str(library)],
                       check=True, timeout=300)
        report = check_portable.check(check_portable.disassemble(library))
        findings[march] = [v for v in report.violations if v.startswith("scale")]
    assert findings["x86-64-v2"] == []
    assert findings["x86-64-v3"] and all("outside the AVX2/AVX-512 clones" in v
                                         for v in findings["x86-64-v3"])


def test_the_check_reads_encodings_and_clone_names():
    clone = "kappa::CpuClone<(kappa::CpuPath){}, kappa::K<float>, void (*)(float*)>::Run(float*)"
    listing = "\n".join([
        f"0000000000001000 <{clone.format(0)}>:",
        "    1000:\t0f 59 c1             \tmulps  %xmm1,%xmm0",
        f"0000000000001100 <{clone.format(1)}>:",
        "    1100:\tc5 fc 59 c1          \tvmulps %ymm1,%ymm0,%ymm0",
        "    1104:\t62 f1 7c 48 59 c1    \tvmulps %zmm1,%zmm0,%zmm0",
        f"0000000000001200 <{clone.format(2)} [clone .cold]>:",
        "    1200:\t62 f1 7c 48 59 c1    \tvmulps %zmm1,%zmm0,%zmm0",
        "    1206:\tc4 e2 7d a8 c1       \tvfmadd213ps %ymm1,%ymm0,%ymm0",
        "0000000000001300 <helper()>:",
        "    1300:\tf3 0f bc c0          \ttzcnt  %eax,%eax",
        "    1304:\tf3 0f b8 c0          \tpopcnt %eax,%eax",
        "    1308:\tf3 0f bd c0          \tlzcnt  %eax,%eax",
        "    130c:\tc5 f8 77             \tvzeroupper",
    ])
    report = check_portable.check(listing)
    found = "\n".join(report.violations)
    assert "vmulps %zmm1,%zmm0,%zmm0: AVX-512 (EVEX) instruction in an AVX2 clone" in found
    assert "vfmadd213ps" in found and "FMA instruction" in found
    assert "helper(): lzcnt" in found and "helper(): vzeroupper" in found
    assert "helper(): tzcnt" not in found and "helper(): popcnt" not in found
    assert ": mulps" not in found
    assert report.summary()["clones"] == {"baseline": 1, "avx2": 1, "avx512": 1}
    assert len(report.violations) == 4


@pytest.mark.parametrize("march, flags, dispatch", [
    (None, ["-march=x86-64-v2", "-DKAPPA_CPU_DISPATCH=1"], True),
    ("portable", ["-march=x86-64-v2", "-DKAPPA_CPU_DISPATCH=1"], True),
    ("native", ["-march=native"], False),
    ("x86-64-v3", ["-march=x86-64-v3"], False),
    ("none", [], False),
])
def test_configure_march_choices(march, flags, dispatch, monkeypatch):
    monkeypatch.setattr(configure.platform, "machine", lambda: "x86_64")
    assert configure.cpu_flags(march) == (flags, dispatch)


def test_configure_rejects_a_bad_march(monkeypatch, capsys):
    with pytest.raises(configure.ConfigureError, match="'-O3' is not a -march value"):
        configure.cpu_flags("-O3")
    monkeypatch.setattr(configure.platform, "machine", lambda: "aarch64")
    assert configure.cpu_flags(None) == ([], False)
    with pytest.raises(configure.ConfigureError, match="--march=portable is for x86-64"):
        configure.cpu_flags("portable")


# Symbol versions of the runtime libraries a library needs, by namespace
# (libgcc_s's GCC_* versions date from GCC 4.2, 2007, and every manylinux
# policy has them; auditwheel checks those with the rest in release.sh).
_RUNTIME_VERSION = re.compile(r"\((GLIBC|GLIBCXX|CXXABI)_([0-9.]+)\)")


def newest_versions(*libraries: Path) -> dict:
    """{'GLIBC': (2, 27), 'GLIBCXX': (3, 4, 22), ...}: the newest version of
    each namespace that the libraries' dynamic symbols reference or define."""
    newest = {}
    for library in libraries:
        table = subprocess.run(["objdump", "-T", str(library)], capture_output=True,
                               text=True, check=True).stdout
        for namespace, version in _RUNTIME_VERSION.findall(table):
            v = tuple(int(part) for part in version.split("."))
            newest[namespace] = max(newest.get(namespace, v), v)
    return newest


def tensorflow_newest_versions() -> dict:
    root = Path(tf.__file__).parent
    return newest_versions(root / "libtensorflow_framework.so.2",
                           *root.glob("libtensorflow_cc.so.2"))


def _too_new(library: Path, limits: dict) -> dict:
    return {ns: v for ns, v in newest_versions(library).items()
            if ns not in limits or v > limits[ns]}


@needs_objdump
def test_the_op_library_needs_no_newer_runtime_than_tensorflow():
    limits = tensorflow_newest_versions()
    assert limits["GLIBC"] >= (2, 17), limits  # read, not guessed
    assert _too_new(_ops.LIBRARY_PATH, limits) == {}


@needs_objdump
def test_the_numpy_binding_needs_glibc_2_17_and_no_libstdcxx():
    if _ops.read_build_info().get("binding_libstdcxx") != "static":
        pytest.skip("configure.py found no libstdc++.a: the binding links the "
                    "shared libstdc++ of this machine")
    binding = Path(core_ops.extension().__file__)
    newest = newest_versions(binding)
    assert newest["GLIBC"] <= (2, 17), newest
    assert "GLIBCXX" not in newest and "CXXABI" not in newest, newest
    assert _too_new(binding, tensorflow_newest_versions()) == {}
    exported = subprocess.run(["nm", "-D", "--defined-only", str(binding)],
                              capture_output=True, text=True, check=True).stdout
    functions = {line.split()[-1] for line in exported.splitlines()
                 if line.split()[1] in ("T", "W")}
    assert functions == {"PyInit__kappa_core"}


@needs_objdump
def test_the_version_check_finds_a_newer_runtime(tmp_path):
    """A module using threads and vectors, linked the usual way on this
    machine, needs what a glibc 2.34 / GCC 11 or newer toolchain versions
    (where the build machine is that new): the check can fail."""
    source = tmp_path / "module.cc"
    source.write_text(
        "#include <thread>\n#include <vector>\n"
        "extern \"C\" int run(int n) {\n"
        "  std::vector<std::thread> pool;\n"
        "  for (int i = 0; i < n; ++i) pool.emplace_back([] {});\n"
        "  for (auto& t : pool) t.join();\n  return static_cast<int>(pool.size());\n}\n")
    library = tmp_path / "module.so"
    subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-pthread", str(source), "-o",
                    str(library)], check=True, timeout=300)
    libc, version = platform.libc_ver()
    if libc != "glibc" or tuple(int(v) for v in version.split(".")) < (2, 34):
        pytest.skip("this machine's glibc predates the thread functions' 2.34 versions")
    assert _too_new(library, {"GLIBC": (2, 17), "GLIBCXX": (3, 4, 21)}) != {}

"""Releasing (scripts/release.sh, RELEASING.md): one place for the version, an
sdist that carries the build and no built library, a clear message where Bazel
is missing, and the release script's quick run (manylinux wheel, auditwheel,
smoke test in a fresh environment outside the checkout)."""
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import tensorflow_kappa as tk
from tensorflow_kappa import _version

REPO = Path(__file__).resolve().parents[2]


def test_the_version_is_written_once():
    setup_version = subprocess.run([sys.executable, "setup.py", "--version"], cwd=REPO,
                                   capture_output=True, text=True, check=True).stdout.split()[-1]
    assert tk.__version__ == _version.__version__ == setup_version
    assert re.fullmatch(r"\d+\.\d+\.\d+", _version.__version__)
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    literal = re.compile(r"""(__version__|version)\s*=\s*["']\d+\.\d+""")
    writers = [f for f in tracked if f.endswith((".py", ".toml", ".cfg"))
               and literal.search((REPO / f).read_text(errors="ignore"))]
    assert writers == ["tensorflow_kappa/_version.py"]


def test_readme_install_names_the_tensorflow_minor():
    readme = (REPO / "README.md").read_text()
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    minor = _version.TENSORFLOW_MINOR
    assert f"TensorFlow {minor}" in install
    assert f"tensorflow-cpu=={minor}" in install or f'tensorflow-cpu~={minor}' in install
    assert "manylinux" in install and "525.60.13" in install


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    out = tmp_path_factory.mktemp("sdist")
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir",
                    str(out), str(REPO)], check=True, capture_output=True, timeout=600)
    (path,) = out.glob("tensorflow_kappa-*.tar.gz")
    return path


def test_the_sdist_carries_the_build_and_no_built_library(sdist):
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ["configure.py", "setup.py", "pyproject.toml", "WORKSPACE", "BUILD", ".bazelrc",
                   "tensorflow_kappa/BUILD", "tensorflow_kappa/_version.py",
                   "build_deps/kappa.bzl", "build_deps/kappa_configure.bzl",
                   "build_deps/embed_files.sh", "build_deps/offline/rules_cc/cc/defs.bzl",
                   "cc/core/cpu_dispatch.h", "cc/core/gpu_rtc.cc", "cc/core/rtc_std.h",
                   "cc/core/quantize/quantize_gpu.cu.cc", "cc/ops/BUILD"]:
        assert needed in names, needed
    assert not [n for n in names if n.endswith((".so", "_build_info.json"))]


def test_an_sdist_build_without_bazel_says_what_to_install(sdist, tmp_path):
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path)
    (source,) = tmp_path.glob("tensorflow_kappa-*")
    env = dict(os.environ, PATH=str(tmp_path / "no-tools"))  # no bazel on PATH
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation",
                          "--no-deps", "-w", str(tmp_path / "wheels"), str(source)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "the op library is not built and Bazel is missing" in output
    assert "apt-get install bazel-bootstrap" in output


@pytest.mark.slow
def test_release_script_quick_run(tmp_path):
    """What scripts/release.sh does for a release, on the checkout's build:
    sdist, wheel, auditwheel (only TensorFlow's libraries external), a
    manylinux tag, the disassembly check, a smoke test on every CPU path in a
    fresh virtual environment outside the checkout."""
    out = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(["bash", str(REPO / "scripts" / "release.sh"), "--quick", "--allow-dirty",
                          "--python", sys.executable, "--out", str(out)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3000)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    wheels = list(out.glob("tensorflow_kappa-*-manylinux_*_x86_64.whl"))
    assert len(wheels) == 1 and wheels[0].name.startswith(f"tensorflow_kappa-{tk.__version__}-")
    assert (out / f"tensorflow_kappa-{tk.__version__}.tar.gz").is_file()
    assert "external libraries: TensorFlow's own only (excluded)" in run.stdout
    assert "_kappa_ops.so: portable (x86-64-v2 outside the clones)" in run.stdout
    from tensorflow_kappa import _ops  # noqa: PLC0415
    for path in _ops.runtime_info()["cpu_paths"]:
        assert f"smoke test on CPU path {path}: passed" in run.stdout
    digests = set(re.findall(r"stochastic digest (\S+)\)", run.stdout))
    assert len(digests) == 1  # every CPU path, the same bits

"""configure.py: flags from tf.sysconfig, idempotent output, one clear message per failure."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def configure(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("kappa_configure_script", REPO / "configure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUTPUT", tmp_path / "generated.bazelrc")
    return module


def test_writes_flags_from_tf_sysconfig_and_is_idempotent(configure, capsys):
    assert configure.main(["--cuda=no"]) == 0
    first = configure.OUTPUT.read_text()
    assert configure.main(["--cuda=no"]) == 0
    assert configure.OUTPUT.read_text() == first
    assert f"--repo_env=KAPPA_TF_VERSION={tf.__version__}" in first
    assert f"--repo_env=KAPPA_TF_INCLUDE={tf.sysconfig.get_include()}" in first
    for flag in tf.sysconfig.get_compile_flags():
        if flag.startswith("-D"):
            assert f"build --copt={flag}" in first
    for flag in tf.sysconfig.get_link_flags():
        assert flag in first
    assert "build --copt=-fno-trapping-math" in first and "build --copt=-ffp-contract=off" in first
    assert "build --repo_env=KAPPA_CUDA_PATH=\n" in first  # --cuda=no: CPU kernels only
    assert "TensorFlow   " + tf.__version__ in capsys.readouterr().out


def test_the_binding_links_libstdcxx_statically_where_the_compiler_has_the_archive(
        configure, monkeypatch, tmp_path):
    """The static link (glibc 2.17 binding) where the C compiler has
    libstdc++.a; the shared one, said so, where it has not (a compiler that
    prints the bare file name, as GCC does for a file it cannot find)."""
    mode, line = configure.binding_libstdcxx()
    found = subprocess.run(["gcc", "-print-file-name=libstdc++.a"], capture_output=True,
                           text=True).stdout.strip()
    assert mode == ("static" if Path(found).is_absolute() else "shared"), (found, line)
    assert configure.main(["--cuda=no"]) == 0
    assert f"build --repo_env=KAPPA_BINDING_LIBSTDCXX={mode}\n" in configure.OUTPUT.read_text()

    no_archive = tmp_path / "cc"
    no_archive.write_text("#!/bin/sh\necho libstdc++.a\n")
    no_archive.chmod(0o755)
    monkeypatch.setenv("CC", str(no_archive))
    mode, line = configure.binding_libstdcxx()
    assert mode == "shared" and "has no libstdc++.a" in line and str(no_archive) in line


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc on PATH")
def test_finds_the_cuda_toolkit_behind_nvcc(configure):
    assert configure.main(["--cuda=auto", "--cuda-runtime=static", "--cuda-archs=80"]) == 0
    text = configure.OUTPUT.read_text()
    assert "KAPPA_CUDA_ARCHS=80" in text
    nvcc = next(line for line in text.splitlines() if "KAPPA_NVCC=" in line).split("=", 2)[2]
    assert Path(nvcc).is_file()


def test_stand_ins_follow_the_bazel_version(configure, monkeypatch):
    monkeypatch.setattr(configure, "bazel_version", lambda: ("bazel no_version", None))
    configure.main(["--cuda=no"])
    assert "--override_repository=rules_cc=" in configure.OUTPUT.read_text()
    monkeypatch.setattr(configure, "bazel_version", lambda: ("bazel 7.4.1", (7, 4)))
    configure.main(["--cuda=no"])
    text = configure.OUTPUT.read_text()
    assert "--override_repository" not in text and "common --noenable_bzlmod" in text


def test_missing_tensorflow_is_one_clear_message(tmp_path):
    # -S: no site-packages, so no TensorFlow.
    result = subprocess.run([sys.executable, "-S", str(REPO / "configure.py")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("configure.py: TensorFlow is not installed")
    assert "Traceback" not in result.stderr
    assert "pip install tensorflow" in result.stderr


def test_unsupported_tensorflow(configure, monkeypatch, capsys):
    monkeypatch.setattr(tf, "__version__", "2.15.1")
    assert configure.main([]) == 1
    assert "TensorFlow 2.15.1 is not supported" in capsys.readouterr().err


def test_missing_headers(configure, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(tf.sysconfig, "get_include", lambda: str(tmp_path))
    assert configure.main([]) == 1
    err = capsys.readouterr().err
    assert "C++ headers are missing" in err and str(tmp_path) in err


def test_missing_bazel(configure, monkeypatch, capsys):
    real_which = shutil.which
    monkeypatch.setattr(configure.shutil, "which",
                        lambda name, *a, **k: None if name == "bazel" else real_which(name, *a, **k))
    assert configure.main([]) == 1
    assert "Bazel is missing" in capsys.readouterr().err

"""The top-level package is lazy: what ``import tensorflow_kappa`` does and does not do.

Each case runs in a fresh interpreter, since this test process has long
imported TensorFlow.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tensorflow_kappa as tk
from tensorflow_kappa.cli.quiet import keep_native_lines

REPO = Path(__file__).resolve().parents[1]


def fresh_python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=300)


def test_import_alone_imports_neither_tensorflow_nor_keras():
    result = fresh_python("""
        import json, sys
        import tensorflow_kappa as tk
        before = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
        y = tk.quantize_tensor([0.1, 0.3], "s8.4").numpy().tolist()
        print(json.dumps([before, y, "tensorflow" in sys.modules]))
    """)
    assert result.returncode == 0, result.stderr
    before, y, after = json.loads(result.stdout.splitlines()[-1])
    assert before == []
    assert y == [0.125, 0.3125]  # first use imports what it needs
    assert after


@pytest.mark.parametrize("first", ["keras", "tensorflow"])
def test_keras_objects_register_at_import_when_keras_or_tf_came_first(first):
    result = fresh_python(f"""
        import {first}
        import keras
        import tensorflow_kappa
        names = ["Kappa>INALU", "Kappa>NAU", "Kappa>BatchMSE"]
        print([keras.saving.get_registered_object(n) is not None for n in names])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["[True,", "True,", "True]"]


def test_register_all_registers_keras_objects_after_a_lazy_import():
    result = fresh_python("""
        import tensorflow_kappa as tk
        import keras
        before = keras.saving.get_registered_object("Kappa>INALU") is not None
        tk.register_all()
        after = keras.saving.get_registered_object("Kappa>INALU") is not None
        print(before, after)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["False", "True"]


def test_public_names_resolve_and_are_listed():
    for name in tk.__all__:
        assert getattr(tk, name) is not None, name
    assert set(tk.__all__) <= set(dir(tk))
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        tk.nonexistent  # noqa: B018


def test_cli_help_needs_no_tensorflow():
    result = fresh_python("""
        import sys
        from tensorflow_kappa import cli
        try:
            cli.main(["arithmetic", "--help"])
        except SystemExit:
            pass
        print("TF", "tensorflow" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["TF", "False"]
    assert result.stderr == ""


def test_cli_prints_no_native_start_up_lines_unless_asked():
    code = "from tensorflow_kappa import cli; cli.main(['info'])"
    quiet = fresh_python(code)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr
    assert "op library" in quiet.stdout
    verbose = fresh_python(code, env={"TF_CPP_MIN_LOG_LEVEL": "0"})  # the user's choice
    assert "oneDNN" in verbose.stderr or "absl::InitializeLog" in verbose.stderr


def test_native_line_filter_keeps_errors_and_their_continuations():
    text = "\n".join([
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1.1 1 port.cc:153] oneDNN custom operations are on.",
        "W0000 00:00:1.2 1 cpu_feature_guard.cc:227] optimized for AVX2",
        "To enable the following instructions: AVX2, rebuild TensorFlow",
        "E0000 00:00:1.3 1 cuda_driver.cc:1] failed call to cuInit",
        "  details of the error",
        "Traceback (most recent call last):",
    ])
    assert keep_native_lines(text, 2) == [
        "E0000 00:00:1.3 1 cuda_driver.cc:1] failed call to cuInit",
        "  details of the error", "Traceback (most recent call last):"]
    assert len(keep_native_lines(text, 0)) == 7
    warnings_up = keep_native_lines(text, 1)
    assert len(warnings_up) == 6 and not any(line.startswith("I0000") for line in warnings_up)

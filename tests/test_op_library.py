"""The op library: lazy loading, the ABI check, the fallback switch, SavedModel registration."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tensorflow_kappa as tk
from tensorflow_kappa import _ops, cli

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter, TF logging quiet."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def test_library_loads_with_tf_load_op_library():
    lib = tf.load_op_library(str(_ops.LIBRARY_PATH))
    assert hasattr(lib, "kappa_quantize")
    info = json.loads(lib.kappa_build_info().numpy())
    record = json.loads(_ops.BUILD_INFO_PATH.read_text())
    # The record is what was compiled in, plus the library's own size and checksum.
    assert info == {k: v for k, v in record.items() if not k.startswith("library_")}
    assert info["tf_version"] == tf.__version__
    x = tf.constant([0.1, 0.3, -9.0])
    y = lib.kappa_quantize(x, tf.zeros([2], tf.int64), bits=8, frac_bits=4)
    np.testing.assert_array_equal(y.numpy(), [0.125, 0.3125, -8.0])


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the installed package that a test may damage."""
    target = tmp_path / "site" / "tensorflow_kappa"
    shutil.copytree(Path(tk.__file__).parent, target,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return target


FIRST_OP_CALL = "import tensorflow_kappa as tk; tk.quantize_tensor([0.3], 's8.4')"


def test_library_built_for_another_tensorflow_gives_clear_import_error(package_copy):
    info = json.loads((package_copy / "_build_info.json").read_text())
    info["tf_version"] = "2.99.0"
    (package_copy / "_build_info.json").write_text(json.dumps(info))
    result = run_python(FIRST_OP_CALL, cwd=package_copy.parent.parent,
                        env={"PYTHONPATH": str(package_copy.parent)})
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError:")
    assert "built for TensorFlow 2.99.0" in message
    assert f"TensorFlow {tf.__version__} is installed" in message
    assert _ops.REBUILD_COMMAND in message


def test_the_build_records_the_library_size_and_checksum():
    """The Bazel genrule's record matches the library next to it (checked with hashlib
    here, independently of _ops)."""
    import hashlib
    info = json.loads(_ops.BUILD_INFO_PATH.read_text())
    data = _ops.LIBRARY_PATH.read_bytes()
    assert info["library_size"] == len(data)
    assert info["library_sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("damage", ["truncated", "same size, other bytes"])
def test_damaged_library_gives_clear_import_error_before_dlopen(package_copy, damage):
    """A truncated library (an interrupted install or copy) can kill the process with
    SIGBUS inside dlopen; the recorded size and SHA-256 stop it before the load."""
    library = package_copy / "_kappa_ops.so"
    data = library.read_bytes()
    if damage == "truncated":
        library.write_bytes(data[: len(data) // 3])
    else:
        middle = len(data) // 2
        library.write_bytes(data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1:])
    result = run_python(FIRST_OP_CALL, cwd=package_copy.parent.parent,
                        env={"PYTHONPATH": str(package_copy.parent)})
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # not a signal
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError:") and "is damaged" in message
    assert ("bytes" if damage == "truncated" else "SHA-256") in message
    assert _ops.REBUILD_COMMAND in message and _ops.FALLBACK_ENV in message


def test_a_record_without_the_checksum_is_not_trusted(package_copy):
    info = json.loads((package_copy / "_build_info.json").read_text())
    del info["library_sha256"]
    (package_copy / "_build_info.json").write_text(json.dumps(info))
    result = run_python(FIRST_OP_CALL, cwd=package_copy.parent.parent,
                        env={"PYTHONPATH": str(package_copy.parent)})
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError:") and "cannot be checked" in message


def test_corrupt_library_gives_clear_import_error(package_copy):
    """A library that matches its record but is no ELF file fails in dlopen, cleanly."""
    import hashlib
    bogus = b"not an ELF file"
    (package_copy / "_kappa_ops.so").write_bytes(bogus)
    info = json.loads((package_copy / "_build_info.json").read_text())
    info.update(library_size=len(bogus), library_sha256=hashlib.sha256(bogus).hexdigest())
    (package_copy / "_build_info.json").write_text(json.dumps(info))
    result = run_python("import tensorflow_kappa as tk; tk.register_all()",
                        cwd=package_copy.parent.parent,
                        env={"PYTHONPATH": str(package_copy.parent)})
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError:") and "failed to load" in message
    assert _ops.REBUILD_COMMAND in message


def test_missing_library_gives_clear_import_error_unless_fallback(package_copy):
    (package_copy / "_kappa_ops.so").unlink()
    (package_copy / "_build_info.json").unlink()
    env = {"PYTHONPATH": str(package_copy.parent)}
    result = run_python(FIRST_OP_CALL, cwd=package_copy.parent.parent, env=env)
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError:") and "not built" in message
    assert _ops.FALLBACK_ENV in message
    ok = run_python("import tensorflow_kappa as tk; print(tk.quantize_tensor([0.3], 's8.4').numpy())",
                    cwd=package_copy.parent.parent, env={**env, _ops.FALLBACK_ENV: "1"})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "[0.3125]"


def test_everything_that_calls_no_op_works_without_the_library(package_copy):
    """The library loads on the first op call: with it renamed away, the package imports,
    an INALU model trains under a LoopController and the datasets work; then the first
    op call raises the clear ImportError (and so does register_all)."""
    (package_copy / "_kappa_ops.so").rename(package_copy / "_kappa_ops.so.away")
    code = """
        import keras, numpy as np, tensorflow_kappa as tk
        from tensorflow_kappa import _ops
        task = tk.datasets.arithmetic_task("x1 * x2", num_inputs=2, n=256, seed=0)
        data = tk.TeacherStudentDataset(32, 3, 1, seed=0)
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((2,)), tk.INALU(2), tk.layers.NAU(1)])
        model.compile(optimizer="rmsprop", loss="mse")
        controller = tk.recipes.inalu_controller(early_stopping_threshold=None)
        assert isinstance(controller, tk.LoopController)
        history = model.fit(*task.train, batch_size=64, epochs=1, verbose=0,
                            callbacks=[controller])
        assert np.isfinite(history.history["loss"][0]) and controller.batches == 4
        assert _ops._library is None, "the library was loaded"
        print("fitted", data.X.shape, tk.layers.explain(model)[0].discrete in (True, False))
        for call in (lambda: tk.quantize_tensor([0.3], "s8.4"), tk.register_all,
                     lambda: tk.rail_stats([0.3], "s8.4")):
            try:
                call()
            except ImportError as err:
                print("ImportError:", err)
            else:
                print("no error")
    """
    result = run_python(code, cwd=package_copy.parent.parent,
                        env={"PYTHONPATH": str(package_copy.parent)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "fitted (32, 3) True"
    errors = lines[1:]
    assert len(errors) == 3 and all(e.startswith("ImportError:") for e in errors), errors
    assert all("missing or unreadable" in e and _ops.REBUILD_COMMAND in e
               and _ops.FALLBACK_ENV in e for e in errors), errors


def test_fallback_env_uses_twins_and_warns_once(tmp_path):
    code = """
        import warnings
        import tensorflow_kappa as tk
        from tensorflow_kappa import _ops
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = tk.quantize_tensor([0.1, 0.7], "s8.2")
            b = tk.quantize_tensor([0.1, 0.7], "s8.2")
        slower = [w for w in caught if "slower" in str(w.message)]
        print(len(slower), _ops.custom_ops() is None, a.numpy().tolist(), b.numpy().tolist())
    """
    result = run_python(code, cwd=tmp_path, env={_ops.FALLBACK_ENV: "1", "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True", "[0.0,", "0.75]", "[0.0,", "0.75]"]


def test_composite_ops_switch_is_scoped_and_thread_local():
    assert _ops.custom_ops() is not None
    with tk.composite_ops():
        assert _ops.custom_ops() is None
        with tk.composite_ops():
            assert _ops.custom_ops() is None
        assert _ops.custom_ops() is None
    assert _ops.custom_ops() is not None


def test_saved_model_with_custom_op_needs_and_gets_registration(tmp_path):
    module = tf.Module()
    module.f = tf.function(
        lambda x: tk.quantize_tensor(x, "s8.4:truncate"),
        input_signature=[tf.TensorSpec([None], tf.float32)],
    )
    concrete = module.f.get_concrete_function()
    assert "Kappa>Quantize" in {op.type for op in concrete.graph.get_operations()}
    tf.saved_model.save(module, str(tmp_path / "model"))
    load = f"tf.saved_model.load({str(tmp_path / 'model')!r})"

    # A graph does not call the package: the library loads lazily, so register it first.
    for prelude in ("pass", "import tensorflow_kappa"):
        plain = run_python(f"import tensorflow as tf; {prelude}; {load}", cwd=tmp_path,
                           env={"PYTHONPATH": str(REPO)})
        assert plain.returncode != 0 and "Op type not registered" in plain.stderr
    result = run_python(
        "import tensorflow as tf; import tensorflow_kappa as tk; tk.register_all(); "
        f"m = {load}; print(m.f(tf.constant([0.1, -0.1, 20.0])).numpy().tolist())",
        cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0.0625, -0.125, 7.9375]"


def test_kappa_info_reports_the_library(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    info = json.loads(_ops.BUILD_INFO_PATH.read_text())
    assert f"TensorFlow       {tf.__version__}" in out
    assert "CPU kernels    yes" in out
    assert ("CUDA kernels   yes" in out) == info["cuda"]
    if shutil.which("nvcc"):  # configure.py compiles the CUDA kernels where nvcc is
        assert info["cuda"] and "CUDA kernels   yes" in out
    assert "active ops       custom kernels" in out


def test_keras_model_with_package_layers_loads_in_fresh_process(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), tk.layers.INALU(3), keras.layers.Dense(2),
                              tk.layers.NAU(1)])
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    want = model.predict(x, verbose=0)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x)
    result = run_python(
        "import numpy as np, keras, tensorflow_kappa; "
        f"m = keras.models.load_model({str(tmp_path / 'model.keras')!r}); "
        f"np.save({str(tmp_path / 'got.npy')!r}, m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0))",
        cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "got.npy"), want)

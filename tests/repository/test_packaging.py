"""The wheel: built by pip through setup.py (configure + Bazel), installed into a
fresh virtual environment that reuses the installed TensorFlow, used from
outside the source tree."""
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                    "-q", "-w", str(tmp_path / "dist"), str(REPO)],
                   check=True, cwd=tmp_path, env=env, timeout=1200)
    wheels = list((tmp_path / "dist").glob("tensorflow_kappa-*.whl"))
    assert len(wheels) == 1
    assert wheels[0].name.endswith(f"-{sysconfig.get_platform().replace('-', '_').replace('.', '_')}.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # Reuse this environment's TensorFlow (and NumPy, matplotlib) instead of
    # installing a second copy: a .pth line appends its site-packages.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "reuse_tensorflow.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheels[0])],
                   check=True, env=env, timeout=600)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    info = subprocess.run([str(venv / "bin" / "kappa"), "info"], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=300)
    assert info.returncode == 0, info.stderr
    assert f"at {purelib}/tensorflow_kappa" in info.stdout
    assert "CPU kernels    yes" in info.stdout
    code = ("import tensorflow_kappa as tk; print(tk.__version__, tk.__file__); "
            "print(tk.quantize_tensor([0.1, 0.3, 100.0], 's8.4').numpy().tolist())")
    run = subprocess.run([str(python), "-c", code], cwd=outside, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    version_line, values = run.stdout.strip().splitlines()
    assert version_line.split()[1].startswith(purelib)
    assert values == "[0.125, 0.3125, 7.9375]"
    # The NumPy binding ships in the wheel too, and runs without TensorFlow.
    code = ("import sys, numpy as np; from tensorflow_kappa import core; "
            "print(core.quantize(np.array([0.1, 0.3, 100.0], np.float32), 's8.4').tolist(), "
            "core.ops.extension().__file__, 'tensorflow' in sys.modules)")
    run = subprocess.run([str(python), "-c", code], cwd=outside, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    values, extension, tensorflow = run.stdout.rsplit(" ", 2)
    assert values == "[0.125, 0.3125, 7.9375]" and tensorflow.strip() == "False"
    assert extension.startswith(f"{purelib}/tensorflow_kappa/_kappa_core.")

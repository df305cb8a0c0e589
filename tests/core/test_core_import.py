"""``import tensorflow_kappa.core`` and its use import neither TensorFlow nor Keras."""
import os
import subprocess
import sys
import textwrap


def test_core_works_without_tensorflow():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import tensorflow_kappa.core as core
        from tensorflow_kappa.core import FixedPoint
        x = np.array([0.1, 0.3, 100.0], np.float32)
        assert core.quantize(x, "s8.4").tolist() == [0.125, 0.3125, 7.9375]
        assert core.quantize(x, FixedPoint(8, 4, rounding="stochastic"), seed=(1, 2)).shape == (3,)
        third = float(np.float32(1 / 3))
        assert [float(v) for v in core.rail_stats(x, "s8.4")] == [third, third, 0.0]
        w = x.copy()
        core.update_quantize_store(w, np.ones(3, np.float32), 0.5, "s8.4", "s8.4")
        FixedPoint.parse("s8.4").check_dtype(np.float32)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        assert not loaded, loaded
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k != "KAPPA_PY_OPS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr

"""Old module paths the README listed still import, with a DeprecationWarning at the importer."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MOVED = {
    "tensorflow_kappa.precision": ("tensorflow_kappa.quantization.precision", "PrecisionDict"),
    "tensorflow_kappa.history": ("tensorflow_kappa.models.history", "FitHistory"),
    "tensorflow_kappa.utils": ("tensorflow_kappa.models.stability", "stability_metrics_from_hessian"),
}


def test_old_module_paths_warn_at_the_importer_and_give_the_same_objects(tmp_path):
    script = tmp_path / "user_code.py"
    script.write_text(textwrap.dedent(f"""
        import importlib, warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import tensorflow_kappa as tk
        assert not [w for w in caught if issubclass(w.category, DeprecationWarning)
                    and "tensorflow_kappa" in str(w.message)], caught
        for old, (new, name) in {MOVED!r}.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                module = importlib.import_module(old)
            ours = [w for w in caught if issubclass(w.category, DeprecationWarning)]
            assert len(ours) == 1, (old, [str(w.message) for w in caught])
            assert new in str(ours[0].message), ours[0].message
            assert ours[0].filename == __file__, (old, ours[0].filename)
            assert getattr(module, name) is getattr(importlib.import_module(new), name)
            assert getattr(tk, old.split(".")[-1]) is module
        print("ok")
    """))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

"""tests/core: the NumPy binding. Its tests share the op tests' matrix and
references (tests/quantization), so that folder is importable from here."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quantization"))

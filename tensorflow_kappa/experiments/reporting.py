"""What every experiment uses to report: JSON-ready values, JSON files, numbers, text tables.

Example:
>>> import numpy as np
>>> jsonable({"mse": np.float32(0.5), "bad": float("nan"), "runs": (np.int64(3),)})
{'mse': 0.5, 'bad': None, 'runs': [3]}
>>> format_number(float("nan")), format_number(0.000123456)
('-', '0.000123')
>>> print(text_table([("run", "loss"), ("a", "0.5"), ("bb", "12")], left=1))
run  loss
---------
a     0.5
bb     12
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["format_number", "jsonable", "text_table", "write_json"]


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars made Python ones, tuples made lists, dict keys made
    strings and non-finite floats made ``None`` (JSON has no NaN), recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path: str, data: Any, indent: int = 2) -> str:
    """Write ``jsonable(data)`` to ``path`` (creating its folder); returns the path."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(jsonable(data), f, indent=indent)
    return path


def format_number(x: Optional[float], spec: str = ".3g", missing: str = "-") -> str:
    """``x`` formatted with ``spec``; ``missing`` for None and NaN."""
    if x is None or (isinstance(x, (float, np.floating)) and math.isnan(x)):
        return missing
    return format(x, spec)


def text_table(rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Rows of cells as aligned text: a header row, a rule, then the rest.

    The first ``left`` columns are left-aligned, the others right-aligned; cells
    are separated by two spaces.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < left else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)

"""What every experiment uses to report: JSON-ready values, JSON files, numbers, text tables,
and the output folder, checked before any work and written to without losing a run.

An experiment that writes files checks its folder with
:func:`tensorflow_kappa._checks.writable_folder` before it trains (a bad
folder fails at once, as a ValueError naming it) and writes
each file through :func:`try_write`: a write that fails at the end (disk
full, folder removed) warns with :class:`OutputWriteWarning` and the
experiment still returns its results.

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
import warnings
from typing import Any, Callable, Optional, Sequence

import numpy as np

__all__ = ["OutputWriteWarning", "format_number", "jsonable", "text_table", "try_write",
           "write_json", "write_text"]


class OutputWriteWarning(RuntimeWarning):
    """A result file could not be written; the experiment's results are returned anyway."""


def try_write(write: Callable[[str], Any], path: str) -> Optional[str]:
    """``write(path)``; returns ``path``, or None after an :class:`OutputWriteWarning`
    naming the file if the write fails with an OSError (the caller keeps its results)."""
    try:
        write(path)
    except OSError as err:
        warnings.warn(f"could not write {path}: {err.strerror or err}; the results are "
                      "returned but this file is missing", OutputWriteWarning, stacklevel=2)
        return None
    return path


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


def write_text(path: str, text: str) -> str:
    """Write ``text`` to ``path`` (UTF-8); returns the path."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
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

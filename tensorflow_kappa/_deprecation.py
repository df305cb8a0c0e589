"""Warnings for names and modules that moved (one helper for every shim)."""
from __future__ import annotations

import sys
import warnings


def _importer_stacklevel() -> int:
    """The ``stacklevel`` that points at the code importing a shim module.

    Frames of the import machinery between the shim and its importer are
    skipped, so Python's default filter (which shows a DeprecationWarning
    only when ``__main__`` triggers it) and ``-W error`` see the real caller.
    ``warnings.warn`` itself does not count the frozen ``importlib._bootstrap``
    frames, so neither does this count.
    """
    frame = sys._getframe(3)  # 0 this helper, 1 warn_moved_module, 2 the shim
    level = 3  # warnings.warn counts from warn_moved_module: 2 is the shim
    while frame is not None and ("importlib" in frame.f_code.co_filename
                                 or frame.f_code.co_name == "__getattr__"):
        if "_bootstrap" not in frame.f_code.co_filename:
            level += 1
        frame = frame.f_back
    return level


def warn_moved_module(old: str, new: str) -> None:
    """Warn (DeprecationWarning) that module ``old`` moved to ``new``; call at module level."""
    warnings.warn(f"{old} is deprecated and will be removed: import from {new} instead",
                  DeprecationWarning, stacklevel=_importer_stacklevel())

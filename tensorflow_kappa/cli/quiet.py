"""TensorFlow imported without its native start-up lines.

TensorFlow 2.21 writes its native start-up lines (oneDNN, CPU features, absl's
"before InitializeLog" banner) to stderr whatever ``TF_CPP_MIN_LOG_LEVEL`` says;
:func:`import_tensorflow_quietly` drops those below the level that variable names
(default 2: errors only, as TensorFlow documents it; a user's own setting is
respected), so every command prints only its own output.

Example (continuation lines follow their first line's fate):
>>> keep_native_lines("I0000 00:00:1.1 1 port.cc:153] oneDNN on\\n"
...                   "E0000 00:00:1.3 1 cuda_driver.cc:1] failed\\n  details", 2)
['E0000 00:00:1.3 1 cuda_driver.cc:1] failed', '  details']
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import List

# A native log line: severity letter, MMDD, time (glog/absl format).
_NATIVE_LINE = re.compile(r"^([IWEF])\d{4} \d")
_NATIVE_LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called"


def keep_native_lines(text: str, min_level: int) -> List[str]:
    """The lines of TensorFlow's native start-up output at or above ``min_level``
    (continuation lines follow their first line's fate)."""
    kept, keep = [], True
    for line in text.splitlines():
        match = _NATIVE_LINE.match(line)
        if match:
            keep = _NATIVE_LEVELS[match.group(1)] >= min_level
        elif line.startswith(_ABSL_BANNER):
            keep = min_level <= 1
        if keep:
            kept.append(line)
    return kept


def import_tensorflow_quietly() -> None:
    """Import TensorFlow, dropping its native start-up lines below
    ``TF_CPP_MIN_LOG_LEVEL`` (set to 2 here unless the user set it)."""
    if "tensorflow" in sys.modules:
        return
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    min_level = int(level) if level.strip().isdigit() else 0
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
    for line in keep_native_lines(text, min_level):
        print(line, file=sys.stderr)

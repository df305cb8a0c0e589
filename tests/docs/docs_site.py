"""Where the documentation lives and how the test suite builds it.

The build: ``python -m sphinx -W --keep-going -E -q -b html docs docs/_build/html`` in a
fresh Python process, so a broken cross-reference, a public object without a
docstring, a malformed docstring or a broken link between pages (each a warning)
fails it. The site lands in ``docs/_build/html``, where a person can open it.
"""
import functools
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
BUILD = DOCS / "_build"


def build_command(source: Path, out: Path) -> list:
    """Sphinx with warnings as errors (all of them reported), every page re-read."""
    return [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
            str(source), str(out)]


def build(source: Path = DOCS, out: Path = BUILD / "html") -> subprocess.CompletedProcess:
    """Build ``source`` into ``out`` with the checkout's package first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(build_command(source, out), cwd=source, env=env,
                          capture_output=True, text=True, timeout=900)


def site() -> Path:
    """The documentation, built once per test process; an AssertionError with Sphinx's
    warnings where the build failed."""
    run = _build_once()
    assert run.returncode == 0, f"the documentation build failed:\n{run.stderr[-20000:]}"
    return BUILD / "html"


@functools.lru_cache(maxsize=None)
def _build_once() -> subprocess.CompletedProcess:
    return build()

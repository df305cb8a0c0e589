"""The documentation site, built once per test session with warnings as errors
(:mod:`docs_site`)."""
from pathlib import Path

import pytest

import docs_site


@pytest.fixture(scope="session")
def site() -> Path:
    """The built site's folder; fails with Sphinx's warnings if the build fails."""
    run = docs_site.build()
    assert run.returncode == 0, f"the documentation build failed:\n{run.stderr[-20000:]}"
    return docs_site.BUILD / "html"

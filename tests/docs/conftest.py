"""The built documentation site (:func:`docs_site.site`: built once, with warnings as
errors)."""
from pathlib import Path

import pytest

import docs_site


@pytest.fixture
def site() -> Path:
    """The built site's folder; fails with Sphinx's warnings if the build fails."""
    return docs_site.site()

"""Sphinx configuration of the tensorflow_kappa documentation.

Build (what the test suite does, warnings as errors):

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Why Sphinx: the reference is generated from the package's docstrings, which are
Google-style with doctest examples (autodoc reads them, napoleon renders their
sections, Python's own cross-reference roles resolve ``:class:`` and ``:func:``
targets in them); the guides are Markdown (MyST); and a warning-free build with
``-W`` and ``nitpicky`` is how NumPy, SciPy, JAX and PyTorch keep broken
cross-references out of their references. The three generators in ``_ext``
(the API pages, the ``kappa`` commands, the format tables) walk the code at
build time, so nothing in the reference is a hand-kept list.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # the checkout's package before an installed one
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tensorflow_kappa import __version__  # noqa: E402

project = "tensorflow_kappa"
author = "the tensorflow_kappa authors"
copyright = "the tensorflow_kappa authors"
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",
    "kappa_docs.api",
    "kappa_docs.cli",
    "kappa_docs.formats",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list = []

# Every cross-reference must resolve: a broken one is a warning, and the build
# treats warnings as errors. Types of other libraries (TensorFlow, Keras, NumPy,
# Matplotlib) are not in this site and there is no network to fetch their
# inventories, so references to them alone are let through.
nitpicky = True
_OTHER_LIBRARIES = ("tf", "tensorflow", "keras", "np", "numpy", "matplotlib", "h5py",
                    "ml_dtypes", *sorted(sys.stdlib_module_names))
nitpick_ignore_regex = [(r"py:.*", rf"~?({'|'.join(_OTHER_LIBRARIES)})(\..*)?")]

# autodoc: members in source order (kappa_docs.api chooses which, and fails the build
# on a public one without a docstring), types in the signature.
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_inherit_docstrings = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# MyST: ``{eval-rst}`` blocks, colon fences, heading anchors for links to sections.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

smartquotes = False   # option names keep their "--", code its quotes
highlight_language = "none"
pygments_style = "friendly"
html_theme = "furo"
html_title = "tensorflow_kappa"
html_static_path = ["_static"]
html_css_files = ["kappa.css"]
html_show_sourcelink = False

# kappa_docs.api: the package whose exports the API reference walks.
kappa_api_package = "tensorflow_kappa"

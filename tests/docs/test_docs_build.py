"""The site builds with warnings as errors, and the build does fail on what it must:
a public object or member without a docstring, a reference that does not resolve and
a link to a page that does not exist (shown on a small package and page built with
the same extensions and settings)."""
import textwrap

import docs_site
import guide_blocks

FAKE_PACKAGE = '''
"""A package for the build check."""
__all__ = ["Thing", "broken", "documented", "undocumented"]


def documented():
    """Does something."""


def undocumented():
    pass


def broken():
    """Calls :func:`no_such_function`."""


class Thing:
    """A thing; :meth:`method` does it, :func:`documented` too."""

    def method(self):
        pass
'''

CONF = f'''
import sys
sys.path.insert(0, {str(docs_site.DOCS / "_ext")!r})
sys.path.insert(0, ".")
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser", "kappa_docs.api"]
nitpicky = True
kappa_api_package = "fakepkg"
'''


def test_the_site_builds_with_warnings_as_errors(site):
    assert "-W" in docs_site.build_command(docs_site.DOCS, site)
    for page in ["index.html", "search.html", "reference/api/tensorflow_kappa.html",
                 "reference/cli.html", "benchmarks.html",
                 *[f"guides/{p.stem}.html" for p in guide_blocks.guide_pages()]]:
        assert (site / page).is_file(), page


def test_a_missing_docstring_or_a_broken_reference_fails_the_build(tmp_path):
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text(FAKE_PACKAGE)
    (tmp_path / "conf.py").write_text(CONF)
    (tmp_path / "index.rst").write_text(textwrap.dedent("""\
        Fake
        ====

        .. toctree::

           reference/api/fakepkg
           guide
        """))
    (tmp_path / "guide.md").write_text("# Guide\n\nSee [the other page](nowhere.md).\n")
    run = docs_site.build(tmp_path, tmp_path / "_build")
    assert run.returncode != 0
    assert "fakepkg.undocumented has no docstring" in run.stderr, run.stderr
    assert "fakepkg.Thing.method has no docstring" in run.stderr, run.stderr
    assert "no_such_function" in run.stderr, run.stderr
    assert "nowhere.md" in run.stderr, run.stderr

    fixed = FAKE_PACKAGE.replace("    pass\n", '    """Documented now."""\n')
    fixed = fixed.replace(":func:`no_such_function`", ":func:`documented`")
    (package / "__init__.py").write_text(fixed)
    (tmp_path / "guide.md").write_text("# Guide\n\nSee [the index](index.rst).\n")
    run = docs_site.build(tmp_path, tmp_path / "_build")
    assert run.returncode == 0, run.stderr

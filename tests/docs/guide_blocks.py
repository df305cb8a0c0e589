"""The code blocks of the documentation's pages, and how each kind is run or checked.

Every fenced block of a page is one of:

* ``python``: executed, in page order, in one namespace per page;
* ``pycon``: a doctest (``>>>`` lines and their output), run in that same namespace,
  its output compared (``...`` matches anything, whitespace is normalised);
* ``console``: ``$ kappa ...`` lines, each run as the command line runs it
  (:func:`tensorflow_kappa.cli.main`), which must exit with status 0;
* ``bash``: set-up and build commands, which the test suite does not run (CI runs
  them through ``scripts/quickstart.sh``): every file, script, Bazel target,
  ``configure.py`` option, pip requirement or extra, environment variable and
  ``kappa`` option they name is checked to exist;
* ``text``: output or a listing, not code.

A block of any other kind fails the test (say how to run it here first). MyST
directives (``{toctree}``, ``{include}``, ...) are not code blocks.
"""
from __future__ import annotations

import contextlib
import dataclasses
import doctest
import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

from markdown_it import MarkdownIt

from docs_site import DOCS, REPO

KINDS = ("python", "pycon", "console", "bash", "text")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block: its page, first line (1-based), kind and text."""

    page: Path
    line: int
    kind: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> List[Block]:
    """The fenced code blocks of a Markdown page, in order (directives left out)."""
    tokens = MarkdownIt("commonmark").parse(page.read_text())
    return [Block(page, token.map[0] + 1, token.info.strip().split(" ")[0], token.content)
            for token in tokens
            if token.type == "fence" and not token.info.strip().startswith("{")]


def guide_pages() -> List[Path]:
    """Every page of the guides."""
    return sorted((DOCS / "guides").glob("*.md"))


def run_page(page: Path, workdir: Path) -> Dict[str, object]:
    """Run every block of a page in ``workdir``; the namespace its Python shared."""
    namespace: Dict[str, object] = {"__name__": "__main__"}
    with _chdir(workdir):
        for block in blocks(page):
            RUNNERS[block.kind](block, namespace)
    return namespace


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_python(block: Block, namespace: dict) -> None:
    exec(compile(block.text, block.where, "exec"), namespace)  # noqa: S102 (our docs)


def run_pycon(block: Block, namespace: dict) -> None:
    test = doctest.DocTestParser().get_doctest(block.text, namespace, block.where,
                                               str(block.page), block.line)
    failures: List[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS
                                   | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=failures.append, clear_globs=False)
    assert runner.failures == 0, f"{block.where}:\n" + "".join(failures)


def run_console(block: Block, namespace: dict) -> None:
    from tensorflow_kappa.cli import main

    commands = [line[2:] for line in block.text.splitlines() if line.startswith("$ ")]
    assert commands, f"{block.where}: a console block without a '$ ' command"
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "kappa", f"{block.where}: only kappa commands run here: {command}"
        assert main(argv[1:]) == 0, f"{block.where}: {command} failed"


def skip(block: Block, namespace: dict) -> None:
    """``text`` blocks are output or listings."""


# --------------------------------------------------------------------------------------
# bash: checked, not run
# --------------------------------------------------------------------------------------

def check_bash(block: Block, namespace: dict) -> None:
    text = block.text.replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
            variable = words.pop(0).split("=", 1)[0]
            assert variable in _environment_variables(), \
                f"{block.where}: the package reads no environment variable {variable}"
        if words:
            problem = _check_command(words)
            assert problem is None, f"{block.where}: {line.strip()}: {problem}"


def _check_command(words: List[str]) -> str | None:
    program, args = words[0], words[1:]
    if program in ("python", "python3"):
        return _check_python(args)
    if program == "pip":
        return _check_pip(args)
    if program == "bazel":
        return _check_bazel(args)
    if program == "kappa":
        return _check_kappa(args)
    if program in ("apt-get", "sudo"):
        return _check_apt(args)
    if program == "bash":
        return None if (REPO / args[0]).is_file() else f"no script {args[0]}"
    if (REPO / program).is_file():  # a script run directly, e.g. cc/gpu_check/run.sh
        return None if os.access(REPO / program, os.X_OK) else f"{program} is not executable"
    return f"no check for the command {program!r}: add one to {Path(__file__).name}"


def _check_python(args: List[str]) -> str | None:
    if args[:1] == ["-m"]:
        module = args[1]
        if module == "pip":
            return _check_pip(args[2:])
        import importlib.util
        return None if importlib.util.find_spec(module) else f"no module {module}"
    script = REPO / args[0]
    if not script.is_file():
        return f"no script {args[0]}"
    if script.name == "configure.py":
        known = set(re.findall(r"--[a-z][a-z0-9-]*", _configure_help()))
        unknown = [a.split("=")[0] for a in args[1:]
                   if a.startswith("--") and a.split("=")[0] not in known]
        return f"configure.py has no option {unknown}" if unknown else None
    if script.name == "setup.py":
        return None if args[1:] in (["bdist_wheel"], ["sdist"], ["--version"]) else \
            f"setup.py {' '.join(args[1:])}"
    return None


def _check_pip(args: List[str]) -> str | None:
    if args[:1] != ["install"]:
        return f"pip {' '.join(args[:1])}"
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    for arg in args[1:]:
        if arg.startswith("-"):
            continue
        if arg.startswith("."):
            extras = set(re.findall(r"[\w-]+", arg[arg.find("[") + 1:])) if "[" in arg else set()
            missing = extras - set(_extras())
            if missing:
                return f"setup.py has no extra {sorted(missing)}"
            continue
        if re.fullmatch(r"tensorflow_kappa-<version>\.tar\.gz", arg):
            continue
        requirement = Requirement(arg)
        name = canonicalize_name(requirement.name)
        if name == canonicalize_name("tensorflow_kappa"):
            missing = set(requirement.extras) - set(_extras())
            if missing:
                return f"setup.py has no extra {sorted(missing)}"
            continue
        if name not in _known_requirements():
            return f"{requirement.name} is neither a requirement of setup.py nor installed " \
                   "by scripts/quickstart.sh"
        if name.startswith("tensorflow") and requirement.specifier and \
                not requirement.specifier.contains(f"{_tensorflow_minor()}.0"):
            return f"{arg} is not TensorFlow {_tensorflow_minor()}"
    return None


def _check_bazel(args: List[str]) -> str | None:
    if args[:1] not in (["build"], ["test"]):
        return f"bazel {' '.join(args[:1])}"
    names = set(re.findall(r'name = "([^"]+)"', (REPO / "BUILD").read_text()))
    for target in args[1:]:
        if target != "//..." and target.removeprefix("//:") not in names:
            return f"no Bazel target {target} in BUILD"
    return None


def _check_kappa(args: List[str]) -> str | None:
    from tensorflow_kappa.cli import build_parser

    try:
        build_parser().parse_args(args)
    except SystemExit:
        return "the kappa parser rejects it"
    return None


def _check_apt(args: List[str]) -> str | None:
    args = [a for a in args if a not in ("apt-get", "install", "-y")]
    script = (REPO / "scripts" / "quickstart.sh").read_text()
    missing = [a for a in args if a not in script]
    return f"scripts/quickstart.sh does not install {missing}" if missing else None


@functools.lru_cache(maxsize=None)
def _configure_help() -> str:
    return subprocess.run([sys.executable, "configure.py", "--help"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout


@functools.lru_cache(maxsize=None)
def _setup() -> object:
    import setuptools  # noqa: F401 (distutils comes with setuptools on Python 3.12+)
    import distutils.core

    with _chdir(REPO):
        return distutils.core.run_setup("setup.py", stop_after="init")


def _extras() -> Dict[str, list]:
    return dict(_setup().extras_require)


@functools.lru_cache(maxsize=None)
def _known_requirements() -> frozenset:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    names = {canonicalize_name(Requirement(r).name) for r in _setup().install_requires}
    for requirements in _extras().values():
        names |= {canonicalize_name(Requirement(r).name) for r in requirements}
    script = (REPO / "scripts" / "quickstart.sh").read_text()
    names |= {canonicalize_name(m) for m in re.findall(r'"([A-Za-z][\w.-]*)[\[<>=~"]', script)}
    names |= {canonicalize_name(m) for m in re.findall(r"\s([a-z][\w-]+)(?=\s|$)", script)}
    return frozenset(names)


def _tensorflow_minor() -> str:
    from tensorflow_kappa._version import TENSORFLOW_MINOR
    return TENSORFLOW_MINOR


@functools.lru_cache(maxsize=None)
def _environment_variables() -> frozenset:
    sources = [*REPO.glob("tensorflow_kappa/**/*.py"), *REPO.glob("cc/**/*.cc"),
               REPO / "setup.py", REPO / "configure.py"]
    text = "\n".join(p.read_text() for p in sources)
    return frozenset(re.findall(r'"(KAPPA_[A-Z_]+|TF_[A-Z_]+)"', text))


RUNNERS = {"python": run_python, "pycon": run_pycon, "console": run_console,
           "bash": check_bash, "text": skip}
assert set(RUNNERS) == set(KINDS)

"""Packaging for tensorflow_kappa.

``pip install --no-build-isolation .`` (or ``python setup.py bdist_wheel``)
builds the op library and the NumPy binding (``tensorflow_kappa.core``'s
extension, a build with pybind11: a build requirement, not a runtime one) with
configure.py and Bazel against the TensorFlow and Python running this, copies
them into the package, and packages a platform wheel (scripts/release.sh makes
the released, manylinux-tagged one). configure.py's options come from the
environment variable KAPPA_CONFIGURE_ARGS (e.g. ``--march=native`` for a build
for this machine only). Where Bazel is not available but both were already
built, they are packaged as they are.

TensorFlow is deliberately not a hard requirement: ``tensorflow`` and
``tensorflow-cpu`` are different distributions of the same module, and
requiring one would install a second copy next to the other. Choose with the
extras ``[cpu]`` or ``[gpu]``, or bring your own; the op library checks at
import that it matches the installed TensorFlow.
"""
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "tensorflow_kappa"
# What Bazel builds (bazel-bin/tensorflow_kappa/<name>) and the name each has in
# the package: the extension module carries this Python's ABI tag.
ARTIFACTS = {
    "_kappa_ops.so": "_kappa_ops.so",
    "_build_info.json": "_build_info.json",
    "_kappa_core.so": "_kappa_core" + sysconfig.get_config_var("EXT_SUFFIX"),
}
TARGETS = ("//:kappa_ops", "//:kappa_core")
# configure.py's options for a pip build, e.g. KAPPA_CONFIGURE_ARGS="--march=native".
CONFIGURE_ARGS_ENV = "KAPPA_CONFIGURE_ARGS"


def _user_environment() -> dict:
    """os.environ without pip's build isolation, which hides the user's TensorFlow."""
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONSAFEPATH"):
        env.pop(var, None)
    return env


def _configure_args() -> list:
    """pybind11's headers where this process has it (pip's isolated build
    environment), which configure.py, run in the user's environment, may not."""
    try:
        import pybind11
    except ImportError:
        return []
    return [f"--pybind11-include={pybind11.get_include()}"]


def build_op_library() -> None:
    """Configure and build the op library and the NumPy binding, and copy them
    into the package."""
    bazel = shutil.which("bazel")
    if bazel is None:
        if all((PACKAGE / name).is_file() for name in ARTIFACTS.values()):
            print("setup.py: bazel not found; packaging the libraries already built")
            return
        raise SystemExit(
            "setup.py: the op library is not built and Bazel is missing. Install "
            "Bazel (Debian/Ubuntu: `apt-get install bazel-bootstrap`), then retry."
        )
    env = _user_environment()
    configure_args = shlex.split(os.environ.get(CONFIGURE_ARGS_ENV, "")) + _configure_args()
    subprocess.run([sys.executable, "configure.py", *configure_args], cwd=ROOT, env=env,
                   check=True)
    try:
        subprocess.run([bazel, "build", *TARGETS], cwd=ROOT, env=env, check=True)
    finally:
        if not (ROOT / ".git").exists():
            # A one-off build from an sdist (pip unpacks it into a temporary
            # folder): stop the Bazel server it started there.
            subprocess.run([bazel, "shutdown"], cwd=ROOT, env=env, check=False)
    for built, name in ARTIFACTS.items():
        target = PACKAGE / name
        if target.exists():
            target.unlink()
        shutil.copyfile(ROOT / "bazel-bin" / "tensorflow_kappa" / built, target)


class BuildPyWithOps(build_py):
    """build_py that first builds the op library."""

    def run(self):
        build_op_library()
        super().run()


class BinaryDistribution(Distribution):
    """The wheel carries a compiled library: tag it for this platform."""

    def has_ext_modules(self):
        return True


def _release() -> dict:
    """__version__ and TENSORFLOW_MINOR from tensorflow_kappa/_version.py."""
    values: dict = {}
    exec((PACKAGE / "_version.py").read_text(), values)  # noqa: S102 (our own file)
    return values


RELEASE = _release()
TF_PIN = f"~={RELEASE['TENSORFLOW_MINOR']}.0"


setup(
    name="tensorflow_kappa",
    version=RELEASE["__version__"],
    description=(
        "Fixed-point training ops, training-loop control and neural arithmetic "
        "units for TensorFlow/Keras 3"
    ),
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tensorflow_kappa", "tensorflow_kappa.*"]),
    package_data={"tensorflow_kappa": list(ARTIFACTS.values())},
    install_requires=["numpy>=1.26", "matplotlib>=3.8"],
    extras_require={
        "cpu": [f"tensorflow-cpu{TF_PIN}"],
        "gpu": [f"tensorflow[and-cuda]{TF_PIN}"],
        "test": ["pytest>=8", "hypothesis>=6", "tensorboard~=2.20.0", "scikit-learn>=1.3"],
        "experiments": ["scikit-learn>=1.3"],   # kappa fixed-point: the bundled 8x8 digits
        # The documentation site (docs/: Sphinx, MyST, the Furo theme) and its check in
        # headless Chromium (Selenium drives Debian's chromium through chromedriver).
        "docs": ["sphinx>=8.1,<10", "myst-parser>=4,<6", "furo>=2024.8.6", "selenium>=4.20"],
    },
    entry_points={"console_scripts": ["kappa = tensorflow_kappa.cli:main"]},
    cmdclass={"build_py": BuildPyWithOps},
    distclass=BinaryDistribution,
    zip_safe=False,
)

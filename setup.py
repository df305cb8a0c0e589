"""Packaging for tensorflow_kappa.

``pip install --no-build-isolation .`` (or ``python setup.py bdist_wheel``)
builds the op library with configure.py and Bazel against the TensorFlow
installed in the running Python, copies it into the package, and packages a
platform wheel. Where Bazel is not available but the library was already
built, that library is packaged as it is.

TensorFlow is deliberately not a hard requirement: ``tensorflow`` and
``tensorflow-cpu`` are different distributions of the same module, and
requiring one would install a second copy next to the other. Choose with the
extras ``[cpu]`` or ``[gpu]``, or bring your own; the op library checks at
import that it matches the installed TensorFlow.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "tensorflow_kappa"
ARTIFACTS = ("_kappa_ops.so", "_build_info.json")


def _user_environment() -> dict:
    """os.environ without pip's build isolation, which hides the user's TensorFlow."""
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONSAFEPATH"):
        env.pop(var, None)
    return env


def build_op_library() -> None:
    """Configure and build //:kappa_ops, and copy it into the package."""
    bazel = shutil.which("bazel")
    if bazel is None:
        if all((PACKAGE / name).is_file() for name in ARTIFACTS):
            print("setup.py: bazel not found; packaging the op library already built")
            return
        raise SystemExit(
            "setup.py: the op library is not built and Bazel is missing. Install "
            "Bazel (Debian/Ubuntu: `apt-get install bazel-bootstrap`), then retry."
        )
    env = _user_environment()
    subprocess.run([sys.executable, "configure.py"], cwd=ROOT, env=env, check=True)
    subprocess.run([bazel, "build", "//:kappa_ops"], cwd=ROOT, env=env, check=True)
    for name in ARTIFACTS:
        target = PACKAGE / name
        if target.exists():
            target.unlink()
        shutil.copyfile(ROOT / "bazel-bin" / "tensorflow_kappa" / name, target)


class BuildPyWithOps(build_py):
    """build_py that first builds the op library."""

    def run(self):
        build_op_library()
        super().run()


class BinaryDistribution(Distribution):
    """The wheel carries a compiled library: tag it for this platform."""

    def has_ext_modules(self):
        return True


def _version() -> str:
    for line in (PACKAGE / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip("\"'")
    raise RuntimeError("__version__ not found")


setup(
    name="tensorflow_kappa",
    version=_version(),
    description=(
        "Fixed-point training ops, training-loop control and neural arithmetic "
        "units for TensorFlow/Keras 3"
    ),
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tensorflow_kappa", "tensorflow_kappa.*"]),
    package_data={"tensorflow_kappa": list(ARTIFACTS)},
    install_requires=["numpy>=1.26", "matplotlib>=3.8"],
    extras_require={
        "cpu": ["tensorflow-cpu~=2.21.0"],
        "gpu": ["tensorflow[and-cuda]~=2.21.0"],
        "test": ["pytest>=8", "hypothesis>=6", "tensorboard~=2.20.0", "scikit-learn>=1.3"],
        "experiments": ["scikit-learn>=1.3"],   # kappa fixed-point: the bundled 8x8 digits
    },
    entry_points={"console_scripts": ["kappa = tensorflow_kappa.cli:main"]},
    cmdclass={"build_py": BuildPyWithOps},
    distclass=BinaryDistribution,
    zip_safe=False,
)

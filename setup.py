"""Packaging for tensorflow_kappa.

``pip install --no-build-isolation .`` (or ``python setup.py bdist_wheel``)
builds the op library with configure.py and Bazel against the TensorFlow
installed in the running Python, copies it into the package, and packages a
platform wheel (scripts/release.sh makes the released, manylinux-tagged
one). configure.py's options come from the environment variable
KAPPA_CONFIGURE_ARGS (e.g. ``--march=native`` for a build for this machine
only). Where Bazel is not available but the library was already
built, that library is packaged as it is.

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
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "tensorflow_kappa"
ARTIFACTS = ("_kappa_ops.so", "_build_info.json")
# configure.py's options for a pip build, e.g. KAPPA_CONFIGURE_ARGS="--march=native".
CONFIGURE_ARGS_ENV = "KAPPA_CONFIGURE_ARGS"


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
    configure_args = shlex.split(os.environ.get(CONFIGURE_ARGS_ENV, ""))
    subprocess.run([sys.executable, "configure.py", *configure_args], cwd=ROOT, env=env,
                   check=True)
    try:
        subprocess.run([bazel, "build", "//:kappa_ops"], cwd=ROOT, env=env, check=True)
    finally:
        if not (ROOT / ".git").exists():
            # A one-off build from an sdist (pip unpacks it into a temporary
            # folder): stop the Bazel server it started there.
            subprocess.run([bazel, "shutdown"], cwd=ROOT, env=env, check=False)
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
    package_data={"tensorflow_kappa": list(ARTIFACTS)},
    install_requires=["numpy>=1.26", "matplotlib>=3.8"],
    extras_require={
        "cpu": [f"tensorflow-cpu{TF_PIN}"],
        "gpu": [f"tensorflow[and-cuda]{TF_PIN}"],
        "test": ["pytest>=8", "hypothesis>=6", "tensorboard~=2.20.0"],
    },
    entry_points={"console_scripts": ["kappa = tensorflow_kappa.cli:main"]},
    cmdclass={"build_py": BuildPyWithOps},
    distclass=BinaryDistribution,
    zip_safe=False,
)

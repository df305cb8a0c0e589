"""The release's version and the TensorFlow minor it is built and tested for.

The one place both are written: the package (``tensorflow_kappa.__version__``),
setup.py (the wheel's version and its TensorFlow extras), configure.py (the
"tested with" check) and scripts/release.sh read them from here. A custom-op
library only loads into the TensorFlow minor it was compiled against, so a
release's wheel is for ``TENSORFLOW_MINOR`` alone.
"""
#: The release of the package, a PEP 440 version such as ``"0.1.0"``.
__version__ = "0.1.0"
TENSORFLOW_MINOR = "2.21"

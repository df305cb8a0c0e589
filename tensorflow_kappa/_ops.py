"""Loading the custom-op library, and choosing between it and the pure-TF twins.

tensorflow_kappa's performance-critical ops (``Kappa>Quantize`` and friends)
live in ``_kappa_ops.so``, built by Bazel against one TensorFlow release. This
module is the only place that loads it, lazily: :func:`load_library` runs on
the first op call (through :func:`custom_ops`), from :func:`register_ops`, or
from ``kappa info``; ``import tensorflow_kappa`` alone does not load it, so
everything that calls no op works without a built library.

XLA. Each op carries an XLA lowering in the library (cc/ops/*_xla.cc): inside
``tf.function(jit_compile=True)``, in a Keras model compiled with
``jit_compile=True`` (or ``"auto"``, which Keras turns into True wherever a GPU
is visible) and under auto-clustering, the op compiles into the same
arithmetic as its CPU/CUDA kernels, bit for bit, and XLA fuses it with its
neighbours. Layers that call the ops therefore keep Keras' default
``supports_jit = True``.

Why the library can still load lazily: XLA turns its registry of lowerings
into kernels once per process, at the first XLA compilation (or the first
eager op, which creates the devices), and a library loaded afterwards would
not be seen. The library handles that itself when it loads
(cc/ops/xla_lowering.h): if XLA's kernels exist already, it registers its
lowerings' kernels directly, as XLA would have. So every order works: the
first op call inside a jit function, after other jit functions or eager ops,
or in ``model.fit`` with ``jit_compile=True`` (tests/quantization/test_xla.py
runs each in a fresh process); loading at import is not needed, and an
``import tensorflow_kappa`` stays free of TensorFlow.

Every op also has a pure-TensorFlow composite twin with identical results
(``tensorflow_kappa.quantization``); the twin is used instead of the custom op
when

* the environment variable ``KAPPA_PY_OPS=1`` is set (for the whole process;
  a warning says once that it is slower): no compiled library is needed, or
* code runs inside :func:`composite_ops`: for a library built against a
  TensorFlow whose wheel lacked XLA's headers or symbols, which has no
  lowerings (:func:`has_xla_lowerings` is False; ``kappa info`` says so, and an
  XLA compilation of an op then fails with a message naming
  ``composite_ops()``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Iterator

import tensorflow as tf

LIBRARY_PATH = Path(__file__).with_name("_kappa_ops.so")
BUILD_INFO_PATH = Path(__file__).with_name("_build_info.json")
FALLBACK_ENV = "KAPPA_PY_OPS"
CPU_PATH_ENV = "KAPPA_CPU_PATH"  # forces a CPU path of the kernels (cc/core/cpu_dispatch.h)
REBUILD_COMMAND = "pip install --no-build-isolation ."

_lock = threading.Lock()
_library: ModuleType | None = None
_warned_fallback = False
_local = threading.local()


def fallback_requested() -> bool:
    """Whether ``KAPPA_PY_OPS`` asks for the pure-TF twins process-wide."""
    return os.environ.get(FALLBACK_ENV, "").strip() not in ("", "0")


def read_build_info() -> dict:
    """What the op library was built against (written next to it by the build)."""
    try:
        return json.loads(BUILD_INFO_PATH.read_text())
    except (OSError, ValueError) as err:
        raise ImportError(
            f"tensorflow_kappa's op library is not built ({BUILD_INFO_PATH.name} "
            f"is missing or unreadable: {err}). From the source checkout run "
            f"`{REBUILD_COMMAND}` (it runs configure.py and Bazel), or set "
            f"{FALLBACK_ENV}=1 to use the slower pure-TensorFlow ops."
        ) from err


def _abi_tag(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _load() -> ModuleType:
    info = read_build_info()
    built, installed = info.get("tf_version", "unknown"), tf.__version__
    advice = (
        f"Rebuild it for the installed TensorFlow: from the source checkout run "
        f"`{REBUILD_COMMAND}` (it runs configure.py and Bazel), or set "
        f"{FALLBACK_ENV}=1 to use the slower pure-TensorFlow ops."
    )
    if _abi_tag(built) != _abi_tag(installed):
        raise ImportError(
            f"tensorflow_kappa's op library {LIBRARY_PATH} was built for "
            f"TensorFlow {built}, but TensorFlow {installed} is installed; a "
            f"custom-op library only loads into the TensorFlow release it was "
            f"built against. {advice}"
        )
    _check_library_file(info, advice)
    try:
        library = tf.load_op_library(str(LIBRARY_PATH))
    except (tf.errors.NotFoundError, OSError) as err:
        raise ImportError(
            f"tensorflow_kappa's op library {LIBRARY_PATH} (built for TensorFlow "
            f"{built}) failed to load into TensorFlow {installed}: {err}. {advice}"
        ) from err
    problem = _runtime_info(library).get("cpu_path_problem")
    if problem:
        raise ValueError(problem)
    return library


def _runtime_info(library: ModuleType) -> dict:
    # Eagerly, also when the first op call happens while tracing a function.
    with tf.init_scope(), tf.device("/CPU:0"):
        return json.loads(library.kappa_runtime_info().numpy())


# What the GPU kernels of each CUDA route (build_info["cuda_route"]) need.
_CUDA_REQUIREMENT = {
    "nvrtc": ("an NVIDIA driver for CUDA 12 or newer (Linux >= 525.60.13, as TensorFlow "
              f"{'.'.join(tf.__version__.split('.')[:2])}'s CUDA 12 build needs) and NVRTC 12 "
              "(installed by tensorflow[and-cuda])"),
    "static": "an NVIDIA driver of the CUDA {version} generation or newer",
}


def cuda_requirement(build_info: dict) -> str:
    """What the library's GPU kernels need at run time, in words ("" without any)."""
    route = build_info.get("cuda_route") or ("static" if build_info.get("cuda") else "")
    text = _CUDA_REQUIREMENT.get(route, "")
    return text.format(version=build_info.get("cuda_version") or "toolkit's")


def cuda_runtime_info() -> dict:
    """The CUDA driver and NVRTC this process finds, for the NVRTC route ({} otherwise).

    Keys: ``driver`` (``cuDriverGetVersion``, e.g. 12040) or None with
    ``driver_error``; ``nvrtc`` (e.g. ``"12.9"``) and ``nvrtc_path``, or None
    with ``nvrtc_error``. Opens both libraries.
    """
    library = load_library()
    with tf.init_scope(), tf.device("/CPU:0"):
        return json.loads(library.kappa_cuda_runtime_info().numpy())


def runtime_info() -> dict:
    """What the op library chose in this process: the CPU path of its kernels.

    Keys: ``cpu_path`` (``"baseline"``, ``"avx2"`` or ``"avx512"``: the
    instruction set of the hot loops, the best this CPU runs unless
    ``KAPPA_CPU_PATH`` names one), ``cpu_paths`` (those this library has
    and this CPU runs).
    """
    return _runtime_info(load_library())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_library_file(info: dict, advice: str) -> None:
    """Compare the library with the size and SHA-256 the build recorded, before dlopen:
    loading a truncated library (an interrupted install or copy) can kill the
    process with SIGBUS instead of raising."""
    name = f"tensorflow_kappa's op library {LIBRARY_PATH}"
    size, digest = info.get("library_size"), info.get("library_sha256")
    if size is None or digest is None:
        raise ImportError(f"{name} cannot be checked: its build record {BUILD_INFO_PATH.name} "
                          f"holds no size and SHA-256 of it (an older build). {advice}")
    try:
        actual_size = LIBRARY_PATH.stat().st_size
        actual_digest = _sha256(LIBRARY_PATH) if actual_size == size else None
    except OSError as err:
        raise ImportError(f"{name} is missing or unreadable ({err}). {advice}") from err
    if actual_size != size or actual_digest != digest:
        found = (f"{actual_size} bytes" if actual_digest is None
                 else f"SHA-256 {actual_digest}")
        expected = f"{size} bytes" if actual_digest is None else f"SHA-256 {digest}"
        raise ImportError(f"{name} is damaged: it has {found} where the build recorded "
                          f"{expected} (an interrupted install or copy?). {advice}")


def load_library() -> ModuleType:
    """Load the op library once and return its generated op module.

    Raises:
        ImportError: the library is missing, damaged (its size or SHA-256
            differs from the build record), was built for another TensorFlow,
            or fails to load; the message says which, which TensorFlow it was
            built for, which is installed, and the command that rebuilds it.
        ValueError: ``KAPPA_CPU_PATH`` names no CPU path this library has
            and this CPU runs (the message lists those).
    """
    global _library
    with _lock:
        if _library is None:
            _library = _load()
        return _library


def library_info() -> dict:
    """What the loaded op library says about itself (its ``Kappa>BuildInfo`` op).

    Keys: ``tf_version``, ``cuda``, ``cuda_archs`` (what it was built
    against) and ``xla`` (whether it holds the ops' XLA lowerings). Loads the
    library (ImportError as :func:`load_library`).
    """
    lib = load_library()
    with tf.init_scope():  # run eagerly, also when called while tracing
        return json.loads(lib.kappa_build_info().numpy().decode())


def has_xla_lowerings() -> bool:
    """Whether the ops compile under XLA (``jit_compile=True``) as they are used now.

    True when the op library holds its XLA lowerings (the usual build), and
    when the pure-TensorFlow twins are in use (``KAPPA_PY_OPS=1``), which
    compile anyway. Loads the library unless ``KAPPA_PY_OPS=1``.
    """
    return fallback_requested() or bool(library_info()["xla"])


def register_ops() -> None:
    """Load the op library now, so that TensorFlow knows the ``Kappa>`` ops.

    :func:`tensorflow_kappa.register_all` calls it (with the Keras
    registrations); a no-op when ``KAPPA_PY_OPS=1`` selects the
    pure-TensorFlow ops.

    Raises:
        ImportError: the op library is missing, was built for another
            TensorFlow or fails to load (the message says which, and how to
            rebuild it).
    """
    if not fallback_requested():
        load_library()


@contextlib.contextmanager
def composite_ops() -> Iterator[None]:
    """Use the pure-TensorFlow twins of the custom ops in this block (this thread).

    Not needed for XLA where the op library has its lowerings (the usual
    build: :func:`~tensorflow_kappa._ops.has_xla_lowerings`); there the custom
    ops compile under XLA themselves. Use it where the library was built without
    them (against a TensorFlow wheel lacking XLA's headers or symbols), around
    code compiled with ``jit_compile=True``, or to compare an op with its twin.

    Example:
    >>> import tensorflow_kappa as tk
    >>> @tf.function(jit_compile=True)
    ... def step(x):
    ...     with tk.composite_ops():
    ...         return tk.quantization.quantize_tensor(x, "s8.4")
    """
    depth = getattr(_local, "composite_depth", 0)
    _local.composite_depth = depth + 1
    try:
        yield
    finally:
        _local.composite_depth = depth


def composite_requested() -> bool:
    """Whether this thread is inside a :func:`composite_ops` block."""
    return bool(getattr(_local, "composite_depth", 0))


def custom_ops() -> ModuleType | None:
    """The op module to call now, or None where the pure-TF twins must be used."""
    global _warned_fallback
    if getattr(_local, "composite_depth", 0):
        return None
    if fallback_requested():
        if not _warned_fallback:
            _warned_fallback = True
            warnings.warn(
                f"{FALLBACK_ENV} is set: tensorflow_kappa uses its pure-TensorFlow "
                "ops, which give the same results but are slower than the "
                "custom kernels.",
                stacklevel=3,
            )
        return None
    return load_library()

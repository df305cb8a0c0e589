"""Versions, op library and its kernels.
"""
from __future__ import annotations

import argparse

from tensorflow_kappa.cli.command import Command


def _arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    """Print what the package finds at run time; 1 if the op library does not load."""
    import keras
    import tensorflow as tf

    import tensorflow_kappa as tk
    from tensorflow_kappa import _ops

    print(f"tensorflow_kappa {tk.__version__} at {tk.__path__[0]}")
    print(f"TensorFlow       {tf.__version__} (Keras {keras.__version__})")
    gpus = tf.config.list_physical_devices("GPU")
    print(f"GPUs visible     {len(gpus)}" + (f" ({', '.join(g.name for g in gpus)})" if gpus else ""))
    print(f"op library       {_ops.LIBRARY_PATH}")
    try:
        info = _ops.library_info()
    except (ImportError, ValueError) as err:
        print(f"  not loadable:  {err}")
        return 1
    print(f"  built for      TensorFlow {info['tf_version']}")
    print("  CPU kernels    yes")
    runtime = _ops.runtime_info()
    target = info.get("cpu_march") or "the compiler's default target"
    dispatch = ", AVX2/AVX-512 chosen at run time" if info.get("cpu_dispatch") else ""
    print(f"  CPU path       {runtime['cpu_path']} (built for {target}{dispatch}; "
          f"this CPU runs: {', '.join(runtime['cpu_paths'])}; {_ops.CPU_PATH_ENV} forces one)")
    _print_cuda(info)
    if info["xla"]:
        print("  XLA lowerings  yes (the ops compile under jit_compile=True)")
    else:
        print("  XLA lowerings  no (built against a TensorFlow without XLA's headers or "
              "symbols: wrap jit-compiled calls in tk.composite_ops())")
    if _ops.fallback_requested():
        print(f"active ops       pure TensorFlow ({_ops.FALLBACK_ENV} is set)")
    else:
        print("active ops       custom kernels")
    return 0


def _print_cuda(info: dict) -> None:
    """The CUDA lines: how the kernels are built, what they need, what this machine has."""
    from tensorflow_kappa import _ops

    if info.get("cuda_route") == "nvrtc":
        print("  CUDA kernels   yes: compiled at first use for the GPU by NVRTC, launched "
              "through the CUDA driver")
    elif info["cuda"]:
        print(f"  CUDA kernels   yes (sm_{', sm_'.join(info['cuda_archs'])}, static CUDA "
              f"{info.get('cuda_version') or ''} runtime)")
    else:
        print("  CUDA kernels   no")
    if info["cuda"]:
        print(f"  CUDA needs     {_ops.cuda_requirement(info)}")
    if info.get("cuda_route") == "nvrtc":
        cuda = _ops.cuda_runtime_info()
        driver = cuda["driver"]
        print("  CUDA driver    " + (f"CUDA {driver // 1000}.{driver % 1000 // 10}" if driver
                                     else f"none ({cuda['driver_error']})"))
        print("  NVRTC          " + (f"{cuda['nvrtc']} ({cuda['nvrtc_path']})" if cuda["nvrtc"]
                                     else f"none ({cuda['nvrtc_error']})"))


COMMAND = Command("info", __doc__, _arguments, run)

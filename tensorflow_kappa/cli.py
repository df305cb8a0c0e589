"""The ``kappa`` command line: thin commands over the package's API.

    kappa info     versions, the op library, its kernels, the active ops
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import tensorflow as tf

import tensorflow_kappa as tk
from tensorflow_kappa import _ops


def _cmd_info(args: argparse.Namespace) -> int:
    import keras

    print(f"tensorflow_kappa {tk.__version__} at {tk.__path__[0]}")
    print(f"TensorFlow       {tf.__version__} (Keras {keras.__version__})")
    gpus = tf.config.list_physical_devices("GPU")
    print(f"GPUs visible     {len(gpus)}" + (f" ({', '.join(g.name for g in gpus)})" if gpus else ""))
    print(f"op library       {_ops.LIBRARY_PATH}")
    try:
        lib = _ops.load_library()
    except ImportError as err:
        print(f"  not loadable:  {err}")
        return 1
    info = json.loads(lib.kappa_build_info().numpy().decode())
    print(f"  built for      TensorFlow {info['tf_version']}")
    print("  CPU kernels    yes")
    if info["cuda"]:
        print(f"  CUDA kernels   yes (sm_{', sm_'.join(info['cuda_archs'])})")
    else:
        print("  CUDA kernels   no")
    if _ops.fallback_requested():
        print(f"active ops       pure TensorFlow ({_ops.FALLBACK_ENV} is set)")
    else:
        print("active ops       custom kernels")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kappa", description="tensorflow_kappa command line"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, op library and its kernels")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

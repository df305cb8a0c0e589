"""Add the op library's size and SHA-256 to the build record (a Bazel genrule runs it).

    python3 record_library.py <build_info.json> <_kappa_ops.so>  > _build_info.json

tensorflow_kappa/_ops.py compares both with the installed library before it
loads it, so a truncated or altered library (an interrupted install or copy)
fails with a clear ImportError instead of crashing the process in dlopen.
"""
import hashlib
import json
import os
import sys


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(info_path: str, library_path: str) -> None:
    with open(info_path, encoding="utf-8") as fh:
        info = json.load(fh)
    info["library_size"] = os.path.getsize(library_path)
    info["library_sha256"] = sha256(library_path)
    json.dump(info, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:])

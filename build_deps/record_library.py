"""Add the op library's size and SHA-256 to the build record (a Bazel genrule runs it).

    python3 record_library.py <build_info.json> <_kappa_ops.so>  > _build_info.json

tensorflow_kappa/_ops.py compares both with the installed library before it
loads it, so a truncated or altered library (an interrupted install or copy)
fails with a clear ImportError instead of crashing the process in dlopen.
"""
import hashlib
import json
import sys
from pathlib import Path


def main(info_path: str, library_path: str) -> None:
    info = json.loads(Path(info_path).read_text(encoding="utf-8"))
    library = Path(library_path).read_bytes()
    info["library_size"] = len(library)
    info["library_sha256"] = hashlib.sha256(library).hexdigest()
    json.dump(info, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:])

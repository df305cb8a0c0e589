#!/usr/bin/env python3
"""Configure the Bazel build of tensorflow_kappa for the TensorFlow installed here.

Usage: python3 configure.py [--cuda auto|yes|no] [--cuda-runtime nvrtc|static]
                            [--cuda-path DIR] [--cuda-archs 75,80,90]
                            [--march portable|native|x86-64-v3|...|none]
                            [--stand-ins auto|yes|no] [--xla auto|yes|no]
                            [--pybind11-include DIR]

Everything is read from the Python environment that runs this script and from
the machine: TensorFlow's include directory, framework library, C++ standard,
ABI and Eigen flags (``tf.sysconfig``), whether the TensorFlow wheel carries
what the ops' XLA lowerings need, Python's and pybind11's headers for the NumPy
binding (``sysconfig``, ``pybind11.get_include()``), nvcc and the CUDA toolkit,
and whether Bazel needs local stand-ins for the repositories it would otherwise
download.
The result is written to ``.kappa_configure.bazelrc``, which the checked-in
``.bazelrc`` imports; a user's own ``.bazelrc`` is never touched. Running it
twice with the same inputs writes the same file.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent
OUTPUT = ROOT / ".kappa_configure.bazelrc"
STAND_INS = ROOT / "build_deps" / "offline"
# The TensorFlow minor this release is built and tested against (the one
# place it is written: tensorflow_kappa/_version.py).
_RELEASE: dict = {}
exec((ROOT / "tensorflow_kappa" / "_version.py").read_text(), _RELEASE)  # noqa: S102
TESTED_TF = tuple(int(p) for p in _RELEASE["TENSORFLOW_MINOR"].split("."))
OLDEST_TF = (2, 16)  # the first release with Keras 3
DEFAULT_CUDA_ARCHS = "75,80,90"
CPU_FLAGS = ["-O3", "-fno-trapping-math", "-ffp-contract=off"]
# The portable build's baseline: every x86-64 CPU of the last 15 years
# (SSE4.2, POPCNT); the hot loops get AVX2 and AVX-512 clones chosen at run
# time (cc/core/cpu_dispatch.h).
PORTABLE_MARCH = "x86-64-v2"


# What the ops' XLA lowerings (cc/ops/*_xla.cc) need from the TensorFlow wheel:
# XLA's headers, two include folders inside the wheel that those headers reach
# into, and the library exporting XLA's op registry and builder functions, with
# these symbols (XlaOpRegistrar's constructor, XlaOpKernel::Compute,
# xla::RoundNearestEven). A wheel without them builds the ops without lowerings.
XLA_HEADERS = (
    "tensorflow/compiler/tf2xla/xla_op_kernel.h",
    "tensorflow/compiler/tf2xla/xla_op_registry.h",
    "xla/hlo/builder/xla_builder.h",
)
XLA_INCLUDE_DIRS = ("external/highwayhash", "external/farmhash_archive/src")
XLA_LIBRARY = "libtensorflow_cc.so.2"
XLA_SYMBOLS = (
    "_ZN10tensorflow14XlaOpRegistrarC1ESt10unique_ptrINS_13XlaOpRegistry14"
    "OpRegistrationESt14default_deleteIS3_EE",
    "_ZN10tensorflow11XlaOpKernel7ComputeEPNS_15OpKernelContextE",
    "_ZN3xla16RoundNearestEvenENS_5XlaOpE",
)


class ConfigureError(Exception):
    """A problem the user has to fix; printed as one clear message."""


def find_tensorflow() -> dict:
    """TensorFlow's version and build flags, from tf.sysconfig."""
    try:
        import tensorflow as tf  # noqa: PLC0415 (imported late: it is slow)
    except ImportError as err:
        raise ConfigureError(
            f"TensorFlow is not installed for {sys.executable} ({err}).\n"
            "Install it first, e.g. `pip install tensorflow-cpu==2.21.*`, then "
            "run configure.py again with the same python."
        ) from err
    version = tf.__version__
    major_minor = tuple(int(p) for p in version.split(".")[:2])
    if major_minor < OLDEST_TF or major_minor[0] != 2:
        raise ConfigureError(
            f"TensorFlow {version} is not supported: tensorflow_kappa needs "
            f"TensorFlow 2.{OLDEST_TF[1]} or newer (Keras 3); tested with "
            f"2.{TESTED_TF[1]}."
        )
    include = Path(tf.sysconfig.get_include())
    if not (include / "tensorflow" / "core" / "framework" / "op_kernel.h").is_file():
        raise ConfigureError(
            f"TensorFlow's C++ headers are missing under {include}: reinstall "
            "the TensorFlow wheel (the headers ship with it)."
        )
    compile_flags = tf.sysconfig.get_compile_flags()
    link_flags = tf.sysconfig.get_link_flags()
    std = [f for f in compile_flags if f.lstrip("-").startswith("std=")]
    defines = [f for f in compile_flags if f.startswith("-D")]
    libdirs = [f[2:] for f in link_flags if f.startswith("-L")]
    libs = [f for f in link_flags if f.startswith("-l")]
    if not libdirs or not libs:
        raise ConfigureError(f"Unexpected TensorFlow link flags: {link_flags}")
    framework = libs[0][3:] if libs[0].startswith("-l:") else f"lib{libs[0][2:]}.so"
    if not (Path(libdirs[0]) / framework).exists():
        raise ConfigureError(
            f"TensorFlow's framework library {framework} is missing from "
            f"{libdirs[0]}: reinstall the TensorFlow wheel."
        )
    return {
        "version": version,
        "tested": major_minor == TESTED_TF,
        "include": str(include),
        "libdir": libdirs[0],
        "cxx_std": "-" + std[0].lstrip("-") if std else "-std=c++17",
        "defines": defines,
        "linkopts": [f"-L{libdirs[0]}", *libs],
    }


def find_xla(mode: str, include: Path, libdir: Path) -> tuple[dict | None, str]:
    """What the XLA lowerings build with, or None; and a line saying why.

    Returns ({"includes": [...], "linkopts": [...]}, reason) when the wheel
    has XLA's headers, the include folders and the exported symbols, else
    (None, what is missing). --xla=yes turns a miss into a ConfigureError.
    """
    if mode == "no":
        return None, "off (--xla=no)"
    missing = [h for h in XLA_HEADERS if not (include / h).is_file()]
    missing += [d + "/" for d in XLA_INCLUDE_DIRS if not (include / d).is_dir()]
    library = libdir / XLA_LIBRARY
    if not library.is_file():
        missing.append(str(library))
    else:
        missing += [f"symbol {s}" for s in XLA_SYMBOLS if not _exports(library, s)]
    if not missing:
        return ({"includes": list(XLA_INCLUDE_DIRS), "linkopts": [f"-l:{XLA_LIBRARY}"]},
                f"yes ({XLA_LIBRARY})")
    reason = "TensorFlow's wheel lacks " + ", ".join(missing)
    if mode == "yes":
        raise ConfigureError(f"--xla=yes but {reason}.")
    return None, f"no: {reason}; the ops build without XLA lowerings"


def _exports(library: Path, symbol: str) -> bool:
    """Whether the shared library exports ``symbol`` (looked up with dlsym)."""
    import ctypes  # noqa: PLC0415

    try:
        handle = ctypes.CDLL(str(library))
    except OSError:
        return False
    return hasattr(handle, symbol)


def find_python_headers(pybind11_include: str | None) -> dict:
    """Python.h of this interpreter and pybind11's headers (its pip package,
    a build requirement) for the NumPy binding."""
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").is_file():
        raise ConfigureError(
            f"Python's C headers are missing (no Python.h in {include}): install "
            f"them for {sys.executable}, e.g. `apt-get install python3-dev`."
        )
    if pybind11_include is None:
        try:
            import pybind11  # noqa: PLC0415 (a build requirement only)
        except ImportError as err:
            raise ConfigureError(
                f"pybind11 is not installed for {sys.executable} ({err}); the NumPy "
                "binding is built with it: `pip install pybind11`, then run "
                "configure.py again (or pass --pybind11-include)."
            ) from err
        pybind11_include = pybind11.get_include()
    if not (Path(pybind11_include) / "pybind11" / "pybind11.h").is_file():
        raise ConfigureError(f"pybind11's headers are missing under {pybind11_include}")
    return {"include": str(include), "pybind11": str(Path(pybind11_include).resolve())}


def binding_libstdcxx() -> tuple[str, str]:
    """How the NumPy binding links the C++ runtime, and a line saying so.

    ``static`` where this is x86-64 glibc Linux and the C compiler Bazel uses
    has libstdc++.a: the binding then carries its own hidden libstdc++ and
    needs glibc 2.17 only (cc/python/glibc_floor.c), so a wheel built here
    keeps the op library's manylinux tag. ``shared`` otherwise (a local build
    whose binding needs this machine's libstdc++ and glibc versions).
    """
    if platform.machine() != "x86_64" or platform.libc_ver()[0] != "glibc":
        return "shared", f"libstdc++ shared ({platform.machine()}, not x86-64 glibc)"
    cc = os.environ.get("CC") or "gcc"
    try:
        found = subprocess.run([cc, "-print-file-name=libstdc++.a"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        found = ""
    if not Path(found).is_absolute() or not Path(found).is_file():
        return "shared", (f"libstdc++ shared ({cc} has no libstdc++.a; the wheel's "
                          "manylinux tag then follows this machine's glibc)")
    return "static", "libstdc++ static and hidden, needs glibc 2.17 (cc/python/glibc_floor.c)"


def bazel_version() -> tuple[str, tuple[int, ...] | None]:
    """The Bazel on PATH: its printed version and (major, minor), if any."""
    bazel = shutil.which("bazel")
    if bazel is None:
        raise ConfigureError(
            "Bazel is missing: on Debian/Ubuntu `apt-get install bazel-bootstrap` "
            "(works offline), elsewhere install Bazelisk or Bazel 6-7."
        )
    out = subprocess.run(
        [bazel, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    match = re.search(r"(\d+)\.(\d+)", out)
    return out, (int(match.group(1)), int(match.group(2))) if match else None


def find_platforms_repo() -> Path | None:
    """Debian's copy of @platforms (from bazel-bootstrap-data), if installed."""
    candidate = Path("/usr/share/bazel/platforms")
    if (candidate / "BUILD").is_file():
        return candidate
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "bazel-bootstrap-data"],
            capture_output=True, text=True, check=False,
        ).stdout
    except FileNotFoundError:
        return None
    for line in listing.splitlines():
        if line.endswith("/platforms/BUILD") and "embedded_tools" not in line:
            return Path(line).parent
    return None


def find_cuda(mode: str, cuda_path: str | None, runtime: str = "static") -> dict | None:
    """How the GPU kernels are built, or None for none.

    ``nvrtc`` (the default): the kernels are compiled at first use by NVRTC 12
    from TensorFlow's CUDA packages and launched through the driver API
    (cc/core/gpu_rtc.h), so they run where TensorFlow's CUDA 12 build runs
    (a driver of the CUDA 12 generation or newer); building needs no CUDA
    toolkit. ``static``: nvcc compiles them and the toolkit's static runtime
    is linked in; they then need a driver of that toolkit's generation (CUDA
    13.0: 580 or newer).
    """
    if mode == "no":
        return None
    if runtime == "nvrtc":
        return {"route": "nvrtc"}
    nvcc = shutil.which("nvcc")
    candidates = [cuda_path, os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    if nvcc:
        # nvcc may be a wrapper script: ask it where its toolkit is.
        dry = subprocess.run(
            [nvcc, "--dryrun", "--version"], capture_output=True, text=True, check=False
        )
        top = re.search(r"TOP=(\S+)", dry.stdout + dry.stderr)
        if top:
            candidates.append(str(Path(top.group(1)).resolve()))
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    candidates.append("/usr/local/cuda")
    for cand in candidates:
        if not cand:
            continue
        root = Path(cand)
        real_nvcc = root / "bin" / "nvcc"
        static = [root / d / "libcudart_static.a" for d in ("lib64", "lib")]
        if (
            real_nvcc.is_file()
            and (root / "include" / "cuda_runtime.h").is_file()
            and any(s.is_file() for s in static)
        ):
            version = subprocess.run(
                [str(real_nvcc), "--version"], capture_output=True, text=True, check=False
            ).stdout
            release = re.search(r"release (\d+\.\d+)", version)
            return {
                "route": "static",
                "path": str(root.resolve()),
                "nvcc": str(real_nvcc.resolve()),
                "version": release.group(1) if release else "unknown",
            }
    if mode == "yes":
        raise ConfigureError(
            "--cuda=yes but no CUDA toolkit was found (looked for bin/nvcc, "
            "include/cuda_runtime.h and lib64/libcudart_static.a under "
            f"{[c for c in candidates if c]}); pass --cuda-path."
        )
    return None


def cpu_flags(march: str | None) -> tuple[list[str], bool]:
    """The -march flags for --march, and whether the build dispatches at run time.

    ``portable`` (the default on x86-64): the baseline PORTABLE_MARCH plus
    run-time dispatch, what a wheel for other machines needs. ``native`` or
    any other -march value: one path for that target, no dispatch (local
    builds). ``none``: no -march at all (the compiler's default target; the
    default on other architectures).
    """
    x86 = platform.machine() in ("x86_64", "AMD64")
    if march is None:
        march = "portable" if x86 else "none"
    if march == "none":
        return [], False
    if march == "portable":
        if not x86:
            raise ConfigureError(
                f"--march=portable is for x86-64; this machine is {platform.machine()} "
                "(use --march=native or --march=none)."
            )
        return [f"-march={PORTABLE_MARCH}", "-DKAPPA_CPU_DISPATCH=1"], True
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", march):
        raise ConfigureError(f"--march={march!r} is not a -march value.")
    return [f"-march={march}"], False


def render(tf: dict, cuda: dict | None, archs: list[str], march_flags: list[str],
           stand_ins: bool, platforms: Path | None,
           bazel_mm: tuple[int, ...] | None, python: dict,
           xla: dict | None = None) -> str:
    lines = [
        "# Generated by configure.py for the TensorFlow and toolchain found on",
        "# this machine. Do not edit; run `python3 configure.py` again instead.",
        f"build --repo_env=KAPPA_TF_VERSION={tf['version']}",
        f"build --repo_env=KAPPA_TF_INCLUDE={tf['include']}",
        f"build --repo_env=KAPPA_TF_LINKOPTS={','.join(tf['linkopts'])}",
        f"build --repo_env=KAPPA_PYTHON_INCLUDE={python['include']}",
        f"build --repo_env=KAPPA_PYBIND11_INCLUDE={python['pybind11']}",
        f"build --repo_env=KAPPA_BINDING_LIBSTDCXX={python.get('libstdcxx', 'shared')}",
        f"build --cxxopt={tf['cxx_std']}",
        f"build --host_cxxopt={tf['cxx_std']}",
    ]
    lines += [f"build --copt={d}" for d in tf["defines"]]
    # The XLA lowerings: empty values build the ops without them.
    lines += [
        f"build --repo_env=KAPPA_TF_XLA_INCLUDES={','.join(xla['includes'] if xla else [])}",
        f"build --repo_env=KAPPA_TF_XLA_LINKOPTS={','.join(xla['linkopts'] if xla else [])}",
    ]
    # Kernels vectorise only with these: -O3, a vector ISA, and no trapping
    # math (which otherwise keeps compares of possible NaNs as branches).
    # -ffp-contract=off: GCC would otherwise fuse a*b + c into an FMA (even
    # across statements) and round the weight update differently from its
    # definition, from the CUDA kernels (nvcc --fmad=false) and from the
    # pure-TensorFlow twins.
    # The portable build adds -DKAPPA_CPU_DISPATCH=1 to its baseline -march:
    # the hot loops get AVX2 and AVX-512 clones (cc/core/cpu_dispatch.h).
    lines += [f"build --copt={o}" for o in CPU_FLAGS + march_flags]
    march = next((f.split("=", 1)[1] for f in march_flags if f.startswith("-march=")), "")
    dispatch = "-DKAPPA_CPU_DISPATCH=1" in march_flags
    lines += [
        f"build --repo_env=KAPPA_CPU_MARCH={march}",
        f"build --repo_env=KAPPA_CPU_DISPATCH={int(dispatch)}",
    ]
    lines.append(f"build --repo_env=KAPPA_CUDA_ROUTE={cuda['route'] if cuda else ''}")
    if cuda and cuda["route"] == "static":
        lines += [
            f"build --repo_env=KAPPA_CUDA_PATH={cuda['path']}",
            f"build --repo_env=KAPPA_CUDA_VERSION={cuda['version']}",
            f"build --repo_env=KAPPA_NVCC={cuda['nvcc']}",
            f"build --repo_env=KAPPA_CUDA_ARCHS={','.join(archs)}",
            f"build --repo_env=KAPPA_HOST_CXX={shutil.which('g++') or 'g++'}",
        ]
    else:
        lines.append("build --repo_env=KAPPA_CUDA_PATH=")
    if bazel_mm and bazel_mm >= (7, 0):
        lines.append("common --noenable_bzlmod")
    if bazel_mm and bazel_mm >= (8, 0):
        lines.append("common --enable_workspace")
    if stand_ins:
        overrides = {
            name: STAND_INS / name
            for name in ("rules_cc", "rules_java", "remote_coverage_tools")
        }
        if platforms is not None:
            overrides["platforms"] = platforms
        for command in ("build", "query", "fetch"):
            lines += [
                f"{command} --override_repository={name}={path}"
                for name, path in overrides.items()
            ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuda", choices=["auto", "yes", "no"], default="auto",
                        help="build the CUDA kernels (auto: always with the nvrtc "
                             "runtime, when nvcc is found with static)")
    parser.add_argument("--cuda-runtime", choices=["nvrtc", "static"], default="nvrtc",
                        help="nvrtc (default): kernels compiled at first use by NVRTC 12 "
                             "from TensorFlow's CUDA packages, launched through the "
                             "driver API; they run on a CUDA 12 driver (>= 525.60.13) "
                             "or newer, and the build needs no CUDA toolkit. static: "
                             "nvcc and the toolkit's static runtime; needs a driver of "
                             "the toolkit's generation")
    parser.add_argument("--cuda-path", help="CUDA toolkit root (default: from nvcc)")
    parser.add_argument("--cuda-archs", default=DEFAULT_CUDA_ARCHS,
                        help="comma-separated SM versions (default %(default)s; "
                             "PTX of the last is embedded too)")
    parser.add_argument("--march", default=None,
                        help="CPU target: 'portable' (default on x86-64: baseline "
                             f"{PORTABLE_MARCH}, AVX2 and AVX-512 paths of the hot "
                             "loops chosen at run time; what a wheel for other "
                             "machines needs), 'native' or another -march value "
                             "(one path, this build's machine), or 'none'")
    parser.add_argument("--stand-ins", choices=["auto", "yes", "no"], default="auto",
                        help="use the offline stand-ins for Bazel's default "
                             "repositories (auto: for Debian's bazel-bootstrap)")
    parser.add_argument("--xla", choices=["auto", "yes", "no"], default="auto",
                        help="build the ops' XLA lowerings (auto: when the TensorFlow "
                             "wheel has XLA's headers and exports its symbols)")
    parser.add_argument("--pybind11-include", default=None,
                        help="pybind11's header folder (default: pybind11.get_include() "
                             "of this Python)")
    args = parser.parse_args(argv)
    try:
        tf = find_tensorflow()
        xla, xla_line = find_xla(args.xla, Path(tf["include"]), Path(tf["libdir"]))
        python = find_python_headers(args.pybind11_include)
        python["libstdcxx"], libstdcxx_line = binding_libstdcxx()
        bazel_out, bazel_mm = bazel_version()
        cuda = find_cuda(args.cuda, args.cuda_path, args.cuda_runtime)
    except ConfigureError as err:
        print(f"configure.py: {err}", file=sys.stderr)
        return 1
    archs = [a.strip() for a in args.cuda_archs.split(",") if a.strip()]
    if not all(a.isdigit() for a in archs):
        print(f"configure.py: --cuda-archs={args.cuda_archs!r} must be numbers "
              "like 75,80,90", file=sys.stderr)
        return 1
    try:
        march_flags, dispatch = cpu_flags(args.march)
    except ConfigureError as err:
        print(f"configure.py: {err}", file=sys.stderr)
        return 1
    # Debian's bootstrap Bazel prints no release version and cannot download.
    stand_ins = args.stand_ins == "yes" or (
        args.stand_ins == "auto" and (bazel_mm is None or bazel_mm < (5, 0)))
    platforms = find_platforms_repo() if stand_ins else None

    OUTPUT.write_text(render(tf, cuda, archs, march_flags, stand_ins, platforms, bazel_mm,
                             python, xla))
    print(f"TensorFlow   {tf['version']}"
          + ("" if tf["tested"] else f" (untested; tested with 2.{TESTED_TF[1]})"))
    print(f"  headers    {tf['include']}")
    print(f"  link       {' '.join(tf['linkopts'])}")
    print(f"  flags      {tf['cxx_std']} {' '.join(tf['defines'])}")
    print(f"  XLA        {xla_line}")
    print(f"Python       {python['include']} (pybind11 {python['pybind11']})")
    print(f"  binding    {libstdcxx_line}")
    print(f"Bazel        {bazel_out or 'unknown'}"
          + (" (offline stand-ins)" if stand_ins else ""))
    print(f"CPU flags    {' '.join(CPU_FLAGS + march_flags)}"
          + (" (AVX2/AVX-512 clones chosen at run time)" if dispatch else ""))
    if cuda and cuda["route"] == "nvrtc":
        print("CUDA         NVRTC route: kernels compiled at first use by NVRTC 12, "
              "driver API launch (needs a CUDA 12 driver >= 525.60.13 or newer)")
    elif cuda:
        print(f"CUDA         {cuda['version']} at {cuda['path']} (static runtime: needs a "
              f"CUDA {cuda['version'].split('.')[0]} driver), archs {','.join(archs)}")
    else:
        print("CUDA         not used (CPU kernels only)")
    print(f"Wrote {OUTPUT.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

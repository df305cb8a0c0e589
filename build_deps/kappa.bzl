"""Build macros for tensorflow_kappa's C++ core (per-op functors) and op library."""

load("@local_config_kappa//:defs.bzl", "KAPPA_BINDING_STATIC_LIBSTDCXX", "KAPPA_CUDA",
     "KAPPA_CUDA_ARCHS", "KAPPA_CUDA_ROUTE", "KAPPA_XLA")

# Compiler options for everything that includes TensorFlow headers. The
# optimisation flags and TensorFlow's own flags come from configure.py.
KAPPA_COPTS = ["-Wno-deprecated-declarations"] + (
    ["-DKAPPA_WITH_CUDA=1"] if KAPPA_CUDA else ["-DKAPPA_WITH_CUDA=0"]
) + (["-DKAPPA_CUDA_NVRTC=1"] if KAPPA_CUDA_ROUTE == "nvrtc" else ["-DKAPPA_CUDA_NVRTC=0"])

# Rule copts come after configure.py's --copt flags, so these override the
# portable build's -march and its KAPPA_CPU_DISPATCH=1.
KAPPA_NATIVE_COPTS = ["-march=native", "-UKAPPA_CPU_DISPATCH"]

def _nvcc_gencode(archs):
    flags = ["-gencode arch=compute_{a},code=sm_{a}".format(a = a) for a in archs]
    if archs:
        # PTX of the newest architecture, so that newer GPUs can JIT it.
        flags.append("-gencode arch=compute_{a},code=compute_{a}".format(a = archs[-1]))
    return " ".join(flags)

# What every op's functors build on: the arithmetic's definitions, the CPU
# path dispatch and the thread-pool interface.
_OP_CORE_DEPS = [
    "//cc/core/formats",
    "//cc/core:cpu_dispatch",
    "//cc/core:parallel",
]

def kappa_op_core(name, reference_deps):
    """One op's folder of cc/core: its framework-free functors and their scalar reference.

    The folder holds `<name>.h` (the functors' interface), `<name>_cpu.cc`
    (the CPU functors), `<name>_gpu.cu.cc` (the CUDA kernels and their host
    code, cc/core/gpu_launch.h) and `reference.h` (the scalar reference the
    tests hold the functors to: written from the definitions, sharing no
    arithmetic with the functors; a testonly library with `reference_deps`).
    configure.py compiles everything with -ffp-contract=off, so that no
    a*b + c is fused differently from the CUDA kernels and the twins.

    The CPU functors alone are `<name>_cpu` (for binaries without CUDA code:
    the NumPy binding); `<name>` adds the CUDA functors. In the NVRTC route
    (configure.py --cuda-runtime=nvrtc, the default) the C++ toolchain
    compiles their host code and the kernels' text is embedded
    (//cc/core:gpu_rtc) for NVRTC at first use: no CUDA toolkit is needed to
    build. In the static route nvcc compiles the .cu.cc in a genrule (which
    sees the header and //cc/core's shared headers), and the object, with
    the static CUDA runtime, joins the library.
    """
    hdrs = [name + ".h"]
    srcs = [name + "_cpu.cc"]
    gpu_src = name + "_gpu.cu.cc"
    objects = []
    gpu_deps = []
    if KAPPA_CUDA_ROUTE == "nvrtc":
        objects = [gpu_src]
        gpu_deps = ["//cc/core:gpu_headers"]
    elif KAPPA_CUDA:
        gpu_deps = ["@local_config_kappa//:cudart_static"]
        obj = gpu_src.replace(".cu.cc", ".cu.pic.o")
        native.genrule(
            name = obj.replace(".", "_"),
            srcs = [gpu_src] + hdrs + ["//cc/core:headers"],
            outs = [obj],
            tools = ["@local_config_kappa//:nvcc"],
            cmd = ("$(location @local_config_kappa//:nvcc) -std=c++17 -O3 -x cu " +
                   "-Xcompiler -fPIC --expt-relaxed-constexpr --fmad=false " +
                   "-Werror all-warnings -I. " + _nvcc_gencode(KAPPA_CUDA_ARCHS) +
                   " -c $(location " + gpu_src + ") -o $@"),
        )
        objects = [obj]
    native.cc_library(
        name = name + "_cpu",
        hdrs = hdrs,
        srcs = srcs,
        deps = _OP_CORE_DEPS,
    )
    native.cc_library(
        name = name,
        hdrs = hdrs,
        srcs = objects,
        deps = [":" + name + "_cpu"] + gpu_deps,
    )

    # The CPU functors built for this machine only (-march=native, one path,
    # no run-time dispatch), for the portable-vs-native kernel benchmark
    # (cc/bench/portable_vs_native.py); built only when asked for.
    native.cc_library(
        name = name + "_native",
        hdrs = hdrs,
        srcs = srcs,
        copts = KAPPA_NATIVE_COPTS,
        deps = _OP_CORE_DEPS,
        tags = ["manual"],
    )
    native.cc_library(
        name = "reference",
        testonly = 1,
        hdrs = ["reference.h"],
        deps = reference_deps,
    )

# What the op library links for XLA: the ops' lowerings where configure.py
# found XLA in the TensorFlow wheel, else kernels that make an XLA compilation
# of the ops fail with a message naming composite_ops().
KAPPA_XLA_DEPS = ["//cc/ops:xla"] if KAPPA_XLA else ["//cc/ops:xla_unavailable"]

def kappa_xla_library(name, **kwargs):
    """A cc_library of XLA lowerings, defined only where XLA was configured
    (without XLA's headers it could not compile)."""
    if KAPPA_XLA:
        native.cc_library(
            name = name,
            deps = kwargs.pop("deps", []) + ["@local_config_kappa//:tf_xla"],
            **kwargs
        )

def kappa_op_library(name, deps, testonly = 0):
    """The shared library that tf.load_op_library loads.

    `deps` are cc_library targets holding REGISTER_OP / REGISTER_KERNEL_BUILDER
    code (built with alwayslink so no registration is dropped by the linker).
    """
    native.cc_binary(
        name = name,
        linkshared = 1,
        linkstatic = 1,
        deps = deps + ["@local_config_kappa//:tf_framework"],
        testonly = testonly,
        visibility = ["//visibility:public"],
    )

def kappa_python_extension(name, deps):
    """A CPython extension module (the NumPy binding), exporting PyInit only.

    Python's own symbols stay undefined (the interpreter provides them), so it
    links neither libpython nor TensorFlow. Where configure.py found
    libstdc++.a (KAPPA_BINDING_STATIC_LIBSTDCXX), the module carries its own
    libstdc++, hidden by the version script, and cc/python/glibc_floor.c
    binds the glibc symbols a current glibc would version too new: the module
    then needs glibc 2.17 and no libstdc++ at all, whatever machine built it.
    """
    version_script = "//cc/python:extension.lds"
    linkopts = ["-Wl,--version-script=$(location %s)" % version_script]
    if KAPPA_BINDING_STATIC_LIBSTDCXX:
        deps = deps + ["//cc/python:glibc_floor"]
        # The archive before the toolchain's -lstdc++, which --as-needed then
        # drops; libpthread stays needed: glibc before 2.34 has the thread
        # functions there.
        linkopts += [
            "-l:libstdc++.a",
            "-Wl,--no-as-needed",
            "-l:libpthread.so.0",
            "-Wl,--as-needed",
        ]
    native.cc_binary(
        name = name,
        linkshared = 1,
        linkstatic = 1,
        additional_linker_inputs = [version_script],
        linkopts = linkopts,
        visibility = ["//visibility:public"],
        deps = deps,
    )

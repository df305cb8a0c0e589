"""Repository rule @local_config_kappa: the installed TensorFlow and CUDA.

configure.py records what it found as --repo_env settings in
.kappa_configure.bazelrc; this rule turns them into a repository holding
  //:tf_headers       TensorFlow's C++ headers (a symlink to the installed ones)
  //:tf_framework     link flags for libtensorflow_framework (name from TF)
  //:tf_xla           XLA's extra include folders and link flags (libtensorflow_cc),
                      for the ops' XLA lowerings; defined when configured
  //:python_headers   Python.h of the configured interpreter, and
  //:pybind11_headers pybind11's headers (from its pip package), for the
                      NumPy binding
  //:cuda_headers     CUDA headers and //:cudart_static (--cuda-runtime=static)
  //:nvcc             a wrapper that runs the configured nvcc
  //:build_info.h     what was built against (compiled into the op library,
                      which adds whether it holds the XLA lowerings itself)
  //:build_info.json  the same, installed next to the op library
  defs.bzl            KAPPA_CUDA, KAPPA_CUDA_ARCHS, KAPPA_CUDA_ROUTE, KAPPA_XLA,
                      KAPPA_BINDING_STATIC_LIBSTDCXX for the build macros
Nothing here is hard-coded: every path and flag comes from configure.py.
"""

_ENV = [
    "KAPPA_TF_VERSION",
    "KAPPA_TF_INCLUDE",
    "KAPPA_TF_LINKOPTS",
    "KAPPA_TF_XLA_INCLUDES",
    "KAPPA_TF_XLA_LINKOPTS",
    "KAPPA_CUDA_PATH",
    "KAPPA_NVCC",
    "KAPPA_CUDA_ARCHS",
    "KAPPA_HOST_CXX",
    "KAPPA_PYTHON_INCLUDE",
    "KAPPA_PYBIND11_INCLUDE",
    "KAPPA_BINDING_LIBSTDCXX",
    "KAPPA_CUDA_ROUTE",
    "KAPPA_CUDA_VERSION",
    "KAPPA_CPU_MARCH",
    "KAPPA_CPU_DISPATCH",
]

def _env(ctx, name):
    return ctx.os.environ.get(name, "").strip()

def _headers(ctx, name, path, folder, patterns = ["**/*.h"], deps = []):
    """Links `folder` of this repository to `path` and returns the BUILD text of a
    cc_library `name` of its headers (`patterns` below it), `folder` on the
    include path."""
    ctx.symlink(path, folder)
    return """
cc_library(
    name = "{name}",
    hdrs = glob({hdrs}),
    includes = ["{folder}"],
    deps = {deps},
)
""".format(name = name, hdrs = repr([folder + "/" + p for p in patterns]), folder = folder,
           deps = repr(deps))

def _impl(ctx):
    tf_version = _env(ctx, "KAPPA_TF_VERSION")
    tf_include = _env(ctx, "KAPPA_TF_INCLUDE")
    if not tf_version or not tf_include:
        fail("TensorFlow is not configured: run `python3 configure.py` in the " +
             "repository root first (it writes .kappa_configure.bazelrc).")
    python_include = _env(ctx, "KAPPA_PYTHON_INCLUDE")
    pybind11_include = _env(ctx, "KAPPA_PYBIND11_INCLUDE")
    if not python_include or not pybind11_include:
        fail("Python or pybind11 is not configured: run `python3 configure.py` " +
             "in the repository root again (it writes .kappa_configure.bazelrc).")
    linkopts = [f for f in _env(ctx, "KAPPA_TF_LINKOPTS").split(",") if f]
    xla_includes = [d for d in _env(ctx, "KAPPA_TF_XLA_INCLUDES").split(",") if d]
    xla_linkopts = [f for f in _env(ctx, "KAPPA_TF_XLA_LINKOPTS").split(",") if f]
    xla = bool(xla_linkopts)

    # "nvrtc": kernels compiled at first use (no toolkit needed to build);
    # "static": nvcc and the toolkit's static runtime; "": no CUDA kernels.
    route = _env(ctx, "KAPPA_CUDA_ROUTE")
    cuda_path = _env(ctx, "KAPPA_CUDA_PATH") if route == "static" else ""
    archs = [a for a in _env(ctx, "KAPPA_CUDA_ARCHS").split(",") if a] if cuda_path else []
    cuda = route == "nvrtc" or bool(cuda_path)

    build = """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "tf_framework",
    linkopts = {linkopts},
)

exports_files(["build_info.json"])
""".format(linkopts = repr(linkopts))
    build += _headers(ctx, "tf_headers", tf_include, "tf_include",
                      ["**/*.h", "**/*.inc", "Eigen/**", "unsupported/**"])
    build += _headers(ctx, "python_headers", python_include, "python_include")
    build += _headers(ctx, "pybind11_headers", pybind11_include, "pybind11_include",
                      deps = [":python_headers"])

    if xla:
        build += """
cc_library(
    name = "tf_xla",
    includes = {includes},
    linkopts = {linkopts},
    deps = [":tf_headers"],
)
""".format(
            includes = repr(["tf_include/" + d for d in xla_includes]),
            linkopts = repr(xla_linkopts),
        )

    build += """

cc_library(
    name = "build_info",
    hdrs = ["build_info.h"],
)
"""

    if cuda_path:
        build += _headers(ctx, "cuda_headers", cuda_path + "/include", "cuda/include", ["**"])
        lib = cuda_path + "/lib64/libcudart_static.a"
        if not ctx.path(lib).exists:
            lib = cuda_path + "/lib/libcudart_static.a"
        ctx.symlink(lib, "cuda/libcudart_static.a")
        ctx.file("nvcc.sh", "#!/bin/sh\nexec \"{nvcc}\" -ccbin \"{cxx}\" \"$@\"\n".format(
            nvcc = _env(ctx, "KAPPA_NVCC"),
            cxx = _env(ctx, "KAPPA_HOST_CXX") or "g++",
        ), executable = True)
        build += """
cc_library(
    name = "cudart_static",
    srcs = ["cuda/libcudart_static.a"],
    linkopts = ["-ldl", "-lpthread", "-lrt"],
)

sh_binary(
    name = "nvcc",
    srcs = ["nvcc.sh"],
)
"""
    ctx.file("BUILD", build)

    info = {
        "tf_version": tf_version,
        "cuda": cuda,
        "cuda_route": route if cuda else "",
        # static route: the toolkit's version (its driver generation is needed)
        "cuda_version": _env(ctx, "KAPPA_CUDA_VERSION") if cuda_path else "",
        "cuda_archs": archs,
        # The CPU target: the -march of the whole library and whether its hot
        # loops have AVX2/AVX-512 clones chosen at run time.
        "cpu_march": _env(ctx, "KAPPA_CPU_MARCH"),
        "cpu_dispatch": _env(ctx, "KAPPA_CPU_DISPATCH") == "1",
        "xla": xla,
        # "static": the NumPy binding carries its own libstdc++ (glibc 2.17).
        "binding_libstdcxx": _env(ctx, "KAPPA_BINDING_LIBSTDCXX") or "shared",
    }
    ctx.file("build_info.json", json.encode_indent(info, indent = "  ") + "\n")
    ctx.file("build_info.h", """// Generated by @local_config_kappa. Do not edit.
#ifndef KAPPA_BUILD_INFO_H_
#define KAPPA_BUILD_INFO_H_
#define KAPPA_BUILD_INFO_JSON {json}
#endif
""".format(json = json.encode(json.encode({k: v for k, v in info.items() if k != "xla"}))))
    ctx.file("defs.bzl", """KAPPA_CUDA = {cuda}
KAPPA_CUDA_ARCHS = {archs}
KAPPA_CUDA_ROUTE = "{route}"
KAPPA_XLA = {xla}
KAPPA_BINDING_STATIC_LIBSTDCXX = {static}
""".format(cuda = cuda, archs = repr(archs), route = route if cuda else "", xla = xla,
           static = _env(ctx, "KAPPA_BINDING_LIBSTDCXX") == "static"))

kappa_configure = repository_rule(
    implementation = _impl,
    environ = _ENV,
    local = True,
)

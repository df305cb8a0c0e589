#!/usr/bin/env bash
# Builds cc/gpu_check (the CUDA functors against the CPU functors, plus
# bandwidth next to a device-to-device copy), without TensorFlow, and runs it.
#
#   cc/gpu_check/run.sh [--route static|nvrtc] [--build-only]
#
# --route static (default): nvcc compiles kernels and host code, the CUDA
#   runtime of its toolkit is linked in (configure.py --cuda-runtime=static).
# --route nvrtc: g++ compiles the host code, the kernels are compiled at first
#   use by the NVRTC that KAPPA_NVRTC names (else libnvrtc.so.12 on the
#   loader's path) and launched through the driver API, as in the default
#   op library (--cuda-runtime=nvrtc). cc/gpu_check/cuda12_route.sh runs it
#   as the proof of that route.
# --build-only: build, do not run (CI without a GPU).
# Environment: NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc;
# its toolkit, or CUDA_HOME, also gives cuda.h for the nvrtc route),
# CUDA_ARCH (static route; default: native when running, sm_80 with
# --build-only), OUT (binary; default /tmp/kappa_gpu_check).
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
OUT="${OUT:-/tmp/kappa_gpu_check}"
route=static
build_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) build_only=1; shift ;;
    --route) route=$2; shift 2 ;;
    *) echo "usage: $0 [--route static|nvrtc] [--build-only]" >&2; exit 2 ;;
  esac
done
cpu_sources=(cc/core/cpu_dispatch.cc cc/core/quantize/quantize_cpu.cc
             cc/core/rail_stats/rail_stats_cpu.cc cc/core/update_store/update_store_cpu.cc)
gpu_sources=(cc/core/quantize/quantize_gpu.cu.cc cc/core/rail_stats/rail_stats_gpu.cu.cc
             cc/core/update_store/update_store_gpu.cu.cc)
case "$route" in
  static)
    if [[ -n "${CUDA_ARCH:-}" ]]; then arch="$CUDA_ARCH"
    elif (( build_only )); then arch=sm_80
    else arch=native
    fi
    set -x
    "$NVCC" -std=c++17 -O3 -arch="$arch" --expt-relaxed-constexpr --fmad=false \
      -Werror all-warnings -Xcompiler -O3,-ffp-contract=off -I. -x cu \
      cc/gpu_check/gpu_check.cu.cc "${gpu_sources[@]}" "${cpu_sources[@]}" -o "$OUT"
    { set +x; } 2>/dev/null
    ;;
  nvrtc)
    # The toolkit's cuda.h (types of the driver API); nvcc may be a wrapper.
    toolkit="${CUDA_HOME:-$("$NVCC" -dryrun -c -x cu /dev/null -o /dev/null 2>&1 |
                            sed -n 's/.*TOP=\([^ ]*\).*/\1/p' | head -1)}"
    toolkit="${toolkit:-$(dirname "$(dirname "$(readlink -f "$NVCC")")")}"
    generated="$(mktemp -d)"
    trap 'rm -rf "$generated"' EXIT
    build_deps/embed_files.sh "$generated/gpu_rtc_files.cc" cc/core/fixed_point.h \
      cc/core/gpu_launch.h cc/core/gpu_reduce.h cc/core/parallel.h cc/core/rtc_std.h \
      cc/core/quantize/quantize.h cc/core/quantize/quantize_gpu.cu.cc \
      cc/core/rail_stats/rail_stats.h cc/core/rail_stats/rail_stats_gpu.cu.cc \
      cc/core/update_store/update_store.h cc/core/update_store/update_store_gpu.cu.cc
    set -x
    g++ -std=c++17 -O3 -fno-trapping-math -ffp-contract=off -I. -I"$toolkit/include" \
      -x c++ cc/gpu_check/gpu_check.cu.cc "${gpu_sources[@]}" -x none "${cpu_sources[@]}" \
      cc/core/gpu_rtc.cc "$generated/gpu_rtc_files.cc" -ldl -pthread -o "$OUT"
    { set +x; } 2>/dev/null
    ;;
  *) echo "run.sh: --route must be static or nvrtc, not '$route'" >&2; exit 2 ;;
esac
(( build_only )) && exit 0
"$OUT"

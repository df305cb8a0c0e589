#!/usr/bin/env bash
# Builds cc/gpu_check (CUDA functors vs CPU functors, plus bandwidth next to
# a device-to-device copy) with nvcc, no TensorFlow, and runs it.
#
#   cc/gpu_check/run.sh              build for this machine's GPU and run
#   cc/gpu_check/run.sh --build-only build only (CI without a GPU)
# Environment: NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc),
# CUDA_ARCH (default: native when running, sm_80 with --build-only),
# OUT (binary; default /tmp/kappa_gpu_check).
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
OUT="${OUT:-/tmp/kappa_gpu_check}"
build_only=0
[[ "${1:-}" == "--build-only" ]] && build_only=1
if [[ -n "${CUDA_ARCH:-}" ]]; then arch="$CUDA_ARCH"
elif (( build_only )); then arch=sm_80
else arch=native
fi
set -x
"$NVCC" -std=c++17 -O3 -arch="$arch" --expt-relaxed-constexpr --fmad=false \
  -Werror all-warnings -Xcompiler -O3,-ffp-contract=off -I. -x cu \
  cc/gpu_check/gpu_check.cu.cc \
  cc/core/quantize/quantize_gpu.cu.cc cc/core/quantize/quantize_cpu.cc \
  cc/core/rail_stats/rail_stats_gpu.cu.cc cc/core/rail_stats/rail_stats_cpu.cc \
  cc/core/update_store/update_store_gpu.cu.cc cc/core/update_store/update_store_cpu.cc \
  -o "$OUT"
{ set +x; } 2>/dev/null
(( build_only )) && exit 0
"$OUT"

#!/usr/bin/env bash
# Builds cc/gpu_check (every CUDA functor against its CPU functor, plus
# bandwidth next to a device-to-device copy), without TensorFlow, and runs it.
# On a machine with an NVIDIA GPU, the default run is the one-run proof of the
# op library's CUDA route (configure.py --cuda-runtime=nvrtc, cc/core/gpu_rtc.h):
#
#   cc/gpu_check/run.sh [--route nvrtc|static] [--build-only]
#
# --route nvrtc (default, the op library's route): g++ compiles the host code
#   and no CUDA library is linked (checked with ldd); the kernels are compiled
#   at first use by NVRTC 12 and launched through the driver API. The run
#   prints and checks, in order:
#     1. the GPU, its driver version and the CUDA generation the driver serves;
#     2. NVRTC: its path and version, which must be 12.x;
#     3. that the program links no CUDA library;
#     4. every kernel the functors can launch against the CPU functors:
#        quantize and update weights bit for bit, rail_stats counts and
#        fractions equal, update sums within the summation-order bound; GB/s;
#     5. the verdict: PROVEN on a driver of the CUDA 12 generation; on a newer
#        driver, that the route works and a 12-generation driver has yet to
#        run it.
#   NVRTC 12 is taken from KAPPA_NVRTC, else from the nvidia-cuda-nvrtc-cu12
#   wheel of python3 (what `tensorflow[and-cuda]` installs), else from
#   libnvrtc*.so.12*.xz files in the checkout's root (compressed copies carried
#   to a machine that cannot download them:
#   xz -k libnvrtc.so.12 libnvrtc-builtins.so.12.*).
# --route static: nvcc compiles kernels and host code, and its toolkit's CUDA
#   runtime is linked in (configure.py --cuda-runtime=static).
# --build-only: build, do not run (CI, no GPU needed).
# Environment: NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc; its
# toolkit, or CUDA_HOME, also gives cuda.h for the nvrtc route), CUDA_ARCH
# (static route; default: native when running, sm_80 with --build-only), OUT
# (the binary; default /tmp/kappa_gpu_check_<route>).
# Exit status: 0 when every check passed, 1 on a mismatch or failed check,
# 2 without a GPU or without NVRTC 12.
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
route=nvrtc
build_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) build_only=1; shift ;;
    --route) route=${2:-}; shift 2 ;;
    *) echo "usage: $0 [--route nvrtc|static] [--build-only]" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-/tmp/kappa_gpu_check_$route}"
cpu_sources=(cc/core/cpu_dispatch.cc cc/core/quantize/quantize_cpu.cc
             cc/core/rail_stats/rail_stats_cpu.cc cc/core/update_store/update_store_cpu.cc)
gpu_sources=(cc/core/quantize/quantize_gpu.cu.cc cc/core/rail_stats/rail_stats_gpu.cu.cc
             cc/core/update_store/update_store_gpu.cu.cc)

build_static() {
  local arch
  if [[ -n "${CUDA_ARCH:-}" ]]; then arch="$CUDA_ARCH"
  elif (( build_only )); then arch=sm_80
  else arch=native
  fi
  set -x
  "$NVCC" -std=c++17 -O3 -arch="$arch" --expt-relaxed-constexpr --fmad=false \
    -Werror all-warnings -Xcompiler -O3,-ffp-contract=off -I. -x cu \
    cc/gpu_check/gpu_check.cu.cc "${gpu_sources[@]}" "${cpu_sources[@]}" -o "$OUT"
  { set +x; } 2>/dev/null
}

build_nvrtc() {
  # The toolkit's cuda.h (types of the driver API); nvcc may be a wrapper.
  local toolkit generated
  toolkit="${CUDA_HOME:-$("$NVCC" -dryrun -c -x cu /dev/null -o /dev/null 2>&1 |
                          sed -n 's/.*TOP=\([^ ]*\).*/\1/p' | head -1)}"
  toolkit="${toolkit:-$(dirname "$(dirname "$(readlink -f "$NVCC")")")}"
  generated="$(mktemp -d)"
  build_deps/embed_files.sh "$generated/gpu_rtc_files.cc" cc/core/formats/*.h \
    cc/core/gpu_launch.h cc/core/gpu_reduce.h cc/core/parallel.h cc/core/rtc_std.h \
    cc/core/quantize/quantize.h cc/core/quantize/quantize_gpu.cu.cc \
    cc/core/rail_stats/rail_stats.h cc/core/rail_stats/rail_stats_gpu.cu.cc \
    cc/core/update_store/update_store.h cc/core/update_store/update_store_gpu.cu.cc
  set -x
  g++ -std=c++17 -O3 -fno-trapping-math -ffp-contract=off -I. -I"$toolkit/include" \
    -x c++ cc/gpu_check/gpu_check.cu.cc "${gpu_sources[@]}" -x none "${cpu_sources[@]}" \
    cc/core/gpu_rtc.cc "$generated/gpu_rtc_files.cc" -ldl -pthread -o "$OUT"
  { set +x; } 2>/dev/null
  rm -rf "$generated"
}

# Sets KAPPA_NVRTC to a libnvrtc.so.12, or exits 2.
find_nvrtc12() {
  local nvrtc="${KAPPA_NVRTC:-}" unpacked f
  if [ -z "$nvrtc" ]; then
    nvrtc=$(python3 -c 'import glob, os, nvidia.cuda_nvrtc as m
print((glob.glob(os.path.join(list(m.__path__)[0], "lib", "libnvrtc.so.12")) + [""])[0])' \
            2>/dev/null || true)
  fi
  if [ -z "$nvrtc" ] && ls ./libnvrtc.so.12.xz >/dev/null 2>&1; then
    unpacked=$(mktemp -d)
    for f in ./libnvrtc*.so.12*.xz; do xz -dc "$f" > "$unpacked/$(basename "$f" .xz)"; done
    nvrtc="$unpacked/libnvrtc.so.12"
  fi
  if [ -z "$nvrtc" ] || [ ! -f "$nvrtc" ]; then
    echo "run.sh: no libnvrtc.so.12: set KAPPA_NVRTC, or pip install nvidia-cuda-nvrtc-cu12" >&2
    exit 2
  fi
  export KAPPA_NVRTC="$nvrtc"
}

case "$route" in
  static|nvrtc) ;;
  *) echo "run.sh: --route must be nvrtc or static, not '$route'" >&2; exit 2 ;;
esac
if (( build_only )); then
  "build_$route"
  exit 0
fi

echo "== 1. GPU and driver"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "run.sh: no NVIDIA GPU visible (nvidia-smi)" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader
if [ "$route" = static ]; then
  build_static
  echo "== 4. gpu_check, static route (nvcc, its CUDA runtime linked in)"
  exec "$OUT"
fi

echo "== 2. NVRTC 12"
find_nvrtc12
echo "KAPPA_NVRTC=$KAPPA_NVRTC"
build_nvrtc
echo "== 3. no CUDA library linked"
if ldd "$OUT" | grep -E "libcudart|libnvrtc|libcuda"; then
  echo "run.sh: the check program links a CUDA library; it must not" >&2
  exit 1
fi
echo "none"
echo "== 4. gpu_check, NVRTC route"
log="$(mktemp)"
set +e
"$OUT" | tee "$log"
status=${PIPESTATUS[0]}
set -e

echo "== 5. verdict"
python3 - "$status" "$log" <<'EOF'
import json, re, sys
status, log = int(sys.argv[1]), open(sys.argv[2]).read()
driver = re.search(r"driver for CUDA (\d+)\.(\d+)", log)
rtc = re.search(r"route: nvrtc .*?(\{.*\})", log)
nvrtc = json.loads(rtc.group(1))["nvrtc"] if rtc else None
print(f"driver for CUDA {driver.group(1)}.{driver.group(2)}" if driver else "driver: unknown")
print(f"NVRTC {nvrtc}")
if not (nvrtc or "").startswith("12."):
    print("NOT a proof: the kernels were not compiled by NVRTC 12")
    sys.exit(1)
if status != 0 or "PASSED" not in log:
    print("FAILED: see the mismatches above")
    sys.exit(1)
if driver and int(driver.group(1)) == 12:
    print("PROVEN: kernels compiled by NVRTC 12 load and launch through a CUDA 12 driver and "
          "match the CPU functors bit for bit")
else:
    print("route works (NVRTC 12 code, driver API launch, results equal to the CPU's); this "
          "driver is newer than CUDA 12, so a 12-generation driver (>= 525.60.13) has yet to run it")
EOF

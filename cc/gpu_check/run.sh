#!/usr/bin/env bash
# Builds cc/gpu_check (every CUDA functor against its CPU functor, plus
# bandwidth next to a device-to-device copy), without TensorFlow, and runs it.
# On a machine with an NVIDIA GPU, the default run is the one-run proof of the
# op library's CUDA route (configure.py --cuda-runtime=nvrtc, cc/core/gpu_rtc.h):
#
#   cc/gpu_check/run.sh [--route nvrtc|static] [--build-only]
#   cc/gpu_check/run.sh --emulate [--overlay DIR] [--build-only] [-- CHECK_ARGS]
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
# --emulate: no GPU needed: g++ compiles the kernels' unchanged source against
#   a host emulation of CUDA (cc/gpu_check/emulation/cuda_host.h) and the
#   check program runs them on the CPU, each block's threads as fibers: the
#   same checks over the same sizes and the same verdict lines (no bandwidth),
#   then which kernels ran. What this proves and what only a GPU proves: the
#   README, "GPU build". --overlay DIR: files under DIR stand in for the
#   checkout's files of the same path (tests/test_gpu_emulation.py compiles
#   its mutants so). CHECK_ARGS go to the check program (--fail-fast).
# Environment: NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc; its
# toolkit, or CUDA_HOME, also gives cuda.h for the nvrtc route), CUDA_ARCH
# (static route; default: native when running, sm_80 with --build-only), OUT
# (the binary; default /tmp/kappa_gpu_check_<route>, or _emulate), OBJECTS
# (--emulate: a folder of object files, kept by a hash of each file's
# preprocessed source and flags, so that a rebuild compiles only what
# changed; default $OUT.objects).
# Exit status: 0 when every check passed, 1 on a mismatch or failed check,
# 2 without a GPU or without NVRTC 12, 3 when the emulated build fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
route=nvrtc
build_only=0
overlay=""
check_args=()
usage="usage: $0 [--route nvrtc|static] [--build-only]
       $0 --emulate [--overlay DIR] [--build-only] [-- CHECK_ARGS]"
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) build_only=1; shift ;;
    --route)
      route=${2:-}
      case "$route" in
        static|nvrtc) shift 2 ;;
        *) echo "run.sh: --route must be nvrtc or static, not '$route'" >&2; exit 2 ;;
      esac ;;
    --emulate) route=emulate; shift ;;
    --overlay) overlay=${2:-}; shift 2 ;;
    --) shift; check_args=("$@"); break ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
if [[ -n "$overlay" || ${#check_args[@]} -gt 0 ]] && [ "$route" != emulate ]; then
  echo "$usage" >&2
  exit 2
fi
OUT="${OUT:-/tmp/kappa_gpu_check_$route}"
cpu_sources=(cc/core/cpu_dispatch.cc cc/core/quantize/quantize_cpu.cc
             cc/core/rail_stats/rail_stats_cpu.cc cc/core/update_store/update_store_cpu.cc)
# Every kernel source: the emulated run's list of kernels that ran is checked
# against these (tests/test_gpu_emulation.py).
mapfile -t gpu_sources < <(find cc/core -name '*_gpu.cu.cc' | sort)

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

# g++ compiles the CPU functors, and the kernels' source and the check program
# against the CUDA host emulation (cc/gpu_check/emulation/launch.h,
# force-included), in parallel; object files already in $OBJECTS are reused.
# -Og: quick to compile (results do not depend on the optimisation level:
# -ffp-contract=off, no fast-math).
build_emulate() {
  local objects_dir="${OBJECTS:-$OUT.objects}" src file key object pid failed=0
  local -a common=(-std=c++17 -Og -fno-trapping-math -ffp-contract=off -Wall -Werror)
  local -a flags objects pids
  if [ -n "$overlay" ]; then common+=(-I"$overlay" -fmacro-prefix-map="$overlay/="); fi
  common+=(-I.)
  mkdir -p "$objects_dir"
  for src in "${cpu_sources[@]}" cc/gpu_check/gpu_check.cu.cc "${gpu_sources[@]}"; do
    file="$src"
    if [ -n "$overlay" ] && [ -f "$overlay/$src" ]; then file="$overlay/$src"; fi
    flags=("${common[@]}")
    case "$src" in
      *.cu.cc) flags+=(-Wno-unknown-pragmas -Icc/gpu_check/emulation
                       -include cc/gpu_check/emulation/launch.h -x c++) ;;
    esac
    # The key: the flags (include paths aside) and the preprocessed source,
    # with the overlay's paths read as the checkout's: an unchanged copy
    # reuses the checkout's object file.
    key=$({ printf '%s\n' "${flags[@]}" | grep -v -e '^-I' -e '^-fmacro-prefix-map'
            g++ "${flags[@]}" -E -P "$file"; } | sha1sum | cut -c1-16)
    object="$objects_dir/$(basename "$src")-$key.o"
    objects+=("$object")
    if [ ! -f "$object" ]; then
      echo "g++ -c $file"
      { g++ "${flags[@]}" -c "$file" -o "$object.$$" && mv "$object.$$" "$object"; } &
      pids+=("$!")
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  if (( failed )) || ! g++ "${objects[@]}" -pthread -o "$OUT"; then
    echo "run.sh: the emulated build failed" >&2
    exit 3
  fi
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

if (( build_only )); then
  "build_$route"
  exit 0
fi

if [ "$route" = emulate ]; then
  echo "== gpu_check on the CUDA host emulation (no GPU)"
  build_emulate
  status=0
  "$OUT" "${check_args[@]}" || status=$?
  if (( status == 0 )); then
    echo "EMULATED: every kernel's logic, indexing, synchronisation and numerics match the CPU" \
         "functors on the emulated device; the memory model, speed and the NVRTC and driver" \
         "route are proven only by this script on a GPU"
  fi
  exit "$status"
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

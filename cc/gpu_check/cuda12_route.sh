#!/usr/bin/env bash
# The proof of the op library's CUDA route (configure.py --cuda-runtime=nvrtc,
# cc/core/gpu_rtc.h), in one run on a machine with an NVIDIA GPU; no
# TensorFlow needed:
#   1. the driver: its version and the CUDA generation it serves;
#   2. NVRTC 12: found (KAPPA_NVRTC, or a libnvrtc.so.12 from the
#      nvidia-cuda-nvrtc-cu12 wheel that `tensorflow[and-cuda]` installs), its
#      version must be 12.x;
#   3. cc/gpu_check is built for the NVRTC route: no CUDA library linked (the
#      script checks with ldd), the kernels compiled at first use by that
#      NVRTC 12 for this GPU and launched through the driver API;
#   4. it runs every kernel the functors can launch and compares it with the CPU
#      functors: quantize and update weights bit for bit, rail_stats counts
#      and fractions equal, update sums within the summation-order bound;
#      plus bandwidth next to a device-to-device copy;
#   5. the verdict: on a driver of the CUDA 12 generation this proves that the
#      kernels run where TensorFlow's CUDA 12 build runs; on a newer driver it
#      proves the route (NVRTC 12 code, driver launch, results) and says that
#      a 12-generation driver has yet to run it.
#
#   KAPPA_NVRTC=/path/to/libnvrtc.so.12 cc/gpu_check/cuda12_route.sh
#
# Without KAPPA_NVRTC it looks in the site-packages of python3 (pip install
# nvidia-cuda-nvrtc-cu12) and then for a libnvrtc.so.12.xz next to this
# script's checkout root (a compressed copy carried to a machine that cannot
# download it: xz -k libnvrtc.so.12 libnvrtc-builtins.so.12.*).
# Exit status: 0 when every check passed, 1 on a mismatch or failed check,
# 2 without a GPU or NVRTC 12.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== 1. driver"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "cuda12_route: no NVIDIA GPU visible (nvidia-smi)" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader

echo "== 2. NVRTC 12"
nvrtc="${KAPPA_NVRTC:-}"
if [ -z "$nvrtc" ]; then
  nvrtc=$(python3 -c 'import glob, os, nvidia.cuda_nvrtc as m
print((glob.glob(os.path.join(list(m.__path__)[0], "lib", "libnvrtc.so.12")) + [""])[0])' \
          2>/dev/null || true)
fi
if [ -z "$nvrtc" ] && ls ./libnvrtc.so.12.xz >/dev/null 2>&1; then
  unpacked=$(mktemp -d)
  for f in ./libnvrtc*.xz; do xz -dc "$f" > "$unpacked/$(basename "$f" .xz)"; done
  nvrtc="$unpacked/libnvrtc.so.12"
fi
if [ -z "$nvrtc" ] || [ ! -f "$nvrtc" ]; then
  echo "cuda12_route: no libnvrtc.so.12: set KAPPA_NVRTC, or pip install nvidia-cuda-nvrtc-cu12" >&2
  exit 2
fi
export KAPPA_NVRTC="$nvrtc"
echo "KAPPA_NVRTC=$KAPPA_NVRTC"

echo "== 3.-4. gpu_check, NVRTC route (no CUDA runtime linked)"
OUT="${OUT:-/tmp/kappa_gpu_check_nvrtc}"
OUT="$OUT" bash cc/gpu_check/run.sh --route nvrtc --build-only
if ldd "$OUT" | grep -E "libcudart|libnvrtc|libcuda"; then
  echo "cuda12_route: the check program links a CUDA library; it must not" >&2
  exit 1
fi
set +e
"$OUT" | tee /tmp/kappa_cuda12_route.log
status=${PIPESTATUS[0]}
set -e

echo "== 5. verdict"
python3 - "$status" <<'EOF'
import json, re, sys
status = int(sys.argv[1])
log = open("/tmp/kappa_cuda12_route.log").read()
driver = re.search(r"driver for CUDA (\d+)\.(\d+)", log)
rtc = re.search(r"route: nvrtc .*?(\{.*\})", log)
nvrtc = json.loads(rtc.group(1))["nvrtc"] if rtc else None
print(f"driver for CUDA {driver.group(1)}.{driver.group(2)}" if driver else "driver: unknown")
print(f"NVRTC {nvrtc}")
ok = status == 0 and "PASSED" in log
if not (nvrtc or "").startswith("12."):
    print("NOT a proof: the kernels were not compiled by NVRTC 12")
    sys.exit(1)
if not ok:
    print("FAILED: see the mismatches above")
    sys.exit(1)
if driver and int(driver.group(1)) == 12:
    print("PROVEN: kernels compiled by NVRTC 12 load and launch through a CUDA 12 driver and "
          "match the CPU functors bit for bit")
else:
    print("route works (NVRTC 12 code, driver API launch, results equal to the CPU's); this "
          "driver is newer than CUDA 12, so a 12-generation driver (>= 525.60.13) has yet to run it")
EOF

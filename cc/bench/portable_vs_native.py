#!/usr/bin/env python3
"""The kernel benchmark of the portable build against a -march=native build, in one run.

Usage: python3 cc/bench/portable_vs_native.py [--rounds 9] [--long] [--no-build]

Builds //cc/bench:kernel_bench (the configured build: with configure.py's
default, x86-64-v2 plus AVX2/AVX-512 clones chosen at run time) and
//cc/bench:kernel_bench_native (the same functors with -march=native, no
dispatch), then runs the two alternately, --rounds times each, and prints
per kernel the median time of each and their ratio portable / native (goal:
within 5 %). Run from the repository root after configure.py.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"portable": "//cc/bench:kernel_bench", "native": "//cc/bench:kernel_bench_native"}
_ROW = re.compile(r"^(.*\S)\s+([0-9.]+) ms\s+([0-9.]+) GB/s$")
GOAL = 1.05


def parse(output: str) -> tuple[str, dict[str, float]]:
    """The CPU-path line and {row name: ms} of one kernel_bench run."""
    path = next((line for line in output.splitlines() if line.startswith("CPU path")), "")
    rows = {}
    for line in output.splitlines():
        match = _ROW.match(line)
        if match:
            rows[match.group(1)] = float(match.group(2))
    return path, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="runs of each binary (default 9)")
    parser.add_argument("--long", action="store_true", help="kernel_bench --long (every mode)")
    parser.add_argument("--no-build", action="store_true", help="use the binaries already built")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be a positive integer, got {args.rounds}")
    if not args.no_build:
        subprocess.run(["bazel", "build", *TARGETS.values()], cwd=ROOT, check=True)
    binaries = {k: ROOT / "bazel-bin" / t[2:].replace(":", "/") for k, t in TARGETS.items()}
    times: dict[str, dict[str, list[float]]] = {k: {} for k in TARGETS}
    paths = {}
    for r in range(args.rounds):
        # Alternate which goes first, so that drifting load hits both alike.
        order = list(TARGETS) if r % 2 == 0 else list(reversed(TARGETS))
        for kind in order:
            out = subprocess.run([str(binaries[kind])] + (["--long"] if args.long else []),
                                 check=True, capture_output=True, text=True).stdout
            paths[kind], rows = parse(out)
            for name, ms in rows.items():
                times[kind].setdefault(name, []).append(ms)
    print(f"kernel_bench, portable vs -march=native: {args.rounds} alternating rounds, "
          "medians of each binary's per-round medians")
    for kind in TARGETS:
        print(f"  {kind:9s} {paths[kind]}")
    print(f"\n{'kernel':44s} {'portable ms':>12s} {'native ms':>10s} {'ratio':>7s}")
    worst = 0.0
    for name, portable in times["portable"].items():
        native = times["native"].get(name)
        if not native:
            continue
        p, n = statistics.median(portable), statistics.median(native)
        ratio = p / n
        if not name.startswith(("memcpy", "sum")):
            worst = max(worst, ratio)
        print(f"{name:44s} {p:12.2f} {n:10.2f} {ratio:7.3f}")
    verdict = "met" if worst <= GOAL else "MISSED"
    print(f"\nslowest kernel ratio portable / native: {worst:.3f} "
          f"(goal <= {GOAL:.2f}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

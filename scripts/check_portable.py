#!/usr/bin/env python3
"""Check by disassembly that an op library runs on every x86-64-v2 CPU.

Usage: python3 scripts/check_portable.py [--json] LIBRARY.so

A portable build (configure.py's default) compiles everything for the
baseline x86-64-v2 and gives the CPU functors' hot loops AVX2 and AVX-512
clones that are chosen at run time (cc/core/cpu_dispatch.h). This script
reads ``objdump -d`` of the library and checks, instruction by instruction
(by the encoding, not by the mnemonic):

* outside the clones: no VEX- or EVEX-encoded instruction (AVX, AVX2, FMA,
  BMI, AVX-512) and no LZCNT/MOVBE: nothing an x86-64-v2 CPU lacks;
* in the AVX2 clones (``kappa::CpuClone<(kappa::CpuPath)1, ...>``): no
  EVEX (AVX-512) instruction;
* nowhere: an FMA instruction (the arithmetic is defined without fused
  multiply-adds; -ffp-contract=off holds for every clone);
* every kernel has all three clones, and the clones use their instruction
  sets (ymm registers in the AVX2 clones, zmm in the AVX-512 ones), so the
  dispatch is not an empty shell.

Exit status 0 when all hold, 1 otherwise (each finding printed), 2 when
objdump is missing.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

CLONE = re.compile(r"kappa::CpuClone<\(kappa::CpuPath\)(\d)")
# GCC's local variants of a function ("[clone .cold]", ".constprop.0", ...).
_VARIANT = re.compile(r" \[clone [^\]]*\]")
PATHS = {0: "baseline", 1: "avx2", 2: "avx512"}
NAMES = {None: "outside clones", **PATHS}
_FUNCTION = re.compile(r"^[0-9a-f]+ <(.*)>:$")
_INSN = re.compile(r"^\s*[0-9a-f]+:\t((?:[0-9a-f]{2} )+)\s*\t?(\S*)\s*(.*)$")
# Legacy prefixes that may stand before a VEX/EVEX prefix or an opcode.
_PREFIXES = {0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3}
# Not VEX-encoded, but not in x86-64-v2 either. (TZCNT is not listed: GCC
# emits `rep bsf` for generic targets on purpose, which older CPUs run as
# BSF and objdump prints as tzcnt.)
_V3_LEGACY = {"lzcnt", "movbe"}
_FMA = re.compile(r"^vf(n?)m(add|sub)")


def encoding(raw: list[int]) -> str:
    """'evex', 'vex' or 'legacy': the instruction's encoding, from its bytes."""
    i = 0
    while i < len(raw) and raw[i] in _PREFIXES:
        i += 1
    if i < len(raw) and raw[i] == 0x62:  # BOUND is invalid in 64-bit mode: EVEX
        return "evex"
    if i < len(raw) and raw[i] in (0xC4, 0xC5):  # LES/LDS are invalid in 64-bit mode
        return "vex"
    return "legacy"


@dataclass
class Report:
    instructions: int = 0
    violations: list = field(default_factory=list)
    clones: dict = field(default_factory=lambda: defaultdict(set))  # path -> kernels
    ymm: Counter = field(default_factory=Counter)  # path -> instructions with ymm
    zmm: Counter = field(default_factory=Counter)  # path -> instructions with zmm
    fma: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> dict:
        return {
            "instructions": self.instructions,
            "clones": {PATHS[p]: len(k) for p, k in sorted(self.clones.items())},
            "ymm_instructions": {NAMES[p]: n for p, n in self.ymm.items()},
            "zmm_instructions": {NAMES[p]: n for p, n in self.zmm.items()},
            "fma_instructions": self.fma,
            "violations": len(self.violations),
        }


def disassemble(library: Path) -> str:
    objdump = shutil.which("objdump")
    if objdump is None:
        raise FileNotFoundError("objdump is missing (binutils)")
    return subprocess.run([objdump, "-d", "-w", "-C", str(library)], check=True,
                          capture_output=True, text=True).stdout


def check(listing: str, max_findings: int = 50) -> Report:
    """Check an ``objdump -d -w -C`` listing (see the module docstring)."""
    report = Report()
    function, path = "", None
    for line in listing.splitlines():
        head = _FUNCTION.match(line)
        if head:
            function = head.group(1)
            clone = CLONE.search(function)
            path = int(clone.group(1)) if clone else None
            if clone:
                kernel = _VARIANT.sub("", function.replace(clone.group(0), "kappa::CpuClone<P"))
                report.clones[path].add(kernel)
            continue
        insn = _INSN.match(line)
        if not insn or not insn.group(2):
            continue
        report.instructions += 1
        raw = [int(b, 16) for b in insn.group(1).split()]
        mnemonic, operands = insn.group(2), insn.group(3)
        enc = encoding(raw)
        if "%ymm" in operands:
            report.ymm[path] += 1
        if "%zmm" in operands:
            report.zmm[path] += 1
        problem = None
        if _FMA.match(mnemonic):
            report.fma += 1
            problem = "FMA instruction (the arithmetic has no fused multiply-adds)"
        elif path in (None, 0) and (enc != "legacy" or mnemonic in _V3_LEGACY):
            problem = f"{enc.upper() if enc != 'legacy' else mnemonic} instruction outside " \
                      "the AVX2/AVX-512 clones (not in x86-64-v2)"
        elif path == 1 and enc == "evex":
            problem = "AVX-512 (EVEX) instruction in an AVX2 clone"
        if problem and len(report.violations) < max_findings:
            report.violations.append(f"{function}: {mnemonic} {operands}: {problem}")
        elif problem:
            report.violations.append("...")
    kernels = [report.clones.get(p, set()) for p in PATHS]
    if not kernels[0]:
        report.violations.append("no CPU clones at all: not a portable build "
                                 "(configure.py --march=portable)")
    elif not (kernels[0] == kernels[1] == kernels[2]):
        missing = {PATHS[p]: sorted(kernels[0] ^ report.clones.get(p, set()))[:3]
                   for p in (1, 2)}
        report.violations.append(f"kernels without all three clones: {missing}")
    if kernels[0] and not report.ymm[1]:
        report.violations.append("the AVX2 clones hold no ymm instruction")
    if kernels[0] and not report.zmm[2]:
        report.violations.append("the AVX-512 clones hold no zmm instruction")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", type=Path)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        report = check(disassemble(args.library))
    except FileNotFoundError as err:
        print(f"check_portable: {err}", file=sys.stderr)
        return 2
    for finding in report.violations:
        print(f"check_portable: {finding}", file=sys.stderr)
    summary = report.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.library.name}: {'portable' if report.ok else 'NOT portable'} "
              f"(x86-64-v2 outside the clones); {summary}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

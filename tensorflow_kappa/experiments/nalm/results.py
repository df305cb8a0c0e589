"""The NALM benchmark's records: one :class:`Member` per run, one :class:`CellResult` per
module × operation × range cell, and the Markdown table."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tensorflow_kappa.datasets.arithmetic import check_range
from tensorflow_kappa.evaluation import wilson_interval
from tensorflow_kappa.experiments.nalm.specs import OP_SYMBOLS
from tensorflow_kappa.experiments.reporting import format_number, jsonable

__all__ = ["BenchmarkResult", "CellResult", "Member", "aggregate", "format_table"]


@dataclasses.dataclass
class Member:
    """One run: a module kind on one operation, range pair and seed."""

    model: str
    op: str
    range_index: int
    seed: int
    threshold: float = float("nan")
    success: bool = False
    best_step: int = -1
    interpolation_mse: float = float("nan")
    extrapolation_mse: float = float("nan")
    layer_mse: float = float("nan")
    solved_at: Optional[int] = None
    sparsity_error: float = float("nan")
    formula: str = ""
    reinitializations: int = 0
    scale: float = float("nan")
    history: List[Tuple[int, float, float]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CellResult:
    """Aggregate of one module × operation × range cell."""

    model: str
    op: str
    range_index: int
    train_range: Any
    extrapolation_range: Any
    runs: int
    successes: int
    wilson_95: Tuple[float, float]
    solved_at_median: Optional[float]
    sparsity_error_median: Optional[float]
    below_1e5: int

    @property
    def success_rate(self) -> float:
        """Successes over runs (NaN for a cell without runs)."""
        return self.successes / self.runs if self.runs else float("nan")


@dataclasses.dataclass
class BenchmarkResult:
    """What :func:`~tensorflow_kappa.experiments.nalm.run_nalm_benchmark` returns."""

    cells: List[CellResult]
    members: List[Member]
    config: Dict[str, Any]
    wall_time_s: float
    max_layer_discrepancy: float

    def table(self) -> str:
        """The cells as a text table (:func:`format_table`)."""
        return format_table(self.cells)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dictionary (non-finite floats become ``None``)."""
        return jsonable({
            "config": self.config, "wall_time_s": self.wall_time_s,
            "max_layer_discrepancy": self.max_layer_discrepancy,
            "cells": [dict(dataclasses.asdict(c), success_rate=c.success_rate)
                      for c in self.cells],
            "members": [dataclasses.asdict(m) for m in self.members]})


def aggregate(members: Sequence[Member], ranges) -> List[CellResult]:
    """One :class:`CellResult` per module × operation × range, in order of appearance."""
    keys = list(dict.fromkeys((m.model, m.op, m.range_index) for m in members))
    cells = []
    for model, op, r in keys:
        group = [m for m in members if (m.model, m.op, m.range_index) == (model, op, r)]
        wins = [m for m in group if m.success]
        solved = [m.solved_at for m in wins if m.solved_at is not None]
        sparsity = [m.sparsity_error for m in wins if np.isfinite(m.sparsity_error)]
        cells.append(CellResult(
            model=model, op=op, range_index=r, train_range=ranges[r][0],
            extrapolation_range=ranges[r][1], runs=len(group), successes=len(wins),
            wilson_95=wilson_interval(len(wins), len(group)),
            solved_at_median=float(np.median(solved)) if solved else None,
            sparsity_error_median=float(np.median(sparsity)) if sparsity else None,
            below_1e5=sum(np.isfinite(m.extrapolation_mse) and m.extrapolation_mse < 1e-5
                          for m in group)))
    return cells


def _range_label(value) -> str:
    return " ∪ ".join(f"U({format_number(lo, 'g')}, {format_number(hi, 'g')})"
                      for lo, hi in check_range(value))


def format_table(cells: Sequence[CellResult]) -> str:
    """A Markdown table, one row per cell."""
    rows = ["| module | op | train → extrapolation | success | Wilson 95 % | solved at "
            "(median step) | sparsity error (median) | MSE < 1e-5 |\n"
            "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        low, high = c.wilson_95
        solved = format_number(c.solved_at_median, ".0f", missing="—")
        sparsity = format_number(c.sparsity_error_median, ".1e", missing="—")
        rows.append(
            f"| {c.model} | {OP_SYMBOLS.get(c.op, c.op)} | {_range_label(c.train_range)} → "
            f"{_range_label(c.extrapolation_range)} | {c.successes}/{c.runs} "
            f"| {low:.2f}–{high:.2f} | {solved} | {sparsity} | {c.below_1e5}/{c.runs} |")
    return "\n".join(rows)

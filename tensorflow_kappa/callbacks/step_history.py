"""Columnar per-step history for :class:`LoopController`.

A training run of 10⁵ steps must not grow a list of 10⁵ dictionaries that
every condition re-scans.  :class:`StepHistory` stores one NumPy ``float64``
column per log key with amortised O(1) appends, optionally keeping only the
last ``max_rows`` rows, and hands out read-only NumPy *views*
(``history["loss"]``) that cost nothing to take.  :class:`HistoryView` is a
window of it starting at some row (the whole history, or the rows since the
last reinitialisation); it also behaves like the report's list of dicts
(``len``, truthiness, ``view[-1]["loss"]``, iteration) so the report's
conditions run unchanged, but the column views are the fast path.
"""
from __future__ import annotations

from typing import Dict, Iterator, Mapping, Optional

import numpy as np

__all__ = ["HistoryView", "StepHistory"]


class StepHistory:
    """Append-only table of per-step floats, stored column by column.

    Args:
        max_rows: keep at most this many most recent rows (``None``: keep
            all).  Old rows are dropped in blocks, so between ``max_rows`` and
            ``2 * max_rows`` rows may be retained.
    """

    def __init__(self, max_rows: Optional[int] = None):
        if max_rows is not None and int(max_rows) < 1:
            raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}")
        self.max_rows = None if max_rows is None else int(max_rows)
        self.clear()

    def clear(self) -> None:
        """Drop every row (the global row numbering continues)."""
        old_end = getattr(self, "_first", 0) + getattr(self, "_size", 0)
        self._columns: Dict[str, np.ndarray] = {}
        self._capacity = 0
        self._size = 0  # rows held
        self._first = old_end

    # Global row numbers: row ``i`` of the table has number ``first + i``;
    # ``end`` is the number the next appended row will get.
    @property
    def first(self) -> int:
        """The global number of the oldest row held."""
        return self._first

    @property
    def end(self) -> int:
        """The global number the next appended row will get."""
        return self._first + self._size

    def keys(self):
        """The column names, in the order they were first appended."""
        return self._columns.keys()

    def _grow(self, needed: int) -> None:
        if self.max_rows is not None and needed > 2 * self.max_rows:
            # Drop the oldest rows, keeping max_rows - 1 so that the new row fits.
            keep = self.max_rows - 1
            drop = self._size - keep
            for name, col in self._columns.items():
                col[:keep] = col[drop : self._size]
            self._size = keep
            self._first += drop
            return
        capacity = max(64, 2 * self._capacity)
        if self.max_rows is not None:
            capacity = min(capacity, 2 * self.max_rows)
        for name, col in self._columns.items():
            new = np.full(capacity, np.nan)
            new[: self._size] = col[: self._size]
            self._columns[name] = new
        self._capacity = capacity

    def append(self, row: Mapping[str, float]) -> None:
        """Append one row; keys not seen before get a new column (NaN above)."""
        if self._size + 1 > self._capacity:
            self._grow(self._size + 1)
        i = self._size
        for name, value in row.items():
            col = self._columns.get(name)
            if col is None:
                col = self._columns[name] = np.full(self._capacity, np.nan)
            try:
                col[i] = value
            except (TypeError, ValueError):
                col[i] = np.nan
        self._size += 1
        if len(row) != len(self._columns):
            for name, col in self._columns.items():
                if name not in row:
                    col[i] = np.nan

    def column(self, name: str, start: int = 0) -> np.ndarray:
        """Read-only view of column ``name`` from global row ``start`` on."""
        lo = min(max(start - self._first, 0), self._size)
        col = self._columns.get(name)
        if col is None:
            raise KeyError(f"no history column {name!r}; columns: {list(self._columns)}")
        view = col[lo : self._size]
        view.flags.writeable = False
        return view

    def row(self, index: int) -> Dict[str, float]:
        """Row at table position ``index`` as a dict of floats."""
        return {name: float(col[index]) for name, col in self._columns.items()}


class HistoryView:
    """The rows of a :class:`StepHistory` from one global row onwards.

    ``view["loss"]`` is a read-only NumPy view (the fast path);
    ``len(view)``, ``bool(view)``, ``view[-1]`` (a dict) and iteration over
    row dicts keep the report's list-of-dicts idiom working.
    """

    def __init__(self, store: StepHistory, start: int):
        self._store = store
        self._start = start

    def _lo(self) -> int:
        return min(max(self._start - self._store.first, 0), self._store._size)

    def __len__(self) -> int:
        return self._store._size - self._lo()

    def __bool__(self) -> bool:
        return len(self) > 0

    def keys(self):
        """The column names of the table."""
        return list(self._store.keys())

    def __contains__(self, name) -> bool:
        return name in self._store.keys()

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._store.column(key, self._start)
        n = len(self)
        if isinstance(key, slice):
            return [self._store.row(self._lo() + i) for i in range(*key.indices(n))]
        index = int(key)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"history index {key} out of range for {n} rows")
        return self._store.row(self._lo() + index)

    def __iter__(self) -> Iterator[Dict[str, float]]:
        lo = self._lo()
        for i in range(self._store._size - lo):
            yield self._store.row(lo + i)

    def as_dict(self) -> Dict[str, np.ndarray]:
        """All columns as read-only NumPy views."""
        return {name: self[name] for name in self._store.keys()}

    def __repr__(self) -> str:
        return f"HistoryView({len(self)} rows, columns={self.keys()})"

"""``FitHistory``: the per-step record of an instrumented training run.

One NumPy array per logged metric (``h["loss"]`` or ``h.loss``), plus a
``metadata`` dict describing the run (learning rate, precision, whether it
diverged, ...). ``save``/``load`` round-trip it through one ``.npz`` file,
``summary()`` is a short table and ``plot_results()`` draws the panels that
matter for an ablation.

Example:
>>> h = FitHistory(loss=[1.0, 0.5], alpha=[1.0, 1.0])
>>> h.loss
array([1. , 0.5])
>>> len(h), h.diverged
(2, False)
"""
from __future__ import annotations

import json
import math
import numbers
import os
import zipfile
from typing import Any, Dict, Iterator, Mapping, Optional

import numpy as np

__all__ = ["FitHistory"]

_METADATA_KEY = "__metadata__"


def _metric_array(name: object, values: Any) -> np.ndarray:
    """A metric's values as a NumPy array of numbers, else ValueError naming the metric."""
    if not isinstance(name, str) or name == _METADATA_KEY:
        raise ValueError(f"metric names are strings other than {_METADATA_KEY!r}, "
                         f"got {name!r}")
    try:
        array = np.asarray(values)
    except ValueError as err:  # ragged sequences
        raise ValueError(f"metric {name!r} must be a sequence of numbers: {err}") from None
    if array.dtype.kind not in "biuf" or array.ndim == 0:
        raise ValueError(f"metric {name!r} must be a sequence of numbers (one per step), got "
                         f"{'a scalar' if array.ndim == 0 else f'an array of dtype {array.dtype}'}")
    return array


def _json_value(where: str, value: Any) -> Any:
    """``value`` as plain JSON data (NumPy scalars and arrays converted), else ValueError."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str, numbers.Integral, float)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_value(f"{where}[{k!r}]", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(f"{where}[{i}]", v) for i, v in enumerate(value)]
    raise ValueError(f"FitHistory {where} is a {type(value).__name__}, which JSON cannot "
                     "hold; metadata values are numbers, strings, booleans, None, lists "
                     "and dicts of them")


def _finite(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[np.isfinite(a)]


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.4g}"


class FitHistory:
    """Per-step metrics of a training run, one 1-D NumPy array per metric.

    Args:
        metadata: facts about the run (``diverged`` among them, if known):
            JSON values (NumPy scalars and arrays become Python numbers and
            lists on :meth:`save`).
        **metrics: metric name -> sequence of per-step numbers (any name but
            ``__metadata__``).

    Raises:
        ValueError: a metric that is not numeric (or bool), or the reserved
            name; ``metadata`` that is not a mapping.
    """

    def __init__(self, metadata: Optional[Mapping[str, Any]] = None, **metrics):
        self._metrics: Dict[str, np.ndarray] = {
            name: _metric_array(name, values) for name, values in metrics.items()
        }
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValueError(f"metadata must be a mapping, got {type(metadata).__name__}")
        self.metadata: Dict[str, Any] = dict(metadata or {})

    # -- mapping-like access ------------------------------------------------
    def __getitem__(self, name: str) -> np.ndarray:
        return self._metrics[name]

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._metrics[name]
        except KeyError:
            raise AttributeError(
                f"FitHistory has no metric {name!r}; it has {sorted(self._metrics)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    def __iter__(self) -> Iterator[str]:
        return iter(self._metrics)

    def keys(self):
        """The metric names, as ``dict.keys()``."""
        return self._metrics.keys()

    def items(self):
        """``(name, per-step array)`` pairs, as ``dict.items()``."""
        return self._metrics.items()

    def as_dict(self) -> Dict[str, np.ndarray]:
        """A shallow copy of the metric arrays."""
        return dict(self._metrics)

    def __len__(self) -> int:
        """The number of logged steps (the length of ``loss``, else the longest array)."""
        if "loss" in self._metrics:
            return int(np.asarray(self._metrics["loss"]).shape[0])
        return max((int(np.asarray(v).reshape(-1).shape[0]) for v in self._metrics.values()),
                   default=0)

    @property
    def diverged(self) -> bool:
        """Whether the run stopped on a non-finite loss or weights."""
        if "diverged" in self.metadata:
            return bool(self.metadata["diverged"])
        if "finite" in self._metrics:
            return bool(np.any(np.asarray(self._metrics["finite"]) == 0))
        return False

    def __repr__(self) -> str:
        return (f"FitHistory({len(self)} steps, metrics={sorted(self._metrics)}, "
                f"diverged={self.diverged})")

    # -- persistence ----------------------------------------------------------
    def save(self, path: str) -> str:
        """Write every metric and the metadata to one ``.npz`` file; returns its path.

        The file is written next to its final name and then moved there, so
        a failed write never leaves a truncated history behind.

        Raises:
            ValueError: a metadata value that is not a JSON value (named).
            OSError: the file cannot be written.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path must be a file path, got {path!r}")
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        text = json.dumps({str(k): _json_value(f"metadata[{k!r}]", v)
                           for k, v in self.metadata.items()})
        members = {**self._metrics, _METADATA_KEY: np.asarray(text)}
        partial = path + ".partial"
        try:
            # What np.savez writes, without its keyword arguments (a metric
            # named "file" or "allow_pickle" would collide with them).
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, array in members.items():
                    with archive.open(name + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        return path

    @classmethod
    def load(cls, path: str) -> "FitHistory":
        """Read a file written by :meth:`save`.

        Raises:
            OSError: the file cannot be read (e.g. it does not exist).
            ValueError: the file is not one :meth:`save` wrote (not a ``.npz``
                archive, a member that is not a numeric array, or metadata that
                is not a JSON object); the message names the file.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path must be a file path, got {path!r}")
        path = os.fspath(path)
        with open(path, "rb") as fh:  # OSError (no such file, ...) as it is
            is_zip = zipfile.is_zipfile(fh)
        if not is_zip:
            raise ValueError(f"{path} is not a FitHistory file: FitHistory.save writes a "
                             ".npz (zip) archive of NumPy arrays")
        metrics, metadata = {}, {}
        try:
            with np.load(path, allow_pickle=False) as data:
                for name in data.files:
                    try:
                        array = data[name]
                    except ValueError:
                        raise ValueError(f"{path} is not a FitHistory file: its member "
                                         f"{name!r} is not a numeric array") from None
                    if name == _METADATA_KEY:
                        metadata = json.loads(str(array))
                    else:
                        metrics[name] = array
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise ValueError(f"{path} is not a readable FitHistory file: {err}") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: the FitHistory metadata is not valid JSON ({err})"
                             ) from None
        if not isinstance(metadata, dict):
            raise ValueError(f"{path}: the FitHistory metadata is not a JSON object")
        return cls(metadata=metadata, **metrics)

    # -- text summary ---------------------------------------------------------
    def summary(self, metrics: Optional[list] = None) -> str:
        """A short table: per metric its first, last, min and max (finite values)."""
        names = list(metrics) if metrics is not None else sorted(self._metrics)
        rows = [("metric", "first", "last", "min", "max")]
        for name in names:
            a = np.asarray(self._metrics[name], dtype=np.float64).reshape(-1)
            f = _finite(a)
            rows.append((
                name,
                _fmt(float(a[0])) if a.size else "-",
                _fmt(float(a[-1])) if a.size else "-",
                _fmt(float(f.min())) if f.size else "nan",
                _fmt(float(f.max())) if f.size else "nan",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [
            "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths)))
            for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        head = f"{len(self)} steps" + (", DIVERGED" if self.diverged else "")
        return head + "\n" + "\n".join(lines)

    # -- plots ------------------------------------------------------------------
    def plot_results(self, path: Optional[str] = None, title: Optional[str] = None):
        """Draw the run's panels; with ``path``, save a PNG there and return the path.

        Panels: loss (log scale); alpha and alpha_would; curvature proxy and
        its EMA; stability margins ``eta * lambda_max`` with the line at 2 and
        the update map's spectral radii; update cosine, angle and radius
        ratio; intended vs applied update norms; rail pressures (saturation,
        near-rail and underflow fractions) when the run was quantized; weight
        error and norm. Panels whose metrics are absent or all NaN say so.
        Without ``path`` the matplotlib Figure is returned (not closed).
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = np.arange(len(self))
        fig, axes = plt.subplots(4, 2, figsize=(13, 13), constrained_layout=True)
        axes = axes.ravel()

        def draw(ax, names, heading, log=False, hlines=(), ylim=None):
            drawn = False
            for name in names:
                if name not in self._metrics:
                    continue
                a = np.asarray(self._metrics[name], dtype=np.float64).reshape(-1)
                if not np.any(np.isfinite(a)):
                    continue
                if log:
                    a = np.where(a > 0, a, np.nan)
                ax.plot(steps[: a.size], a, label=name, lw=1.2)
                drawn = True
            for y, label in hlines:
                ax.axhline(y, color="k", ls="--", lw=0.8, label=label)
            ax.set_title(heading)
            ax.set_xlabel("step")
            if drawn:
                if log:
                    ax.set_yscale("log")
                if ylim is not None:
                    ax.set_ylim(*ylim)
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "not logged for this run", ha="center", va="center",
                        transform=ax.transAxes, color="gray")
            ax.grid(alpha=0.3)
            if "finite" in self._metrics:
                bad = np.flatnonzero(np.asarray(self._metrics["finite"]) == 0)
                if bad.size:
                    ax.axvline(bad[0], color="r", lw=1.0, alpha=0.7)

        draw(axes[0], ["loss"], "loss (log scale)", log=True)
        draw(axes[1], ["alpha", "alpha_would"], "step-size throttle", ylim=(0, 1.05))
        draw(axes[2], ["curvature_proxy", "curvature_ema"], "curvature proxy C and its EMA",
             log=True)
        draw(axes[3], ["stability_margin_lambda_raw", "stability_margin_lambda_ctrl",
                       "spectral_radius_raw", "spectral_radius_ctrl"],
             "stability: eta*lambda_max (2 = edge) and spectral radius (1 = edge)",
             hlines=((2.0, "eta*lambda_max = 2"), (1.0, "radius = 1")))
        draw(axes[4], ["update_cosine", "update_angle_rad", "update_radius_ratio"],
             "update geometry: applied vs intended")
        draw(axes[5], ["raw_update_norm", "actual_update_norm"],
             "update norms: intended vs applied (log)", log=True)
        rails = [k for k in sorted(self._metrics) if k.endswith("_fraction_max")]
        draw(axes[6], rails, "rail pressure (fractions of entries)", ylim=(-0.02, 1.02))
        draw(axes[7], ["weight_error_fro", "theta_norm"], "weights")
        if title or self.metadata.get("title"):
            fig.suptitle(title or self.metadata.get("title"))
        if path is None:
            return fig
        path = str(path)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return path

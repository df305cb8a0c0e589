"""``kappa inspect``: what storing saved weights in a fixed-point format would do to them.

Reads the weights of a saved model with h5py and NumPy, without TensorFlow:
a ``.keras`` file (a zip holding ``model.weights.h5``), a ``.weights.h5`` or
other Keras HDF5 file, an ``.npz`` or an ``.npy``. Optimizer state is left
out: it is not part of what the model computes. For every weight and format
it measures, with :mod:`tensorflow_kappa.core` (the ops' own kernels):

* the rail statistics: the fractions saturated (beyond the rails), near a
  rail and underflowing (nonzero values the format sends to 0);
* the quantization error ``quantize(w, fmt) - w``: its maximum magnitude and
  its root mean square, over the finite elements.

Each weight is quantized in its own dtype (float16 in float32), as the ops
would; a format too wide for that dtype (more than 24 bits for float32) is
applied in float64. :func:`summarize` pools the weights per format and
:func:`suggest` picks one.

Example:
>>> w = [Weight("dense", "0", np.array([0.3, -1.2, 2.9], np.float32)),
...      Weight("dense", "1", np.array([0.01, 0.0], np.float32))]
>>> reports = inspect_weights(w, ["s8.4", "s8.5", "s8.6"])
>>> print(format_comparison(summarize(reports)))
format  max error  RMS error  worst saturation    worst underflow
-----------------------------------------------------------------
s8.4        0.025     0.0144             0.00%  100.00% (dense/1)
s8.5       0.0125     0.0095             0.00%  100.00% (dense/1)
s8.6        0.916      0.409  33.33% (dense/0)              0.00%
>>> suggest(summarize(reports), w)
'suggestion: s8.5 (no weight saturates, and its RMS error is the lowest of those); finest without saturation: s8.5'
"""
from __future__ import annotations

import io
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from tensorflow_kappa import core
from tensorflow_kappa.core.fixed_point import FixedPoint
from tensorflow_kappa.experiments.reporting import text_table

__all__ = ["FormatSummary", "Weight", "WeightReport", "finest_without_saturation",
           "format_comparison", "format_weights", "inspect_weights", "load_weights",
           "suggest", "summarize"]

SUFFIXES = (".keras", ".h5", ".hdf5", ".npz", ".npy")
#: Top-level HDF5 groups that hold optimizer state (Keras 3, Keras 2).
_OPTIMIZER_GROUPS = ("optimizer", "optimizer_weights")


@dataclass(frozen=True)
class Weight:
    """One stored array: the layer it belongs to, its name there, its values."""

    layer: str
    name: str
    values: np.ndarray

    @property
    def label(self) -> str:
        """``layer/name``, or the layer alone for an unnamed weight."""
        return f"{self.layer}/{self.name}" if self.name else self.layer


@dataclass(frozen=True)
class WeightReport:
    """One weight in one format."""

    label: str
    shape: Tuple[int, ...]
    fmt_text: str
    saturation: float
    near_rail: float
    underflow: float
    max_error: float
    sum_sq_error: float  # over the finite elements
    finite: int  # elements that are finite numbers

    @property
    def rms_error(self) -> float:
        """The RMS quantization error over the weight's finite elements."""
        return math.sqrt(self.sum_sq_error / self.finite) if self.finite else 0.0


@dataclass(frozen=True)
class FormatSummary:
    """All weights in one format: the worst of each statistic and the pooled error."""

    fmt_text: str
    reports: Tuple[WeightReport, ...]

    def _worst(self, field: str) -> WeightReport:
        return max(self.reports, key=lambda r: getattr(r, field))

    @property
    def worst_saturation(self) -> WeightReport:
        """The report of the weight with the largest saturated fraction."""
        return self._worst("saturation")

    @property
    def worst_underflow(self) -> WeightReport:
        """The report of the weight with the largest underflowing fraction."""
        return self._worst("underflow")

    @property
    def max_error(self) -> float:
        """The largest quantization error over every weight."""
        return max(r.max_error for r in self.reports)

    @property
    def rms_error(self) -> float:
        """Over every finite element of every weight."""
        finite = sum(r.finite for r in self.reports)
        return math.sqrt(sum(r.sum_sq_error for r in self.reports) / finite) if finite else 0.0


# Reading ------------------------------------------------------------------------

def load_weights(path: Union[str, Path]) -> List[Weight]:
    """The float arrays stored in ``path`` (.keras, .h5/.hdf5, .npz, .npy), in file order.

    The file is read by its content (its first bytes), not by its name: an ``.npz``
    saved under a ``.npy`` name, or the reverse, is read as what it is.

    Raises:
        ValueError: the file is missing, holds none of those kinds (by content),
            is damaged or unreadable (a pickled object array is not read), or
            holds no float arrays.
        ImportError: a Keras file but no h5py.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npy")
    >>> with open(path, "wb") as handle:  # an .npz under an .npy name
    ...     np.savez(handle, kernel=np.ones(2, np.float32))
    >>> [w.label for w in load_weights(path)]
    ['w/kernel']
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist")
    try:
        kind = _content_kind(path)
        if kind == "npy":
            found = [Weight(_stem(path), "", np.load(path, allow_pickle=False))]
        elif kind == "npz":
            with np.load(path, allow_pickle=False) as npz:
                found = [Weight(*_split_key(key, path), npz[key]) for key in npz.files]
        elif kind == "keras":
            with zipfile.ZipFile(path) as archive:
                found = _read_h5(io.BytesIO(archive.read("model.weights.h5")))
        else:
            found = _read_h5(path)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"model file {str(path)!r} cannot be read: {err}") from err
    weights = [w for w in found if w.values.dtype.kind == "f"]
    if not weights:
        raise ValueError(f"model file {str(path)!r} holds no float arrays")
    return weights


#: The first bytes of each kind of file :func:`load_weights` reads.
_NPY_MAGIC, _HDF5_MAGIC, _ZIP_MAGICS = b"\x93NUMPY", b"\x89HDF\r\n\x1a\n", (b"PK\x03\x04",
                                                                             b"PK\x05\x06")


def _content_kind(path: Path) -> str:
    """What ``path`` holds by its content: ``"npy"``, ``"npz"``, ``"keras"`` or
    ``"hdf5"``; else ValueError (naming the kinds the command reads)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if head.startswith(_ZIP_MAGICS):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if "model.weights.h5" in names:
            return "keras"
        if all(name.endswith(".npy") for name in names):
            return "npz"
        raise ValueError("a zip archive that holds neither model.weights.h5 (a .keras file) "
                         "nor only .npy arrays (an .npz file)")
    raise ValueError(f"its content is none of the kinds read (expected one of "
                     f"{', '.join(SUFFIXES)}: a Keras zip, HDF5, an .npz or an .npy file); "
                     f"it starts with {head!r}")


def _stem(path: Path) -> str:
    """The file's name without its (known) suffix: the label of an .npy's one array."""
    suffix = path.suffix.lower()
    return path.name[: -len(suffix)] if suffix in SUFFIXES else path.name


def _split_key(key: str, path: Path) -> Tuple[str, str]:
    """An .npz key as (layer, name): 'dense/kernel' -> ('dense', 'kernel')."""
    layer, _, name = key.rpartition("/")
    return (layer or path.stem), name


def _read_h5(source) -> List[Weight]:
    """Every dataset of a Keras HDF5 file outside its optimizer groups. A Keras 3
    file keeps a layer's variables in ``.../vars/<index>``, the layer's name in
    that group's ``name`` attribute."""
    try:
        import h5py
    except ImportError as err:
        raise ImportError("reading Keras files (.keras, .h5) needs h5py: "
                          "`pip install h5py`") from err
    found = []

    def visit(name: str, obj) -> None:
        if not isinstance(obj, h5py.Dataset) or name.split("/")[0] in _OPTIMIZER_GROUPS:
            return
        group = obj.parent
        layer = group.attrs.get("name", group.name.strip("/"))
        if isinstance(layer, bytes):
            layer = layer.decode()
        found.append((_natural_key(name), Weight(str(layer), name.rsplit("/", 1)[-1], obj[()])))

    with h5py.File(source, "r") as f:
        f.visititems(visit)  # in name order: vars/10 before vars/2
    return [weight for _, weight in sorted(found, key=lambda item: item[0])]


def _natural_key(path: str) -> list:
    """'layers/dense_10/vars/2' sorts after 'layers/dense_2/vars/10'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


# Measuring ------------------------------------------------------------------------

def _compute_values(values: np.ndarray, fmt: FixedPoint) -> np.ndarray:
    """``values`` in the dtype the ops would quantize them in (float16: float32), or
    float64 where the format is too wide for it; C-contiguous."""
    dtype = np.float64 if values.dtype == np.float64 else np.float32
    if not fmt.fits_dtype(dtype):
        dtype = np.float64
    return np.ascontiguousarray(values, dtype)


def _report(weight: Weight, fmt: FixedPoint, near_rail: float, seed) -> WeightReport:
    x = _compute_values(weight.values, fmt)
    stats = core.rail_stats(x, fmt, near_rail)
    wide = x.astype(np.float64).ravel()
    error = core.quantize(x, fmt, seed=seed).astype(np.float64).ravel() - wide
    error = error[np.isfinite(wide)]
    return WeightReport(
        label=weight.label, shape=tuple(weight.values.shape), fmt_text=str(fmt),
        saturation=float(stats.saturation_fraction), near_rail=float(stats.near_rail_fraction),
        underflow=float(stats.underflow_fraction),
        max_error=float(np.max(np.abs(error))) if error.size else 0.0,
        sum_sq_error=float(np.dot(error, error)), finite=int(error.size))


def inspect_weights(weights: Sequence[Weight], formats: Iterable[Union[FixedPoint, str]],
                    near_rail: float = 0.9, seed=(0, 0)) -> List[WeightReport]:
    """One report per format and weight (formats outer).

    ``seed`` keys stochastic rounding (the same seed for every weight, as one
    op call per weight with that seed would).

    Raises:
        ValueError: a bad format, ``near_rail`` or ``seed``.
    """
    fmts = [FixedPoint.coerce(f) for f in formats]
    if not fmts:
        raise ValueError("formats must name at least one format, e.g. 's8.4'")
    return [_report(w, fmt, near_rail, seed) for fmt in fmts for w in weights]


def summarize(reports: Sequence[WeightReport]) -> List[FormatSummary]:
    """The reports grouped by format, in their order."""
    order = list(dict.fromkeys(r.fmt_text for r in reports))
    return [FormatSummary(f, tuple(r for r in reports if r.fmt_text == f)) for f in order]


def finest_without_saturation(weights: Sequence[Weight], bits: int,
                              signed: bool = True) -> Optional[FixedPoint]:
    """The format of ``bits`` bits with the most fractional bits whose rails hold
    every finite value of ``weights``; None where there is none (negative values
    and an unsigned format) or no bound (all values 0).

    Example:
    >>> finest_without_saturation([Weight("w", "", np.array([-3.0, 1.5]))], 8)
    FixedPoint(bits=8, frac_bits=5, signed=True, rounding='nearest_even', overflow='saturate')
    """
    finite = [w.values[np.isfinite(w.values)].astype(np.float64) for w in weights]
    low = min((float(v.min()) for v in finite if v.size), default=0.0)
    high = max((float(v.max()) for v in finite if v.size), default=0.0)
    if (low < 0 and not signed) or low == high == 0:
        return None
    # Rails code_min * 2**-f <= low and code_max * 2**-f >= high give an upper
    # bound on f; from just above it, step down to the exact boundary.
    probe = FixedPoint(bits, 0, signed)
    bounds = [math.log2(probe.code_max / high)] if high > 0 else []
    bounds += [math.log2(probe.code_min / low)] if low < 0 else []
    frac = math.floor(min(bounds)) + 1
    while True:
        fmt = FixedPoint(bits, frac, signed)
        if fmt.max_value >= high and fmt.min_value <= low:
            return fmt
        frac -= 1


# Reporting --------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def format_weights(reports: Sequence[WeightReport]) -> str:
    """Per weight: shape, rail statistics and quantization error, as a text table."""
    rows = [("format", "layer/weight", "shape", "saturated", "near rail", "underflow",
             "max error", "RMS error")]
    rows += [(r.fmt_text, r.label, "x".join(map(str, r.shape)) or "scalar", _pct(r.saturation),
              _pct(r.near_rail), _pct(r.underflow), f"{r.max_error:.3g}", f"{r.rms_error:.3g}")
             for r in reports]
    return text_table(rows, left=3)


def format_comparison(summaries: Sequence[FormatSummary]) -> str:
    """Per format: the largest and the pooled RMS error, the worst saturation and
    underflow fractions and the weights they occur in, as a text table."""
    def worst(fraction: float, label: str) -> str:
        return _pct(fraction) + (f" ({label})" if fraction else "")

    rows = [("format", "max error", "RMS error", "worst saturation", "worst underflow")]
    for s in summaries:
        sat, und = s.worst_saturation, s.worst_underflow
        rows.append((s.fmt_text, f"{s.max_error:.3g}", f"{s.rms_error:.3g}",
                     worst(sat.saturation, sat.label), worst(und.underflow, und.label)))
    return text_table(rows, left=1)


def suggest(summaries: Sequence[FormatSummary], weights: Sequence[Weight]) -> str:
    """One line: the format with the lowest RMS error among those under which no
    weight saturates (else the one saturating least), and for each width
    inspected the finest format that holds every weight."""
    clean = [s for s in summaries if s.worst_saturation.saturation == 0]
    if clean:
        best = min(clean, key=lambda s: s.rms_error)
        why = ("no weight saturates, and its RMS error is the lowest of those" if len(clean) > 1
               else "no weight saturates")
    else:
        best = min(summaries, key=lambda s: (s.worst_saturation.saturation, s.rms_error))
        why = (f"every format saturates; this one least ({_pct(best.worst_saturation.saturation)}"
               f" of {best.worst_saturation.label})")
    widths = dict.fromkeys((f.bits, f.signed) for f in
                           (FixedPoint.parse(s.fmt_text) for s in summaries))
    finest = [finest_without_saturation(weights, bits, signed) for bits, signed in widths]
    text = ", ".join(str(f) for f in finest if f is not None)
    return f"suggestion: {best.fmt_text} ({why})" + (
        f"; finest without saturation: {text}" if text else "")

"""``quantize``, ``rail_stats`` and ``update_quantize_store`` on NumPy arrays.

Each function checks its arguments (the errors name the argument and what it
takes), then calls the compiled functor through the extension module
``tensorflow_kappa._kappa_core``, loaded on the first call. The definitions
of what they compute are the ops' (:func:`tensorflow_kappa.quantize_tensor`,
:func:`tensorflow_kappa.rail_stats`,
:func:`tensorflow_kappa.update_quantize_store`); the results are bit for bit
the ops' results on the CPU.

Example:
>>> w = np.array([1.0, 1.0, 1.0], np.float32)
>>> s = update_quantize_store(w, np.array([1.0, 0.0, 1e-6], np.float32), 0.5, "s8.4", "s8.4")
>>> w, float(s.update_underflow_fraction)
(array([0.5, 1. , 1. ], dtype=float32), 0.5)
"""
from __future__ import annotations

import importlib
import numbers
import sys
import sysconfig
import threading
from types import ModuleType
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from tensorflow_kappa.core.fixed_point import FixedPoint, FormatLike
from tensorflow_kappa.core.seeds import check_seed, rounds_stochastically
from tensorflow_kappa.core.stats import RailStats, UpdateStats

__all__ = ["RailStats", "UpdateStats", "check_near_rail", "extension", "get_num_threads",
           "quantize", "rail_stats", "set_num_threads", "update_quantize_store"]

SeedLike = Union[Sequence[int], np.ndarray, None]

_EXTENSION = "tensorflow_kappa._kappa_core"
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_lock = threading.Lock()
_extension: Optional[ModuleType] = None


def extension() -> ModuleType:
    """The compiled extension module, imported once.

    Raises:
        ImportError: it is not built for this Python (the message says how to
            build it).
    """
    global _extension
    with _lock:
        if _extension is None:
            try:
                _extension = importlib.import_module(_EXTENSION)
            except ImportError as err:
                raise ImportError(
                    f"tensorflow_kappa's NumPy extension ({_EXTENSION.rsplit('.', 1)[1]}"
                    f"{sysconfig.get_config_var('EXT_SUFFIX')}) is not built for this "
                    f"Python ({sys.version.split()[0]}): {err}. From the source checkout "
                    "run `pip install --no-build-isolation .` (configure.py and Bazel "
                    "build it with pybind11)."
                ) from err
        return _extension


# Arguments --------------------------------------------------------------------

def _check_array(a: object, name: str, writeable: bool = False) -> np.ndarray:
    """``a`` if it is a C-contiguous float32/float64 NumPy array (and writeable)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of dtype float32 or float64, got "
                        f"{type(a).__name__}; convert it with np.asarray({name}, np.float32)")
    if a.dtype not in _DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64 (native byte order), got "
                        f"{a.dtype.str if a.dtype.kind == 'f' else a.dtype}; convert it with "
                        f"{name}.astype(np.float32), or float64 for formats of more than 24 bits")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous, got a strided view (a slice, a "
                         f"transpose or a broadcast) of shape {a.shape}; pass "
                         f"np.ascontiguousarray({name})"
                         + (" and use that copy, which is the one updated" if writeable else ""))
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name} is read-only, but it is updated in place: pass a writeable "
                         f"array (a read-only one comes from np.load(..., mmap_mode='r'), "
                         f"np.broadcast_to or a frozen buffer; {name}.copy() is writeable)")
    return a


def _same_layout(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if b.dtype != a.dtype:
        raise TypeError(f"{b_name} must have the dtype of {a_name} ({a.dtype}), got {b.dtype}")
    if b.shape != a.shape:
        raise ValueError(f"{b_name} must have the shape of {a_name} {a.shape}, got {b.shape}")


def _format(fmt: object, name: str, dtype: np.dtype) -> FixedPoint:
    """``fmt`` coerced and checked against ``dtype``; errors name the argument."""
    try:
        fmt = FixedPoint.coerce(fmt)
        fmt.check_dtype(dtype)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    return fmt


def _format_tuple(fmt: Optional[FixedPoint]) -> Optional[Tuple[int, int, bool, str, str]]:
    """A format as the extension takes it."""
    if fmt is None:
        return None
    return (fmt.bits, fmt.frac_bits, fmt.signed, fmt.rounding, fmt.overflow)


def _seed(seed: SeedLike, *formats: Optional[FixedPoint]) -> Tuple[int, int]:
    """The two int64 seed words, as the ops take them. None: drawn from NumPy's
    global generator (reproducible under ``np.random.seed``) where a format
    rounds stochastically, else zeros (unused)."""
    if seed is None:
        if not rounds_stochastically(*formats):
            return 0, 0
        seed = np.random.randint(0, 2**62, size=2, dtype=np.int64)
    s0, s1 = check_seed(seed).tolist()
    return s0, s1


def check_near_rail(near_rail: object) -> float:
    """``near_rail`` as the float32 value the op attribute holds, after checking it."""
    if isinstance(near_rail, (bool, np.bool_)) or not isinstance(near_rail, numbers.Real):
        raise ValueError(f"near_rail must be a number in [0, 1], got {near_rail!r}")
    if not 0.0 <= float(near_rail) <= 1.0:
        raise ValueError(f"near_rail must lie in [0, 1], got {near_rail!r}")
    return float(np.float32(near_rail))


def _learning_rate(learning_rate: object, dtype: np.dtype) -> float:
    """``learning_rate`` as the extension takes it, checked as the op checks it: in the
    arrays' ``dtype`` (1e40 is infinite in float32, and would turn the weights of zero
    gradients into NaN), where it must be finite and >= 0."""
    value = learning_rate
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "fiu":
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"learning_rate must be a real number, got {learning_rate!r}")
    with np.errstate(over="ignore"):
        rounded = dtype.type(value)
    if not (np.isfinite(rounded) and rounded >= 0):
        raise ValueError(f"learning_rate must be finite and >= 0 in the arrays' dtype "
                         f"({dtype}), got {learning_rate!r}")
    return float(value)


# The functions ------------------------------------------------------------------

def quantize(x: np.ndarray, fmt: FormatLike, seed: SeedLike = None,
             out: Optional[np.ndarray] = None) -> np.ndarray:
    """``x`` on the fixed-point grid of ``fmt``: :func:`tensorflow_kappa.quantize_tensor`
    on a NumPy array, bit for bit.

    Rounds ``x / fmt.lsb`` by ``fmt.rounding``, brings the code into range by
    ``fmt.overflow`` and returns ``code * fmt.lsb``. NaN stays NaN, +-Inf go
    to the rails, subnormal values count as zeros of their sign.

    Args:
        x: a C-contiguous float32 or float64 NumPy array of any shape.
        fmt: a FixedPoint or its string form, e.g. ``"s8.4:stochastic"``; it
            must fit ``x``'s dtype (float32 takes at most 24 bits).
        seed: two integers keying stochastic rounding, each in the int64 range
            (the op's seed: the same seed gives the same result). None draws
            one from NumPy's global generator when ``fmt`` is stochastic.
        out: where to write the result (a writeable C-contiguous array of
            ``x``'s dtype and shape, or ``x`` itself for in place); None
            allocates it. Results of 1 MiB or more reuse the memory of freed
            results of the same size (up to 256 MiB of it is kept), as
            TensorFlow's allocator does: a fresh large array would be
            page-faulted in and zero-filled by the kernel, which costs about
            as much as quantizing it.

    Returns:
        The quantized array (``out`` when given).

    Raises:
        TypeError: ``x`` or ``out`` is not a float32/float64 NumPy array, or
            their dtypes differ.
        ValueError: a non-contiguous array, a read-only ``out``, mismatched
            shapes, ``out`` partly overlapping ``x``, a bad ``fmt`` or one
            that does not fit the dtype, a bad ``seed``.

    Example:
    >>> x = np.array([0.3, 0.3, 0.3, 0.3], np.float32)
    >>> quantize(x, "s8.2:stochastic", seed=(1, 2))  # up with probability 0.2
    array([0.5 , 0.25, 0.25, 0.25], dtype=float32)
    >>> quantize(np.array([-0.7, 1.9]), "u4.0:wrap")  # float64; -1 wraps to 15
    array([15.,  2.])
    """
    x = _check_array(x, "x")
    fmt = _format(fmt, "fmt", x.dtype)
    seed0, seed1 = _seed(seed, fmt)
    if out is not None:
        _check_array(out, "out", writeable=True)
        _same_layout(x, "x", out, "out")
        if np.may_share_memory(x, out) and out.ctypes.data != x.ctypes.data:
            raise ValueError("out overlaps x partly: pass x itself (in place) or a separate array")
    return extension().quantize(x, out, _format_tuple(fmt), seed0, seed1)


def rail_stats(x: np.ndarray, fmt: FormatLike, near_rail: float = 0.9) -> RailStats:
    """How close ``x`` runs to the rails of ``fmt``: :func:`tensorflow_kappa.rail_stats`
    on a NumPy array, bit for bit.

    With ``min_value``/``max_value`` the rails of ``fmt`` and
    ``m = (1 - near_rail) * (max_value - min_value) / 2``: the fraction of
    elements beyond the rails (saturated), the fraction with
    ``x >= max_value - m`` or ``x <= min_value + m`` (near a rail, the
    saturated ones included), and among the nonzero, non-NaN elements the
    fraction that ``fmt`` (nearest-even, saturating) sends to 0 (underflow).

    Args:
        x: a C-contiguous float32 or float64 NumPy array of any shape.
        fmt: a FixedPoint or its string form; only its bits, frac_bits and
            signedness matter. It must fit ``x``'s dtype.
        near_rail: in [0, 1], held as float32 (as the op's attribute).

    Returns:
        RailStats of three float32 scalars.

    Raises:
        TypeError: ``x`` is not a float32/float64 NumPy array.
        ValueError: a non-contiguous ``x``, a bad ``fmt`` or ``near_rail``.

    Example:
    >>> s = rail_stats(np.array([0.01, 7.9, 8.5, -9.0], np.float32), "s8.4")
    >>> [float(v) for v in s]  # saturation, near rail, underflow
    [0.5, 0.75, 0.25]
    """
    x = _check_array(x, "x")
    fmt = _format(fmt, "fmt", x.dtype)
    near = check_near_rail(near_rail)
    values = extension().rail_stats(x, _format_tuple(fmt), near)
    return RailStats(*(np.float32(v) for v in values))


def update_quantize_store(
    w: np.ndarray,
    grad: np.ndarray,
    learning_rate: float,
    update_format: Optional[FormatLike] = None,
    storage_format: Optional[FormatLike] = None,
    seed: SeedLike = None,
) -> UpdateStats:
    """One quantized SGD step on ``w``, in place: :func:`tensorflow_kappa.update_quantize_store`
    on a NumPy array, bit for bit (weights and statistics).

    Element by element, in ``w``'s dtype::

        raw   = -learning_rate * grad
        delta = quantize(raw, update_format)        # raw if None
        w     = quantize(w + delta, storage_format)  # unquantized if None

    Args:
        w: the weights, a C-contiguous, writeable float32 or float64 array;
            updated in place.
        grad: the gradient, a C-contiguous array of ``w``'s dtype and shape
            that does not share memory with ``w``.
        learning_rate: a real number, rounded to ``w``'s dtype (as the op
            casts it), where it must be finite and >= 0 (as the op requires).
        update_format, storage_format: FixedPoint, string or None; each must
            fit ``w``'s dtype.
        seed: two integers keying stochastic rounding (the storage rounding
            draws an independent stream of the same seed); None draws one
            from NumPy's global generator when a format is stochastic.

    Returns:
        UpdateStats of five float32 scalars: ``||raw||``, ``||new - old||``,
        ``<raw, new - old>``, the fraction of nonzero raw steps whose delta is
        0, the fraction of ``w + delta`` beyond the storage rails.

    Raises:
        TypeError: ``w`` or ``grad`` is not a float32/float64 NumPy array,
            their dtypes differ, or ``learning_rate`` is not a real number.
        ValueError: a non-contiguous array, a read-only ``w``, different
            shapes, ``grad`` sharing memory with ``w``, a ``learning_rate``
            that is negative or not finite in ``w``'s dtype (``1e40`` for
            float32), a bad format or seed.

    Example:
    >>> w = np.array([1.0, 7.0])
    >>> s = update_quantize_store(w, np.array([1.0, -3.0]), 0.5, None, "s8.4")
    >>> w, float(s.storage_saturation_fraction)  # 7 + 1.5 is stored at the rail
    (array([0.5   , 7.9375]), 0.5)
    """
    w = _check_array(w, "w", writeable=True)
    grad = _check_array(grad, "grad")
    _same_layout(w, "w", grad, "grad")
    if np.may_share_memory(w, grad):  # exact for C-contiguous arrays
        raise ValueError("grad shares memory with w, which is updated in place: pass a copy")
    lr = _learning_rate(learning_rate, w.dtype)
    update_fmt = None if update_format is None else _format(update_format, "update_format",
                                                            w.dtype)
    storage_fmt = None if storage_format is None else _format(storage_format,
                                                              "storage_format", w.dtype)
    seed0, seed1 = _seed(seed, update_fmt, storage_fmt)
    values = extension().update_quantize_store(w, grad, lr, _format_tuple(update_fmt),
                                               _format_tuple(storage_fmt), seed0, seed1)
    return UpdateStats(*(np.float32(v) for v in values))


def set_num_threads(threads: int) -> None:
    """Use at most ``threads`` threads per call (default: the CPUs this process
    may run on). Results do not depend on it: the work is split into the
    same blocks whatever the number of threads.

    Raises:
        ValueError: ``threads`` is not a positive integer.
    """
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, numbers.Integral) \
            or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    extension().set_num_threads(int(threads))


def get_num_threads() -> int:
    """The most threads one call uses (:func:`set_num_threads`)."""
    return extension().get_num_threads()

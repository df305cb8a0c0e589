"""The fixed-point kernels on NumPy arrays, without TensorFlow.

The C++ functors that the ops ``quantize_tensor``, ``rail_stats`` and
``update_quantize_store`` run on the CPU, bound to NumPy with pybind11: the
same arithmetic, bit for bit (the same code, not a copy), multithreaded with
the GIL released, on the arrays' own memory. Nothing here imports TensorFlow,
so saved weights can be examined in a notebook or a script in a fraction of
TensorFlow's start-up time (``kappa inspect`` is built on it).

* :func:`quantize`: an array on the grid of a format (``"s8.4:stochastic"``);
* :func:`rail_stats`: how much of an array sits on or near the rails of a
  format, how much underflows to 0;
* :func:`update_quantize_store`: the fused quantized SGD step, in place;
* :class:`FixedPoint`: formats (shared with :mod:`tensorflow_kappa.quantization`);
* :func:`set_num_threads` / :func:`get_num_threads`: threads per call.

Arrays must be NumPy arrays of dtype float32 or float64, C-contiguous (and
writeable where written): nothing is copied or converted behind your back.
The compiled extension is loaded on the first call.

Example:
>>> import numpy as np
>>> from tensorflow_kappa import core
>>> core.quantize(np.array([0.1, 0.3, 100.0], np.float32), "s8.4")
array([0.125 , 0.3125, 7.9375], dtype=float32)
>>> [round(float(v), 4) for v in core.rail_stats(np.array([0.01, 7.9, 8.5, -9.0]), "s8.4")]
[0.5, 0.75, 0.25]
"""
from tensorflow_kappa.core.fixed_point import OVERFLOW_MODES, ROUNDING_MODES, FixedPoint
from tensorflow_kappa.core.ops import (
    RailStats,
    UpdateStats,
    get_num_threads,
    quantize,
    rail_stats,
    set_num_threads,
    update_quantize_store,
)

__all__ = [
    "FixedPoint",
    "OVERFLOW_MODES",
    "ROUNDING_MODES",
    "RailStats",
    "UpdateStats",
    "get_num_threads",
    "quantize",
    "rail_stats",
    "set_num_threads",
    "update_quantize_store",
]

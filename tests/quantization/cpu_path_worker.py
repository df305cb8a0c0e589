"""Runs the custom ops over the quantization matrix on one CPU path, for
test_cpu_paths.py.

    KAPPA_CPU_PATH=avx2 python cpu_path_worker.py OUT.npz

saves every result's bits (as unsigned integers) under its case name, and
the path the library reports under ``"cpu_path"``. The cases are built by
:func:`cases`, deterministically, so the test rebuilds the same inputs.
"""
import json
import sys

import numpy as np
import tensorflow as tf

from references.op_cases import DTYPES, MODE_PAIRS, RAIL_FORMATS, edge_values, formats_for, inputs, values_for
from test_rail_stats import fits
from tensorflow_kappa import _ops
from tensorflow_kappa.quantization import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    FixedPoint,
    quantize_tensor,
    rail_stats,
    update_quantize_store,
)

SEED = (7, -3)
LEARNING_RATE = 0.375
NEAR_RAIL = (0.9, 0.5)


def _quantize_inputs(fmt, dtype, salt):
    """Edge values, then random ones across and beyond the format's range; an
    odd count, so every vector loop has a tail."""
    rng = np.random.default_rng(salt)
    spread = max(fmt.max_value - fmt.min_value, 4 * fmt.lsb)
    rand = rng.uniform(fmt.min_value - spread / 4, fmt.max_value + spread / 4, 4093)
    with np.errstate(over="ignore"):
        return np.concatenate([edge_values(fmt, dtype), rand.astype(dtype.as_numpy_dtype)])


def cases():
    """(name, op, arguments) for every case, in a fixed order."""
    salt = 0
    for dtype in DTYPES:
        for r in ROUNDING_MODES:
            for o in OVERFLOW_MODES:
                for fmt in formats_for(dtype, r, o):
                    salt += 1
                    yield (f"quantize/{dtype.name}/{fmt}", "quantize",
                           (_quantize_inputs(fmt, dtype, salt), fmt, dtype))
    for dtype in (tf.float32, tf.float64):
        for k, text in enumerate(RAIL_FORMATS):
            if fits(text, dtype):
                fmt = FixedPoint.parse(text)
                for near_rail in NEAR_RAIL:
                    yield (f"rail_stats/{dtype.name}/{text}/{near_rail}", "rail_stats",
                           (values_for(fmt, dtype, k), fmt, near_rail, dtype))
    for np_dtype in (np.float32, np.float64):
        for k, (u, s) in enumerate(MODE_PAIRS):
            uf = None if u is None else FixedPoint.parse(u)
            sf = None if s is None else FixedPoint.parse(s)
            w, g = inputs(5003, np_dtype, 100 + k, sf)
            yield (f"update/{np.dtype(np_dtype).name}/{u}/{s}", "update", (w, g, uf, sf))


def bits(values) -> np.ndarray:
    """The raw bits of a float array (half types included) as unsigned integers."""
    a = np.asarray(values)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def run(name, op, args) -> np.ndarray:
    if op == "quantize":
        x, fmt, dtype = args
        return bits(quantize_tensor(tf.constant(x, dtype), fmt, seed=SEED).numpy())
    if op == "rail_stats":
        x, fmt, near_rail, dtype = args
        return bits(np.array([s.numpy() for s in rail_stats(tf.constant(x, dtype), fmt,
                                                            near_rail)], np.float32))
    w, g, uf, sf = args
    var = tf.Variable(w)
    stats = update_quantize_store(var, g, LEARNING_RATE, uf, sf, seed=SEED)
    return np.concatenate([bits(var.numpy()).astype(np.uint64),
                           bits(np.array([s.numpy() for s in stats], np.float32))])


def main(out_path):
    results = {name: run(name, op, args) for name, op, args in cases()}
    results["cpu_path"] = np.array(json.dumps(_ops.runtime_info()))
    np.savez(out_path, **results)


if __name__ == "__main__":
    main(sys.argv[1])

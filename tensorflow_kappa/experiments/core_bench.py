"""The NumPy binding against the TensorFlow ops, in one process (``kappa bench core``).

On ``size`` float32 elements (2**24 by default), each group times the custom
op (called from a ``tf.function``, as ``kappa bench ops`` does, so Python
dispatch is not measured) next to the same kernel called through
:mod:`tensorflow_kappa.core` on a NumPy array (Python argument checks
included):

* quantize, nearest-even and stochastic: the op, ``core.quantize(x, fmt)``
  (which allocates its result, as the op does) and
  ``core.quantize(x, fmt, out=y)`` into a reused array;
* rail statistics: the op and ``core.rail_stats``;
* update: the op on a variable and ``core.update_quantize_store`` in place.

Interleaved rounds and medians by :func:`~tensorflow_kappa.experiments.timing.measure`,
as in :mod:`tensorflow_kappa.experiments.op_bench`. The ratio the target names,
``core.quantize / op <= 1.1``, follows the table with the other groups', in wall
clock (judged) and process CPU time (steadier where other processes load the
machine).

Run: ``kappa bench core [--size N] [--repeats R]``.
"""
from __future__ import annotations

from typing import List

import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks, core
from tensorflow_kappa.experiments.op_bench import (LEARNING_RATE, QUANT_FORMAT, STORAGE_FORMAT,
                                                   UPDATE_FORMAT, block_until_ready)
from tensorflow_kappa.experiments.timing import Candidate, Report, measure, target
from tensorflow_kappa.quantization import quantize_tensor, rail_stats, update_quantize_store

#: ``run`` options of a smoke run (``--quick``).
QUICK = dict(size=1 << 16, repeats=2)

OP, CORE, CORE_OUT = "kappa custom op (tf.function)", "core (NumPy)", "core (NumPy), out="
#: The NumPy binding's time over the op's, at most.
TARGET = 1.1


def _candidates(size: int) -> List[Candidate]:
    rng = np.random.default_rng(0)
    x = (3.0 * rng.standard_normal(size)).astype(np.float32)
    g = rng.standard_normal(size).astype(np.float32)
    tx, tg, lr = tf.constant(x), tf.constant(g), tf.constant(LEARNING_RATE)
    y = np.empty_like(x)
    n4 = size * 4
    out: List[Candidate] = []
    for mode, seed in (("nearest_even", None), ("stochastic", (5, 6))):
        fmt = QUANT_FORMAT + ("" if seed is None else ":" + mode)
        op = tf.function(lambda t, fmt=fmt, seed=seed: quantize_tensor(t, fmt, seed=seed))
        group = f"quantize {mode}"
        out += [Candidate(group, OP, lambda op=op: op(tx), 2 * n4),
                Candidate(group, CORE, lambda fmt=fmt, seed=seed: core.quantize(x, fmt, seed),
                          2 * n4),
                Candidate(group, CORE_OUT,
                          lambda fmt=fmt, seed=seed: core.quantize(x, fmt, seed, out=y), 2 * n4)]
    rs = tf.function(lambda t: tuple(rail_stats(t, QUANT_FORMAT)))
    out += [Candidate("rail_stats", OP, lambda: rs(tx), n4),
            Candidate("rail_stats", CORE, lambda: core.rail_stats(x, QUANT_FORMAT), n4)]
    var, w = tf.Variable(x), x.copy()
    up = tf.function(lambda g, lr: tuple(update_quantize_store(
        var, g, lr, UPDATE_FORMAT, STORAGE_FORMAT, seed=(7, 8))))
    out += [Candidate("update", OP, lambda: up(tg, lr), 3 * n4),
            Candidate("update", CORE, lambda: core.update_quantize_store(
                w, g, LEARNING_RATE, UPDATE_FORMAT, STORAGE_FORMAT, seed=(7, 8)), 3 * n4)]
    return out


def run(size: int = 1 << 24, repeats: int = 7) -> Report:
    """Every candidate timed; the targets: each core candidate's medians over the op's
    of its group."""
    _checks.integer("size", size, minimum=1)
    with tf.device("/CPU:0"):
        candidates = _candidates(size)
        measure(candidates, repeats, block=block_until_ready)
    ops = {c.group: c for c in candidates if c.name == OP}
    threads = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    return Report(
        f"kappa bench core: {size} float32 elements, CPU; core threads "
        f"{core.get_num_threads()}, TensorFlow intra-op threads {threads}; median of "
        f"{repeats} interleaved rounds", candidates,
        [target(f"{c.group}: {c.name} / op", c, ops[c.group], TARGET)
         for c in candidates if c.name != OP])

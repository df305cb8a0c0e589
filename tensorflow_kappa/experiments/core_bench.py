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

Interleaved rounds and medians, as in :mod:`tensorflow_kappa.experiments.op_bench`
(whose timing loop this uses). The ratio the issue's target names,
``core.quantize / op <= 1.1``, follows the table with the other groups'.

Run: ``kappa bench core [--size N] [--repeats R]``.
"""
from __future__ import annotations

from typing import List

import numpy as np
import tensorflow as tf

from tensorflow_kappa import core
from tensorflow_kappa.experiments.op_bench import (LEARNING_RATE, QUANT_FORMAT, STORAGE_FORMAT,
                                                   UPDATE_FORMAT, Candidate, Target, measure)
from tensorflow_kappa.experiments.reporting import text_table
from tensorflow_kappa.quantization import quantize_tensor, rail_stats, update_quantize_store

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


def run(size: int = 1 << 24, repeats: int = 7) -> tuple:
    """(candidates, targets): every candidate timed; the core/op ratio of the
    wall-clock medians per group."""
    with tf.device("/CPU:0"):
        candidates = _candidates(size)
        measure(candidates, repeats)
    ops = {c.group: c.median_ms for c in candidates if c.name == OP}
    targets = [Target(f"{c.group}: {c.name} / op", c.median_ms / ops[c.group], TARGET, True)
               for c in candidates if c.name != OP]
    return candidates, targets


def format_report(candidates: List[Candidate], targets: List[Target], size: int,
                  repeats: int) -> str:
    """The table, then per group the wall-clock ratio the target is judged on and
    the process-CPU ratio (steadier where other processes load the machine)."""
    rows = [("group", "candidate", "wall ms", "cpu ms", "GB/s")]
    rows += [(c.group, c.name, f"{c.median_ms:.2f}", f"{c.median_cpu_ms:.2f}",
              f"{c.gb_per_s:.2f}") for c in candidates]
    op_cpu = {c.group: c.median_cpu_ms for c in candidates if c.name == OP}
    cpu = [c.median_cpu_ms / op_cpu[c.group] for c in candidates if c.name != OP]
    lines = [f"kappa bench core: {size} float32 elements, CPU; core threads "
             f"{core.get_num_threads()}, TensorFlow intra-op threads "
             f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}; "
             f"median of {repeats} interleaved rounds", "", text_table(rows, left=2), "",
             f"ratios of medians, wall clock (target <= {TARGET:g}) and process CPU:"]
    lines += [f"  {t.description:<48} wall {t.ratio:5.2f}  cpu {c:5.2f}  "
              f"{'met' if t.met else 'MISSED'}" for t, c in zip(targets, cpu)]
    return "\n".join(lines)

"""The ops' XLA lowerings timed side by side (``kappa bench xla``).

Two groups, in one process, each candidate inside a ``tf.function``, timed
by :func:`~tensorflow_kappa.experiments.timing.measure` (warmed up, then
called in turn round after round, so that load from other processes hits all
alike); medians over rounds of wall-clock and process CPU time (all threads;
less sensitive to other processes' load):

* fused: ``y = quantize(x @ W + b)`` with ``fused_size`` output elements
  (2**20 by default: ``x`` is [1024, k], ``W`` [k, fused_size / 1024]),
  compiled by XLA: the same graph without the quantize, with the lowered
  ``Kappa>Quantize``, and with the pure-TensorFlow twin; and, for
  comparison, the graph in a plain ``tf.function`` (TensorFlow's matmul and
  add, then the CPU kernel: one more pass over memory). XLA fuses the
  lowered op into the loop that adds the bias, so quantizing costs
  arithmetic, not another pass over memory; the goal is a fused graph at most
  10 % slower than the one without the quantize.
* standalone: ``quantize_tensor`` on ``size`` float32 elements (2**24 by
  default): the lowered op compiled alone by XLA against the CPU kernel in a
  ``tf.function``; the goal is at most 1.2 times the kernel's time.

Run: ``kappa bench xla [--size N] [--repeats R]``.
"""
from __future__ import annotations

from typing import List

import tensorflow as tf

from tensorflow_kappa.experiments.op_bench import block_until_ready
from tensorflow_kappa.experiments.timing import Candidate, Report, Target, measure, target
from tensorflow_kappa.quantization import composite_ops, quantize_tensor

#: ``run`` options of a smoke run (``--quick``).
QUICK = dict(size=1 << 16, repeats=2)

FORMAT = "s8.4"
ROWS = 1024


def _targets(report: Report) -> List[Target]:
    """The two goals (fused: quantize costs at most 10 %; standalone: at most 1.2 times the
    kernel) and two ratios shown for comparison."""
    def c(group, name):
        return report.candidate(group, name)

    lowered = c("fused", "XLA, lowered op")
    return [
        target("fused: lowered op / without quantize", lowered,
               c("fused", "XLA, without quantize"), 1.10),
        target("fused: lowered op / twin", lowered, c("fused", "XLA, pure-TF twin")),
        target("fused: lowered op / CPU kernel without XLA", lowered,
               c("fused", "tf.function, CPU kernel")),
        target("standalone: lowered op under XLA / CPU kernel",
               c("standalone", "XLA, lowered op alone"),
               c("standalone", "CPU kernel, tf.function"), 1.2),
    ]


def _candidates(size: int, fused_size: int, inner: int) -> List[Candidate]:
    cols = fused_size // ROWS
    x = tf.random.stateless_normal([ROWS, inner], seed=(1, 2))
    w = tf.random.stateless_normal([inner, cols], seed=(3, 4), stddev=inner ** -0.5)
    b = tf.random.stateless_normal([cols], seed=(5, 6))
    big = tf.random.stateless_normal([size], seed=(7, 8), stddev=3.0)

    def affine(x):
        return tf.matmul(x, w) + b

    def lowered(x):
        return quantize_tensor(affine(x), FORMAT)

    def twin(x):
        with composite_ops():
            return quantize_tensor(affine(x), FORMAT)

    def jit(fn):
        return tf.function(fn, jit_compile=True)

    plain_xla, lowered_xla, twin_xla = jit(affine), jit(lowered), jit(twin)
    alone_xla = jit(lambda v: quantize_tensor(v, FORMAT))
    unfused = tf.function(lowered)
    kernel = tf.function(lambda v: quantize_tensor(v, FORMAT))
    fused_bytes, alone_bytes = 4 * fused_size, 8 * size  # the output; input + output
    return [
        Candidate("fused", "XLA, without quantize", lambda: plain_xla(x), fused_bytes),
        Candidate("fused", "XLA, lowered op", lambda: lowered_xla(x), fused_bytes),
        Candidate("fused", "XLA, pure-TF twin", lambda: twin_xla(x), fused_bytes),
        Candidate("fused", "tf.function, CPU kernel", lambda: unfused(x), fused_bytes),
        Candidate("standalone", "XLA, lowered op alone", lambda: alone_xla(big), alone_bytes),
        Candidate("standalone", "CPU kernel, tf.function", lambda: kernel(big), alone_bytes),
    ]


def run(size: int = 1 << 24, fused_size: int = 1 << 20, inner: int = 256,
        repeats: int = 15, device: str = "/CPU:0") -> Report:
    """Time every candidate; see the module docstring."""
    if fused_size % ROWS:
        raise ValueError(f"fused_size must be a multiple of {ROWS}, got {fused_size}")
    with tf.device(device):
        candidates = _candidates(size, fused_size, inner)
        measure(candidates, repeats, block=block_until_ready)
    report = Report(
        f"kappa bench xla: quantize {FORMAT} under XLA, CPU, median of {repeats} interleaved "
        f"rounds\n  fused: y = quantize(x @ W + b), x [{ROWS}, {inner}], {fused_size} output "
        f"elements\n  standalone: {size} float32 elements", candidates)
    report.targets = _targets(report)
    return report

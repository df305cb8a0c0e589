"""Side-by-side benchmarks of the quantization ops (``kappa bench ops``).

On ``size`` float32 elements (2**24 by default), in one process, each group
times our custom op, our pure-TensorFlow twin in a ``tf.function``, the same
twin compiled by XLA, and TensorFlow's nearest built-in:

* quantize: ``quantize_tensor`` (nearest-even and stochastic) vs
  ``tf.quantization.fake_quant_with_min_max_args`` over the same range;
* rail statistics: ``rail_stats`` vs ``tf.reduce_sum`` (one read pass, the
  floor for any one-pass statistic);
* update: ``update_quantize_store`` vs ``assign_sub(learning_rate * grad)``.

Every candidate runs inside a ``tf.function`` (so Python dispatch is not
measured) and is timed by :func:`~tensorflow_kappa.experiments.timing.measure`:
called twice to warm up, then the candidates are called in turn, round after
round (interleaved, so that load from other processes hits all of them alike),
and the median over rounds is reported: wall-clock milliseconds, process CPU
milliseconds (all threads; insensitive to other processes), and the bandwidth
the candidate's compulsory memory traffic implies. The ratios that the
project's performance targets name follow the table, with a verdict each.

Where TensorFlow sees a GPU, the custom ops are also timed on it next to the
device-to-device copy (``tf.raw_ops.DeepCopy``) of the same run, with enough
calls inside one function that launch overhead does not count; the target is
at least :data:`GPU_FRACTION_OF_COPY` of the copy's bandwidth.

Run: ``kappa bench ops [--size N] [--repeats R]``.
"""
from __future__ import annotations

import os
from typing import List

import tensorflow as tf

from tensorflow_kappa import _checks, _ops
from tensorflow_kappa.experiments.timing import Candidate, Report, Target, measure, target
from tensorflow_kappa.quantization import (
    composite_ops,
    quantize_tensor,
    rail_stats,
    update_quantize_store,
)

#: ``run`` options of a smoke run (``--quick``).
QUICK = dict(size=1 << 16, repeats=2)

QUANT_FORMAT = "s8.4"
UPDATE_FORMAT = "s16.16"
STORAGE_FORMAT = "s16.12"
LEARNING_RATE = 1e-3
#: The GPU targets: the custom ops' bandwidth over the device-to-device copy's, at least.
GPU_FRACTION_OF_COPY = 0.7


def block_until_ready(result) -> None:
    """Wait for a TensorFlow call's result (scalars fetched; large tensors left on the
    device, whose queue is drained)."""
    for t in tf.nest.flatten(result):
        if isinstance(t, tf.Tensor) and t.shape.rank == 0:
            t.numpy()
    if tf.config.list_logical_devices("GPU"):
        tf.test.experimental.sync_devices()


def _candidates(size: int) -> List[Candidate]:
    x = tf.random.stateless_normal([size], seed=(1, 2), stddev=3.0)
    g = tf.random.stateless_normal([size], seed=(3, 4), stddev=1.0)
    lr = tf.constant(LEARNING_RATE)
    n4 = size * 4
    out: List[Candidate] = []

    def add(group, name, fn, bytes_moved):
        out.append(Candidate(group, name, fn, bytes_moved))

    def composite(fn, jit=False):
        def body(*args):
            with composite_ops():
                return fn(*args)

        return tf.function(body, jit_compile=jit)

    # quantize: read x, write y.
    q_ne = lambda x: quantize_tensor(x, QUANT_FORMAT)  # noqa: E731
    q_st = lambda x: quantize_tensor(x, QUANT_FORMAT + ":stochastic", seed=(5, 6))  # noqa: E731
    custom_ne, custom_st = tf.function(q_ne), tf.function(q_st)
    twin_ne, xla_ne = composite(q_ne), composite(q_ne, jit=True)
    fake = tf.function(lambda x: tf.quantization.fake_quant_with_min_max_args(
        x, min=-8.0, max=7.9375, num_bits=8))
    add("quantize", "kappa custom op, nearest_even", lambda: custom_ne(x), 2 * n4)
    add("quantize", "kappa custom op, stochastic", lambda: custom_st(x), 2 * n4)
    add("quantize", "kappa twin, tf.function", lambda: twin_ne(x), 2 * n4)
    add("quantize", "kappa twin, XLA", lambda: xla_ne(x), 2 * n4)
    add("quantize", "tf fake_quant_with_min_max_args", lambda: fake(x), 2 * n4)

    # rail statistics: read x.
    rs = lambda x: tuple(rail_stats(x, QUANT_FORMAT, 0.9))  # noqa: E731
    custom_rs, twin_rs, xla_rs = tf.function(rs), composite(rs), composite(rs, jit=True)
    total = tf.function(tf.reduce_sum)
    add("rail_stats", "kappa custom op", lambda: custom_rs(x), n4)
    add("rail_stats", "kappa twin, tf.function", lambda: twin_rs(x), n4)
    add("rail_stats", "kappa twin, XLA", lambda: xla_rs(x), n4)
    add("rail_stats", "tf.reduce_sum", lambda: total(x), n4)

    # update: read var and grad, write var. Each candidate owns its variable.
    def update_fn(update_format, jit=None):
        var = tf.Variable(x)

        def step(g, lr):
            return tuple(update_quantize_store(var, g, lr, update_format, STORAGE_FORMAT,
                                               seed=(7, 8)))

        return tf.function(step) if jit is None else composite(step, jit)

    custom_up = update_fn(UPDATE_FORMAT)
    custom_up_st = update_fn(UPDATE_FORMAT + ":stochastic")
    twin_up, xla_up = update_fn(UPDATE_FORMAT, False), update_fn(UPDATE_FORMAT, True)
    plain_var = tf.Variable(x)
    @tf.function
    def plain(g, lr):
        plain_var.assign_sub(lr * g, read_value=False)
    add("update", "kappa custom op, nearest_even", lambda: custom_up(g, lr), 3 * n4)
    add("update", "kappa custom op, stochastic update", lambda: custom_up_st(g, lr), 3 * n4)
    add("update", "kappa twin, tf.function", lambda: twin_up(g, lr), 3 * n4)
    add("update", "kappa twin, XLA", lambda: xla_up(g, lr), 3 * n4)
    add("update", "tf assign_sub(lr * grad) (no quantization)", lambda: plain(g, lr), 3 * n4)
    return out


def _targets(report: Report) -> List[Target]:
    def c(group, name):
        return report.candidate(group, name)

    q, qs = c("quantize", "kappa custom op, nearest_even"), c("quantize", "kappa custom op, stochastic")
    r, u = c("rail_stats", "kappa custom op"), c("update", "kappa custom op, nearest_even")
    best_builtin = min(c("quantize", "tf fake_quant_with_min_max_args"),
                       c("quantize", "kappa twin, XLA"), key=lambda k: k.median_ms)
    return [
        target("quantize / best of (fake_quant, XLA twin)", q, best_builtin, 1.0),
        target("quantize twin tf.function / quantize", c("quantize", "kappa twin, tf.function"),
               q, 3.5, ">="),
        target("quantize stochastic / nearest_even", qs, q, 1.5),
        target("rail_stats / tf.reduce_sum", r, c("rail_stats", "tf.reduce_sum"), 2.0),
        target("rail_stats XLA twin / rail_stats", c("rail_stats", "kappa twin, XLA"), r, 10.0,
               ">="),
        target("update / XLA twin", u, c("update", "kappa twin, XLA"), 0.6),
        target("update twin tf.function / update", c("update", "kappa twin, tf.function"), u,
               5.0, ">="),
    ]


def _gpu_candidates(size: int, calls: int = 20) -> List[Candidate]:
    """The device-to-device copy, quantize and update, ``calls`` of each in one function
    (so that launch overhead does not count), on the current device; times per call."""
    x = tf.random.stateless_normal([size], seed=(1, 2), stddev=3.0)
    g = tf.random.stateless_normal([size], seed=(3, 4))
    var = tf.Variable(x)
    lr = tf.constant(LEARNING_RATE)

    @tf.function
    def copy(x):
        for _ in range(calls):
            x = tf.raw_ops.DeepCopy(x=x)
        return x

    @tf.function
    def quantize(x):
        for _ in range(calls):
            x = quantize_tensor(x, QUANT_FORMAT)
        return x

    @tf.function
    def update(g, lr):
        s = None
        for _ in range(calls):
            s = update_quantize_store(var, g, lr, UPDATE_FORMAT, STORAGE_FORMAT, seed=(7, 8))
        return s.raw_update_norm

    n4 = size * 4
    return [Candidate("GPU", "device-to-device copy", lambda: copy(x), 2 * n4, units=calls),
            Candidate("GPU", "quantize", lambda: quantize(x), 2 * n4, units=calls),
            Candidate("GPU", "update", lambda: update(g, lr), 3 * n4, units=calls)]


def _gpu_targets(copy: Candidate, quantize: Candidate, update: Candidate) -> List[Target]:
    """The custom ops' GB/s over the copy's (the bandwidth the device reaches)."""
    return [Target(f"GPU {c.name} GB/s / copy GB/s", c.gb_per_s / copy.gb_per_s,
                   GPU_FRACTION_OF_COPY, ">=") for c in (quantize, update)]


def run(size: int = 1 << 24, repeats: int = 7, device: str = "/CPU:0") -> Report:
    """Time every candidate; see the module docstring."""
    _checks.integer("size", size, minimum=1)
    _checks.integer("repeats", repeats, minimum=1)
    with tf.device(device):
        candidates = _candidates(size)
        measure(candidates, repeats, block=block_until_ready)
    threads = (os.environ.get("TF_NUM_INTRAOP_THREADS")
               or tf.config.threading.get_intra_op_parallelism_threads() or "default")
    report = Report(f"kappa bench ops: {size} float32 elements ({size * 4 / 2**20:.0f} MiB), "
                    f"CPU, {threads} intra-op threads, median of {repeats} interleaved rounds",
                    candidates)
    report.targets = _targets(report)
    if tf.config.list_logical_devices("GPU") and _ops.custom_ops() is not None:
        with tf.device("/GPU:0"):
            gpu = _gpu_candidates(size)
            measure(gpu, repeats, warmup=1, block=block_until_ready)
        report.candidates += gpu
        report.targets += _gpu_targets(*gpu)
    else:
        report.notes.append("GPU: none visible to TensorFlow (GPU targets not measured)")
    return report

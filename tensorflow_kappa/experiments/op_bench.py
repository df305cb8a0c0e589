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
measured), is called twice to warm up, then the candidates are called in
turn, round after round (interleaved, so that load from other processes hits
all of them alike), and the median over rounds is reported: wall-clock
milliseconds, process CPU milliseconds (all threads; insensitive to other
processes), and the bandwidth the candidate's compulsory memory traffic
implies. The ratios that the project's performance targets name follow the
table, with a verdict each.

Where TensorFlow sees a GPU, the custom ops are also timed on it next to the
device-to-device copy bandwidth (``tf.raw_ops.DeepCopy``) of the same run,
with enough calls inside one function that launch overhead does not count.

Run: ``kappa bench ops [--size N] [--repeats R]``.
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import tensorflow as tf

from tensorflow_kappa import _checks, _ops
from tensorflow_kappa.quantization import (
    composite_ops,
    quantize_tensor,
    rail_stats,
    update_quantize_store,
)

QUANT_FORMAT = "s8.4"
UPDATE_FORMAT = "s16.16"
STORAGE_FORMAT = "s16.12"
LEARNING_RATE = 1e-3


@dataclass
class Candidate:
    group: str
    name: str
    fn: Callable[[], object]
    bytes_moved: int
    wall_ms: List[float] = field(default_factory=list)
    cpu_ms: List[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.wall_ms)

    @property
    def median_cpu_ms(self) -> float:
        return statistics.median(self.cpu_ms)

    @property
    def gb_per_s(self) -> float:
        return self.bytes_moved / self.median_ms / 1e6


@dataclass
class Target:
    description: str
    ratio: float
    limit: float
    at_most: bool  # ratio must be <= limit (else >= limit)

    @property
    def met(self) -> bool:
        return self.ratio <= self.limit if self.at_most else self.ratio >= self.limit


@dataclass
class Report:
    size: int
    repeats: int
    candidates: List[Candidate]
    targets: List[Target]
    gpu: Optional[Dict[str, float]] = None


def _block(result) -> None:
    """Wait for a candidate's result (scalars fetched; large tensors left on device)."""
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


def _targets(c: Dict[str, Candidate]) -> List[Target]:
    def t(name):
        return c[name].median_ms

    q, qs = t("quantize/kappa custom op, nearest_even"), t("quantize/kappa custom op, stochastic")
    r, u = t("rail_stats/kappa custom op"), t("update/kappa custom op, nearest_even")
    best_builtin = min(t("quantize/tf fake_quant_with_min_max_args"), t("quantize/kappa twin, XLA"))
    return [
        Target("quantize / best of (fake_quant, XLA twin)", q / best_builtin, 1.0, True),
        Target("quantize twin tf.function / quantize", t("quantize/kappa twin, tf.function") / q,
               3.5, False),
        Target("quantize stochastic / nearest_even", qs / q, 1.5, True),
        Target("rail_stats / tf.reduce_sum", r / t("rail_stats/tf.reduce_sum"), 2.0, True),
        Target("rail_stats XLA twin / rail_stats", t("rail_stats/kappa twin, XLA") / r, 10.0, False),
        Target("update / XLA twin", u / t("update/kappa twin, XLA"), 0.6, True),
        Target("update twin tf.function / update", t("update/kappa twin, tf.function") / u,
               5.0, False),
    ]


def _gpu_bandwidth(size: int, repeats: int, calls: int = 20) -> Optional[Dict[str, float]]:
    """GB/s of DeepCopy, quantize and update on the first GPU (calls per function)."""
    if not tf.config.list_logical_devices("GPU") or _ops.custom_ops() is None:
        return None
    with tf.device("/GPU:0"):
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

        runs = {"copy": (lambda: copy(x), 2), "quantize": (lambda: quantize(x), 2),
                "update": (lambda: update(g, lr), 3)}
        times: Dict[str, List[float]] = {k: [] for k in runs}
        for fn, _ in runs.values():
            fn()
            tf.test.experimental.sync_devices()
        for _ in range(repeats):
            for name, (fn, _) in runs.items():
                tf.test.experimental.sync_devices()
                start = time.perf_counter()
                fn()
                tf.test.experimental.sync_devices()
                times[name].append((time.perf_counter() - start) / calls)
    gbs = {name: runs[name][1] * size * 4 / statistics.median(v) / 1e9 for name, v in times.items()}
    gbs["quantize/copy"] = gbs["quantize"] / gbs["copy"]
    gbs["update/copy"] = gbs["update"] / gbs["copy"]
    return gbs


def measure(candidates: List[Candidate], repeats: int) -> None:
    """Two warm-up calls each, then ``repeats`` interleaved rounds of one call per
    candidate, each call's wall and process CPU time appended to the candidate."""
    for _ in range(2):
        for c in candidates:
            _block(c.fn())
    for _ in range(repeats):
        for c in candidates:
            wall, cpu = time.perf_counter(), time.process_time()
            _block(c.fn())
            c.wall_ms.append((time.perf_counter() - wall) * 1e3)
            c.cpu_ms.append((time.process_time() - cpu) * 1e3)


def run(size: int = 1 << 24, repeats: int = 7, device: str = "/CPU:0") -> Report:
    """Time every candidate; see the module docstring."""
    _checks.integer("size", size, minimum=1)
    _checks.integer("repeats", repeats, minimum=1)
    with tf.device(device):
        candidates = _candidates(size)
        measure(candidates, repeats)
    by_name = {f"{c.group}/{c.name}": c for c in candidates}
    return Report(size, repeats, candidates, _targets(by_name), _gpu_bandwidth(size, repeats))


def format_report(report: Report) -> str:
    threads = (os.environ.get("TF_NUM_INTRAOP_THREADS")
               or tf.config.threading.get_intra_op_parallelism_threads() or "default")
    lines = [
        f"kappa bench: {report.size} float32 elements ({report.size * 4 / 2**20:.0f} MiB), "
        f"CPU, {threads} intra-op threads, median of {report.repeats} interleaved rounds",
        "",
        f"{'group':<11} {'candidate':<44} {'wall ms':>9} {'cpu ms':>9} {'GB/s':>7} {'x ours':>7}",
    ]
    ours = {}
    for c in report.candidates:
        ours.setdefault(c.group, c.median_ms)
        lines.append(f"{c.group:<11} {c.name:<44} {c.median_ms:9.2f} {c.median_cpu_ms:9.2f} "
                     f"{c.gb_per_s:7.2f} {c.median_ms / ours[c.group]:7.2f}")
    lines += ["", "targets (ratios of wall-clock medians in this run):"]
    for t in report.targets:
        sign = "<=" if t.at_most else ">="
        lines.append(f"  {t.description:<44} {t.ratio:7.2f}  (target {sign} {t.limit:g})  "
                     f"{'met' if t.met else 'MISSED'}")
    if report.gpu is not None:
        gpu = report.gpu
        lines += ["", "GPU (custom ops, GB/s of compulsory traffic):",
                  f"  device-to-device copy {gpu['copy']:8.1f}",
                  f"  quantize              {gpu['quantize']:8.1f}  ({gpu['quantize/copy']:.0%} of copy; "
                  f"target >= 70%)",
                  f"  update                {gpu['update']:8.1f}  ({gpu['update/copy']:.0%} of copy; "
                  f"target >= 70%)"]
    else:
        lines += ["", "GPU: none visible to TensorFlow (GPU targets not measured)"]
    return "\n".join(lines)

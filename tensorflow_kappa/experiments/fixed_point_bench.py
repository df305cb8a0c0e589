"""Benchmark of fixed-point ``model.fit``: the custom ops against plain float and the twins.

On the study's CNN (:mod:`tensorflow_kappa.experiments.fixed_point`, 8x8
digits) and batch size, per round and candidate, one epoch of ``model.fit``
(steady state: every candidate is traced in a warm-up epoch first),
interleaved round by round in one process, the order rotated every round (the
machine is shared and noisy: only medians over rounds are quoted):

* ``float``: the plain Keras model with SGD;
* ``fixed``: :func:`~tensorflow_kappa.quantization.quantize_model` +
  :class:`~tensorflow_kappa.optimizers.FixedPointOptimizer`, every field of
  the study's precision dict (stochastic rounding), with the custom ops;
* ``fixed, twins``: the same traced inside :func:`tensorflow_kappa.composite_ops`,
  i.e. the same quantization written with the pure-TensorFlow twins;
* ``fixed + monitor``: ``fixed`` with a
  :class:`~tensorflow_kappa.callbacks.QuantizationMonitor` at its default
  interval (100 steps);
* ``fixed + monitor every step``: the monitor on every step, which measures
  what a monitored step costs; at the default interval the monitor adds
  ``(every-step ratio - 1) / 100`` of a step on average (reported as
  "monitor at default interval, derived"), a number the machine's noise
  does not swamp as it does the direct comparison.

Goals (issue 14): fixed / float <= 1.5 on CPU; twins / fixed > 1;
(fixed + monitor) / fixed <= 1.05.

Run::

    kappa bench fixed-point            # full run
    kappa bench fixed-point --quick    # smoke run
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List

import numpy as np

__all__ = ["QUICK", "run"]

#: ``run`` options of a smoke run (``--quick``).
QUICK = dict(rounds=2, batch_sizes=(32,), limit=256)

CANDIDATES = ("float", "fixed", "fixed, twins", "fixed + monitor",
              "fixed + monitor every step")
GOALS = (("fixed", "float", 1.5, "<="), ("fixed, twins", "fixed", 1.0, ">"),
         ("fixed + monitor", "fixed", 1.05, "<="))


def _epoch(kind: str, data, batch_size: int) -> Callable[[], None]:
    """A function that trains one epoch of candidate ``kind`` (traced already)."""
    import keras

    from tensorflow_kappa import composite_ops
    from tensorflow_kappa.callbacks import QuantizationMonitor
    from tensorflow_kappa.experiments.fixed_point import make_cnn, precision_for
    from tensorflow_kappa.optimizers import FixedPointOptimizer
    from tensorflow_kappa.quantization import quantize_model

    x, y = data
    model = make_cnn(0)
    optimizer = keras.optimizers.SGD(0.05)
    if kind != "float":
        precision = precision_for("s16.10", "stochastic")
        model = quantize_model(model, precision)
        optimizer = FixedPointOptimizer(optimizer, precision, seed=0)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callbacks = {"fixed + monitor": [QuantizationMonitor()],
                 "fixed + monitor every step": [QuantizationMonitor(every=1)]}.get(kind, [])

    def epoch():
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
                  callbacks=callbacks)

    if kind == "fixed, twins":
        with composite_ops():   # traced with the twins; later epochs reuse that graph
            epoch()
    else:
        epoch()
    return epoch


def bench(batch_size: int, rounds: int, limit=None) -> Dict[str, List[float]]:
    """Seconds per epoch of every candidate, ``rounds`` interleaved rounds."""
    from tensorflow_kappa.experiments.fixed_point import load_digits

    x, y, _, _ = load_digits(0, limit=limit)
    epochs = {kind: _epoch(kind, (x, y), batch_size) for kind in CANDIDATES}
    times: Dict[str, List[float]] = {kind: [] for kind in CANDIDATES}
    order = list(CANDIDATES)
    for r in range(rounds):
        # Rotate the order every round: no candidate always runs right after another.
        for kind in order[r % len(order):] + order[:r % len(order)]:
            start = time.perf_counter()
            epochs[kind]()
            times[kind].append(time.perf_counter() - start)
    return times


def run(rounds: int = 10, batch_sizes=(32,), limit=None,
        log: Callable[[str], None] = print) -> Dict[int, Dict[str, float]]:
    """Print (via ``log``) and return median ms per step per batch size and candidate."""
    from tensorflow_kappa.experiments.fixed_point import load_digits
    from tensorflow_kappa.experiments.reporting import text_table

    n = len(load_digits(0, limit=limit)[0])
    out = {}
    for batch_size in batch_sizes:
        steps = int(np.ceil(n / batch_size))
        times = bench(batch_size, rounds, limit)
        median = {k: 1e3 * statistics.median(v) / steps for k, v in times.items()}
        out[batch_size] = median
        log(f"kappa bench fixed-point: digits CNN, {n} images, batch {batch_size} "
            f"({steps} steps/epoch), median of {rounds} interleaved rounds (order rotated)")
        rows = [("candidate", "ms/step", "x float")]
        rows += [(k, f"{median[k]:.2f}", f"{median[k] / median['float']:.2f}")
                 for k in CANDIDATES]
        log(text_table(rows))
        for a, b, goal, op in GOALS:
            ratio = median[a] / median[b]
            met = ratio <= goal if op == "<=" else ratio > goal
            log(f"  {a} / {b}: {ratio:.3f} (goal {op} {goal})  {'met' if met else 'MISSED'}")
        derived = 1 + (median["fixed + monitor every step"] / median["fixed"] - 1) / 100
        log(f"  monitor at default interval, derived: {derived:.4f} (goal <= 1.05)  "
            f"{'met' if derived <= 1.05 else 'MISSED'}")
        log("")
    return out

"""Benchmark of fixed-point ``model.fit``: the custom ops against plain float and the twins.

On the study's CNN (:mod:`tensorflow_kappa.experiments.fixed_point`, 8x8
digits) and batch size, per round and candidate, one epoch of ``model.fit``
(steady state: every candidate is traced in a warm-up epoch first),
interleaved round by round in one process by
:func:`~tensorflow_kappa.experiments.timing.measure`, the order rotated every
round (the machine is shared and noisy: only medians over rounds are quoted):

* ``float``: the plain Keras model with SGD;
* ``fixed``: :func:`~tensorflow_kappa.quantization.quantize_model` +
  :class:`~tensorflow_kappa.optimizers.LowPrecisionOptimizer`, every field of
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

Goals: fixed / float <= 1.5 on CPU; twins / fixed > 1;
(fixed + monitor) / fixed <= 1.05.

Run::

    kappa bench fixed-point            # full run
    kappa bench fixed-point --quick    # smoke run
"""
from __future__ import annotations

from typing import Callable, List, Sequence

import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.experiments.timing import Candidate, Report, Target, measure, target

__all__ = ["QUICK", "run"]

#: ``run`` options of a smoke run (``--quick``).
QUICK = dict(repeats=2, batch_sizes=(32,), limit=256)

CANDIDATES = ("float", "fixed", "fixed, twins", "fixed + monitor",
              "fixed + monitor every step")
GOALS = (("fixed", "float", 1.5, "<="), ("fixed, twins", "fixed", 1.0, ">"),
         ("fixed + monitor", "fixed", 1.05, "<="))
#: QuantizationMonitor's default interval, in steps.
MONITOR_INTERVAL = 100


def _epoch(kind: str, data, batch_size: int) -> Callable[[], None]:
    """A function that trains one epoch of candidate ``kind`` (traced already)."""
    import keras

    from tensorflow_kappa import composite_ops
    from tensorflow_kappa.callbacks import QuantizationMonitor
    from tensorflow_kappa.experiments.fixed_point import make_cnn, precision_for
    from tensorflow_kappa.optimizers import LowPrecisionOptimizer
    from tensorflow_kappa.quantization import quantize_model

    x, y = data
    model = make_cnn(0)
    optimizer = keras.optimizers.SGD(0.05)
    if kind != "float":
        precision = precision_for("s16.10", "stochastic")
        model = quantize_model(model, precision)
        optimizer = LowPrecisionOptimizer(optimizer, precision, seed=0)
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


def _targets(group: str, candidates: List[Candidate]) -> List[Target]:
    """The goals of one batch size, and the monitor's cost at its default interval derived
    from the every-step candidate: ``1 + (every-step / fixed - 1) / interval``."""
    by = {c.name: c for c in candidates}
    goals = [target(f"{group}: {a} / {b}", by[a], by[b], goal, op) for a, b, goal, op in GOALS]
    every = by["fixed + monitor every step"].median_ms / by["fixed"].median_ms
    goals.append(Target(f"{group}: monitor at default interval, derived",
                        1 + (every - 1) / MONITOR_INTERVAL, 1.05))
    return goals


def run(repeats: int = 10, batch_sizes: Sequence[int] = (32,), limit=None) -> Report:
    """Median ms per step of every candidate, per batch size (a group each), and the goals.

    Args:
        repeats: interleaved rounds (one epoch of every candidate each).
        batch_sizes: the batch sizes timed, one after the other.
        limit: use only this many images (smoke runs).
    """
    from tensorflow_kappa.experiments.fixed_point import load_digits

    _checks.integer("repeats", repeats, minimum=1)
    for batch_size in batch_sizes:
        _checks.integer("batch_sizes entries", batch_size, minimum=1)
    x, y, _, _ = load_digits(0, limit=limit)
    candidates: List[Candidate] = []
    targets: List[Target] = []
    sizes = []
    for batch_size in batch_sizes:
        steps = int(np.ceil(len(x) / batch_size))
        group = f"batch {batch_size}"
        timed = [Candidate(group, kind, _epoch(kind, (x, y), batch_size), units=steps)
                 for kind in CANDIDATES]
        measure(timed, repeats, warmup=0, rotate=True)  # _epoch traced each already
        candidates += timed
        targets += _targets(group, timed)
        sizes.append(f"batch {batch_size} ({steps} steps/epoch)")
    return Report(f"kappa bench fixed-point: digits CNN, {len(x)} images, {', '.join(sizes)}, "
                  f"median of {repeats} interleaved rounds (order rotated)", candidates,
                  targets, unit="ms/step")

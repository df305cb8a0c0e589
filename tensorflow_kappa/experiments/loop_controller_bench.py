"""Benchmark of tensorflow_kappa.callbacks.LoopController against plain ``model.fit``.

Measures, in one process and interleaved round by round (the machine is
shared and noisy, so only medians are quoted):

1. time per step on the same MLP and data for plain ``fit``, plain ``fit``
   with a no-op ``on_train_batch_end`` callback, ``fit`` with one action
   over all variables (the same step as plain fit) and with two actions (two
   full steps per batch): epoch time / steps, median over epochs 2.. of every
   round, both wall-clock and process CPU time (``time.process_time``, all
   threads; insensitive to other processes on a shared machine).  No timing
   hook runs per batch, so plain ``fit`` keeps Keras's asynchronous
   batch-end dispatch; any callback with batch hooks, the controller
   included, turns it off (the "no-op batch callback" row shows that cost);
2. the number of traces when a control flips every batch, compared with a
   run whose control never flips;
3. the tracing time (first-batch time minus the median batch time) with 1,
   2, 4 and 8 actions active on every batch.

Run::

    kappa bench loop-controller            # full run
    kappa bench loop-controller --quick    # smoke run
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import keras
import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.callbacks import LoopController

__all__ = ["QUICK", "run"]

#: ``run`` options of a smoke run (``--quick``).
QUICK = dict(rounds=2, steps=20, epochs=3)

BATCH = 64
FEATURES = 32


class EpochTimer(keras.callbacks.Callback):
    """Wall and process-CPU seconds per epoch; no per-batch hooks on purpose."""

    def __init__(self):
        super().__init__()
        self.wall, self.cpu = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        self.wall.append(time.perf_counter() - self._t[0])
        self.cpu.append(time.process_time() - self._t[1])


class NoOpBatchHook(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        pass


class BatchClock:
    """Two callbacks: put ``start`` first and ``stop`` last in the list."""

    def __init__(self):
        self.times = []
        clock = self

        class Start(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                clock._t = time.perf_counter()

        class Stop(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                clock.times.append(time.perf_counter() - clock._t)

        self.start, self.stop = Start(), Stop()


def make_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), loss="mse")
    return model


def make_data(steps: int):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * BATCH, FEATURES)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] + x[:, 2:3]).astype("float32")
    return x, y


def always(cb):
    return True


def actions(n: int) -> dict:
    return {f"a{i}": {"cond": always, True: {}} for i in range(n)}


def step_times(callbacks, x, y, steps, epochs):
    """(wall, cpu) seconds per step for epochs 2..n (epoch 1 includes tracing)."""
    model = make_model()
    timer = EpochTimer()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[timer, *callbacks])
    return [t / steps for t in timer.wall[1:]], [t / steps for t in timer.cpu[1:]]


def trace_time(n_actions: int, x, y) -> float:
    """First-batch time (trace + run) minus the median batch time."""
    model = make_model()
    clock = BatchClock()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[clock.start, LoopController(actions(n_actions)), clock.stop])
    return clock.times[0] - statistics.median(clock.times[1:])


def _step_time_table(x, y, rounds: int, steps: int, epochs: int, log) -> None:
    variants = {
        "plain fit": lambda: [],
        "plain fit + no-op batch callback": lambda: [NoOpBatchHook()],
        "1 action (all variables)": lambda: [LoopController(actions(1))],
        "2 actions": lambda: [LoopController(actions(2))],
    }
    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for _ in range(rounds):
        for name, make in variants.items():
            w, c = step_times(make(), x, y, steps, epochs)
            wall[name] += w
            cpu[name] += c
    base_w, base_c = statistics.median(wall["plain fit"]), statistics.median(cpu["plain fit"])
    log(f"\nTime per step, median over {len(wall['plain fit'])} epochs per variant "
        f"({rounds} rounds x epochs 2..{epochs})")
    log("| variant | wall (ms) | wall ratio | CPU (ms) | CPU ratio |")
    log("|---|---|---|---|---|")
    for name in variants:
        mw, mc = statistics.median(wall[name]), statistics.median(cpu[name])
        log(f"| {name} | {1e3 * mw:.3f} | {mw / base_w:.3f} | {1e3 * mc:.3f} | "
            f"{mc / base_c:.3f} |")


def _trace_count_table(x, y, log) -> None:
    """Retraces when flipping a control every batch."""
    log("\nTraces per fit (one action with two branches, 2 epochs)")
    log("| control | batches | state changes | traces |")
    log("|---|---|---|---|")
    for label, cond in (
        ("constant", lambda cb: True),
        ("flips every batch", lambda cb: cb.batches % 2 == 0),
    ):
        model = make_model()
        cb = LoopController({"gate": {"cond": cond, True: {}, False: {}}})
        model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
                  callbacks=[cb])
        gate = cb.history["gate"]
        changes = int(np.sum(gate[1:] != gate[:-1]))
        log(f"| {label} | {len(gate)} | {changes} | {cb.trace_count} |")


def _trace_time_table(rounds: int, trace_actions: Sequence[int], log) -> None:
    """Tracing time against the number of actions."""
    log("\nTracing time (first batch minus median batch), median over rounds")
    log("| actions | trace time (s) | per action (s) |")
    log("|---|---|---|")
    tx, ty = make_data(20)
    for n in trace_actions:
        t = statistics.median(trace_time(n, tx, ty) for _ in range(max(3, rounds // 2)))
        log(f"| {n} | {t:.3f} | {t / n:.3f} |")


def run(rounds: int = 7, steps: int = 100, epochs: int = 4,
        trace_actions: Sequence[int] = (1, 2, 4, 8),
        log: Callable[[str], None] = print) -> None:
    """Run the three measurements of the module docstring, writing Markdown tables to ``log``.

    Args:
        rounds: interleaved rounds of the step-time table.
        steps: steps per epoch; ``epochs``: epochs per ``fit`` (the first is not timed).
        trace_actions: the action counts of the tracing-time table.
        log: called with each line of output.
    """
    for name, value, low in (("rounds", rounds, 1), ("steps", steps, 1), ("epochs", epochs, 2)):
        _checks.integer(name, value, minimum=low)
    for count in trace_actions:
        _checks.integer("trace_actions entries", count, minimum=1)
    x, y = make_data(steps)
    log(f"MLP {FEATURES}-64-64-1, Adam, batch {BATCH}, {steps} steps/epoch, "
        f"{epochs} epochs per fit, {rounds} rounds")
    _step_time_table(x, y, rounds, steps, epochs, log)
    _trace_count_table(x, y, log)
    _trace_time_table(rounds, trace_actions, log)

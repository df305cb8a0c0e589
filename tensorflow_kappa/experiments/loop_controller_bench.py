"""Benchmark of tensorflow_kappa.callbacks.LoopController against plain ``model.fit``.

Measures, in one process and interleaved round by round by
:func:`~tensorflow_kappa.experiments.timing.measure` (the machine is shared and
noisy, so only medians are quoted):

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
from typing import List, Sequence

import keras
import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.callbacks import LoopController
from tensorflow_kappa.experiments.timing import Candidate, Report, Samples, Stopwatch, Table, measure

__all__ = ["QUICK", "run"]

#: ``run`` options of a smoke run (``--quick``).
QUICK = dict(repeats=2, steps=20, epochs=3)

BATCH = 64
FEATURES = 32


class EpochTimer(keras.callbacks.Callback):
    """Wall and process-CPU milliseconds per epoch; no per-batch hooks on purpose."""

    def __init__(self):
        super().__init__()
        self.watch, self.times = Stopwatch(), []

    def on_epoch_begin(self, epoch, logs=None):
        self.watch.start()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(self.watch.stop())


class NoOpBatchHook(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        pass


class BatchClock:
    """Two callbacks timing every batch (wall, CPU ms): put ``start`` first and ``stop``
    last in the list."""

    def __init__(self):
        self.times = []
        watch = Stopwatch()
        clock = self

        class Start(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                watch.start()

        class Stop(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                clock.times.append(watch.stop())

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


def step_times(callbacks, x, y, epochs) -> Samples:
    """Epochs 2..n of a fit of a fresh model (epoch 1 includes tracing), timed each."""
    model = make_model()
    timer = EpochTimer()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[timer, *callbacks])
    return Samples(timer.times[1:])


def trace_time(n_actions: int, x, y) -> Samples:
    """First-batch time (trace + run) minus the median batch time (wall, CPU)."""
    model = make_model()
    clock = BatchClock()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[clock.start, LoopController(actions(n_actions)), clock.stop])
    first, rest = clock.times[0], clock.times[1:]
    return Samples([tuple(first[i] - statistics.median(t[i] for t in rest) for i in (0, 1))])


def _step_time_candidates(x, y, steps: int, epochs: int) -> List[Candidate]:
    variants = {
        "plain fit": lambda: [],
        "plain fit + no-op batch callback": lambda: [NoOpBatchHook()],
        "1 action (all variables)": lambda: [LoopController(actions(1))],
        "2 actions": lambda: [LoopController(actions(2))],
    }
    return [Candidate("step", name, lambda make=make: step_times(make(), x, y, epochs),
                      units=steps) for name, make in variants.items()]


def _trace_count_table(x, y) -> Table:
    """Retraces when flipping a control every batch."""
    rows = [("control", "batches", "state changes", "traces")]
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
        rows.append((label, str(len(gate)), str(changes), str(cb.trace_count)))
    return Table("Traces per fit (one action with two branches, 2 epochs)", rows)


def _trace_time_table(repeats: int, trace_actions: Sequence[int]) -> Table:
    """Tracing time against the number of actions, interleaved over ``repeats`` rounds."""
    tx, ty = make_data(20)
    timed = [Candidate("tracing", str(n), lambda n=n: trace_time(n, tx, ty))
             for n in trace_actions]
    measure(timed, repeats, warmup=0)
    rows = [("actions", "trace wall ms", "trace cpu ms", "per action wall ms")]
    rows += [(c.name, f"{c.median_ms:.1f}", f"{c.median_cpu_ms:.1f}",
              f"{c.median_ms / int(c.name):.1f}") for c in timed]
    return Table(f"Tracing time (first batch minus median batch), median of {repeats} "
                 "interleaved rounds", rows)


def run(repeats: int = 7, steps: int = 100, epochs: int = 4,
        trace_actions: Sequence[int] = (1, 2, 4, 8)) -> Report:
    """Run the three measurements of the module docstring.

    Args:
        repeats: interleaved rounds of the step times (tracing: half as many, at least 3).
        steps: steps per epoch; ``epochs``: epochs per ``fit`` (the first is not timed).
        trace_actions: the action counts of the tracing-time table.
    """
    for name, value, low in (("repeats", repeats, 1), ("steps", steps, 1), ("epochs", epochs, 2)):
        _checks.integer(name, value, minimum=low)
    for count in trace_actions:
        _checks.integer("trace_actions entries", count, minimum=1)
    x, y = make_data(steps)
    candidates = _step_time_candidates(x, y, steps, epochs)
    measure(candidates, repeats, warmup=0)
    return Report(
        f"kappa bench loop-controller: MLP {FEATURES}-64-64-1, Adam, batch {BATCH}, {steps} "
        f"steps/epoch, {epochs} epochs per fit; time per step, median over "
        f"{len(candidates[0].wall_ms)} epochs per variant ({repeats} interleaved rounds x "
        f"epochs 2..{epochs})", candidates,
        tables=[_trace_count_table(x, y),
                _trace_time_table(max(3, repeats // 2), trace_actions)],
        unit="ms/step")

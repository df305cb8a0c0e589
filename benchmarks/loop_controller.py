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

Run from the repository root::

    python3 benchmarks/loop_controller.py            # full run
    python3 benchmarks/loop_controller.py --quick    # smoke run
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tensorflow_kappa.callbacks import LoopController  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps, args.epochs = 2, 20, 3
    x, y = make_data(args.steps)

    print(f"MLP {FEATURES}-64-64-1, Adam, batch {BATCH}, {args.steps} steps/epoch, "
          f"{args.epochs} epochs per fit, {args.rounds} rounds")

    variants = {
        "plain fit": lambda: [],
        "plain fit + no-op batch callback": lambda: [NoOpBatchHook()],
        "1 action (all variables)": lambda: [LoopController(actions(1))],
        "2 actions": lambda: [LoopController(actions(2))],
    }
    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, make in variants.items():
            w, c = step_times(make(), x, y, args.steps, args.epochs)
            wall[name] += w
            cpu[name] += c
    base_w, base_c = statistics.median(wall["plain fit"]), statistics.median(cpu["plain fit"])
    print(f"\nTime per step, median over {len(wall['plain fit'])} epochs per variant "
          f"({args.rounds} rounds x epochs 2..{args.epochs})")
    print("| variant | wall (ms) | wall ratio | CPU (ms) | CPU ratio |")
    print("|---|---|---|---|---|")
    for name in variants:
        mw, mc = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"| {name} | {1e3 * mw:.3f} | {mw / base_w:.3f} | {1e3 * mc:.3f} | "
              f"{mc / base_c:.3f} |")

    # Retraces when flipping a control every batch.
    print("\nTraces per fit (one action with two branches, 2 epochs)")
    print("| control | batches | state changes | traces |")
    print("|---|---|---|---|")
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
        print(f"| {label} | {len(gate)} | {changes} | {cb.trace_count} |")

    # Tracing time against the number of actions.
    print("\nTracing time (first batch minus median batch), median over rounds")
    print("| actions | trace time (s) | per action (s) |")
    print("|---|---|---|")
    tx, ty = make_data(20)
    for n in (1, 2, 4, 8):
        t = statistics.median(trace_time(n, tx, ty) for _ in range(max(3, args.rounds // 2)))
        print(f"| {n} | {t:.3f} | {t / n:.3f} |")


if __name__ == "__main__":
    main()

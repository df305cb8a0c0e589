"""Benchmark of tensorflow_kappa.callbacks.LoopController against plain ``model.fit``.

Measures, in one process and interleaved round by round (the machine is
shared and noisy, so only medians over rounds are quoted):

1. median step time of plain ``fit``, of plain ``fit`` with a no-op
   ``on_train_batch_end`` callback (any callback with batch hooks, the
   controller included, turns off Keras's asynchronous batch-end dispatch),
   of ``fit`` with one action over all variables (the same step as plain
   fit) and with two actions (two full steps per batch), on the same MLP and
   data;
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
    """Epoch wall times; no per-batch hooks on purpose (so plain fit keeps
    Keras's asynchronous batch-end dispatch)."""

    def __init__(self):
        super().__init__()
        self.epoch_times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_times.append(time.perf_counter() - self._t)


class NoOpBatchHook(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        pass


class BatchTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._t)


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


def step_time(callbacks, x, y, steps, epochs) -> float:
    """Median seconds per step over epochs 2..n (epoch 1 includes tracing)."""
    model = make_model()
    timer = EpochTimer()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[timer, *callbacks])
    return statistics.median(timer.epoch_times[1:]) / steps


def trace_time(n_actions: int, x, y) -> float:
    """First-batch time (trace + run) minus the median batch time."""
    model = make_model()
    timer = BatchTimer()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[LoopController(actions(n_actions)), timer])
    return timer.times[0] - statistics.median(timer.times[1:])


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

    variants = {
        "plain fit": lambda: [],
        "plain fit + no-op batch callback": lambda: [NoOpBatchHook()],
        "1 action (all variables)": lambda: [LoopController(actions(1))],
        "2 actions": lambda: [LoopController(actions(2))],
    }
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, make in variants.items():
            times[name].append(step_time(make(), x, y, args.steps, args.epochs))
    plain = statistics.median(times["plain fit"])
    print(f"\nStep time, MLP {FEATURES}-64-64-1, Adam, batch {BATCH}, "
          f"{args.steps} steps/epoch, median over {args.rounds} rounds "
          f"(each: median of epochs 2..{args.epochs})")
    print(f"| variant | median step (ms) | ratio to plain fit | per-round ratios |")
    print(f"|---|---|---|---|")
    for name, values in times.items():
        med = statistics.median(values)
        ratios = [v / p for v, p in zip(values, times["plain fit"])]
        print(f"| {name} | {1e3 * med:.3f} | {med / plain:.3f} | "
              f"{', '.join(f'{r:.2f}' for r in ratios)} |")

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

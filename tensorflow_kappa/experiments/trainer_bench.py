"""Benchmark of ``train_instrumented``: compiled vs the same loop eagerly vs ``model.fit``.

Per model and path, interleaved round by round (the machine is shared and
noisy; only medians over rounds are quoted), in one process:

* ``compiled``: the instrumented step (every metric of the spec's Metric
  Block computed in the graph, one fetch per epoch), steady state: one
  trainer, traced once before timing, run epoch after epoch;
* ``compiled+trace``: a whole ``train_instrumented(epochs=E)`` call,
  tracing included;
* ``eager``: the same step without ``tf.function`` (a smaller number of
  steps: it is slow);
* ``fit``: plain ``model.fit`` with ``SGD`` on the same Keras model and
  data (batch size, shuffling), steady state (a warm-up fit traces first);
  ``fit+trace`` the first ``fit`` after ``compile``.

Reports milliseconds per step, and the ratios eager/compiled and
compiled/fit from the same rounds.

Run::

    kappa bench trainer            # full run (about 3 minutes)
    kappa bench trainer --quick    # smoke run
"""
from __future__ import annotations

import statistics
import time
import warnings
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.datasets import TeacherStudentDataset
from tensorflow_kappa.experiments.ablation import DEFAULT_PRECISION
from tensorflow_kappa.models import LinearBlockModel, TrainConfig
from tensorflow_kappa.models.instrumented import InstrumentedTrainer

__all__ = ["QUICK", "run"]

#: ``run`` options of a smoke run (``--quick``).
QUICK = dict(rounds=2, epochs=1, eager_steps=8)

BATCH = 32
LR = 0.05


def _ms_per_step(seconds: float, steps: int) -> float:
    return 1e3 * seconds / steps


def bench(config: str, precision, rounds: int, epochs: int, eager_steps: int):
    ds = TeacherStudentDataset(2048, 16, 4, noise=0.1, seed=0)
    hidden = [] if config == "linear" else [64, 64]
    model = LinearBlockModel(dataset=ds, num_hidden=hidden, activation="relu" if hidden else None,
                             use_bias=bool(hidden), seed=0)
    steps = int(np.ceil(len(ds.X) / BATCH))
    kw = dict(batch_size=BATCH, learning_rate=LR, precision_dict=precision,
              reference_A=ds.A if not hidden else None)
    rng = np.random.default_rng(0)

    compiled = InstrumentedTrainer(model, ds.X, ds.Y, TrainConfig(**kw))
    compiled.initialize()
    compiled.run(rng.permutation(len(ds.X)), 0, steps)  # trace
    eager = InstrumentedTrainer(model, ds.X, ds.Y, TrainConfig(compiled=False, **kw))
    eager.initialize()
    eager.run(rng.permutation(len(ds.X)), 0, 2)

    fit_model = model.model
    fit_model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    fit_model.fit(ds.X, ds.Y, batch_size=BATCH, epochs=1, verbose=0)  # trace

    results = {k: [] for k in ("compiled", "compiled+trace", "eager", "fit", "fit+trace")}
    for _ in range(rounds):
        # compiled, steady state
        t = time.perf_counter()
        for _e in range(epochs):
            compiled.run(rng.permutation(len(ds.X)), 0, steps)
        results["compiled"].append(_ms_per_step(time.perf_counter() - t, epochs * steps))
        # eager
        t = time.perf_counter()
        eager.run(rng.permutation(len(ds.X)), 0, eager_steps)
        results["eager"].append(_ms_per_step(time.perf_counter() - t, eager_steps))
        # fit, steady state
        t = time.perf_counter()
        fit_model.fit(ds.X, ds.Y, batch_size=BATCH, epochs=epochs, verbose=0, shuffle=True)
        results["fit"].append(_ms_per_step(time.perf_counter() - t, epochs * steps))
        # whole calls, tracing included
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            model.train_instrumented(ds.X, ds.Y, epochs=epochs, **kw)
        results["compiled+trace"].append(_ms_per_step(time.perf_counter() - t, epochs * steps))
        fit_model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
        t = time.perf_counter()
        fit_model.fit(ds.X, ds.Y, batch_size=BATCH, epochs=epochs, verbose=0, shuffle=True)
        results["fit+trace"].append(_ms_per_step(time.perf_counter() - t, epochs * steps))
    med = {k: statistics.median(v) for k, v in results.items()}
    ratio_eager = statistics.median(e / c for e, c in zip(results["eager"], results["compiled"]))
    ratio_fit = statistics.median(c / f for c, f in zip(results["compiled"], results["fit"]))
    ratio_fit_traced = statistics.median(
        c / f for c, f in zip(results["compiled+trace"], results["fit+trace"]))
    return med, ratio_eager, ratio_fit, ratio_fit_traced, len(compiled.metric_names)


def run(rounds: int = 5, epochs: int = 5, eager_steps: int = 32,
        log: Callable[[str], None] = print) -> None:
    """Time every model and path (module docstring) and write one table row each to ``log``.

    Args:
        rounds: interleaved rounds; medians over them are reported.
        epochs: epochs per timing.
        eager_steps: steps the eager path is timed over (it is slow).
        log: called with each line of output.
    """
    for name, value in (("rounds", rounds), ("epochs", epochs), ("eager_steps", eager_steps)):
        _checks.integer(name, value, minimum=1)
    log(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; batch {BATCH}, "
        f"2048 rows (64 steps/epoch), {epochs} epochs per timing, {rounds} interleaved "
        f"rounds, eager timed over {eager_steps} steps; medians, ms/step")
    header = (f"{'model':<14}{'path':<8}{'metrics':>8}{'compiled':>10}{'+trace':>9}"
              f"{'eager':>9}{'fit':>8}{'fit+trace':>11}{'eager/comp':>12}{'comp/fit':>10}"
              f"{'(+trace)':>10}")
    log(header)
    log("-" * len(header))
    for config in ("linear", "mlp-64-64"):
        for label, precision in (("float", None), ("fixed", DEFAULT_PRECISION)):
            med, r_eager, r_fit, r_fit_t, n_metrics = bench(
                config, precision, rounds, epochs, eager_steps)
            log(f"{config:<14}{label:<8}{n_metrics:>8}{med['compiled']:>10.3f}"
                f"{med['compiled+trace']:>9.3f}{med['eager']:>9.2f}{med['fit']:>8.3f}"
                f"{med['fit+trace']:>11.3f}{r_eager:>11.1f}x{r_fit:>9.2f}x{r_fit_t:>9.2f}x")

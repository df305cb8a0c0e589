"""Benchmark of ``train_instrumented``: compiled vs the same loop eagerly vs ``model.fit``.

Per model and path, interleaved round by round by
:func:`~tensorflow_kappa.experiments.timing.measure` (the machine is shared and
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

Reports milliseconds per step, and the ratios of medians eager/compiled
(target: at least 5), compiled/fit (target: at most 2, while logging every
metric) and, for comparison, compiled+trace / fit+trace.

Run::

    kappa bench trainer            # full run (about 3 minutes)
    kappa bench trainer --quick    # smoke run
"""
from __future__ import annotations

import warnings
from typing import List

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.datasets import TeacherStudentDataset
from tensorflow_kappa.experiments.ablation import DEFAULT_PRECISION
from tensorflow_kappa.experiments.timing import (Candidate, Report, Samples, Stopwatch, Target,
                                                 measure, target)
from tensorflow_kappa.models import LinearBlockModel, TrainConfig
from tensorflow_kappa.models.instrumented import InstrumentedTrainer

__all__ = ["QUICK", "run"]

#: ``run`` options of a smoke run (``--quick``).
QUICK = dict(repeats=2, epochs=1, eager_steps=8)

BATCH = 32
LR = 0.05
#: eager / compiled, at least; compiled / fit, at most.
EAGER_OVER_COMPILED, COMPILED_OVER_FIT = 5.0, 2.0


def _candidates(config: str, label: str, precision, epochs: int, eager_steps: int
                ) -> List[Candidate]:
    """The five paths of one model (module docstring), traced where steady state is timed."""
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

    def run_compiled():
        for _ in range(epochs):
            compiled.run(rng.permutation(len(ds.X)), 0, steps)

    def fit():
        fit_model.fit(ds.X, ds.Y, batch_size=BATCH, epochs=epochs, verbose=0, shuffle=True)

    def traced():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            model.train_instrumented(ds.X, ds.Y, epochs=epochs, **kw)

    def fit_traced():  # the first fit after compile; compile itself is not timed
        fit_model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
        watch = Stopwatch()
        fit()
        return Samples([watch.stop()])

    group = f"{config} {label} ({len(compiled.metric_names)} metrics)"
    return [Candidate(group, "compiled", run_compiled, units=epochs * steps),
            Candidate(group, "eager", lambda: eager.run(rng.permutation(len(ds.X)), 0,
                                                        eager_steps), units=eager_steps),
            Candidate(group, "fit", fit, units=epochs * steps),
            Candidate(group, "compiled+trace", traced, units=epochs * steps),
            Candidate(group, "fit+trace", fit_traced, units=epochs * steps)]


def _targets(candidates: List[Candidate]) -> List[Target]:
    compiled, eager, fit, traced, fit_traced = candidates
    group = compiled.group
    return [target(f"{group}: eager / compiled", eager, compiled, EAGER_OVER_COMPILED, ">="),
            target(f"{group}: compiled / fit", compiled, fit, COMPILED_OVER_FIT),
            target(f"{group}: compiled+trace / fit+trace", traced, fit_traced)]


def run(repeats: int = 5, epochs: int = 5, eager_steps: int = 32) -> Report:
    """Time every model and path (module docstring), per model a group.

    Args:
        repeats: interleaved rounds; medians over them are reported.
        epochs: epochs per timing.
        eager_steps: steps the eager path is timed over (it is slow).
    """
    for name, value in (("repeats", repeats), ("epochs", epochs), ("eager_steps", eager_steps)):
        _checks.integer(name, value, minimum=1)
    candidates: List[Candidate] = []
    targets: List[Target] = []
    for config in ("linear", "mlp-64-64"):
        for label, precision in (("float", None), ("fixed", DEFAULT_PRECISION)):
            timed = _candidates(config, label, precision, epochs, eager_steps)
            measure(timed, repeats, warmup=0)  # traced in _candidates where it should be
            candidates += timed
            targets += _targets(timed)
    return Report(f"kappa bench trainer: TensorFlow {tf.__version__}, Keras {keras.__version__}; "
                  f"batch {BATCH}, 2048 rows (64 steps/epoch), {epochs} epochs per timing, "
                  f"{repeats} interleaved rounds, eager timed over {eager_steps} steps; medians",
                  candidates, targets, unit="ms/step")

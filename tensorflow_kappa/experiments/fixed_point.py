"""Fixed-point training of a small CNN with ``model.fit`` (``kappa fixed-point``).

The study Gupta et al. (2015, *Deep Learning with Limited Numerical
Precision*) made on MNIST, on scikit-learn's bundled 8x8 digits (1797
images, no download): a small CNN trained with plain SGD in float32 and with
its weights and biases stored in 16-bit fixed point ``s16.<frac>`` for
several fractional lengths, once with round-to-nearest and once with
stochastic rounding. Everything else is 16-bit fixed point too, in the same
rounding mode (:data:`FIXED_FIELDS`: activations, the errors backpropagated
into them, gradients, the input); the SGD step is added to the stored weight
and the sum rounded into storage by the fused update, as in the paper.

The effect to reproduce: where the SGD steps ``lr * g`` are mostly smaller
than half a storage grid step, round-to-nearest adds nothing to the stored
weights (the update underflows) and training stalls, while stochastic
rounding adds them in expectation and trains to within about a point of
float32. What one run measured is in BENCHMARKS.md.

Each run is ``model.fit`` with :func:`~tensorflow_kappa.quantization.quantize_model`,
:class:`~tensorflow_kappa.optimizers.LowPrecisionOptimizer` and
:class:`~tensorflow_kappa.callbacks.QuantizationMonitor`; the per-epoch test
accuracy, the fraction of the update lost to underflow and the progress
along the requested step go to a table, a JSON record and a PNG.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.experiments import resumable
from tensorflow_kappa.experiments.reporting import format_number, text_table, write_json
from tensorflow_kappa.experiments.resumable import RunFolder

__all__ = ["DigitsRun", "estimated_seconds", "format_table", "load_digits", "make_cnn",
           "precision_for", "run_study", "plot_runs", "study_plan"]

ROUNDINGS = ("nearest_even", "stochastic")
DEFAULT_FORMATS = ("s16.14", "s16.12", "s16.10", "s16.8")


def load_digits(seed: int = 0, test_fraction: float = 0.25,
                limit: Optional[int] = None) -> Tuple[np.ndarray, ...]:
    """scikit-learn's bundled 8x8 digits as ``(x_train, y_train, x_test, y_test)``.

    Pixels scaled to [0, 1], shape ``(n, 8, 8, 1)`` float32; labels int32;
    a stratified-by-shuffle split with ``seed``. ``limit`` keeps the first
    ``limit`` images (smoke runs; at least 2, one to train on and one to test).

    Raises:
        ValueError: ``limit`` is not an integer >= 2.
        ImportError: scikit-learn is missing (``pip install
            "tensorflow_kappa[experiments]"``).
    """
    if limit is not None:
        _checks.integer("limit", limit, minimum=2)
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as err:
        raise ImportError("kappa fixed-point trains on scikit-learn's bundled digits: "
                          "pip install scikit-learn (or tensorflow_kappa[experiments])") from err
    data = sklearn_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    y = data.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    if limit is not None:
        order = order[:limit]
    x, y = x[order], y[order]
    n_test = max(1, int(round(len(x) * test_fraction)))
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def make_cnn(seed: int = 0):
    """The study's CNN: conv(16) - pool - conv(32) - pool - dense(10), ReLU, logits out."""
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
        L.MaxPooling2D(2, name="pool1"),
        L.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
        L.MaxPooling2D(2, name="pool2"),
        L.Flatten(name="flatten"),
        L.Dense(10, name="dense"),
    ], name="digits_cnn")


#: The 16-bit formats of everything but the stored weights, which the study varies:
#: activations up to +-32, errors and gradients below 2 in magnitude.
FIXED_FIELDS = {"activation": "s16.10", "error": "s16.14", "gradient": "s16.14"}
INPUT_FORMAT = "s16.14"   # pixels in [0, 1]


def precision_for(storage: str, rounding: str) -> Dict[str, Dict[str, str]]:
    """The study's precision dict: weights and biases stored in ``storage``, the other
    fields in :data:`FIXED_FIELDS`, every format rounding by ``rounding``."""
    def fmt(f):
        return f if rounding == "nearest_even" else f"{f}:{rounding}"

    fields = {"weight": fmt(storage), "bias": fmt(storage)}
    fields.update({field: fmt(f) for field, f in FIXED_FIELDS.items()})
    return {"*": fields, "input": {"value": fmt(INPUT_FORMAT)}}


@dataclasses.dataclass
class DigitsRun:
    """One training run of the study and its per-epoch record."""

    name: str
    fmt: Optional[str]                 # None: float32
    rounding: Optional[str]
    test_accuracy: List[float]         # per epoch
    train_loss: List[float]
    update_underflow: List[float]      # per epoch: mean over layers of underflow/<layer>/update
    update_progress: List[float]       # per epoch: mean over layers of progress/<layer>/update
    storage_saturation: List[float]    # per epoch: max over layers
    activation_saturation: List[float]  # per epoch: max over Quantize layers (forward)
    wall_time_s: float

    @property
    def final_accuracy(self) -> float:
        """The test accuracy after the last epoch."""
        return self.test_accuracy[-1]

    def epochs_to(self, target: float) -> Optional[int]:
        """The first epoch (1-based) whose test accuracy reaches ``target``, or None."""
        for epoch, acc in enumerate(self.test_accuracy, start=1):
            if acc >= target:
                return epoch
        return None


def _per_epoch(history: Dict[str, List[float]], stat: str, field: str,
               reduce: Callable, epochs: int) -> List[float]:
    keys = [k for k in history if k.startswith(f"{stat}/") and k.endswith(f"/{field}")]
    if not keys:
        return [float("nan")] * epochs
    return [float(reduce([history[k][e] for k in keys])) for e in range(epochs)]


def train_run(fmt: Optional[str], rounding: Optional[str], data: Tuple[np.ndarray, ...], *,
              epochs: int, learning_rate: float, batch_size: int, seed: int,
              every: int, verbose: int = 0) -> DigitsRun:
    """Train the CNN once (float32 when ``fmt`` is None) and record it."""
    import keras

    from tensorflow_kappa.callbacks import QuantizationMonitor
    from tensorflow_kappa.optimizers import LowPrecisionOptimizer
    from tensorflow_kappa.quantization import quantize_model

    x_train, y_train, x_test, y_test = data
    model = make_cnn(seed)
    optimizer = keras.optimizers.SGD(learning_rate)
    callbacks = []
    if fmt is not None:
        precision = precision_for(fmt, rounding)
        model = quantize_model(model, precision)
        optimizer = LowPrecisionOptimizer(optimizer, precision, seed=seed)
        callbacks.append(QuantizationMonitor(every=every, death_steps=10**9))
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                        validation_data=(x_test, y_test), callbacks=callbacks,
                        verbose=verbose).history
    wall = time.perf_counter() - start
    name = "float32" if fmt is None else f"{fmt} {'RN' if rounding == 'nearest_even' else 'SR'}"
    return DigitsRun(
        name=name, fmt=fmt, rounding=rounding,
        test_accuracy=[float(v) for v in history["val_accuracy"]],
        train_loss=[float(v) for v in history["loss"]],
        update_underflow=_per_epoch(history, "underflow", "update", np.mean, epochs),
        update_progress=_per_epoch(history, "progress", "update", np.mean, epochs),
        storage_saturation=_per_epoch(history, "saturation", "storage", np.max, epochs),
        activation_saturation=_per_epoch(history, "saturation", "forward", np.max, epochs),
        wall_time_s=wall)


def study_plan(formats: Sequence[str], roundings: Sequence[str]
               ) -> List[Tuple[Optional[str], Optional[str]]]:
    """The study's runs, ``(format, rounding)`` with ``(None, None)`` (float32) first,
    each run's precision dict built: a format that does not parse or that float32
    cannot hold (``s30.20``), or an unknown rounding, fails here, before any training.

    Example:
    >>> study_plan(["s16.8"], ["stochastic"])
    [(None, None), ('s16.8', 'stochastic')]
    >>> study_plan(["s30.20"], ["stochastic"])
    Traceback (most recent call last):
    ...
    ValueError: Precision for *.weight: Format s30.20:stochastic ...
    """
    from tensorflow_kappa.quantization import PrecisionDict

    for rounding in roundings:
        _checks.one_of("rounding", rounding, ROUNDINGS)
    plan = [(f, r) for f in formats for r in roundings]
    for fmt, rounding in plan:
        PrecisionDict(precision_for(fmt, rounding))
    return [(None, None)] + plan


#: Seconds per run, epoch and image of the study, measured on the shared 2-core machine
#: (BENCHMARKS.md: the default study, 9 runs x 30 epochs of the 1797 digits, about
#: 4 minutes with the monitor).
SECONDS_PER_IMAGE_EPOCH = 5e-4


def estimated_seconds(runs: int, epochs: int, limit: Optional[int] = None) -> float:
    """A rough time of ``runs`` runs of ``epochs`` epochs over the digits (``limit``
    of them).

    Example:
    >>> round(estimated_seconds(9, 30) / 60)
    4
    """
    return runs * epochs * (1797 if limit is None else min(limit, 1797)) \
        * SECONDS_PER_IMAGE_EPOCH


def run_study(formats: Sequence[str] = DEFAULT_FORMATS, roundings: Sequence[str] = ROUNDINGS,
              *, epochs: int = 30, learning_rate: float = 0.05, batch_size: int = 32,
              seed: int = 0, every: int = 10, limit: Optional[int] = None,
              log: Callable[[str], None] = print, verbose: int = 0,
              units: Optional[RunFolder] = None) -> List[DigitsRun]:
    """float32, then every format with every rounding, on the same split and initial weights.

    With ``units`` (a :class:`~tensorflow_kappa.experiments.resumable.RunFolder`) each
    run is kept there as it finishes, and the runs a resumed study finished are read
    back instead of trained (``kappa fixed-point``).

    Raises:
        ValueError: a format that does not parse or does not fit float32, or an
            unknown rounding mode (:func:`study_plan`, before any training).
    """
    plan = study_plan(formats, roundings)
    data = load_digits(seed, limit=limit)
    options = dict(data=data, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                   seed=seed, every=every, verbose=verbose)
    runs = []
    for k, (fmt, rounding) in enumerate(plan):
        run = resumable.unit(units, f"run-{k}", lambda: train_run(fmt, rounding, **options),
                             encode=dataclasses.asdict, decode=lambda r: DigitsRun(**r))
        log(f"{run.name:<14} test accuracy {run.final_accuracy:.3f}, update underflow "
            f"{format_number(run.update_underflow[-1], '.2f')}, {run.wall_time_s:.0f} s")
        runs.append(run)
    return runs


def format_table(runs: Sequence[DigitsRun], target: float) -> str:
    """The study's table: final and best test accuracy, gap to float32, epochs to
    ``target``; in the last epoch (means of its monitored steps): the fraction of
    the update lost to underflow and the progress along the requested step (means
    over layers), storage and activation saturation (maxima over layers)."""
    reference = runs[0].final_accuracy if runs and runs[0].fmt is None else float("nan")
    rows = [("run", "test acc", "best", "vs float", f"epochs to {target:.0%}",
             "update underflow", "progress", "storage sat", "activation sat")]
    for run in runs:
        reached = run.epochs_to(target)
        rows.append((
            run.name, f"{run.final_accuracy:.3f}", f"{max(run.test_accuracy):.3f}",
            "" if run.fmt is None else f"{100 * (run.final_accuracy - reference):+.1f} pt",
            "never" if reached is None else str(reached),
            format_number(run.update_underflow[-1], ".3f"),
            format_number(run.update_progress[-1], ".3f"),
            format_number(run.storage_saturation[-1], ".2g"),
            format_number(run.activation_saturation[-1], ".2g"),
        ))
    return text_table(rows, left=1)


def plot_runs(runs: Sequence[DigitsRun], path: str) -> str:
    """Test accuracy, update underflow and progress per epoch, one line per run
    (dashed: stochastic rounding); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, under, progress) = plt.subplots(1, 3, figsize=(16, 4.5))
    for run in runs:
        epochs = np.arange(1, len(run.test_accuracy) + 1)
        style = "--" if run.rounding == "stochastic" else "-"
        line, = acc.plot(epochs, run.test_accuracy, style, label=run.name,
                         color="black" if run.fmt is None else None)
        if run.fmt is not None:
            under.plot(epochs, run.update_underflow, style, color=line.get_color(),
                       label=run.name)
            progress.plot(epochs, run.update_progress, style, color=line.get_color(),
                          label=run.name)
    acc.set(xlabel="epoch", ylabel="test accuracy", title="8x8 digits CNN: test accuracy")
    under.set(xlabel="epoch", ylabel="fraction of the update's entries lost",
              title="update underflow (mean over layers)", ylim=(-0.02, 1.02))
    progress.set(xlabel="epoch", ylabel="<stored change, step> / |step|^2",
                 title="progress along the requested step (1: float)")
    progress.axhline(1.0, color="black", linewidth=0.8)
    for ax in (acc, under, progress):
        ax.legend(fontsize=7)
    fig.tight_layout()
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_results(runs: Sequence[DigitsRun], out_dir: str, target: float,
                  config: Dict[str, Any]) -> Dict[str, str]:
    """``fixed_point.txt`` (the table), ``fixed_point.json`` and ``fixed_point.png``."""
    os.makedirs(out_dir, exist_ok=True)
    table = format_table(runs, target)
    table_path = os.path.join(out_dir, "fixed_point.txt")
    with open(table_path, "w", encoding="utf-8") as f:
        f.write(table + "\n")
    json_path = write_json(os.path.join(out_dir, "fixed_point.json"),
                           {"config": config, "target": target,
                            "runs": [dataclasses.asdict(r) for r in runs]})
    png_path = plot_runs(runs, os.path.join(out_dir, "fixed_point.png"))
    return {"table": table_path, "json": json_path, "plot": png_path}

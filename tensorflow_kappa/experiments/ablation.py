"""The 2x2 ablation: float vs fixed point, controller off vs on (``kappa ablation``).

On a teacher-student regression ``Y = X @ A + noise`` a one-layer, no-bias
:class:`~tensorflow_kappa.models.LinearBlockModel` (so the Hessian, the
stability margins and the weight error are exact) is trained four times
from the same initial weights:

==========  ==================  ==========
run         precision           controller
==========  ==================  ==========
float-off   float32             off
float-on    float32             on
fixed-off   the precision dict  off
fixed-on    the precision dict  on
==========  ==================  ==========

and, unless disabled, twice more at a small learning rate to show *silent
learning death*: ``lowlr-float-off`` (what learning reaches) and
``lowlr-coarse-off``, the fixed-point dict with a coarse ``update`` format
whose grid step is larger than twice the intended updates, so they round
to zero: the run stays finite, unsaturated and far from the stability edge,
and its loss simply stops falling. Only the update geometry shows why
(applied update norm 0, update cosine 0, underflow fraction 1).

Each run's :class:`~tensorflow_kappa.models.FitHistory` is written as
``<run>.npz`` and ``<run>.png``, and the summary table with :func:`describe`'s
reading of it as ``summary.txt``.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.datasets import TeacherStudentDataset
from tensorflow_kappa.experiments import resumable
from tensorflow_kappa.experiments.reporting import (format_number, text_table, try_write,
                                                    write_text)
from tensorflow_kappa.experiments.resumable import RunFolder
from tensorflow_kappa.models import FitHistory, LinearBlockModel
from tensorflow_kappa.quantization import FixedPoint, PrecisionDict, ensure_precision_dict
from tensorflow_kappa.quantization.precision import DEFAULT_LAYER

__all__ = [
    "AblationRun",
    "DEFAULT_PRECISION",
    "describe",
    "estimated_seconds",
    "format_table",
    "run_ablation",
    "summarize_history",
]

#: The fixed-point dict the ablation uses unless told otherwise: 16-bit
#: storage and updates on a 2**-13 grid (rails +-4), 16-bit activations,
#: accumulators and gradients on a 2**-10 grid (rails +-32).
DEFAULT_PRECISION = {
    DEFAULT_LAYER: {
        "value": "s16.13", "weight": "s16.13", "bias": "s16.13", "update": "s16.13",
        "accumulator": "s16.10", "activation": "s16.10", "gradient": "s16.10",
    }
}
#: Fraction of the last epoch's steps that must apply (almost) no update for
#: a run to count as dead, and what "almost no update" means (applied norm
#: below this fraction of the intended one).
DEATH_STEP_FRACTION = 0.5
DEATH_RADIUS_RATIO = 1e-3


@dataclasses.dataclass
class AblationRun:
    """One run of the ablation: its settings, history and summary row."""

    name: str
    precision: str
    use_controller: bool
    learning_rate: float
    history: FitHistory
    row: Dict[str, Any]
    files: List[str] = dataclasses.field(default_factory=list)


def _max_of(history: FitHistory, names) -> float:
    values = [np.nanmax(history[n]) for n in names if n in history and len(history[n])]
    return float(max(values)) if values else float("nan")


def summarize_history(history: FitHistory) -> Dict[str, Any]:
    """The summary-table row of one run.

    ``final_loss`` is the mean batch loss over the last epoch logged;
    ``max_margin`` the largest applied ``alpha * eta * lambda_max``;
    ``max_underflow`` the largest ``update_underflow_fraction_max``;
    ``max_saturation`` the largest weight, gradient or update saturation
    fraction; ``died`` is True when at least half of the last epoch's steps
    applied an update smaller than 1e-3 of the intended one although one
    was intended (and the run did not diverge).
    """
    n = len(history)
    if n == 0:
        return {"steps": 0, "final_loss": float("nan"), "weight_error": float("nan"),
                "max_margin": float("nan"), "min_cosine": float("nan"),
                "max_underflow": float("nan"), "max_saturation": float("nan"),
                "diverged": history.diverged, "died": False}
    last = history.epoch == history.epoch[-1]
    intended = history.raw_update_norm[last] > 0
    frozen = intended & (history.update_radius_ratio[last] < DEATH_RADIUS_RATIO)
    died = (not history.diverged and intended.any()
            and frozen.sum() >= DEATH_STEP_FRACTION * last.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        return {
            "steps": n,
            "final_loss": float(np.mean(history.loss[last])),
            "weight_error": float(history.weight_error_fro[-1]),
            "max_margin": float(np.nanmax(history.stability_margin_lambda_ctrl)),
            "min_cosine": float(np.nanmin(history.update_cosine)),
            "max_underflow": _max_of(history, ["update_underflow_fraction_max"]),
            "max_saturation": _max_of(history, [
                "weight_saturation_fraction_max", "gradient_saturation_fraction_max",
                "update_saturation_fraction_max"]),
            "diverged": history.diverged,
            "died": bool(died),
        }


def format_table(runs: List[AblationRun]) -> str:
    """The summary table, one line per run."""
    head = ("run", "precision", "ctrl", "lr", "steps", "final loss", "weight err",
            "max margin", "min cos", "max underflow", "max sat", "diverged", "died")
    rows = [head]
    for r in runs:
        s = r.row
        numbers = [format_number(v) for v in (
            r.learning_rate, s["final_loss"], s["weight_error"], s["max_margin"],
            s["min_cosine"], s["max_underflow"], s["max_saturation"])]
        rows.append((r.name, r.precision, "on" if r.use_controller else "off",
                     numbers[0], str(s["steps"]), *numbers[1:],
                     "YES" if s["diverged"] else "no", "YES" if s["died"] else "no"))
    return text_table(rows, left=3)


def _with_update_format(precision: PrecisionDict, update: str) -> PrecisionDict:
    spec = precision.to_dict()
    spec.setdefault(DEFAULT_LAYER, {})
    for fields in spec.values():
        fields["update"] = update
    return PrecisionDict(spec)


def _precision_label(precision: Union[None, str, Mapping, PrecisionDict]) -> str:
    if isinstance(precision, str):
        return precision
    return "fixed"


def run_ablation(
    precision: Union[None, str, Mapping, PrecisionDict] = None,
    *,
    learning_rate: float = 1.8,
    chi: float = 1.5,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    n: int = 1024,
    input_dim: int = 16,
    output_dim: int = 4,
    noise: float = 0.1,
    death_update: Optional[str] = "s8.4",
    death_learning_rate: float = 0.1,
    out_dir: Optional[str] = None,
    plots: bool = True,
    verbose: bool = False,
    log=None,
    units: Optional[RunFolder] = None,
) -> List[AblationRun]:
    """Run the ablation (see the module docstring) and return its runs.

    Args:
        precision: the fixed-point side: a PrecisionDict, its dict form, or
            one format for every field (``"s8.6"``); None uses
            :data:`DEFAULT_PRECISION`.
        learning_rate, chi: eta and the throttle's target margin of the 2x2.
            The default 1.8 puts ``eta * lambda_max`` of the default data
            (about 1.27 for the full batch, 2-3.5 per batch) past 2.
        epochs, batch_size, seed: training; the seed fixes the data, the
            initial weights (identical for every run) and the shuffling.
        n, input_dim, output_dim, noise: the teacher-student data.
        death_update: the coarse update format of the learning-death case
            (None: skip that case); death_learning_rate its eta.
        out_dir: where to write ``<run>.npz``, ``<run>.png`` and
            ``summary.txt`` (None: write nothing); checked before any work, a
            failed write warns and the runs are still returned.
        plots: draw the PNGs.
        verbose: Keras progress bars.
        log: called with a line of text as each run finishes (e.g. print).
        units: keeps each run there as it finishes (a
            :class:`~tensorflow_kappa.experiments.resumable.RunFolder`: its
            history and settings), and reads back the runs a resumed ablation
            finished instead of training them (``kappa ablation``).
    """
    for name, value in (("learning_rate", learning_rate), ("chi", chi),
                        ("death_learning_rate", death_learning_rate)):
        _checks.number(name, value, minimum=0.0, strict_minimum=True)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        _checks.integer(name, value, minimum=1)
    fixed = ensure_precision_dict(DEFAULT_PRECISION if precision is None else precision)
    label = _precision_label(precision)
    ds = TeacherStudentDataset(n, input_dim, output_dim, noise=noise, seed=seed)
    model = LinearBlockModel(dataset=ds, num_hidden=[], use_bias=False, seed=seed,
                             verbose=verbose)
    plan = [
        ("float-off", "float32", None, False, learning_rate),
        ("float-on", "float32", None, True, learning_rate),
        ("fixed-off", label, fixed, False, learning_rate),
        ("fixed-on", label, fixed, True, learning_rate),
    ]
    if death_update is not None:
        FixedPoint.coerce(death_update)  # a bad format fails before any run
        plan += [
            ("lowlr-float-off", "float32", None, False, death_learning_rate),
            ("lowlr-coarse-off", f"{label}, update {death_update}",
             _with_update_format(fixed, death_update), False, death_learning_rate),
        ]
    for _, _, prec, _, _ in plan:  # names the model lacks fail now, not after float runs
        if prec is not None:
            prec.validate(model.layer_names())
    if out_dir is not None:
        out_dir = _checks.writable_folder("out_dir", out_dir)
    runs = []
    for name, prec_label, prec, ctrl, lr in plan:
        def train(name=name, prec_label=prec_label, prec=prec, ctrl=ctrl, lr=lr):
            model.reinitialize_weights(seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the table reports divergence
                history = model.train_instrumented(
                    ds.X, ds.Y, epochs=epochs, batch_size=batch_size, learning_rate=lr,
                    chi=chi, use_controller=ctrl, reference_A=ds.A, precision_dict=prec)
            history.metadata["title"] = (f"{name}: {prec_label}, controller "
                                         f"{'on' if ctrl else 'off'}")
            run = AblationRun(name, prec_label, ctrl, lr, history, summarize_history(history))
            if out_dir is not None:
                written = [try_write(history.save, os.path.join(out_dir, f"{name}.npz"))]
                if plots:
                    written.append(try_write(history.plot_results,
                                             os.path.join(out_dir, f"{name}.png")))
                run.files += [path for path in written if path is not None]
            return run

        def keep(run: AblationRun) -> dict:
            run.history.save(units.path(run.name, ".npz"))  # written whole, then renamed
            return {"name": run.name, "precision": run.precision,
                    "use_controller": run.use_controller, "learning_rate": run.learning_rate,
                    "files": run.files}

        def back(record: dict, name=name) -> AblationRun:
            history = FitHistory.load(units.path(name, ".npz"))
            return AblationRun(record["name"], record["precision"], record["use_controller"],
                               record["learning_rate"], history, summarize_history(history),
                               record["files"])

        run = resumable.unit(units, name, train, encode=keep, decode=back)
        runs.append(run)
        if log is not None:
            log(f"  {name}: {run.row['steps']} steps, final loss "
                f"{format_number(run.row['final_loss'])}")
    if out_dir is not None:
        try_write(lambda p: write_text(p, format_table(runs) + "\n\n" + describe(runs) + "\n"),
                  os.path.join(out_dir, "summary.txt"))
    return runs


#: Seconds per run (tracing the compiled epoch) and per step of the instrumented
#: trainer, measured on the shared 2-core machine (BENCHMARKS.md: about 0.3 ms per
#: step of the 16->4 layer, 2-3 s to trace).
SECONDS_PER_RUN, SECONDS_PER_STEP = 3.0, 5e-4


def estimated_seconds(runs: int, epochs: int, n: int, batch_size: int) -> float:
    """A rough time of ``runs`` runs of ``epochs`` epochs over ``n`` examples.

    Example:
    >>> round(estimated_seconds(6, 10, 1024, 32))
    19
    """
    return runs * (SECONDS_PER_RUN + epochs * -(-n // batch_size) * SECONDS_PER_STEP)


def describe(runs: List[AblationRun]) -> str:
    """A few sentences on what the table shows (diverged, saturated and dead runs)."""
    lines = []
    by_name = {r.name: r for r in runs}
    for r in runs:
        s = {k: format_number(v) if isinstance(v, float) else v for k, v in r.row.items()}
        if r.row["diverged"]:
            lines.append(f"{r.name}: diverged after {s['steps']} steps (non-finite loss or "
                         f"weights; max eta*lambda_max {s['max_margin']} > 2).")
        elif r.row["max_saturation"] > 0.01 and not r.row["died"]:
            lines.append(f"{r.name}: finite but pinned to the rails (up to "
                         f"{format_number(100 * r.row['max_saturation'])}% of entries "
                         "saturated): the fixed-point form of divergence.")
        if r.row["died"]:
            ref = by_name.get(r.name.replace("coarse", "float"))
            ref_text = (f" while float reaches {format_number(ref.row['final_loss'])}"
                        if ref is not None and ref is not r else "")
            lines.append(
                f"{r.name}: SILENT LEARNING DEATH. The loss stalls at "
                f"{s['final_loss']}{ref_text}; the run is finite, max "
                f"eta*lambda_max {s['max_margin']}, max saturation "
                f"{s['max_saturation']}, so loss and stability look healthy. The "
                f"update geometry shows it: update underflow up to "
                f"{s['max_underflow']}, update cosine down to {s['min_cosine']} "
                "(applied updates are zero)."
            )
    return "\n".join(lines)

"""The package's main job: a deep iNALU stack on the report's arithmetic task, end to end.

:func:`train_arithmetic` is what ``kappa arithmetic`` runs (report chapter 6):

1. data: :func:`~tensorflow_kappa.datasets.arithmetic_task` (the report's
   ``(x1 - x2) * (x3 - x4) + x5 * x6`` on 7 inputs by default; 64 000
   training, interpolation and extrapolation samples; U(−3, 3) and U(10, 15));
2. model: ``keras.Sequential`` of ``INALU`` layers (3, 2, 1 units), compiled
   with RMSprop(0.01) and the MSE, batch 64 (chapter 6.1.3);
3. training: ``model.fit`` with :func:`~tensorflow_kappa.recipes.inalu_controller`
   (gate schedule, clipping, delayed regularisation, reinitialisation, early
   stopping), :class:`~tensorflow_kappa.callbacks.InExtrapolationEvaluation`
   and Keras's progress bar;
4. verdict: Madsen & Johansen's success criterion
   (:mod:`tensorflow_kappa.evaluation`), the formula read back with
   :func:`~tensorflow_kappa.layers.explain` and compared with the task's
   expression tree, a PNG of the run and a JSON summary.

The expression is parsed once (by the caller or by ``arithmetic_task``) and
handed on as an :class:`~tensorflow_kappa.datasets.expression.Expression`.

Many seeds (``kappa arithmetic --seeds M``) and the expression suite
(``--suite``) train as one vectorised population with the same recipe record:
:mod:`tensorflow_kappa.experiments.arithmetic_population`.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import keras
import numpy as np
from matplotlib.figure import Figure

from tensorflow_kappa import _checks
from tensorflow_kappa.callbacks.in_extrapolation import InExtrapolationEvaluation
from tensorflow_kappa.datasets.arithmetic import REPORT_EXPRESSION, arithmetic_task
from tensorflow_kappa.datasets.expression import Expression
from tensorflow_kappa.evaluation import EPSILON, formula_matches, perturbed_threshold, succeeded
from tensorflow_kappa.experiments.reporting import jsonable, try_write, write_json
from tensorflow_kappa.layers import INALU, explain, sparsity_error
from tensorflow_kappa.recipes import BatchMSE, inalu_controller

__all__ = [
    "ArithmeticResult",
    "DEFAULT_EPOCHS",
    "check_layers",
    "plot_run",
    "train_arithmetic",
]

#: Default epoch budget of ``kappa arithmetic``: room for several attempts (a
#: successful attempt takes about 15 epochs; the default recipe's windowed
#: detector fires after 5-6 epochs on a plateau, the report's after 11).
DEFAULT_EPOCHS = 60


@dataclasses.dataclass
class ArithmeticResult:
    """The outcome of one :func:`train_arithmetic` run.

    Attributes:
        seed, expression: what was trained.
        success: Madsen & Johansen's criterion (extrapolation MSE below
            ``threshold`` at the epoch with the best interpolation MSE).
        best_epoch: that epoch (0-based).
        threshold: the ε-perturbed exact solution's extrapolation MSE.
        formula: ``explain(model)[0]`` after training.
        formula_correct: whether ``formula`` computes the task's expression.
        interpolation_mse, extrapolation_mse, loss: per epoch (``loss`` is the
            epoch's data loss, the controller's ``loss_gate``).
        epochs, steps: epochs and batches run.
        stopped_early: the recipe's early stopping ended the run.
        reinitializations, regularization_started: ``(epoch, batch)`` events.
        sparsity_error: Madsen & Johansen's sparsity error of the final weights.
        wall_time_s: seconds spent in ``fit`` and evaluation.
        plot_path, summary_path: the files written (``None`` without ``out_dir``).
    """

    seed: Optional[int]
    expression: str
    success: bool
    best_epoch: int
    threshold: float
    formula: str
    formula_correct: bool
    interpolation_mse: List[float]
    extrapolation_mse: List[float]
    loss: List[float]
    epochs: int
    steps: int
    stopped_early: bool
    reinitializations: List[Tuple[int, int]]
    regularization_started: List[Tuple[int, int]]
    sparsity_error: float
    wall_time_s: float
    config: Dict[str, Any]
    plot_path: Optional[str] = None
    summary_path: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dictionary (non-finite floats become ``None``)."""
        return jsonable(dataclasses.asdict(self))


def check_layers(layers) -> Tuple[int, ...]:
    """An INALU stack's widths: positive integers (or their comma-separated text)
    ending in 1 (one target).

    Raises:
        ValueError: anything else, with the value.

    Example:
    >>> check_layers("3,2,1")
    (3, 2, 1)
    """
    if isinstance(layers, str):
        try:
            layers = [int(v) for v in layers.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"layers must be comma-separated positive integers, "
                             f"got {layers!r}") from None
    layers = tuple(layers)
    if not layers or any(isinstance(u, bool) or not isinstance(u, (int, np.integer)) or u < 1
                         for u in layers):
        raise ValueError(f"layers must be positive integers, got {layers!r}")
    if layers[-1] != 1:
        raise ValueError(f"layers must end with a 1-unit layer (one target), got {layers!r}")
    return tuple(int(u) for u in layers)


class _EpochReport(keras.callbacks.Callback):
    """One line per epoch after Keras's progress bar: losses, MSEs, controller state."""

    def __init__(self, controller, stream=None):
        super().__init__()
        self.controller = controller
        self.stream = stream

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        c = self.controller
        states = c.states
        gate = "gates" if not states.get("gate", True) else "weights"
        reg = "on" if states.get("delay", False) else "off"
        line = (f"epoch {epoch + 1}: loss {logs.get('loss_gate', float('nan')):.3g}"
                f" | interpolation MSE {logs.get('interpolation_mse', float('nan')):.3g}"
                f" | extrapolation MSE {logs.get('extrapolation_mse', float('nan')):.3g}"
                f" | controller: last batch trained {gate}, regularisation {reg},"
                f" reinitialisations {len(c.reinitializations)},"
                f" epochs since the last {c.reinit_epochs}")
        print(line, file=self.stream or sys.stdout, flush=True)


def train_arithmetic(
    expression: Union[str, Expression] = REPORT_EXPRESSION,
    num_inputs: int = 7,
    layers: Sequence[int] = (3, 2, 1),
    epochs: int = DEFAULT_EPOCHS,
    seed: Optional[int] = 0,
    n: int = 64000,
    batch_size: int = 64,
    learning_rate: float = 0.01,
    train_range=(-3, 3),
    extrapolation_range=(10, 15),
    out_dir: Optional[str] = None,
    verbose: int = 1,
    controller_options: Optional[Mapping[str, Any]] = None,
    epsilon: float = EPSILON,
    task=None,
) -> ArithmeticResult:
    """Train an iNALU stack on an arithmetic task with the iNALU recipe (one candidate).

    Args:
        expression, num_inputs: the task (see :func:`arithmetic_task`); the
            expression as text or already parsed.
        layers: units per INALU layer; the last must be 1.
        epochs: upper bound on epochs (the recipe's early stopping usually
            ends the run sooner).
        seed: seeds the data, the weights and the shuffling (None, or an
            integer in [0, 2**32 - 1]).
        n, train_range, extrapolation_range: passed to :func:`arithmetic_task`.
        batch_size, learning_rate: report: 64 and RMSprop(0.01).
        out_dir: where to write ``arithmetic_seed<S>.png`` and ``.json``;
            ``None`` writes nothing. Checked (created, writable) before any
            work; a write that fails at the end warns
            (:class:`~tensorflow_kappa.experiments.reporting.OutputWriteWarning`)
            and leaves that path None.
        verbose: 0 silent, 1 Keras's progress bar plus one line per epoch,
            2 one Keras line per epoch plus ours.
        controller_options: keyword arguments for :func:`inalu_controller`
            (defaults: the default recipe with ``loss_key="batch_mse"``;
            ``{"report": True}``: the report's published recipe).
        epsilon: the success criterion's ε.
        task: an :class:`~tensorflow_kappa.datasets.ArithmeticTask` to use
            instead of drawing one.

    Returns:
        An :class:`ArithmeticResult`.
    """
    layers = check_layers(layers)
    epochs = _checks.integer("epochs", epochs, minimum=1)
    seed = _checks.random_seed("seed", seed, maximum=_checks.SEED32_MAX)
    batch_size = _checks.integer("batch_size", batch_size, minimum=1)
    learning_rate = _checks.number("learning_rate", learning_rate, minimum=0.0,
                                   strict_minimum=True)
    verbose = _checks.one_of("verbose", verbose, (0, 1, 2))
    if out_dir is not None:
        out_dir = _checks.writable_folder("out_dir", out_dir)
    if task is None:
        task = arithmetic_task(expression, num_inputs, n=n, train_range=train_range,
                               extrapolation_range=extrapolation_range, seed=seed)
    expr = task.expression
    x_ext = task.extrapolation[0]
    threshold = perturbed_threshold(expr, x_ext, epsilon)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    model = keras.Sequential([keras.Input((expr.num_inputs,))]
                             + [INALU(units) for units in layers])
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate), loss="mse",
                  metrics=[BatchMSE()])
    options = {"loss_key": "batch_mse"}
    options.update(controller_options or {})
    controller = inalu_controller(seed=seed, **options)
    evaluation = InExtrapolationEvaluation(task.interpolation, task.extrapolation)
    callbacks: List[keras.callbacks.Callback] = [evaluation, controller]
    if verbose:
        callbacks += [keras.callbacks.ProgbarLogger(), _EpochReport(controller)]
    start = time.perf_counter()
    history = model.fit(*task.train, batch_size=batch_size, epochs=int(epochs),
                        verbose=verbose, callbacks=callbacks, shuffle=True)
    wall = time.perf_counter() - start

    interp = [float(v) for v in evaluation.history["interpolation_mse"]]
    extrap = [float(v) for v in evaluation.history["extrapolation_mse"]]
    success, best = succeeded(interp, extrap, threshold)
    formula = explain(model, input_names=list(task.input_names))[0]
    steps = int(controller.batches)
    config = dict(expression=str(expr), num_inputs=expr.num_inputs, layers=list(layers),
                  epochs=int(epochs), seed=seed, n=len(task.train[0]), batch_size=batch_size,
                  optimizer=f"RMSprop({learning_rate})", train_range=jsonable(train_range),
                  extrapolation_range=jsonable(extrapolation_range), epsilon=epsilon,
                  recipe=jsonable(controller.recipe.to_dict()))
    result = ArithmeticResult(
        seed=seed, expression=str(expr), success=success, best_epoch=best,
        threshold=threshold, formula=str(formula),
        formula_correct=formula_matches(formula, expr),
        interpolation_mse=interp, extrapolation_mse=extrap,
        loss=[float(v) for v in history.history.get("loss_gate", [])],
        epochs=len(interp), steps=steps,
        stopped_early=bool(len(interp) < int(epochs)),
        reinitializations=[tuple(e) for e in controller.reinitializations],
        regularization_started=[tuple(e) for e in controller.regularization_started],
        sparsity_error=float(sparsity_error(model)), wall_time_s=wall, config=config)
    if out_dir is not None:
        stem = os.path.join(out_dir, f"arithmetic_seed{seed if seed is not None else 'none'}")
        loss_key = controller.recipe.loss_key
        step_loss = np.asarray(controller.history[loss_key]) \
            if loss_key in controller.history else np.empty(0)
        result.plot_path = try_write(lambda p: plot_run(result, step_loss, p), stem + ".png")
        result.summary_path = stem + ".json"  # recorded in the JSON it names
        result.summary_path = try_write(lambda p: write_json(p, result.to_dict()),
                                        result.summary_path)
    return result


def plot_run(result: ArithmeticResult, step_loss: np.ndarray, path: str) -> str:
    """Write the run's figure: step loss (log) with events, and the per-epoch MSEs."""
    fig = Figure(figsize=(12, 4.2))  # no pyplot: no backend chosen, nothing to close
    ax_loss, ax_mse = fig.subplots(1, 2)
    tiny = 1e-16
    steps = np.arange(1, len(step_loss) + 1)
    ax_loss.plot(steps, np.clip(step_loss, tiny, None), lw=0.4, color="tab:blue",
                 label="training MSE per step")
    for i, (_, batch) in enumerate(result.reinitializations):
        ax_loss.axvline(batch, color="tab:red", ls="--", lw=1,
                        label="reinitialisation" if i == 0 else None)
    for i, (_, batch) in enumerate(result.regularization_started):
        ax_loss.axvline(batch, color="tab:green", ls=":", lw=1.5,
                        label="regularisation starts" if i == 0 else None)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("MSE (log)")
    ax_loss.set_title("training loss per step")
    ax_loss.legend(loc="upper right", fontsize=8)

    epochs = np.arange(1, len(result.interpolation_mse) + 1)
    ax_mse.plot(epochs, np.clip(result.interpolation_mse, tiny, None), marker="o", ms=3,
                label="interpolation MSE")
    ax_mse.plot(epochs, np.clip(result.extrapolation_mse, tiny, None), marker="s", ms=3,
                label="extrapolation MSE")
    ax_mse.axhline(result.threshold, color="k", ls="--", lw=1,
                   label=f"ε-perturbed solution ({result.threshold:.2g})")
    ax_mse.axvline(result.best_epoch + 1, color="tab:gray", ls=":", lw=1,
                   label="best interpolation epoch")
    ax_mse.set_yscale("log")
    ax_mse.set_xlabel("epoch")
    ax_mse.set_ylabel("MSE (log)")
    verdict = "success" if result.success else "no success"
    ax_mse.set_title(f"evaluation per epoch: {verdict}")
    ax_mse.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{result.expression}  (seed {result.seed})  →  {result.formula}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path

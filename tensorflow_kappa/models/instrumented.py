"""The compiled step and in-graph metrics of ``BaseModel.train_instrumented``.

One :class:`InstrumentedTrainer` per run holds the run's state (previous
gradient and weights for the curvature proxy, its EMA, the step counter,
momentum velocities) in ``tf.Variable``s kept off the Keras model, and one
``tf.function`` that runs a range of steps of an epoch in a ``tf.while_loop``
(batches gathered from the data by a host-made permutation) and returns a
``(steps, metrics)`` float32 block: every metric is computed in the graph and
the block is fetched once per call (once per epoch, or per progress-bar
chunk with ``verbose``). The loop stops inside the graph after the first
step whose loss, gradient, step size or weights are not finite, and puts the
weights back to what they were before that step. Metrics of non-finite
tensors are NaN (never an exception). Every setting comes in one
:class:`~tensorflow_kappa.models.TrainConfig`.

The update itself is Keras' ``SGD`` (with momentum for
``update_rule="momentum"``) inside
:class:`~tensorflow_kappa.optimizers.LowPrecisionOptimizer`, the package's one
low-precision training step: gradients, momentum, updates and stored weights
are rounded there, per the run's precision dict, and the wrapper's per-variable
statistics (:meth:`~tensorflow_kappa.optimizers.LowPrecisionOptimizer.apply_and_record`)
give the update geometry and the rail metrics. The trainer sets the
optimizer's learning rate to the throttled ``eta_eff`` every step. The forward
pass's quantizers draw their seeds from the trainer's
:class:`~tensorflow_kappa.quantization.seeds.SeedStream` (the model's seed);
the optimizer's stochastic rounding from a seed derived from it
(:func:`optimizer_seed`).
"""
from __future__ import annotations

import math
import warnings
from typing import Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.models import quantized_forward as qf
from tensorflow_kappa.models.history import FitHistory
from tensorflow_kappa.models.stability import (
    analytic_single_dense_hessian,
    finite_eigvalsh,
    flatten_tensors,
    half_mse_batch_loss,
    keras_mse_batch_loss,
    stability_metrics_from_hessian,
    tensor_l2_norm,
)
from tensorflow_kappa.models.train_config import TrainConfig
from tensorflow_kappa.optimizers import LowPrecisionOptimizer
from tensorflow_kappa.optimizers.statistics import GEOMETRY_STATS
from tensorflow_kappa.quantization import quantize_tensor
from tensorflow_kappa.quantization.geometry import update_geometry
from tensorflow_kappa.quantization.precision import INPUT_LAYER
from tensorflow_kappa.quantization.seeds import SeedStream
from tensorflow_kappa.quantization.variables import variable_records

__all__ = [
    "BASE_METRICS",
    "MOMENTUM_QUANT_METRICS",
    "QUANT_METRICS",
    "InstrumentedTrainer",
    "optimizer_seed",
    "train_instrumented",
]

#: The metrics every step of ``train_instrumented`` records (the columns of its
#: :class:`~tensorflow_kappa.models.FitHistory`).
BASE_METRICS = (
    "loss", "rmse", "theta_norm", "grad_norm",
    "raw_update_norm", "actual_update_norm", "update_cosine", "update_angle_rad",
    "update_radius_ratio",
    "curvature_proxy", "curvature_ema", "alpha", "alpha_would", "eta_eff",
    "forward_gain_spectral", "hessian_lambda_max",
    "stability_margin_lambda_raw", "stability_margin_lambda_ctrl",
    "spectral_radius_raw", "spectral_radius_ctrl",
    "weight_error_fro", "finite",
)
#: The metrics a run with a precision dict adds: per step, the largest saturation,
#: near-rail and underflow fraction over the variables.
QUANT_METRICS = (
    "weight_saturation_fraction_max", "weight_near_rail_fraction_max",
    "gradient_saturation_fraction_max", "gradient_near_rail_fraction_max",
    "update_saturation_fraction_max", "update_underflow_fraction_max",
)
#: The metrics a run with a ``momentum`` format adds to :data:`QUANT_METRICS`.
MOMENTUM_QUANT_METRICS = ("momentum_saturation_fraction_max", "momentum_underflow_fraction_max")
#: Each quantization metric: the largest value over the variables of the statistics
#: column of LowPrecisionOptimizer.apply_and_record it is taken from.
_WORST = {
    "weight_saturation_fraction_max": "storage_saturation",
    "weight_near_rail_fraction_max": "weight_near_rail",
    "gradient_saturation_fraction_max": "gradient_saturation",
    "gradient_near_rail_fraction_max": "gradient_near_rail",
    "update_saturation_fraction_max": "update_saturation",
    "update_underflow_fraction_max": "update_underflow",
    "momentum_saturation_fraction_max": "momentum_saturation",
    "momentum_underflow_fraction_max": "momentum_underflow",
}
_HESSIAN_METRICS = (
    "hessian_lambda_max", "stability_margin_lambda_raw", "stability_margin_lambda_ctrl",
    "spectral_radius_raw", "spectral_radius_ctrl",
)


def optimizer_seed(run_seed: int) -> int:
    """The seed of the run's optimizer, derived from the run's seed (so the optimizer's
    stochastic streams differ from the forward pass's): one step of a 63-bit LCG.

    Example:
    >>> optimizer_seed(0) != optimizer_seed(1) != 1
    True
    """
    return (int(run_seed) * 6364136223846793005 + 1442695040888963407) % 2**63


def _worst(columns: List[tf.Tensor]) -> tf.Tensor:
    """Per column (a fraction per variable), the largest measured (non-NaN) value, 0
    where none was measured; one pass over all the columns."""
    table = tf.stack(columns)
    return tf.reduce_max(tf.where(tf.math.is_nan(table), tf.zeros_like(table), table), axis=1)


def _spectral_norm(kernel: tf.Tensor) -> tf.Tensor:
    """Largest singular value, from the eigenvalues of the smaller Gram matrix
    (several times faster than ``tf.linalg.svd`` on CPU for small kernels)."""
    rows, cols = kernel.shape
    gram = tf.matmul(kernel, kernel, transpose_a=cols <= rows, transpose_b=cols > rows)
    return tf.sqrt(tf.maximum(tf.reduce_max(finite_eigvalsh(gram)), 0.0))


class InstrumentedTrainer:
    """State and compiled steps of one instrumented run (see the module docstring).

    Construction checks the data and the model against ``config`` (raising
    ValueError before any step); :meth:`initialize` puts the stored weights on
    their storage grids; :meth:`run` executes steps ``[start, stop)`` of an
    epoch whose row order is ``perm`` and returns their metric rows.

    Args:
        owner: the :class:`~tensorflow_kappa.models.BaseModel` whose Keras
            model is trained (its ``seed`` keys stochastic rounding).
        X, Y: training arrays (cast to float32).
        config: the run's settings (``epochs`` and ``shuffle`` are the loop's,
            in :func:`train_instrumented`).
    """

    def __init__(self, owner, X, Y, config: TrainConfig):
        self.model = model = owner._require_model()
        self.config = config
        X = _checks.float_array("X", X)
        Y = _checks.float_array("Y", Y)
        self._check_data(X, Y)
        self.n = int(X.shape[0])
        self.steps_per_epoch = math.ceil(self.n / config.batch_size)
        self.X, self.Y = tf.constant(X), tf.constant(Y)
        self.output_dim = int(np.prod(model.output_shape[1:]))

        p = self.precision = config.precision_dict
        if p is not None:
            p.validate(qf.layer_names(model))
            qf.check_layer_chain(model)
        self.variables = list(model.trainable_variables)
        if not self.variables:
            raise ValueError(f"Model {model.name!r} has no trainable variables")
        # What a diverged step puts back: the trainable variables, then the rest
        # of the model's state (BatchNorm statistics, ...).
        self._restorable = self.variables + [
            v for v in model.variables if not any(v is w for w in self.variables)]
        self.input_format = None if p is None else p.format(INPUT_LAYER, "value")

        layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
        dense = [l for l in layers if isinstance(l, keras.layers.Dense)]
        self.kernels = [l.kernel for l in dense]
        single = (len(layers) == 1 and len(dense) == 1 and dense[0].bias is None
                  and dense[0].activation is keras.activations.linear
                  and len(self.variables) == 1 and len(X.shape) == 2)
        self.hessian = config.compute_analytic_hessian and single
        self.reference = self._reference(config.reference_A, dense)

        self.metric_names = list(BASE_METRICS)
        if p is not None:
            self.metric_names += QUANT_METRICS
            if config.update_rule == "momentum":
                self.metric_names += MOMENTUM_QUANT_METRICS
        # The optimizer's statistics the metrics read (it measures only those). Where
        # every variable is stored through the fused update, its sums give the update
        # geometry at no cost; else the step's geometry comes from the flat steps.
        self._metric_columns = tuple(_WORST[n] for n in self.metric_names if n in _WORST)
        self._fused_geometry = p is not None and all(
            r.quantized_store for r in variable_records(self.variables, p))
        self._columns = self._metric_columns + (GEOMETRY_STATS if self._fused_geometry else ())
        size = int(sum(np.prod(v.shape) for v in self.variables))
        self._prev_theta = tf.Variable(tf.zeros([size]), trainable=False)
        self._prev_grad = tf.Variable(tf.zeros([size]), trainable=False)
        self._ema = tf.Variable(0.0, trainable=False)
        self._step = tf.Variable(tf.constant(0, tf.int64), trainable=False)
        run_seed = _checks.seed_or_drawn("seed", owner.seed)
        self.seeds = SeedStream(run_seed, self._step)
        self.optimizer = LowPrecisionOptimizer(
            keras.optimizers.SGD(config.learning_rate, momentum=config.effective_momentum),
            p, seed=optimizer_seed(run_seed))
        self._run = (tf.function(self._run_steps, autograph=False) if config.compiled
                     else self._run_steps)

    def _check_data(self, X: np.ndarray, Y: np.ndarray) -> None:
        model = self.model
        in_shape, out_shape = tuple(model.input_shape[1:]), tuple(model.output_shape[1:])
        if X.ndim < 2 or tuple(X.shape[1:]) != in_shape:
            raise ValueError(f"X has shape {X.shape}; the model takes (n, {in_shape})")
        if Y.ndim < 2 or tuple(Y.shape[1:]) != out_shape:
            raise ValueError(f"Y has shape {Y.shape}; the model outputs (n, {out_shape})")
        if X.shape[0] != Y.shape[0] or X.shape[0] == 0:
            raise ValueError(f"X and Y need the same positive number of rows, got "
                             f"{X.shape[0]} and {Y.shape[0]}")

    def _reference(self, A: Optional[np.ndarray], dense: list) -> Optional[tf.Tensor]:
        if A is None:
            return None
        if len(dense) != 1 or tuple(dense[0].kernel.shape) != A.shape:
            raise ValueError(
                f"reference_A of shape {A.shape} needs a model with one Dense layer "
                f"whose kernel has that shape; this model's Dense kernels have shapes "
                f"{[tuple(k.shape) for k in self.kernels]}"
            )
        return tf.constant(A)

    # -- host side ------------------------------------------------------------------
    def initialize(self) -> None:
        """Build the optimizer, which rounds every stored variable onto its storage
        format (before step 0); :meth:`run` does it first where needed."""
        if not self.optimizer.built:
            self.optimizer.build(self.variables)

    def run(self, perm, start: int, stop: int) -> np.ndarray:
        """Run steps ``[start, stop)`` of an epoch with row order ``perm``; return
        their metric rows, ``(k, len(metric_names))``, k < stop - start when the
        run diverged."""
        self.initialize()
        block = self._run(tf.constant(perm, tf.int32), tf.constant(start, tf.int32),
                          tf.constant(stop, tf.int32))
        return block.numpy()

    # -- graph side -------------------------------------------------------------------
    def _run_steps(self, perm, start, stop):
        rows = tf.TensorArray(tf.float32, size=0, dynamic_size=True,
                              element_shape=[len(self.metric_names)])
        finite_at = self.metric_names.index("finite")
        batch_size = self.config.batch_size

        def body(i, ok, rows):
            lo = i * batch_size
            idx = perm[lo:tf.minimum(lo + batch_size, self.n)]
            row = self._train_step(tf.gather(self.X, idx), tf.gather(self.Y, idx))
            return i + 1, row[finite_at] > 0.5, rows.write(i - start, row)

        _, _, rows = tf.while_loop(lambda i, ok, rows: (i < stop) & ok, body,
                                   (start, tf.constant(True), rows))
        return rows.stack()

    def _undo_unless(self, finite: tf.Tensor, before: List[tf.Tensor]) -> None:
        """Put the model's variables back to ``before`` unless the step was finite: a
        diverged run leaves the model as it was after its last finite step."""
        def undo():
            for variable, value in zip(self._restorable, before):
                variable.assign(value)
            return tf.constant(True)

        tf.cond(finite, lambda: tf.constant(True), undo)

    def _loss(self, y, y_pred):
        if self.config.loss_mode == "half_mse":
            return half_mse_batch_loss(y, y_pred)
        return keras_mse_batch_loss(y, y_pred)

    def _train_step(self, xb, yb):
        m: Dict[str, tf.Tensor] = {}
        config, seeds = self.config, self.seeds
        seeds.start_step()
        p = self.precision
        variables = self.variables
        before = [tf.convert_to_tensor(v) for v in self._restorable]
        theta_before = flatten_tensors(before[:len(variables)])
        with tf.GradientTape() as tape:
            if p is None:
                y_pred = self.model(xb, training=True)
            else:
                y_pred = qf.forward_with_precision(self.model, xb, p, training=True,
                                                   seeds=seeds)
            loss = self._loss(yb, y_pred)
        grads = tape.gradient(loss, variables)
        grads = [tf.zeros_like(tf.convert_to_tensor(v)) if g is None else g
                 for g, v in zip(grads, variables)]
        # The gradients as the optimizer rounds them: the throttle reads them.
        rounded = self.optimizer.quantize_gradients(grads, variables)
        grad_flat = flatten_tensors(rounded)
        m["loss"] = loss
        m["rmse"] = tf.sqrt(keras_mse_batch_loss(yb, y_pred))
        m["grad_norm"] = tensor_l2_norm(grad_flat)

        # Curvature proxy, its EMA and the throttle.
        eps = tf.constant(config.eps, tf.float32)
        eta = tf.constant(config.learning_rate, tf.float32)
        curvature = tf.where(
            self._step > 0,
            tensor_l2_norm(grad_flat - self._prev_grad)
            / (tensor_l2_norm(theta_before - self._prev_theta) + eps),
            0.0,
        )
        rho = config.curvature_ema_rho
        ema = (1.0 - rho) * self._ema + rho * curvature
        alpha_would = tf.minimum(1.0, config.chi / (eta * (tf.maximum(curvature, ema) + eps)))
        alpha = alpha_would if config.use_controller else tf.constant(1.0)
        eta_eff = alpha * eta
        m.update(curvature_proxy=curvature, curvature_ema=ema, alpha=alpha,
                 alpha_would=alpha_would, eta_eff=eta_eff)
        self._prev_grad.assign(grad_flat)
        self._prev_theta.assign(theta_before)
        self._ema.assign(ema)

        # The update, through the optimizer. The update ops reject a non-finite step
        # size; such a step (NaN gradients, or 0/0 in C with eps=0) counts as diverged
        # below.
        self.optimizer.learning_rate = tf.where(tf.math.is_finite(eta_eff), eta_eff, 0.0)
        record = self.optimizer.apply_and_record(grads, variables, columns=self._columns,
                                                 rounded_gradients=rounded,
                                                 steps=not self._fused_geometry)
        theta_after = flatten_tensors(variables)
        if self._fused_geometry:
            geometry = update_geometry(*(tf.reduce_sum(record.statistics[c])
                                         for c in GEOMETRY_STATS))
        else:
            requested = tf.cast(flatten_tensors(record.steps, like=variables), tf.float64)
            applied = tf.cast(theta_after, tf.float64) - tf.cast(theta_before, tf.float64)
            geometry = update_geometry(tf.reduce_sum(requested * requested),
                                       tf.reduce_sum(applied * applied),
                                       tf.reduce_sum(requested * applied))
        m["raw_update_norm"] = geometry.requested_norm
        m["actual_update_norm"] = geometry.applied_norm
        m["update_cosine"] = geometry.cosine
        m["update_angle_rad"] = geometry.angle
        m["update_radius_ratio"] = geometry.radius_ratio

        # The weights after the step.
        m["theta_norm"] = tensor_l2_norm(theta_after)
        gain = tf.constant(1.0)
        for kernel in self.kernels:
            gain *= _spectral_norm(tf.convert_to_tensor(kernel))
        m["forward_gain_spectral"] = gain
        nan = tf.constant(float("nan"))
        if self.hessian:
            x_in = xb if self.input_format is None else quantize_tensor(
                xb, self.input_format, ste=False)
            block = analytic_single_dense_hessian(x_in, self.output_dim, config.loss_mode,
                                                  full=False)
            m.update(stability_metrics_from_hessian(block, eta, alpha,
                                                    momentum=config.effective_momentum))
        else:
            m.update({k: nan for k in _HESSIAN_METRICS})
        m["weight_error_fro"] = nan if self.reference is None else tensor_l2_norm(
            tf.convert_to_tensor(self.kernels[0]) - self.reference)

        if self._metric_columns:
            worst = _worst([record.statistics[c] for c in self._metric_columns])
            m.update(zip((n for n in self.metric_names if n in _WORST), tf.unstack(worst)))

        finite = (tf.math.is_finite(loss) & tf.reduce_all(tf.math.is_finite(grad_flat))
                  & tf.reduce_all(tf.math.is_finite(theta_after))
                  & tf.math.is_finite(eta_eff))
        m["finite"] = tf.cast(finite, tf.float32)
        self._undo_unless(finite, before)
        self._step.assign_add(1)
        return tf.stack([tf.cast(m[k], tf.float32) for k in self.metric_names])


def train_instrumented(owner, X, Y, config: TrainConfig) -> FitHistory:
    """``BaseModel.train_instrumented`` (documented there), for one ``config``."""
    trainer = InstrumentedTrainer(owner, X, Y, config)
    trainer.initialize()
    rng = np.random.default_rng(_checks.seed_or_drawn("seed", owner.seed))
    steps = trainer.steps_per_epoch
    chunk = max(1, math.ceil(steps / 20)) if owner.verbose else steps
    blocks, epoch_of_step = [], []
    diverged_at: Optional[int] = None
    finite_at = trainer.metric_names.index("finite")
    for epoch in range(config.epochs):
        perm = rng.permutation(trainer.n) if config.shuffle else np.arange(trainer.n)
        bar = keras.utils.Progbar(steps, stateful_metrics=["loss", "alpha"]) \
            if owner.verbose else None
        if bar is not None:
            print(f"Epoch {epoch + 1}/{config.epochs}")
        start = 0
        while start < steps and diverged_at is None:
            stop = min(start + chunk, steps)
            block = trainer.run(perm, start, stop)
            blocks.append(block)
            epoch_of_step += [epoch] * len(block)
            if len(block) and block[-1, finite_at] < 0.5:
                diverged_at = len(epoch_of_step) - 1
            if bar is not None and len(block):
                row = dict(zip(trainer.metric_names, block[-1]))
                bar.update(start + len(block), values=[("loss", row["loss"]),
                                                       ("alpha", row["alpha"])])
            start = stop
        if diverged_at is not None:
            break
    data = np.concatenate(blocks) if blocks else np.zeros((0, len(trainer.metric_names)),
                                                          np.float32)
    metrics = {name: data[:, i] for i, name in enumerate(trainer.metric_names)}
    metrics["epoch"] = np.asarray(epoch_of_step, np.int32)
    if diverged_at is not None:
        data_note = ("" if np.isfinite(trainer.X.numpy()).all()
                     and np.isfinite(trainer.Y.numpy()).all()
                     else " (X or Y holds non-finite values)")
        warnings.warn(f"train_instrumented: the run diverged (non-finite loss, gradient, "
                      f"step size or weights) at step {diverged_at}{data_note}; its history "
                      "is kept, flagged diverged, and the weights are those after the last "
                      "finite step", RuntimeWarning, stacklevel=3)
    outcome = {
        "model": owner.model.name, "seed": owner.seed, "steps_per_epoch": steps,
        "epochs_completed": int(epoch_of_step[-1] + 1) if epoch_of_step else 0,
        "analytic_hessian": trainer.hessian,
        "diverged": diverged_at is not None, "diverged_at_step": diverged_at,
    }
    return FitHistory(metadata={**config.to_dict(), **outcome}, **metrics)

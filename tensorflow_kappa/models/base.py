"""``BaseModel``: a dataset, a Keras model, and the loops that train it."""
from __future__ import annotations

from abc import ABC
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.datasets import BaseDataset
from tensorflow_kappa.models import quantized_forward as qf
from tensorflow_kappa.models.history import FitHistory
from tensorflow_kappa.models.instrumented import train_instrumented
from tensorflow_kappa.models.train_config import TrainConfig

__all__ = ["BaseModel"]


@dataclass(eq=False)
class BaseModel(ABC):
    """A dataset, the Keras model subclasses build for it, and its training loops.

    Subclasses build ``self.model`` in ``__post_init__`` with stable layer
    names (see :class:`LinearBlockModel`). ``train()`` is a plain Keras-style
    loop; ``train_instrumented()`` is the ablation loop that applies every
    update itself and logs what happened to it.

    Args:
        dataset: the data; its shapes (batch dimension first) fix the model's.
        loss: loss of :meth:`train` (a Keras loss name or object).
        optimizer: optimizer of :meth:`train` (a Keras optimizer name or object).
        metrics: Keras metrics of :meth:`train`'s compile.
        name: the Keras model's name.
        verbose: print summaries and progress bars.
        seed: seeds weight initialisation (and :meth:`reinitialize_weights`)
            and the shuffling of both loops; None draws fresh randomness
            (reproducible under ``keras.utils.set_random_seed``). An integer
            in [0, 2**32 - 1].
    """

    dataset: BaseDataset
    loss: Union[str, keras.losses.Loss] = "mse"
    optimizer: Union[str, keras.optimizers.Optimizer] = "sgd"
    metrics: list = field(default_factory=lambda: [])
    model: Optional[keras.Model] = field(init=False, default=None)
    input_shape: Optional[Tuple[int, ...]] = field(init=False, default=None)
    output_shape: Optional[Tuple[int, ...]] = field(init=False, default=None)
    name: str = "BaseModel"
    verbose: bool = False
    seed: Optional[int] = None

    def __post_init__(self):
        if not isinstance(self.dataset, BaseDataset):
            raise ValueError(f"dataset must be a BaseDataset, got {type(self.dataset).__name__}")
        self.seed = _checks.random_seed("seed", self.seed, maximum=_checks.SEED32_MAX)
        if not isinstance(self.verbose, (bool, np.bool_)):
            raise ValueError(f"verbose must be True or False, got {self.verbose!r}")
        self.input_shape = tuple(self.dataset.input_shape[1:])
        self.output_shape = tuple(self.dataset.output_shape[1:])

    # -- Keras plumbing ---------------------------------------------------------
    def _require_model(self) -> keras.Model:
        if self.model is None:
            raise ValueError(f"{type(self).__name__} has no Keras model; subclasses build "
                             "self.model in __post_init__")
        return self.model

    def _compile(self, optimizer=None, loss=None, metrics=None, **kwargs) -> None:
        """``self.model.compile`` with this object's optimizer, loss and metrics as defaults."""
        self._require_model().compile(
            optimizer=optimizer if optimizer is not None else self.optimizer,
            loss=loss if loss is not None else self.loss,
            metrics=metrics if metrics is not None else list(self.metrics),
            **kwargs,
        )

    def summary(self) -> None:
        """Print the Keras model summary (if the model exists)."""
        if self.model is not None:
            self.model.summary()

    def reinitialize_weights(self, seed: Optional[int] = None) -> None:
        """Reassign every weight from its layer's initializer (``<name>_initializer``).

        With a seed (argument, else ``self.seed``) each variable's initializer
        is re-seeded with ``seed + its index``, so two calls give identical
        weights (for a seeded LinearBlockModel, the weights it was built with):
        comparable starting points for ablation runs. Without one, fresh
        random weights. BatchNorm moving statistics are reset too.
        """
        model = self._require_model()
        seed = self.seed if seed is None else _checks.random_seed(
            "seed", seed, maximum=_checks.SEED32_MAX)
        index = 0
        for layer in model.layers:
            for var in layer.weights:
                init = getattr(layer, f"{var.name}_initializer", None)
                if init is None:
                    raise ValueError(
                        f"Cannot reinitialize {var.path}: layer {layer.name!r} has no "
                        f"{var.name}_initializer attribute"
                    )
                init = keras.initializers.get(init)
                config = init.get_config()
                if "seed" in config:
                    # Keras initializers fix an unset seed at construction, so
                    # an unseeded reinitialisation draws a fresh one here.
                    config["seed"] = (int(seed) + index if seed is not None else
                                      _checks.seed_or_drawn("seed", None, 2**31 - 2))
                    init = type(init).from_config(config)
                var.assign(init(tuple(var.shape), dtype=var.dtype))
                index += 1

    # -- the plain loop -----------------------------------------------------------
    def train(self, X, Y, epochs: int = 10, batch_size: int = 32) -> Dict[str, np.ndarray]:
        """Keras-style training with the compiled optimizer and loss.

        Returns ``{"loss": per-epoch mean batch loss}``. Use
        :meth:`train_instrumented` for ablations.
        """
        model = self._require_model()
        epochs = _checks.integer("epochs", epochs, minimum=0)
        batch_size = _checks.integer("batch_size", batch_size, minimum=1)
        X = _checks.float_array("X", X)
        Y = _checks.float_array("Y", Y)
        if X.ndim < 2 or len(X) != len(Y) or len(X) == 0:
            raise ValueError(f"X and Y need the same positive number of rows, got shapes "
                             f"{X.shape} and {Y.shape}")
        self._compile()
        optimizer = model.optimizer
        loss_fn = keras.losses.get(self.loss) if isinstance(self.loss, str) else self.loss
        ds = tf.data.Dataset.from_tensor_slices((X, Y))
        ds = ds.shuffle(len(X), seed=self.seed, reshuffle_each_iteration=True).batch(batch_size)

        @tf.function
        def run_epoch():
            total = tf.constant(0.0)
            count = tf.constant(0.0)
            for xb, yb in ds:
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(loss_fn(yb, model(xb, training=True)))
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
                total += loss
                count += 1.0
            return total / count

        losses = []
        for epoch in range(epochs):
            losses.append(float(run_epoch()))
            if self.verbose:
                print(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.6g}")
        return {"loss": np.asarray(losses)}

    # -- the instrumented loop ------------------------------------------------------
    def train_instrumented(
        self,
        X,
        Y,
        epochs=10,
        batch_size=32,
        learning_rate=0.05,
        shuffle=True,
        loss_mode="half_mse",
        curvature_ema_rho=0.05,
        chi=1.5,
        eps=1e-12,
        use_controller=False,
        compute_analytic_hessian=True,
        reference_A=None,
        precision_dict=None,
        *,
        update_rule="sgd",
        momentum=0.9,
    ) -> FitHistory:
        """The ablation loop: every update applied by hand, every step logged.

        Per batch: the loss and gradient at the current weights (through the
        quantized forward pass and gradient quantization when
        ``precision_dict`` is given); the curvature proxy
        ``C = ||g_t - g_{t-1}|| / (||theta_t - theta_{t-1}|| + eps)`` and its
        EMA; the throttle ``alpha_would = min(1, chi / (eta (max(C, EMA) +
        eps)))``, applied (``eta_eff = alpha eta``) only if
        ``use_controller``; then the update, in float
        (``var -= eta_eff * g``) or through ``update_quantize_store`` with
        the layer's ``update`` and storage formats. The whole epoch runs in
        one compiled ``tf.function``; metrics are computed in the graph and
        fetched once per call.

        Args:
            X, Y: training arrays (cast to float32).
            epochs, batch_size: as in ``fit``; the last batch may be short.
            learning_rate: eta.
            shuffle: reshuffle the rows every epoch (NumPy, seeded by
                ``self.seed``).
            loss_mode: ``"half_mse"`` (``(1/2N) sum ||y - p||^2``, Hessian
                ``X^T X / N`` per output) or ``"keras_mse"`` (Keras's
                ``mean((y - p)^2)`` over rows and outputs: ``2/m`` times it).
            curvature_ema_rho: EMA factor of the curvature proxy.
            chi: target stability margin of the throttle.
            eps: guards the divisions of C and alpha.
            use_controller: apply alpha (else only log alpha_would).
            compute_analytic_hessian: log the exact Hessian metrics
                (``hessian_lambda_max``, stability margins, spectral radii)
                of each batch for one-layer no-bias models (NaN otherwise).
            reference_A: teacher matrix, the shape of the single Dense kernel;
                logs ``weight_error_fro = ||W - A||_F``.
            precision_dict: a PrecisionDict (or its dict/string form); None
                trains in plain float32, exactly as a hand-written SGD loop.
            update_rule: ``"sgd"`` or ``"momentum"`` (``v = mu v - eta_eff g;
                theta += v``, Keras's SGD momentum; the velocity is stored in
                the layer's ``momentum`` format).
            momentum: mu of the momentum rule.

        Note:
            C follows the spec exactly, so after a step that applied nothing
            (every entry underflowed) ``||dtheta|| = 0`` and ``C = ||dG|| / eps``
            is huge: ``alpha_would`` collapses, and with ``use_controller``
            every later update is throttled to nothing as well. The geometry
            metrics (``actual_update_norm = 0``, ``update_cosine = 0``) show it.

        Returns:
            FitHistory with one value per step of every metric; a run whose
            loss, gradient, step size or weights become non-finite (a NaN in
            ``X``, a step that overflows the weights, ...) stops after
            logging that step, with ``history.diverged`` True and a
            RuntimeWarning, never an exception; metrics that cannot be
            computed on that step are NaN, and the model's weights are put
            back to what they were after the last finite step.
            Its ``metadata`` is ``TrainConfig(...).to_dict()`` plus the run's
            outcome (model, seed, steps per epoch, epochs completed, whether
            the analytic Hessian was logged, divergence).

        Raises:
            ValueError: a bad setting (named, see :class:`TrainConfig`), data
                that does not fit the model, or a precision dict naming layers
                the model does not have; before any step.
        """
        config = TrainConfig(
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, shuffle=shuffle,
            loss_mode=loss_mode, curvature_ema_rho=curvature_ema_rho, chi=chi, eps=eps,
            use_controller=use_controller, compute_analytic_hessian=compute_analytic_hessian,
            reference_A=reference_A, precision_dict=precision_dict, update_rule=update_rule,
            momentum=momentum)
        return train_instrumented(self, X, Y, config)

    def layer_names(self) -> list:
        """The model's layer names (what a precision dict may name)."""
        return list(qf.layer_names(self._require_model()))

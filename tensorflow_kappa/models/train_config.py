"""``TrainConfig``: every setting of an instrumented training run, checked once.

:meth:`~tensorflow_kappa.models.BaseModel.train_instrumented` builds one from its
keyword arguments and hands it to the trainer; the run's
:class:`~tensorflow_kappa.models.FitHistory` records ``config.to_dict()``.

Example:
>>> config = TrainConfig(epochs=3, learning_rate=0.1, precision_dict="s16.13")
>>> config.learning_rate, str(config.precision_dict.format("dense0", "weight"))
(0.1, 's16.13')
>>> TrainConfig(batch_size=0)
Traceback (most recent call last):
...
ValueError: batch_size must be an integer >= 1, got 0
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.models.stability import LOSS_MODES
from tensorflow_kappa.quantization.precision import PrecisionDict, ensure_precision_dict

__all__ = ["UPDATE_RULES", "TrainConfig"]

#: The trainer's update rules: Keras' SGD without and with momentum.
UPDATE_RULES = ("sgd", "momentum")


def _number(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False):
    """A finite number (or integer) > 0 (>= 0 with ``allow_zero``), else ValueError."""
    if integer:
        return _checks.integer(name, value, minimum=0 if allow_zero else 1)
    return _checks.number(name, value, minimum=0.0, strict_minimum=not allow_zero)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _choice(name: str, value: Any, choices: tuple) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The settings of :meth:`~tensorflow_kappa.models.BaseModel.train_instrumented`.

    Each field is checked (and normalised) at construction; a bad value raises
    ValueError naming the field and the value, before any training.

    Args:
        epochs: passes over the data (0 trains nothing).
        batch_size: rows per step; the last batch of an epoch may be short.
        learning_rate: eta.
        shuffle: reshuffle the rows every epoch (NumPy, seeded by the model's seed).
        loss_mode: ``"half_mse"`` (``(1/2N) sum ||y - p||^2``, Hessian ``X^T X / N``
            per output) or ``"keras_mse"`` (Keras's ``mean((y - p)^2)``).
        curvature_ema_rho: EMA factor of the curvature proxy, in (0, 1].
        chi: target stability margin of the throttle.
        eps: guards the divisions of the curvature proxy and the throttle (>= 0).
        use_controller: apply the throttle alpha (else only log ``alpha_would``).
        compute_analytic_hessian: log the exact Hessian metrics of each batch for
            one-layer no-bias models (NaN otherwise).
        reference_A: teacher matrix, the shape of the single Dense kernel (float32);
            logs ``weight_error_fro = ||W - A||_F``. Not part of :meth:`to_dict`.
        precision_dict: a :class:`~tensorflow_kappa.quantization.PrecisionDict`, its
            dict form or one format for everything; None trains in float32.
        update_rule: ``"sgd"`` or ``"momentum"`` (Keras's SGD momentum form).
        momentum: mu of the momentum rule, in [0, 1) for ``update_rule="momentum"``.
        compiled: run the step as one ``tf.function`` (False: eagerly, for
            debugging and benchmarks; same numbers).
    """

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.05
    shuffle: bool = True
    loss_mode: str = "half_mse"
    curvature_ema_rho: float = 0.05
    chi: float = 1.5
    eps: float = 1e-12
    use_controller: bool = False
    compute_analytic_hessian: bool = True
    reference_A: Optional[np.ndarray] = dataclasses.field(default=None, compare=False)
    precision_dict: Optional[PrecisionDict] = None
    update_rule: str = "sgd"
    momentum: float = 0.9
    compiled: bool = True

    def __post_init__(self) -> None:
        checked = {
            "epochs": _number("epochs", self.epochs, integer=True, allow_zero=True),
            "batch_size": _number("batch_size", self.batch_size, integer=True),
            "learning_rate": _number("learning_rate", self.learning_rate),
            "curvature_ema_rho": _number("curvature_ema_rho", self.curvature_ema_rho),
            "chi": _number("chi", self.chi),
            "eps": _number("eps", self.eps, allow_zero=True),
            "momentum": _number("momentum", self.momentum, allow_zero=True),
            "loss_mode": _choice("loss_mode", self.loss_mode, LOSS_MODES),
            "update_rule": _choice("update_rule", self.update_rule, UPDATE_RULES),
            "precision_dict": ensure_precision_dict(self.precision_dict),
            "reference_A": (None if self.reference_A is None
                            else _checks.float_array("reference_A", self.reference_A)),
        }
        for name in ("shuffle", "use_controller", "compute_analytic_hessian", "compiled"):
            checked[name] = _flag(name, getattr(self, name))
        if checked["reference_A"] is not None and checked["reference_A"].ndim != 2:
            raise ValueError(f"reference_A must be a matrix (the Dense kernel's shape), got "
                             f"shape {checked['reference_A'].shape}")
        if checked["curvature_ema_rho"] > 1:
            raise ValueError(f"curvature_ema_rho must be in (0, 1], got {self.curvature_ema_rho!r}")
        if checked["update_rule"] == "momentum" and not checked["momentum"] < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def effective_momentum(self) -> float:
        """The momentum coefficient mu as the update rule applies it (0 for plain SGD)."""
        return self.momentum if self.update_rule == "momentum" else 0.0

    def to_dict(self) -> Dict[str, Any]:
        """Every setting but ``reference_A`` as JSON-ready values (the precision dict
        in string form)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "reference_A"}
        if self.precision_dict is not None:
            data["precision_dict"] = self.precision_dict.to_dict()
        return data

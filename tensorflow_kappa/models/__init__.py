"""Models with an instrumented training loop (``BaseModel``, ``LinearBlockModel``), the
settings of a run (``TrainConfig``), its per-step record (``FitHistory``) and its
stability mathematics (:mod:`~tensorflow_kappa.models.stability`)."""
from tensorflow_kappa.models.base import BaseModel
from tensorflow_kappa.models.history import FitHistory
from tensorflow_kappa.models.linear_block import LinearBlockModel
from tensorflow_kappa.models.train_config import TrainConfig

__all__ = [
    "BaseModel",
    "FitHistory",
    "LinearBlockModel",
    "TrainConfig",
]

"""Models with an instrumented training loop: ``BaseModel`` and ``LinearBlockModel``."""
from tensorflow_kappa.models.base import BaseModel
from tensorflow_kappa.models.linear_block import LinearBlockModel

__all__ = [
    "BaseModel",
    "LinearBlockModel",
]

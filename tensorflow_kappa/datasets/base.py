"""In-memory regression datasets: ``BaseDataset`` and the teacher-student task."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from tensorflow_kappa import _checks

__all__ = ["BaseDataset", "TeacherStudentDataset"]


class BaseDataset:
    """Inputs ``X`` and targets ``Y`` held as float32 NumPy arrays.

    Args:
        X: inputs, shape ``(n, ...)``.
        Y: targets, shape ``(n, ...)``, the same number of rows as ``X``.

    ``input_shape`` and ``output_shape`` include the batch (row) dimension,
    as ``X.shape`` and ``Y.shape`` do; models drop it.

    Example:
    >>> ds = BaseDataset(np.zeros((10, 3)), np.zeros((10, 2)))
    >>> ds.input_shape, ds.output_shape, len(ds)
    ((10, 3), (10, 2), 10)
    """

    def __init__(self, X, Y):
        X = _checks.float_array("X", X)
        Y = _checks.float_array("Y", Y)
        if X.ndim < 2 or Y.ndim < 2:
            raise ValueError(
                f"X and Y need a batch dimension and at least one feature dimension, "
                f"got X.shape={X.shape} and Y.shape={Y.shape}"
            )
        if X.shape[0] != Y.shape[0]:
            raise ValueError(
                f"X and Y must have the same number of rows, got {X.shape[0]} and {Y.shape[0]}"
            )
        self.X = X
        self.Y = Y

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """``X.shape``, batch dimension first."""
        return tuple(self.X.shape)

    @property
    def output_shape(self) -> Tuple[int, ...]:
        """``Y.shape``, batch dimension first."""
        return tuple(self.Y.shape)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(X.shape={self.X.shape}, Y.shape={self.Y.shape})"


class TeacherStudentDataset(BaseDataset):
    """Linear teacher-student regression: ``Y = X @ A + noise``.

    ``X`` has standard normal entries; the teacher ``A`` has shape
    ``(input_dim, output_dim)``, the layout of a Keras ``Dense`` kernel (so a
    one-layer no-bias student's kernel can be compared with ``A`` directly,
    as ``train_instrumented(reference_A=A)`` does), with entries drawn from
    ``N(0, 1/input_dim)`` so the targets have unit variance per output.

    Args:
        n: number of examples.
        input_dim: features per example.
        output_dim: targets per example.
        noise: standard deviation of Gaussian label noise.
        seed: NumPy seed for X, A and the noise (None: a seed drawn under
            ``keras.utils.set_random_seed``).

    Example:
    >>> ds = TeacherStudentDataset(100, 4, 2, seed=0)
    >>> ds.A.shape, ds.input_shape, ds.output_shape
    ((4, 2), (100, 4), (100, 2))
    """

    def __init__(self, n: int, input_dim: int, output_dim: int, noise: float = 0.0,
                 seed: Optional[int] = None):
        for name, value in (("n", n), ("input_dim", input_dim), ("output_dim", output_dim)):
            _checks.integer(name, value, minimum=1)
        noise = _checks.number("noise", noise, minimum=0)
        rng = np.random.default_rng(_checks.seed_or_drawn("seed", seed))
        try:
            X = rng.standard_normal((n, input_dim))
            A = rng.standard_normal((input_dim, output_dim)) / np.sqrt(input_dim)
        except (ValueError, MemoryError) as err:
            raise ValueError(f"n={n}, input_dim={input_dim}, output_dim={output_dim} ask for "
                             f"arrays too large to allocate ({err})") from None
        Y = X @ A
        if noise > 0:
            Y = Y + noise * rng.standard_normal((n, output_dim))
        super().__init__(X, Y)
        self.A = A.astype(np.float32)
        self.noise = float(noise)
        self.seed = seed

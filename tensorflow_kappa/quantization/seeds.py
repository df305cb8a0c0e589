"""Seeds of stochastic rounding for the ops: the one place they are drawn and numbered.

Every op that rounds stochastically takes an int64[2] seed; the same seed gives
the same rounding on CPU, GPU, the pure-TensorFlow twins and the NumPy binding.
:func:`op_seed` turns what a user passes into that tensor (Python and NumPy
seeds are checked by :func:`tensorflow_kappa.core.seeds.check_seed`); :class:`SeedStream` gives a training
run a distinct seed for every stochastic quantizer call of every step.

Example:
>>> op_seed((1, 2), FixedPoint(8, 4, rounding="stochastic")).numpy()
array([1, 2])
>>> op_seed(None, FixedPoint(8, 4)).numpy()  # no stochastic format: unused
array([0, 0])
"""
from __future__ import annotations

import numbers
from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tensorflow_kappa.core.seeds import (INT64_MAX, INT64_MIN, SEED_EXPECTED, check_seed,
                                         rounds_stochastically)
from tensorflow_kappa.quantization.fixed_point import FixedPoint

__all__ = ["SeedLike", "SeedStream", "op_seed", "rounds_stochastically"]

#: What a seed argument accepts: two integers (a sequence, an array or an int64[2]
#: tensor or variable), or None where no format rounds stochastically.
SeedLike = Union[Sequence[int], np.ndarray, tf.Tensor, tf.Variable, None]

def op_seed(seed: SeedLike, *formats: Optional[FixedPoint]) -> tf.Tensor:
    """The int64[2] seed an op takes.

    Args:
        seed: two integers (a tuple, list, NumPy array or integer tensor), or
            None. None draws a seed from TensorFlow's global generator
            (reproducible under ``tf.random.set_seed`` only) when one of
            ``formats`` rounds stochastically, and gives zeros (unused) otherwise.
        *formats: the op's formats (None where it does not quantize).

    Raises:
        ValueError: ``seed`` is not two integers within the int64 range (the
            message names ``seed`` and the value), e.g. ``(2**70, 1)`` or ``(1.5, 2)``.
    """
    if seed is None:
        if not rounds_stochastically(*formats):
            return tf.zeros([2], tf.int64)
        return tf.random.uniform([2], maxval=2**62, dtype=tf.int64)
    if not isinstance(seed, (tf.Tensor, tf.Variable)):
        return tf.constant(check_seed(seed))
    if not seed.dtype.is_integer:
        raise ValueError(f"seed must be {SEED_EXPECTED}, got a tensor of dtype {seed.dtype.name}")
    if seed.shape.rank is not None and seed.shape.as_list() != [2]:
        raise ValueError(f"seed must be {SEED_EXPECTED}, got a tensor of shape {seed.shape}")
    return tf.cast(seed, tf.int64)


class SeedStream:
    """A distinct op seed for every stochastic quantizer call of a training run.

    The seed of the ``k``-th stochastic call (counting from 1) within step ``t``
    is ``(run_seed, t * SITES_PER_STEP + k)``; the initial rounding of the
    ``i``-th stored variable onto its grid uses ``(run_seed, -1 - i)``. Calls
    are counted while a step is traced (:meth:`start_step` restarts the count),
    so a compiled step and the same step run eagerly draw the same seeds.
    Both words are int64 and every bit reaches the random stream, so no seed
    repeats within a run for 2**63 / SITES_PER_STEP = 2**51 steps.

    A caller that numbers its sites itself (so that the numbering does not
    depend on the order in which calls are traced, as under a distribution
    strategy, where each replica traces its own copy) uses :meth:`at`.

    Args:
        run_seed: the run's seed.
        step: the run's step counter (an int64 ``tf.Variable`` the trainer
            advances once per step; a ``keras.Variable`` works too).
        sites_per_step: the number of distinct seeds per step (default
            :attr:`SITES_PER_STEP`); sites are ``1 .. sites_per_step - 1``.

    Example:
    >>> step = tf.Variable(tf.constant(3, tf.int64))
    >>> stream = SeedStream(7, step)
    >>> stream.start_step()
    >>> stream.next(FixedPoint(8, 4, rounding="stochastic")).numpy().tolist()
    [7, 12289]
    >>> stream.next(FixedPoint(8, 4)) is None  # nothing stochastic: no seed used up
    True
    """

    #: Stochastic quantizer calls per step that get distinct seeds.
    SITES_PER_STEP = 4096

    def __init__(self, run_seed: int, step: tf.Variable,
                 sites_per_step: Optional[int] = None):
        if isinstance(run_seed, (bool, np.bool_)) or not isinstance(run_seed, numbers.Integral) \
                or not INT64_MIN <= run_seed <= INT64_MAX:
            raise ValueError(f"run_seed must be an integer in [-2**63, 2**63 - 1], got "
                             f"{run_seed!r}")
        if sites_per_step is None:
            sites_per_step = self.SITES_PER_STEP
        if isinstance(sites_per_step, bool) or not isinstance(sites_per_step, numbers.Integral) \
                or not 2 <= sites_per_step <= 2 ** 32:
            raise ValueError(f"sites_per_step must be an integer in [2, 2**32], got "
                             f"{sites_per_step!r}")
        self._run_seed = tf.constant(int(run_seed), tf.int64)
        self._step = step
        self._sites = int(sites_per_step)
        self._site = 0

    def start_step(self) -> None:
        """Start counting the calls of a new step."""
        self._site = 0

    def next(self, *formats: Optional[FixedPoint]) -> Optional[tf.Tensor]:
        """The next seed if any of ``formats`` rounds stochastically, else None."""
        if not rounds_stochastically(*formats):
            return None
        self._site += 1
        if self._site >= self._sites:
            raise ValueError(f"more than {self._sites - 1} stochastic quantizers "
                             "in one step")
        return self._seed(self._site)

    def at(self, site: int, *formats: Optional[FixedPoint]) -> Optional[tf.Tensor]:
        """The seed of site ``site`` (``1 <= site < sites_per_step``) of the current
        step if any of ``formats`` rounds stochastically, else None.

        Example:
        >>> stream = SeedStream(7, tf.Variable(tf.constant(2, tf.int64)), sites_per_step=10)
        >>> stream.at(3, FixedPoint(8, 4, rounding="stochastic")).numpy().tolist()
        [7, 23]
        """
        if isinstance(site, bool) or not isinstance(site, numbers.Integral) \
                or not 1 <= site < self._sites:
            raise ValueError(f"site must be an integer in [1, {self._sites - 1}], got {site!r}")
        if not rounds_stochastically(*formats):
            return None
        return self._seed(int(site))

    def _seed(self, site: int) -> tf.Tensor:
        step = tf.cast(tf.convert_to_tensor(self._step), tf.int64)
        return tf.stack([self._run_seed,
                         step * self._sites + site])

    def initial(self, index: int) -> tf.Tensor:
        """The seed that rounds stored variable ``index`` onto its grid before step 0."""
        return tf.stack([self._run_seed, tf.constant(-1 - index, tf.int64)])

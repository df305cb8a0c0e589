"""Fixed-point formats for the TensorFlow ops: :class:`FixedPoint` and the mode names.

They are defined without TensorFlow in :mod:`tensorflow_kappa.core.fixed_point`
(so that the NumPy binding shares them) and re-exported here unchanged.

Example:
>>> FixedPoint.parse("s8.4:stochastic").check_dtype(tf.float32)
"""
from tensorflow_kappa.core.fixed_point import (  # noqa: F401 (re-exported)
    MAX_BITS,
    NEAREST_AWAY,
    NEAREST_EVEN,
    OVERFLOW_MODES,
    ROUNDING_MODES,
    SATURATE,
    STOCHASTIC,
    TOWARD_ZERO,
    TRUNCATE,
    WRAP,
    FixedPoint,
)

__all__ = ["MAX_BITS", "NEAREST_AWAY", "NEAREST_EVEN", "OVERFLOW_MODES", "ROUNDING_MODES",
           "SATURATE", "STOCHASTIC", "TOWARD_ZERO", "TRUNCATE", "WRAP", "FixedPoint"]

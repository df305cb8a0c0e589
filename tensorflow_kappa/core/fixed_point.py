"""Fixed-point formats: ``FixedPoint(bits, frac_bits)`` and its string form ``"s8.4"``.

The one definition of a format in Python, free of TensorFlow: the NumPy
binding (:mod:`tensorflow_kappa.core`) and the TensorFlow ops
(:mod:`tensorflow_kappa.quantization`, which re-exports it) both use it. A
dtype may be given as a TensorFlow ``DType``, a NumPy dtype or type, or a
name such as ``"float32"``.
"""
from __future__ import annotations

import dataclasses
import math
import re
import sys
from typing import Any, Union

import numpy as np

# The rounding and overflow modes: Python's one table (docs/rounding.md specifies
# them; cc/core/formats/rounding.h holds the C++ table, which the op attributes
# and the NumPy binding are built from, and a test keeps the two equal).
#: The rounding modes, each also a constant of its own (``NEAREST_EVEN`` is
#: ``"nearest_even"``): ``nearest_even`` (ties to even), ``nearest_away`` (ties away
#: from zero), ``truncate`` (toward minus infinity), ``toward_zero`` and ``stochastic``
#: (up with probability equal to the fraction of a grid step above the lower
#: neighbour: unbiased).
NEAREST_EVEN, NEAREST_AWAY, TRUNCATE, TOWARD_ZERO, STOCHASTIC = ROUNDING_MODES = (
    "nearest_even", "nearest_away", "truncate", "toward_zero", "stochastic")
#: The overflow modes, each also a constant of its own (``SATURATE`` is
#: ``"saturate"``): ``saturate`` (codes clipped to their range) and ``wrap`` (two's
#: complement, modulo ``2**bits``).
SATURATE, WRAP = OVERFLOW_MODES = ("saturate", "wrap")
#: The most bits a format may have.
MAX_BITS = 32
_INT32_MIN, _INT32_MAX = -(2 ** 31), 2 ** 31 - 1  # the range of the ops' int attributes
# IEEE facts per float dtype, as C++'s std::numeric_limits gives them:
# (digits, min_exponent, max_exponent). The smallest normal number is
# 2**(min_exponent - 1); every finite value is below 2**max_exponent.
_FLOAT_LIMITS = {
    "float16": (11, -13, 16),
    "bfloat16": (8, -125, 128),
    "float32": (24, -125, 128),
    "float64": (53, -1021, 1024),
}

# Bytes per element; the compute dtypes (float32, float64) are what an error
# suggests when a format does not fit a narrower one.
_SIZES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}

_PATTERN = re.compile(
    r"^(?P<sign>[su])(?P<bits>\d+)\.(?P<frac>-?\d+)"
    r"(?::(?P<opt1>[a-z_]+))?(?::(?P<opt2>[a-z_]+))?$"
)


def _parse_int(digits: str, text: str) -> int:
    """A field of a format string as an int (a huge one fails here, naming the format)."""
    if len(digits.lstrip("-")) > 10:
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise ValueError(f"Fixed-point format {shown!r} has a field of {len(digits)} digits: "
                         "bits take 1 to 32, frac_bits fits in 32 bits")
    return int(digits)


@dataclasses.dataclass(frozen=True)
class FixedPoint:
    """A two's-complement fixed-point format Q(bits, frac_bits) and how to round into it.

    A value is ``code * lsb`` with ``lsb = 2**-frac_bits`` and an integer code
    in ``[-2**(bits-1), 2**(bits-1) - 1]`` (signed) or ``[0, 2**bits - 1]``
    (unsigned). ``frac_bits`` may be negative (a coarse grid) or larger than
    ``bits`` (all values below 1). A tensor can be quantized to the format
    only where its dtype holds every grid value exactly as a normal number
    (:meth:`check_dtype`): float32 takes at most 24 bits, for example.

    Args:
        bits: total bits, 2..32 signed or 1..32 unsigned.
        frac_bits: fractional bits, any integer in [-2**31, 2**31 - 1].
        signed: two's-complement signed (True) or unsigned codes.
        rounding: ``nearest_even`` (ties to even), ``nearest_away`` (ties away
            from zero), ``truncate`` (floor, what dropping two's-complement
            bits does), ``toward_zero`` or ``stochastic`` (up with probability
            equal to the fractional part: unbiased).
        overflow: ``saturate`` (clip codes to their range) or ``wrap``
            (two's complement, modulo ``2**bits``).

    Example:
    >>> fmt = FixedPoint.parse("s8.4")
    >>> fmt.lsb, fmt.min_value, fmt.max_value
    (0.0625, -8.0, 7.9375)
    >>> str(FixedPoint(8, 4, rounding="stochastic"))
    's8.4:stochastic'
    """

    bits: int
    frac_bits: int
    signed: bool = True
    rounding: str = NEAREST_EVEN
    overflow: str = SATURATE

    def __post_init__(self) -> None:
        for name in ("bits", "frac_bits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"FixedPoint {name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not isinstance(self.signed, (bool, np.bool_)):
            raise ValueError(f"FixedPoint signed must be a bool, got {self.signed!r}")
        object.__setattr__(self, "signed", bool(self.signed))
        if not _INT32_MIN <= self.frac_bits <= _INT32_MAX:
            raise ValueError(
                f"FixedPoint frac_bits={self.frac_bits} is out of range: the ops take "
                f"frac_bits in [-2**31, 2**31 - 1]"
            )
        low = 2 if self.signed else 1
        if not low <= self.bits <= MAX_BITS:
            kind = "signed" if self.signed else "unsigned"
            raise ValueError(
                f"FixedPoint bits={self.bits} is impossible: {kind} formats "
                f"take {low} to {MAX_BITS} bits"
            )
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(
                f"Unknown rounding mode {self.rounding!r}; expected one of {ROUNDING_MODES}"
            )
        if self.overflow not in OVERFLOW_MODES:
            raise ValueError(
                f"Unknown overflow mode {self.overflow!r}; expected one of {OVERFLOW_MODES}"
            )

    @classmethod
    def parse(cls, text: str) -> "FixedPoint":
        """Parse ``"s8.4"``, ``"u8.8"``, ``"s8.-2"``, ``"s8.4:stochastic:wrap"``."""
        match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"Cannot parse fixed-point format {text!r}: expected "
                "'s<bits>.<frac_bits>' or 'u<bits>.<frac_bits>' (e.g. 's8.4', "
                "'u8.8', 's8.-2'), optionally followed by ':<rounding>' and/or "
                f"':<overflow>' with rounding in {ROUNDING_MODES} and overflow in "
                f"{OVERFLOW_MODES}"
            )
        options = {}
        for opt in (match.group("opt1"), match.group("opt2")):
            if opt is None:
                continue
            if opt in ROUNDING_MODES:
                kind = "rounding"
            elif opt in OVERFLOW_MODES:
                kind = "overflow"
            else:
                raise ValueError(
                    f"Unknown option {opt!r} in fixed-point format {text!r}; expected "
                    f"a rounding mode {ROUNDING_MODES} or an overflow mode {OVERFLOW_MODES}"
                )
            if kind in options:
                raise ValueError(
                    f"Fixed-point format {text!r} gives two {kind} modes ({options[kind]!r} "
                    f"and {opt!r}); give at most one rounding and one overflow mode"
                )
            options[kind] = opt
        bits = _parse_int(match.group("bits"), text)
        frac_bits = _parse_int(match.group("frac"), text)
        try:
            return cls(bits=bits, frac_bits=frac_bits, signed=match.group("sign") == "s",
                       **options)
        except ValueError as err:
            raise ValueError(f"Fixed-point format {text!r}: {err}") from None

    @classmethod
    def coerce(cls, fmt: "FixedPoint | str") -> "FixedPoint":
        """Accept a FixedPoint or its string form."""
        if isinstance(fmt, cls):
            return fmt
        if isinstance(fmt, str):
            return cls.parse(fmt)
        raise ValueError(
            f"Expected a FixedPoint or a format string such as 's8.4', got {fmt!r}"
        )

    def __str__(self) -> str:
        text = f"{'s' if self.signed else 'u'}{self.bits}.{self.frac_bits}"
        if self.rounding != NEAREST_EVEN:
            text += f":{self.rounding}"
        if self.overflow != SATURATE:
            text += f":{self.overflow}"
        return text

    @property
    def lsb(self) -> float:
        """The grid step, ``2**-frac_bits``."""
        return math.ldexp(1.0, -self.frac_bits)

    @property
    def code_min(self) -> int:
        """The smallest integer code, ``-2**(bits-1)`` (signed) or 0 (unsigned)."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def code_max(self) -> int:
        """The largest integer code, ``2**(bits-1) - 1`` (signed) or ``2**bits - 1``
        (unsigned)."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def min_value(self) -> float:
        """The lower rail, ``code_min * lsb``."""
        return math.ldexp(self.code_min, -self.frac_bits)

    @property
    def max_value(self) -> float:
        """The upper rail, ``code_max * lsb``."""
        return math.ldexp(self.code_max, -self.frac_bits)

    def fits_dtype(self, dtype: Any) -> bool:
        """Whether every value of the format is exactly representable in ``dtype``.

        Raises:
            ValueError: ``dtype`` is not float16, bfloat16, float32 or float64.
        """
        digits, min_exponent, max_exponent = _FLOAT_LIMITS[_float_dtype_name(dtype)]
        # The rails +-2**(bits-1-frac_bits) (signed) or 2**(bits-frac_bits) - lsb
        # (unsigned) stay finite, the lsb is a normal number (TensorFlow's CPU
        # kernels flush subnormals to zero), and no code has more significant
        # bits than the dtype.
        return (
            self.bits <= digits
            and -self.frac_bits >= min_exponent - 1
            and self.bits - self.frac_bits <= max_exponent
        )

    def check_dtype(self, dtype: Any) -> None:
        """Raise ValueError unless ``dtype`` can hold every value of the format."""
        name = _float_dtype_name(dtype)
        if self.fits_dtype(name):
            return
        wider = next((w for w in ("float32", "float64")
                      if _SIZES[w] > _SIZES[name] and self.fits_dtype(w)), None)
        hint = f"; use {wider} inputs" if wider is not None else ""
        raise ValueError(
            f"Format {self} ({self._describe_grid()}) is not exactly representable in "
            f"{name}{hint}"
        )

    def _describe_grid(self) -> str:
        """The rails and the lsb as numbers, or as powers of two where a float overflows."""
        try:
            return f"rails {self.min_value:g}..{self.max_value:g}, lsb {self.lsb:g}"
        except OverflowError:
            return (f"codes {self.code_min}..{self.code_max} times an lsb of "
                    f"2**{-self.frac_bits}")


#: What every function taking a format accepts: a FixedPoint or its string form.
FormatLike = Union[FixedPoint, str]


def dtype_name(dtype: Any) -> str:
    """The name of ``dtype``: a TensorFlow DType (where TensorFlow is imported; it
    is not imported here), a NumPy dtype or type, or a name such as ``"float32"``."""
    if isinstance(dtype, str) and dtype in _FLOAT_LIMITS:
        return dtype  # bfloat16 has no NumPy name without ml_dtypes
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(dtype, tf.DType):
        return dtype.name
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise ValueError(f"{dtype!r} is not a dtype") from None


def _float_dtype_name(dtype: Any) -> str:
    name = dtype_name(dtype)
    if name not in _FLOAT_LIMITS:
        raise ValueError(
            f"Fixed-point quantization takes float16, bfloat16, float32 or "
            f"float64 tensors, got {name}"
        )
    return name

"""Independent NumPy float64 references of rail_stats and update_quantize_store.

Written from the issue's definitions (and the documented choices: NaN counts
in no numerator and not among the nonzero elements; near_rail is a float32
attribute; the storage quantizer's stochastic stream is keyed by
(seed0, seed1 ^ 0x2545F491); every value subnormal in the compute type reads
as the zero of its sign), using fixed_point_reference's longdouble quantizer.
Statistics are exact (counts) or accurately summed (math.fsum).
"""
import math

import numpy as np

from references.fixed_point import flush_subnormal, quantize_reference
from tensorflow_kappa.quantization import FixedPoint


# Doubles from here up round to float32 infinity (FLT_MAX plus half an ulp).
_FLOAT32_OVERFLOW = float(np.finfo(np.float32).max) * (1 + 2.0**-25)


def fraction(count, of):
    """What the ops return: float32(count / of) through float64, 0 when of == 0."""
    return np.float32(count / of) if of else np.float32(0.0)


def rail_stats_reference(x, fmt, near_rail=0.9):
    x = flush_subnormal(np.asarray(x).reshape(-1)).astype(np.float64)  # exact
    near_rail = float(np.float32(near_rail))
    m = (1.0 - near_rail) * (fmt.max_value - fmt.min_value) / 2.0
    number = ~np.isnan(x)
    saturated = number & ((x > fmt.max_value) | (x < fmt.min_value))
    near = number & ((x >= fmt.max_value - m) | (x <= fmt.min_value + m))
    nonzero = number & (x != 0)
    nearest = FixedPoint(fmt.bits, fmt.frac_bits, fmt.signed)
    underflow = nonzero & (quantize_reference(x, nearest) == 0)
    n = x.size
    return (fraction(saturated.sum(), n), fraction(near.sum(), n),
            fraction(underflow.sum(), nonzero.sum()))


class UpdateReference:
    """The update of one step, by its definition, in the variable's dtype."""

    def __init__(self, w, g, lr, update_fmt, storage_fmt, seed=(0, 0)):
        w = flush_subnormal(np.asarray(w))
        dtype = w.dtype
        g = flush_subnormal(np.asarray(g, dtype))
        lr = flush_subnormal(np.asarray(lr, dtype))
        with np.errstate(over="ignore", invalid="ignore"):
            self.raw = flush_subnormal((-lr) * g)  # one rounding in the dtype
            self.delta = self.raw if update_fmt is None else quantize_reference(
                self.raw, update_fmt, seed)
            self.sum = flush_subnormal(w + self.delta)
        storage_seed = (seed[0], seed[1] ^ 0x2545F491)
        self.new = self.sum if storage_fmt is None else quantize_reference(
            self.sum, storage_fmt, storage_seed)
        raw = self.raw.astype(np.float64).reshape(-1)
        d = self.new.astype(np.float64).reshape(-1) - w.astype(np.float64).reshape(-1)
        self.raw_terms, self.actual_terms, self.dot_terms = raw * raw, d * d, raw * d
        nonzero = (raw != 0) & ~np.isnan(raw)
        self.underflow_fraction = fraction(
            (nonzero & (self.delta.reshape(-1) == 0)).sum(), nonzero.sum())
        if storage_fmt is None:
            self.saturation_fraction = np.float32(0.0)
        else:
            s = self.sum.astype(np.float64).reshape(-1)
            self.saturation_fraction = fraction(
                ((s > storage_fmt.max_value) | (s < storage_fmt.min_value)).sum(), s.size)

    def sums(self):
        """(raw_norm, actual_norm, dot) in float64, and the sums of |terms|."""
        values = (math.sqrt(math.fsum(self.raw_terms)), math.sqrt(math.fsum(self.actual_terms)),
                  math.fsum(self.dot_terms))
        scale = (math.fsum(self.raw_terms), math.fsum(self.actual_terms),
                 math.fsum(np.abs(self.dot_terms)))
        return values, scale


def assert_sums_close(stats, ref, n):
    """Norms and dot within float32 rounding plus double summation error.

    A double sum of n terms errs by at most n * 2**-53 * sum(|terms|); the
    square root halves the relative error of a norm; the float32 result adds
    half an ulp (2**-24 relative). So |got - want| <= 2**-23 * |want| +
    n * 2**-52 * scale, with scale = sum(|terms|) for the dot and
    sqrt(sum(terms)) for the norms.
    """
    (raw, actual, dot), (raw_sq, actual_sq, abs_dot) = ref.sums()
    got = [float(stats.raw_update_norm), float(stats.actual_update_norm), float(stats.update_dot)]
    tiny = float(np.finfo(np.float32).tiny)
    for name, g, want, scale in [("raw_update_norm", got[0], raw, math.sqrt(raw_sq)),
                                 ("actual_update_norm", got[1], actual, math.sqrt(actual_sq)),
                                 ("update_dot", got[2], dot, abs_dot)]:
        # Results below float32's smallest normal number report as zeros.
        tol = 2.0**-23 * abs(want) + n * 2.0**-52 * scale + (tiny if g == 0 else 1e-45)
        if math.isinf(g) and not math.isinf(want):
            # float32 overflow: allowed where want lies within tol of the edge.
            assert math.copysign(1.0, g) == math.copysign(1.0, want), name
            assert abs(want) + tol >= _FLOAT32_OVERFLOW, f"{name}: {g!r} vs {want!r}"
            continue
        if math.isinf(want) or math.isnan(want):
            assert g == want or (math.isnan(g) and math.isnan(want)), f"{name}: {g!r} vs {want!r}"
            continue
        assert abs(g - want) <= tol, f"{name}: {g!r} vs {want!r} (tol {tol:g})"

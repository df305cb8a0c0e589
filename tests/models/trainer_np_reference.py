"""NumPy references shared by the trainer tests: nearest-even saturating fixed point."""
import numpy as np

from tensorflow_kappa.quantization import FixedPoint


def np_quantize(x, fmt):
    """Round-to-nearest-even, saturate (the default FixedPoint modes), in float64."""
    fmt = FixedPoint.coerce(fmt)
    assert fmt.rounding == "nearest_even" and fmt.overflow == "saturate"
    code = np.clip(np.rint(np.asarray(x, np.float64) * 2.0**fmt.frac_bits),
                   fmt.code_min, fmt.code_max)
    return code * 2.0**-fmt.frac_bits


def assert_on_grid(x, fmt, what=""):
    """Every entry is an integer code of ``fmt`` within its range."""
    fmt = FixedPoint.coerce(fmt)
    codes = np.asarray(x, np.float64) * 2.0**fmt.frac_bits
    assert np.array_equal(codes, np.rint(codes)), f"{what}: off the {fmt} grid"
    assert codes.min() >= fmt.code_min and codes.max() <= fmt.code_max, f"{what}: beyond rails"

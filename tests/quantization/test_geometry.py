"""update_geometry: the one definition of norms, cosine, angle, ratio and progress."""
import numpy as np
import pytest

from tensorflow_kappa.quantization.geometry import update_geometry

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("trial", range(5))
def test_against_numpy_float64_on_random_steps(trial):
    r = RNG.standard_normal(40)
    a = r * RNG.uniform(0.5, 1.5, 40) + RNG.standard_normal(40) * 0.1 * trial
    g = update_geometry(r @ r, a @ a, r @ a, dtype="float64")
    nr, na = np.linalg.norm(r), np.linalg.norm(a)
    cos = r @ a / (nr * na)
    np.testing.assert_allclose([float(x) for x in g],
                               [nr, na, cos, np.arccos(cos), na / nr, r @ a / (r @ r)],
                               rtol=1e-12)


@pytest.mark.parametrize("requested, applied, expect", [
    # (||r||^2, ||a||^2): (cosine, angle, radius_ratio, progress)
    ((0.0, 0.0), (0.0, 0.0), (1.0, 0.0, 1.0, 1.0)),         # nothing asked, nothing done
    ((4.0, 0.0), (0.0, 0.0), (0.0, np.pi / 2, 0.0, 0.0)),   # the step underflowed
    ((0.0, 0.0), (9.0, 0.0), (0.0, np.pi / 2, np.inf, 0.0)),  # a change nobody asked for
])
def test_the_zero_vector_convention(requested, applied, expect):
    g = update_geometry(requested[0], applied[0], requested[1], dtype="float64")
    np.testing.assert_allclose([float(g.cosine), float(g.angle), float(g.radius_ratio),
                                float(g.progress)], expect)


def test_cosine_is_clipped_and_non_finite_sums_give_nan():
    g = update_geometry(1.0, 1.0, 1.0 + 1e-7)      # rounding pushed it past 1
    assert float(g.cosine) == 1.0 and float(g.angle) == 0.0
    for bad in ((np.nan, 1.0, 1.0), (1.0, np.inf, 1.0)):
        assert all(np.isnan(float(x)) for x in update_geometry(*bad))

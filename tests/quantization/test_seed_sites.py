"""SeedStream.at: sites numbered by the caller, with a chosen number of sites per step."""
import pytest
import tensorflow as tf

from tensorflow_kappa.quantization import FixedPoint
from tensorflow_kappa.quantization.seeds import SeedStream

SR = FixedPoint(8, 4, rounding="stochastic")


def test_sites_are_distinct_within_and_across_steps():
    step = tf.Variable(tf.constant(0, tf.int64))
    stream = SeedStream(9, step, sites_per_step=5)
    seen = set()
    for t in range(3):
        step.assign(t)
        for site in range(1, 5):
            seed = tuple(stream.at(site, SR).numpy().tolist())
            assert seed == (9, t * 5 + site)
            seen.add(seed)
    assert len(seen) == 12


def test_at_matches_next_for_the_same_site_and_skips_deterministic_formats():
    step = tf.Variable(tf.constant(4, tf.int64))
    stream = SeedStream(3, step)
    stream.start_step()
    assert stream.at(2, SR).numpy().tolist() == [3, 4 * SeedStream.SITES_PER_STEP + 2]
    assert stream.at(2, FixedPoint(8, 4)) is None
    stream.next(SR)
    assert stream.next(SR).numpy().tolist() == stream.at(2, SR).numpy().tolist()


@pytest.mark.parametrize("kwargs, word", [({"sites_per_step": 1}, "sites_per_step"),
                                          ({"sites_per_step": 2.5}, "sites_per_step")])
def test_bad_sites_per_step(kwargs, word):
    with pytest.raises(ValueError, match=word):
        SeedStream(1, tf.Variable(tf.constant(0, tf.int64)), **kwargs)


@pytest.mark.parametrize("site", [0, 5, -1, 1.0, True])
def test_bad_sites(site):
    stream = SeedStream(1, tf.Variable(tf.constant(0, tf.int64)), sites_per_step=5)
    with pytest.raises(ValueError, match="site"):
        stream.at(site, SR)

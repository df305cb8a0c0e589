"""Stochastic rounding's seeds: all 128 bits of the two int64 words count.

Once, only the low 32 bits of each word reached the random stream, so
(1, 2), (1, 2 + 2**32) and (1 + 5 * 2**32, 2) rounded identically and the
trainer's per-step seed (run, step * 4096 + site) repeated every 2**20
steps. Here: every single seed bit changes the roundings, on the custom
kernel and on the pure-TF twin; the two agree bit for bit (and with the
NumPy reference) for seeds with high bits set, negative seeds and the int64
extremes, in quantize_tensor and in update_quantize_store's two streams.
"""
import numpy as np
import pytest
import tensorflow as tf

from references.fixed_point import quantize_reference, same_bits
from tensorflow_kappa.quantization import (
    FixedPoint,
    composite_ops,
    quantize_tensor,
    update_quantize_store,
)

INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
WIDE_SEEDS = [
    (1, 2), (1, 2 + 2**32), (1 + 5 * 2**32, 2),
    (-1, -1), (0, 0), (-5, 123), (2**40 + 3, -2**33),
    (INT64_MIN, INT64_MAX), (INT64_MAX, INT64_MIN), (INT64_MIN, INT64_MIN),
    (INT64_MAX, INT64_MAX), (INT64_MIN, 0), (0, INT64_MIN),
]
FMT = FixedPoint.parse("s8.4:stochastic")


def as_int64(value):
    """An unsigned 64-bit pattern as the int64 with the same bits."""
    return value - 2**64 if value >= 2**63 else value


def mid_grid_values(n=4096):
    """Values strictly between grid points: every one can round either way."""
    rng = np.random.default_rng(7)
    codes = rng.integers(-100, 100, n)
    return ((codes + rng.uniform(0.05, 0.95, n)) * FMT.lsb).astype(np.float32)


def test_the_reported_seeds_round_differently(implementation):
    x = mid_grid_values()
    results = [quantize_tensor(x, FMT, seed=s).numpy() for s in WIDE_SEEDS[:3]]
    for i in range(3):
        for j in range(i):
            assert not np.array_equal(results[i], results[j]), (WIDE_SEEDS[i], WIDE_SEEDS[j])


def test_every_seed_bit_changes_the_rounding(implementation):
    """Flipping any one of the 128 seed bits gives different roundings."""
    x = mid_grid_values(2048)
    base = (0x0123456789ABCDEF, as_int64(0xFEDCBA9876543210))
    want = quantize_tensor(x, FMT, seed=base).numpy()
    seen = {want.tobytes()}
    for word in (0, 1):
        for bit in range(64):
            seed = list(base)
            seed[word] = as_int64((seed[word] % 2**64) ^ (1 << bit))
            got = quantize_tensor(x, FMT, seed=seed).numpy()
            assert got.tobytes() not in seen, (word, bit)
            seen.add(got.tobytes())
            # A different stream, not a shifted or mostly equal one: about
            # half the values round the other way.
            assert 0.3 < np.mean(got != want) < 0.7, (word, bit)


@pytest.mark.parametrize("seed", WIDE_SEEDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_twin_and_reference_agree_for_wide_seeds(seed, dtype):
    rng = np.random.default_rng(11)
    x = rng.normal(0, 3, 5000).astype(dtype)
    custom = quantize_tensor(x, FMT, seed=seed).numpy()
    with composite_ops():
        twin = quantize_tensor(x, FMT, seed=seed).numpy()
    want = quantize_reference(x, FMT, seed=seed)
    assert same_bits(custom, want), seed
    assert same_bits(twin, want), seed


@pytest.mark.parametrize("seed", WIDE_SEEDS[3:])
def test_update_store_streams_agree_for_wide_seeds(seed):
    """Both of update_quantize_store's streams: (s0, s1) and (s0, s1 ^ 0x2545F491)."""
    rng = np.random.default_rng(13)
    w0 = rng.normal(0, 2, 3000).astype(np.float32)
    g = rng.normal(0, 1, 3000).astype(np.float32)
    results = []
    for use_twin in (False, True):
        var = tf.Variable(w0)
        if use_twin:
            with composite_ops():
                stats = update_quantize_store(var, g, 0.01, "s10.14:stochastic",
                                              "s8.6:stochastic", seed=seed)
        else:
            stats = update_quantize_store(var, g, 0.01, "s10.14:stochastic",
                                          "s8.6:stochastic", seed=seed)
        results.append((var.numpy(), [float(s) for s in stats]))
    (custom, custom_stats), (twin, twin_stats) = results
    assert same_bits(custom, twin), seed
    # The fractions are exact counts: equal. (The norms' double sums differ in
    # order only; test_update_store bounds them.)
    assert custom_stats[3:] == twin_stats[3:], seed


def test_per_step_seeds_do_not_repeat_after_2_to_the_20_steps(implementation):
    """The trainer keys step k's quantizer call site c by (run, k * 4096 + c):
    steps k and k + 2**20 used to share every random number."""
    x = mid_grid_values()
    run, site = 12345, 3
    for step in (0, 7, 2**20 - 1):
        a = quantize_tensor(x, FMT, seed=(run, step * 4096 + site)).numpy()
        b = quantize_tensor(x, FMT, seed=(run, (step + 2**20) * 4096 + site)).numpy()
        assert not np.array_equal(a, b), step

"""The CUDA kernels against the CPU kernels, through TensorFlow (GPU machines only).

Each case runs the same op with the same inputs and seed on /GPU:0 and
/CPU:0. The per-element arithmetic is one definition (cc/core/formats/), so
quantized values, stored weights and counts must agree bit for bit; norms and
dot products are double sums in a different order, equal to float32 rounding.
cc/gpu_check checks the same without TensorFlow.
"""
import numpy as np
import pytest
import tensorflow as tf

from references.fixed_point import same_bits
from tensorflow_kappa.quantization import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    FixedPoint,
    quantize_tensor,
    rail_stats,
    update_quantize_store,
)

pytestmark = pytest.mark.gpu


def _on(device, fn):
    with tf.device(device):
        return fn()


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=lambda d: d.name)
@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_quantize_gpu_equals_cpu(rounding, overflow, dtype):
    x = tf.random.stateless_normal([1 << 20], seed=(4, 2), stddev=6.0, dtype=dtype)
    x = tf.concat([x, tf.constant([0.0, -0.0, np.nan, np.inf, -np.inf, 0.03125, -0.09375], dtype)], 0)
    fmt = FixedPoint(8, 4, rounding=rounding, overflow=overflow)
    gpu = _on("/GPU:0", lambda: quantize_tensor(x, fmt, seed=(7, 9))).numpy()
    cpu = _on("/CPU:0", lambda: quantize_tensor(x, fmt, seed=(7, 9))).numpy()
    assert same_bits(gpu, cpu)


def test_rail_stats_gpu_equals_cpu():
    x = tf.random.stateless_normal([(1 << 20) + 3], seed=(1, 5), stddev=3.0)
    for fmt in ["s6.2", "u4.4", "s8.-1"]:
        gpu = _on("/GPU:0", lambda: rail_stats(x, fmt, near_rail=0.8))
        cpu = _on("/CPU:0", lambda: rail_stats(x, fmt, near_rail=0.8))
        assert [float(v) for v in gpu] == [float(v) for v in cpu], fmt


@pytest.mark.parametrize("update_format", [None, "s8.10", "s8.10:stochastic"])
def test_update_quantize_store_gpu_equals_cpu(update_format):
    w0 = tf.random.stateless_normal([(1 << 18) + 1], seed=(3, 3))
    g = tf.random.stateless_normal([(1 << 18) + 1], seed=(3, 4))
    results = {}
    for device in ("/GPU:0", "/CPU:0"):
        with tf.device(device):
            var = tf.Variable(w0)
            stats = update_quantize_store(var, g, 0.01, update_format=update_format,
                                          storage_format="s8.6", seed=(11, 12))
            results[device] = (var.numpy(), [float(v) for v in stats])
    (w_gpu, s_gpu), (w_cpu, s_cpu) = results["/GPU:0"], results["/CPU:0"]
    assert same_bits(w_gpu, w_cpu)
    np.testing.assert_array_equal(s_gpu[3:], s_cpu[3:])  # the fractions: exact counts
    np.testing.assert_allclose(s_gpu[:3], s_cpu[:3], rtol=2**-22)

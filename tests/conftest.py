"""Shared pytest configuration for tensorflow_kappa.

The whole suite runs in one process. Before TensorFlow initialises its
devices, the one physical CPU is split into two logical CPUs so that
``tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])`` can be tested
without a GPU; ordinary tests run on ``CPU:0`` as usual.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

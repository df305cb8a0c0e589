"""Shared pytest configuration and fixtures for tensorflow_kappa.

The whole suite runs in one process (TensorFlow imports are slow). Before
TensorFlow initialises its devices, the one physical CPU is split into two
logical CPUs so that ``tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])``
can be tested without a GPU; ordinary tests run on ``CPU:0`` as usual.

Fixtures:
  implementation  runs a test with the custom ops and with their pure-TF twins
  execution       a ``run(fn, *args)`` calling fn eagerly and under tf.function
  mirrored_strategy  the session's one MirroredStrategy over the two logical CPUs
  two_workers     runs a worker script as a two-task MultiWorkerMirroredStrategy cluster
Marker:
  gpu             skipped, with that reason, where TensorFlow sees no GPU
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import tensorflow_kappa as tk  # noqa: E402

HAS_GPU = bool(tf.config.list_physical_devices("GPU"))


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") and not HAS_GPU:
        pytest.skip("needs a GPU: TensorFlow sees none on this machine")


@pytest.fixture(params=["custom", "composite"])
def implementation(request):
    """Run the test body with the custom ops, then with the pure-TF twins."""
    if request.param == "custom":
        yield "custom"
    else:
        with tk.composite_ops():
            yield "composite"


@pytest.fixture(params=["eager", "function"])
def execution(request):
    """``run(fn, *args)``: call fn eagerly, or traced by tf.function."""
    if request.param == "eager":
        return lambda fn, *args: fn(*args)
    return lambda fn, *args: tf.function(fn)(*args)


@pytest.fixture(scope="session")
def mirrored_strategy():
    """The one MirroredStrategy over the two logical CPUs for the whole session.

    Every test that distributes must use this instance: two strategies over
    the same devices in one process number their collectives from the same
    keys, and TensorFlow then aborts with "Shape mismatch in the collective
    instance" when the second one's all-reduce meets the first one's state.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture
def two_workers() -> Callable[[Path, Callable[[int], list], float], list]:
    """``two_workers(script, args_for, timeout)``: :func:`run_two_workers`."""
    return run_two_workers


def run_two_workers(script: Path, args_for: Callable[[int], list], timeout: float) -> list:
    """Run ``script`` as the two tasks of a MultiWorkerMirroredStrategy cluster on
    localhost (``python script *args_for(index)`` with its TF_CONFIG); their outputs,
    after asserting that both exited cleanly (the failing one's output is shown)."""
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("localhost", 0))
    cluster = {"worker": [f"localhost:{s.getsockname()[1]}" for s in sockets]}
    for s in sockets:
        s.close()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), str(script.parent),
         os.environ.get("PYTHONPATH", "")]))
    workers = [subprocess.Popen(
        [sys.executable, str(script), *map(str, args_for(index))],
        env=dict(env, TF_CONFIG=json.dumps({"cluster": cluster,
                                            "task": {"type": "worker", "index": index}})),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for index in range(2)]
    try:
        outputs = [w.communicate(timeout=timeout)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out[-3000:]
    return outputs

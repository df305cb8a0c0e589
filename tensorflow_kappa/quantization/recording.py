"""Statistics recorded while a monitored training step is traced.

:class:`~tensorflow_kappa.callbacks.QuantizationMonitor` traces, next to the
model's ordinary train function, a second one whose step runs inside
:func:`recording`. While that step is traced:

* code that sees tensors only inside the step (the ``Quantize`` layer, in its
  forward pass and in its gradient) calls :func:`record_rail_stats`, which
  adds their rail statistics to the step's :class:`Recorder`; the recorder is
  per thread, because a ``tf.distribute`` strategy traces each replica's step
  in a thread of its own, and each replica then returns its own numbers (the
  train function averages them across replicas);
* :func:`is_recording` tells code that runs outside the replica's thread
  (an optimizer's update, which a strategy runs in a merge call) that the
  step being traced is a monitored one, so it adds its own statistics.

Nothing is recorded, and no extra op enters the graph, in an ordinary step.

Example:
>>> with recording() as recorder:
...     record_rail_stats("dense", "forward", tf.constant([0.01, 9.0]), FixedPoint(8, 4))
>>> sorted(recorder.values())
['near_rail/dense/forward', 'saturation/dense/forward', 'underflow/dense/forward']
>>> float(recorder.values()["saturation/dense/forward"])
0.5
"""
from __future__ import annotations

import contextlib
import threading
from typing import Dict, Iterator, List, Optional

import tensorflow as tf

from tensorflow_kappa.quantization.fixed_point import FixedPoint
from tensorflow_kappa.quantization.rail_stats import rail_stats

__all__ = ["RAIL_STATS", "Recorder", "current_recorder", "is_recording", "record_rail_stats",
           "recording"]

#: The names of :func:`rail_stats`'s three fractions in recorded keys.
RAIL_STATS = ("saturation", "near_rail", "underflow")

_local = threading.local()
_lock = threading.Lock()
_depth = 0


class Recorder:
    """The scalar tensors recorded in one traced step, by key (``stat/layer/field``)."""

    def __init__(self) -> None:
        self._values: Dict[str, List[tf.Tensor]] = {}

    def add(self, key: str, value: tf.Tensor) -> None:
        """Record ``value`` under ``key``; a key recorded twice (a layer called twice
        in one step) keeps the mean of its values."""
        self._values.setdefault(key, []).append(tf.cast(value, tf.float32))

    def values(self) -> Dict[str, tf.Tensor]:
        """Key -> scalar float32 tensor, in the order the keys were first recorded."""
        return {key: v[0] if len(v) == 1 else tf.add_n(v) / len(v)
                for key, v in self._values.items()}


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    """Record the statistics of the step traced in this block (this thread)."""
    global _depth
    previous = getattr(_local, "recorder", None)
    recorder = Recorder()
    _local.recorder = recorder
    with _lock:
        _depth += 1
    try:
        yield recorder
    finally:
        _local.recorder = previous
        with _lock:
            _depth -= 1


def current_recorder() -> Optional[Recorder]:
    """The recorder of the step this thread is tracing, or None."""
    return getattr(_local, "recorder", None)


def is_recording() -> bool:
    """Whether a monitored step is being traced (by any thread)."""
    return _depth > 0


def record_rail_stats(layer: str, field: str, x: tf.Tensor, fmt: Optional[FixedPoint]) -> None:
    """Add ``rail_stats(x, fmt)`` as ``saturation|near_rail|underflow/<layer>/<field>``
    to this thread's recorder; nothing when no step is recorded or ``fmt`` is None."""
    recorder = current_recorder()
    if recorder is None or fmt is None:
        return
    for name, value in zip(RAIL_STATS, rail_stats(x, fmt)):
        recorder.add(f"{name}/{layer}/{field}", value)

"""One table of rounding and overflow modes, one specification, every implementation.

The modes are declared once per language: Python's ``ROUNDING_MODES`` / ``OVERFLOW_MODES``
and the C++ table (``cc/core/formats/rounding.h``), which the op library's attrs and the
NumPy binding are built from. Here: the two tables are equal; ``docs/rounding.md`` specifies
exactly their modes; the pure-TensorFlow twin and the NumPy reference dispatch through a dict
keyed by exactly those modes (the C++ functors and the XLA lowering dispatch through the C++
table and do not compile without a mode; the C++ reference is a switch the tests build with
-Werror=switch); and every (rounding, overflow) pair of the table, run through every
implementation, gives the reference's bits.
"""
import importlib
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from references import fixed_point as fixed_point_reference
from references import rounding as rounding_reference
from references.fixed_point import quantize_reference, same_bits
from references.op_cases import edge_values
from tensorflow_kappa import core
from tensorflow_kappa.quantization import (OVERFLOW_MODES, ROUNDING_MODES, FixedPoint,
                                           composite, composite_ops, quantize_tensor,
                                           rail_stats, update_quantize_store)

SPECIFICATION = Path(__file__).resolve().parents[2] / "docs" / "rounding.md"
PAIRS = list(itertools.product(ROUNDING_MODES, OVERFLOW_MODES))


def _op_attrs(fn, *specs) -> dict:
    """{op type: {attr: allowed values}} of the Kappa> ops in fn's graph."""
    graph = tf.function(fn).get_concrete_function(*specs).graph
    return {op.type: {a.name: tuple(v.decode() for v in a.allowed_values.list.s)
                      for a in op.op_def.attr if a.allowed_values.list.s}
            for op in graph.get_operations() if op.type.startswith("Kappa>")}


def _specified_modes(section: str) -> tuple:
    """The modes docs/rounding.md gives a ``### `name``` section under ``## <section>``."""
    text = SPECIFICATION.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return tuple(re.findall(r"^### `([a-z_]+)`$", body, re.MULTILINE))


def test_the_op_library_takes_exactly_the_python_table():
    """Every format attr of every op allows exactly Python's modes, in its order (the C++
    table the attrs are built from)."""
    var = tf.Variable(tf.zeros([2]))
    attrs = _op_attrs(lambda x: (quantize_tensor(x, "s8.4"), rail_stats(x, "s8.4"),
                                 update_quantize_store(var, x, 0.1, update_format="s8.6",
                                                       storage_format="s8.4")),
                      tf.TensorSpec([2], tf.float32))
    assert set(attrs) == {"Kappa>Quantize", "Kappa>RailStats", "Kappa>UpdateQuantizeStore"}
    for op, allowed in attrs.items():
        prefixes = ["update_", "storage_"] if op == "Kappa>UpdateQuantizeStore" else [""]
        for prefix in prefixes:
            assert allowed[prefix + "rounding"] == ROUNDING_MODES, (op, prefix)
            assert allowed[prefix + "overflow"] == OVERFLOW_MODES, (op, prefix)


def test_the_numpy_binding_takes_exactly_the_python_table():
    binding = importlib.import_module("tensorflow_kappa._kappa_core")
    assert binding.ROUNDING_MODES == ROUNDING_MODES
    assert binding.OVERFLOW_MODES == OVERFLOW_MODES


def test_the_specification_defines_exactly_the_table():
    assert _specified_modes("Rounding modes") == ROUNDING_MODES
    assert _specified_modes("Overflow modes") == OVERFLOW_MODES


def test_the_twin_dispatches_on_exactly_the_table():
    assert tuple(composite._ROUND_SCALED) == ROUNDING_MODES
    assert tuple(composite._OVERFLOW_CODE) == OVERFLOW_MODES


def test_the_reference_dispatches_on_exactly_the_table():
    assert tuple(rounding_reference.ALL_ROUNDINGS) == ROUNDING_MODES
    assert tuple(fixed_point_reference.OVERFLOWS) == OVERFLOW_MODES


@pytest.mark.parametrize("rounding, overflow", PAIRS)
def test_every_pair_through_every_implementation_matches_the_reference(rounding, overflow):
    """The custom op (eager and under XLA), the twin (eager and under XLA) and the NumPy
    binding, on a signed and an unsigned format, float32 and float64."""
    seed = (-(2**62) + 7, 2**63 - 11)
    rng = np.random.default_rng(0)
    for dtype in (tf.float32, tf.float64):
        for bits, frac, signed in ((6, 2, True), (5, 3, False)):
            fmt = FixedPoint(bits, frac, signed, rounding, overflow)
            x = np.concatenate([edge_values(fmt, dtype), rng.normal(0, 12, 500)]).astype(
                dtype.as_numpy_dtype)
            want = quantize_reference(x, fmt, seed)

            def run(x, fmt=fmt):
                return quantize_tensor(x, fmt, seed=seed)

            jit = tf.function(run, jit_compile=True)
            got = {"op": run(tf.constant(x)), "op under XLA": jit(tf.constant(x))}
            with composite_ops():
                got["twin"] = run(tf.constant(x))
                got["twin under XLA"] = tf.function(run, jit_compile=True)(tf.constant(x))
            got = {name: y.numpy() for name, y in got.items()}
            got["NumPy binding"] = core.quantize(x, fmt, seed=seed)
            for name, y in got.items():
                assert same_bits(y, want), f"{name}: {fmt} {dtype.name}"

"""``update_quantize_store``: the fused, quantized weight update and what it did to the step."""
from __future__ import annotations

import threading
from typing import Optional, Union

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks, _ops
from tensorflow_kappa.core.stats import UpdateStats
from tensorflow_kappa.quantization import composite
from tensorflow_kappa.quantization._op_inputs import HALF_TYPES, FormatLike, prepare
from tensorflow_kappa.quantization.fixed_point import FixedPoint
from tensorflow_kappa.quantization.seeds import SeedLike, op_seed

_FLOAT_TYPES = HALF_TYPES + (tf.float32, tf.float64)

tf.no_gradient("Kappa>UpdateQuantizeStore")


def _resource_variable(var: object) -> tf.Variable:
    """The tf.Variable behind ``var`` (itself, or a keras.Variable's ``.value``)."""
    if isinstance(var, keras.Variable):
        inner = var.value
        if not isinstance(inner, tf.Variable):
            raise ValueError(
                f"keras.Variable {var.path!r} gives a {type(inner).__name__}, not its "
                "tf.Variable (inside an autocast scope?); call update_quantize_store "
                "outside it"
            )
        var = inner
    if not isinstance(var, tf.Variable):
        raise ValueError(
            "update_quantize_store updates a variable in place: var must be a "
            f"tf.Variable or keras.Variable, got {type(var).__name__}"
        )
    if isinstance(var, tf.distribute.DistributedValues) and (
        not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context()
    ):
        raise ValueError(
            f"{var.name} is a distributed ({type(var).__name__}) variable used in "
            "cross-replica context; call update_quantize_store per replica, inside "
            "strategy.run(...) or strategy.extended.update(var, fn), so that each "
            "replica's copy is updated"
        )
    if getattr(var, "handle", None) is None or var.handle.dtype != tf.resource:
        raise ValueError(f"{var.name} is not a resource variable")
    return var


def _check_grad(grad: object, variable: tf.Variable, dtype: tf.DType) -> tf.Tensor:
    grad = _checks.tensor("grad", grad, dtype_hint=dtype)
    if grad.dtype != dtype:
        raise ValueError(
            f"grad dtype {grad.dtype.name} differs from the variable's dtype "
            f"{dtype.name} ({variable.name})"
        )
    if not variable.shape.is_compatible_with(grad.shape):
        raise ValueError(
            f"grad shape {grad.shape} differs from the variable's shape "
            f"{variable.shape} ({variable.name})"
        )
    return grad


_LR_RULE = "learning_rate must be finite and >= 0 in the compute dtype"


def _check_learning_rate(learning_rate: object, compute: tf.DType) -> tf.Tensor:
    """The learning rate in the compute dtype, checked before anything is written: a
    value known here raises ValueError; a graph tensor gets an in-graph check that
    fails the call (InvalidArgumentError) before the variable is touched."""
    if isinstance(learning_rate, (bool, np.bool_)):
        raise ValueError(f"learning_rate must be a float or a float scalar tensor, got "
                         f"{learning_rate!r}")
    learning_rate = _checks.tensor("learning_rate", learning_rate, dtype_hint=compute)
    if not learning_rate.dtype.is_floating:
        raise ValueError(
            f"learning_rate must be a float or a float scalar tensor, got dtype "
            f"{learning_rate.dtype.name}"
        )
    if learning_rate.shape.rank is not None and learning_rate.shape.rank != 0:
        raise ValueError(f"learning_rate must be a scalar, got shape {learning_rate.shape}")
    lr = tf.cast(learning_rate, compute)
    if not tf.is_symbolic_tensor(lr):
        value = lr.numpy()
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{_LR_RULE} ({compute.name}), got {learning_rate.numpy()!r}")
        return lr
    check = tf.debugging.Assert(tf.math.is_finite(lr) & (lr >= 0), [_LR_RULE + ", got", lr])
    with tf.control_dependencies([check]):
        return tf.identity(lr)


_sections_lock = threading.Lock()


def _critical_section(variable: tf.Variable) -> Optional[tf.CriticalSection]:
    """The CriticalSection that serialises the pure-TF read-modify-write of ``variable``
    (one per variable, created on first use), or None where none can be used: inside
    XLA-compiled code (XLA has no locks; ``jit_compile`` tracing marks it) and for
    distributed variables (each replica updates its own copy). How the twin was
    selected (``KAPPA_PY_OPS=1``, :func:`tensorflow_kappa.composite_ops`, a half-type
    variable) does not matter: eagerly and in ordinary graphs it is serialised as the
    custom kernel is."""
    if (isinstance(variable, tf.distribute.DistributedValues)
            or tf.__internal__.get_enclosing_xla_context() is not None):
        return None
    with _sections_lock:
        section = getattr(variable, "_kappa_critical_section", None)
        if section is None:
            with tf.init_scope():
                section = tf.CriticalSection(name="kappa_update_quantize_store")
            variable._kappa_critical_section = section
    return section


def update_quantize_store(
    var: Union[tf.Variable, keras.Variable],
    grad: tf.Tensor,
    learning_rate: Union[float, tf.Tensor],
    update_format: Optional[FormatLike] = None,
    storage_format: Optional[FormatLike] = None,
    seed: SeedLike = None,
) -> UpdateStats:
    """One quantized SGD step on ``var``, in place, in one pass, with its statistics.

    Computes, element by element (in float32 for float32 and half-type
    variables, float64 for float64 ones)::

        raw   = -learning_rate * grad
        delta = quantize(raw, update_format)          # raw if None
        new   = quantize(var + delta, storage_format)  # unquantized if None
        var  := new

    and returns what the quantization did to the step:
    ``raw_update_norm = ||raw||``, ``actual_update_norm = ||new - old||`` (the
    change actually stored), ``update_dot = <raw, new - old>``,
    ``update_underflow_fraction`` (among the nonzero, non-NaN entries of
    ``raw``, the fraction whose ``delta`` is 0: learning that silently
    died) and ``storage_saturation_fraction`` (the fraction of entries where
    ``var + delta`` lay beyond ``storage_format``'s rails; 0 without one).
    Norms and dot products are accumulated in float64 and returned as
    float32; a NaN in the step makes them NaN. ``delta`` equals
    ``quantize_tensor(raw, update_format, seed=seed)``; stochastic rounding of
    the storage uses an independent stream of the same seed.

    Works eagerly, inside ``tf.function`` and under XLA (``jit_compile=True``),
    where the op's lowering reads and assigns the variable inside the
    compiled program and stores the same values as the kernels.

    Concurrent calls on one variable (Python threads, parallel ops in a
    graph) are serialised as the custom kernel serialises them (each
    read-modify-write is atomic, none is lost), on the pure-TensorFlow path
    too (a ``tf.CriticalSection`` per variable), however the twin is selected
    (``KAPPA_PY_OPS=1`` or a :func:`tensorflow_kappa.composite_ops` block);
    not inside XLA-compiled code, where XLA has no locks, nor across replicas
    of a distributed variable (each replica updates its own copy).

    Distribution strategies: under ``tf.distribute.MirroredStrategy`` call it
    per replica, inside ``strategy.run`` (each replica updates its own copy
    of a mirrored variable, with its own gradient: all-reduce the gradients
    first so that the copies stay equal; with stochastic rounding pass the
    same explicit ``seed`` on every replica) or in
    ``strategy.extended.update(var, fn)`` (which calls ``fn`` on each copy).
    Calling it in cross-replica context on a distributed variable raises
    ValueError. Other strategies are not supported.

    Args:
        var: the variable to update: a resource ``tf.Variable`` or a
            ``keras.Variable`` (the TensorFlow backend's wrapper of one), of
            dtype float16, bfloat16, float32 or float64. float16/bfloat16
            variables are updated through the pure-TensorFlow path, in
            float32, and the new value is rounded into the variable's dtype
            (exactly, when storage_format is given).
        grad: the gradient, same shape and dtype as ``var``.
        learning_rate: a Python float or a scalar tensor (it may change every
            step without retracing); cast to the compute dtype, where it must
            be finite and >= 0.
        update_format: FixedPoint (or string) to quantize the update with, or
            None.
        storage_format: FixedPoint (or string) to quantize the stored weight
            with, or None. Both formats must be exactly representable in
            ``var``'s dtype.
        seed: two integers keying stochastic rounding, each in the int64
            range; None draws one from TensorFlow's global generator when a
            format is stochastic.

    Returns:
        UpdateStats of five float32 scalar tensors.

    Raises:
        ValueError: ``var`` is not a resource tf.Variable / keras.Variable (or
            is distributed and used in cross-replica context); ``grad``'s
            shape or dtype differs from ``var``'s (the message names both);
            ``learning_rate`` is not a scalar, or is negative or not finite
            (a graph tensor fails the call with InvalidArgumentError
            instead); a format is bad or does not fit the dtype. The variable
            is untouched in every case.
        TypeError: ``grad`` or ``learning_rate`` is None, ragged or sparse.

    Example:
    >>> v = tf.Variable([1.0, 1.0, 1.0])
    >>> s = update_quantize_store(v, [1.0, 0.0, 1e-6], 0.5, "s8.4", "s8.4")
    >>> v.numpy(), float(s.update_underflow_fraction)
    (array([0.5, 1. , 1. ], dtype=float32), 0.5)
    """
    variable = _resource_variable(var)
    dtype = tf.as_dtype(variable.dtype)
    if dtype not in _FLOAT_TYPES:
        raise ValueError(
            f"update_quantize_store takes float16, bfloat16, float32 or float64 "
            f"variables, got {variable.name} of dtype {dtype.name}"
        )
    grad, grad_compute, (update_fmt, storage_fmt) = prepare(
        _check_grad(grad, variable, dtype), name="grad", optional=True,
        update_format=update_format, storage_format=storage_format)
    compute = grad_compute.dtype
    learning_rate = _check_learning_rate(learning_rate, compute)
    seed = op_seed(seed, update_fmt, storage_fmt)
    handle = variable.handle

    # Half-type variables are updated by the twin: the kernels update float/double ones.
    lib = None if dtype in HALF_TYPES else _ops.custom_ops()
    if lib is None:
        def read_modify_write():
            old = tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype)
            if not (old.shape.is_fully_defined() and grad.shape.is_fully_defined()):
                tf.debugging.assert_equal(
                    tf.shape(grad), tf.shape(old),
                    message=f"grad shape and the shape of {variable.name} differ",
                )
            new, stats = composite.update_store(
                tf.cast(old, compute), grad_compute, learning_rate,
                update_fmt, storage_fmt, seed,
                store_dtype=dtype if dtype != compute else None,
            )
            assign = tf.raw_ops.AssignVariableOp(resource=handle, value=tf.cast(new, dtype))
            with tf.control_dependencies([assign] if assign is not None else []):
                return tuple(tf.identity(v) for v in stats)  # done only once assigned

        section = _critical_section(variable)
        stats = read_modify_write() if section is None else section.execute(read_modify_write)
        return UpdateStats(*stats)

    dummy = FixedPoint(8, 0)
    u = update_fmt or dummy
    s = storage_fmt or dummy
    out = lib.kappa_update_quantize_store(
        handle, grad, learning_rate, seed,
        has_update_format=update_fmt is not None,
        update_bits=u.bits, update_frac_bits=u.frac_bits, update_signed=u.signed,
        update_rounding=u.rounding, update_overflow=u.overflow,
        has_storage_format=storage_fmt is not None,
        storage_bits=s.bits, storage_frac_bits=s.frac_bits, storage_signed=s.signed,
        storage_rounding=s.rounding, storage_overflow=s.overflow,
    )
    return UpdateStats(*out)

"""``quantize_tensor``: fixed-point quantization with a straight-through gradient."""
from __future__ import annotations

from typing import Union

import tensorflow as tf

from tensorflow_kappa import _ops
from tensorflow_kappa.quantization import composite
from tensorflow_kappa.quantization._op_inputs import FormatLike, from_compute, prepare
from tensorflow_kappa.quantization.fixed_point import FixedPoint
from tensorflow_kappa.quantization.seeds import SeedLike, op_seed

_STE_MODES = {True: "identity", "clipped": "clipped", False: "none"}


def _ste_mode(ste: object) -> str:
    for key, mode in _STE_MODES.items():
        if ste is key or (isinstance(key, str) and ste == key):
            return mode
    raise ValueError(
        f"ste={ste!r} is not a straight-through-estimator mode; expected True "
        "(pass the gradient through), 'clipped' (zero it outside the rails) or "
        "False (no gradient)"
    )


def _clipped_mask(x: tf.Tensor, fmt: FixedPoint) -> tf.Tensor:
    low = tf.constant(fmt.min_value, x.dtype)
    high = tf.constant(fmt.max_value, x.dtype)
    return tf.cast((x >= low) & (x <= high), x.dtype)


@tf.RegisterGradient("Kappa>Quantize")
def _quantize_grad(op: tf.Operation, dy: tf.Tensor):
    """Straight-through gradient of Kappa>Quantize, by the op's ``ste`` attr."""
    mode = op.get_attr("ste").decode()
    if mode == "none":
        return [None, None]
    if mode == "identity":
        return [dy, None]
    fmt = FixedPoint(op.get_attr("bits"), op.get_attr("frac_bits"), op.get_attr("signed"))
    return [dy * _clipped_mask(op.inputs[0], fmt), None]


def _composite_with_ste(x: tf.Tensor, fmt: FixedPoint, seed: tf.Tensor, mode: str) -> tf.Tensor:
    if mode == "none":
        return composite.quantize(tf.stop_gradient(x), fmt, seed)

    @tf.custom_gradient
    def forward(x):
        def grad(dy):
            return dy if mode == "identity" else dy * _clipped_mask(x, fmt)

        return composite.quantize(x, fmt, seed), grad

    return forward(x)


def quantize_tensor(
    x: tf.Tensor,
    fmt: FormatLike,
    ste: Union[bool, str] = True,
    seed: SeedLike = None,
) -> tf.Tensor:
    """Quantize ``x`` onto the fixed-point grid of ``fmt``.

    Rounds ``x / fmt.lsb`` by ``fmt.rounding``, brings the integer code into
    range by ``fmt.overflow`` and returns ``code * fmt.lsb`` in ``x``'s dtype.
    NaN stays NaN; +-Inf go to the rails (under ``wrap`` too: an infinity has
    no residue). Finite values too large to scale wrap to 0 (they are
    multiples of ``2**bits`` codes). Values subnormal in the compute type
    count as zeros of their sign on every device, as TensorFlow's CPU kernels
    (which flush denormals) read them.

    Args:
        x: a float16, bfloat16, float32 or float64 tensor of any shape
            (half types are computed in float32; the result is exact because
            the format must fit the dtype).
        fmt: a FixedPoint or its string form, e.g. ``"s8.4:stochastic"``.
        ste: gradient with respect to ``x``: True passes it straight through,
            ``"clipped"`` zeroes it where ``x`` lies outside
            ``[fmt.min_value, fmt.max_value]``, False gives none.
        seed: two integers keying stochastic rounding (stateless: the same seed
            gives the same result on CPU, GPU and the pure-TF path); each in
            the int64 range, all 128 bits count (two seeds that differ in any
            bit give different streams). One seed's stream is indexed by the
            element's 64-bit flat index, so it runs 2**64 elements before it
            repeats. None: drawn from TensorFlow's global generator.

    Returns:
        The quantized tensor, same shape and dtype as ``x``.

    Raises:
        ValueError: ``fmt`` cannot be represented exactly in ``x``'s dtype
            (e.g. more than 24 bits in float32: use float64), or a bad
            ``fmt``/``ste``/``seed``.

    Example:
    >>> quantize_tensor([0.1, 0.3, 100.0], "s8.4").numpy()
    array([0.125 , 0.3125, 7.9375], dtype=float32)
    """
    mode = _ste_mode(ste)
    x, compute, (fmt,) = prepare(x, fmt=fmt)
    seed = op_seed(seed, fmt)
    lib = _ops.custom_ops()
    if lib is None:
        y = _composite_with_ste(compute, fmt, seed, mode)
    else:
        y = lib.kappa_quantize(
            compute, seed,
            bits=fmt.bits, frac_bits=fmt.frac_bits, signed=fmt.signed,
            rounding=fmt.rounding, overflow=fmt.overflow, ste=mode,
        )
    return from_compute(y, x.dtype)

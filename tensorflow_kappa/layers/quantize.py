"""``Quantize``: fixed-point rounding of a tensor forward and of its gradient backward."""
from __future__ import annotations

from typing import Optional, Union

import keras
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.quantization.fixed_point import FixedPoint
from tensorflow_kappa.quantization.quantize import _ste_mode, quantize_tensor
from tensorflow_kappa.quantization.recording import record_rail_stats
from tensorflow_kappa.quantization.seeds import rounds_stochastically

__all__ = ["Quantize"]

FormatLike = Union[FixedPoint, str, None]
# Replica r of a distribution strategy draws (a, b + r * _REPLICA_STRIDE) where one
# device draws (a, b); b grows by one per call, so the streams never meet.
_REPLICA_STRIDE = 2**40
_SEED_STATE = "seed_generator_state"


def _loss_scale(model: object) -> Optional[tf.Tensor]:
    """The factor ``model``'s optimizer multiplies the loss by this step (a
    ``LossScaleOptimizer``'s dynamic scale, as ``compile`` adds under
    ``mixed_float16``; an optimizer's ``loss_scale_factor``), or None where it does
    not scale it (no optimizer, or one that leaves the loss as it is)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    one = tf.constant(1.0)
    scale = optimizer.scale_loss(one)  # what the train step multiplied the loss by
    return None if scale is one else tf.cast(scale, tf.float32)


def _quantize_gradient(x: tf.Tensor, fmt: FixedPoint, seed: Optional[tf.Tensor],
                       layer_name: str, model: object) -> tf.Tensor:
    """Identity forward; backward, the incoming gradient rounded to ``fmt`` as the
    unscaled error: divided by ``model``'s loss scale first, multiplied back after."""

    @tf.custom_gradient
    def identity(x):
        def grad(dy):
            scale = _loss_scale(model)  # read in the step, after the loss was scaled
            if scale is None:
                record_rail_stats(layer_name, "backward", dy, fmt)
                return quantize_tensor(dy, fmt, ste=False, seed=seed)
            error = tf.cast(dy, tf.float32) / scale
            record_rail_stats(layer_name, "backward", error, fmt)
            return tf.cast(quantize_tensor(error, fmt, ste=False, seed=seed) * scale, dy.dtype)

        return tf.identity(x), grad

    return identity(x)


@keras.saving.register_keras_serializable(package="Kappa")
class Quantize(keras.layers.Layer):
    """Rounds its input to ``forward`` and the gradient flowing back to ``backward``.

    In the forward pass the output is ``quantize_tensor(x, forward, ste)``
    (the input unchanged when ``forward`` is None), in training and in
    inference alike. In the backward pass the gradient arriving at the output
    is first rounded to ``backward`` (when given), then passed through the
    forward quantizer's straight-through estimator ``ste``: so ``backward``
    quantizes the error propagated into whatever produced ``x``, as
    QPyTorch's ``Quantizer(forward_number, backward_number)`` does. Under loss
    scaling (a ``LossScaleOptimizer``, which ``compile`` adds under the
    ``mixed_float16`` policy, or an optimizer's ``loss_scale_factor``) the
    error arrives multiplied by the loss scale: it is divided by the scale of
    the optimizer of the model the layer runs in before it is rounded (so
    ``backward`` acts on the unscaled error, as without mixed precision) and
    multiplied back after. A training loop of your own does as Keras' train
    step does: it scales the loss with ``model.optimizer.scale_loss``.

    Any rounding mode of :class:`~tensorflow_kappa.quantization.FixedPoint`
    works, stochastic included: a stochastic format draws a fresh stream on
    every call (every training step) from a ``keras.random.SeedGenerator``
    seeded with ``seed``, whose state the layer holds (and a saved model
    keeps, so it continues the same stream); under ``tf.distribute`` each
    replica gets a stream of its own. Layers without stochastic formats hold
    no state.

    Under ``QuantizationMonitor`` the layer reports, at the monitor's
    interval, the rail statistics of its input against ``forward``
    (``saturation|near_rail|underflow/<name>/forward``) and of the incoming
    gradient against ``backward`` (``.../backward``).

    Usable in Sequential, functional and subclassed models; for a whole
    Sequential or functional model, :func:`tensorflow_kappa.quantization.quantize_model`
    inserts the layers from a precision dict.

    Args:
        forward: format of the output (a FixedPoint or its string form such
            as ``"s8.6:stochastic"``), or None.
        backward: format of the gradient with respect to the input, or None.
        ste: the forward quantizer's gradient: True (straight through),
            ``"clipped"`` (zero where the input lies beyond the rails) or
            False (none: nothing flows back through this layer).
        seed: seed of the stochastic streams (an int in ``[0, 2**63 - 1]``); None
            draws one (reproducible under ``keras.utils.set_random_seed``).
        **kwargs: the options of ``keras.layers.Layer`` (``name``, ...).

    Raises:
        ValueError: a format that does not parse, a bad ``ste`` or ``seed``
            (the message names the argument); at call time, a format that the
            input's dtype cannot hold exactly.

    Example:
    >>> q = Quantize(forward="s8.4", backward="s8.2")
    >>> x = tf.constant([0.1, 0.3, 100.0])
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(x)
    ...     y = q(x)
    >>> y.numpy()
    array([0.125 , 0.3125, 7.9375], dtype=float32)
    >>> tape.gradient(y, x, output_gradients=tf.constant([0.1, 0.3, 1.0])).numpy()
    array([0.  , 0.25, 1.  ], dtype=float32)
    """

    def __init__(self, forward: FormatLike = None, backward: FormatLike = None,
                 ste: Union[bool, str] = True, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.forward = _checks.number_format("forward", forward, optional=True)
        self.backward = _checks.number_format("backward", backward, optional=True)
        _ste_mode(ste)
        self.ste = ste
        self.seed = _checks.random_seed("seed", seed)
        self.supports_masking = True
        self.seed_generator = None
        if rounds_stochastically(self.forward, self.backward):
            self.seed_generator = keras.random.SeedGenerator(self.seed, name="seed_generator")

    def _next_seed(self, fmt: Optional[FixedPoint]) -> Optional[tf.Tensor]:
        if not rounds_stochastically(fmt):
            return None
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Each replica rounds its own share of the batch: give it its own stream.
            replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
            seed = seed + tf.stack([tf.constant(0, tf.int64), replica * _REPLICA_STRIDE])
        return seed

    def call(self, inputs):
        x = inputs
        forward_seed = self._next_seed(self.forward)
        backward_seed = self._next_seed(self.backward)
        if self.forward is not None:
            record_rail_stats(self.name, "forward", x, self.forward)
            x = quantize_tensor(x, self.forward, ste=self.ste, seed=forward_seed)
        if self.backward is not None:
            # The model this call runs in (Keras' call context): its optimizer's loss
            # scale is divided out of the error before it is rounded.
            model = self._get_call_context().entry_layer
            x = _quantize_gradient(x, self.backward, backward_seed, self.name, model)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    # Keras saves a layer's weights but not its seed generators' state: keep the
    # stochastic streams' position with the model, so a loaded model continues them.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.seed_generator is not None:
            store[_SEED_STATE] = self.seed_generator.state.numpy()

    def load_own_variables(self, store):
        if _SEED_STATE in store.keys():
            if self.seed_generator is not None:
                self.seed_generator.state.assign(store[_SEED_STATE])
            store = {key: store[key] for key in store.keys() if key != _SEED_STATE}
        super().load_own_variables(store)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "forward": None if self.forward is None else str(self.forward),
            "backward": None if self.backward is None else str(self.backward),
            "ste": self.ste,
            "seed": self.seed,
        })
        return config

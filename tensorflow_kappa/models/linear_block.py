"""``LinearBlockModel``: Dense -> optional Activation -> optional BatchNorm blocks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

import keras
import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.models.base import BaseModel

__all__ = ["LinearBlockModel"]


@dataclass(eq=False)
class LinearBlockModel(BaseModel):
    """A chain of Dense blocks with stable layer names, for ablations.

    Block i is ``dense{i}`` -> ``activation{i}`` (if ``activation``) ->
    ``batchnorm{i}`` (if ``use_batchnorm``); the input layer is
    ``model_input``. If the last block's width differs from the dataset's
    output width (or there are no blocks), a final ``dense{len(num_hidden)}``
    maps to it. ``num_hidden=[]`` is therefore the one-layer linear model
    ``Y = X @ W (+ b)`` whose Hessian ``train_instrumented`` knows exactly.

    Args:
        num_hidden: widths of the Dense blocks.
        activation: a Keras activation (name or layer) after each block's
            Dense, or None.
        use_batchnorm: add BatchNormalization after each block.
        use_bias: Dense layers with a bias.

    Example:
    >>> from tensorflow_kappa.datasets import TeacherStudentDataset
    >>> ds = TeacherStudentDataset(64, 4, 2, seed=0)
    >>> m = LinearBlockModel(dataset=ds, num_hidden=[8, 2], activation="relu", seed=0)
    >>> m.layer_names()
    ['dense0', 'activation0', 'dense1', 'activation1']
    """

    num_hidden: list = field(default_factory=lambda: [64, 64])
    activation: Optional[Union[str, keras.layers.Activation]] = None
    use_batchnorm: bool = False
    use_bias: bool = True
    name: str = "LinearBlockModel"

    def __post_init__(self):
        super().__post_init__()
        self.model = self._build_model(self.input_shape, self.output_shape, verbose=self.verbose)
        if self.seed is not None:
            # The seeded initial weights are exactly what reinitialize_weights() restores.
            self.reinitialize_weights()

    def _kernel_initializer(self, index: int):
        seed = None if self.seed is None else int(self.seed) + 1000 * index
        return keras.initializers.GlorotUniform(seed=seed)

    def _activation_layer(self, index: int) -> keras.layers.Layer:
        if isinstance(self.activation, keras.layers.Layer):
            return keras.layers.Activation(self.activation.activation, name=f"activation{index}")
        return keras.layers.Activation(self.activation, name=f"activation{index}")

    def _build_model(self, input_shape: Tuple[int, ...], output_shape: Tuple[int, ...],
                     verbose: bool = True) -> keras.Model:
        if len(output_shape) != 1:
            raise ValueError(
                f"LinearBlockModel needs targets of shape (n, outputs), got {output_shape}"
            )
        if isinstance(self.num_hidden, (str, bytes)) or not hasattr(self.num_hidden, "__iter__"):
            raise ValueError(f"num_hidden must be a list of positive integers, got "
                             f"{self.num_hidden!r}")
        widths = [_checks.integer("num_hidden widths", w, minimum=1) for w in self.num_hidden]
        if self.activation is not None and not isinstance(self.activation, keras.layers.Layer):
            try:
                keras.activations.get(self.activation)
            except (TypeError, ValueError):
                raise ValueError(f"activation must be a Keras activation (name, function or "
                                 f"Activation layer) or None, got {self.activation!r}") from None
        for flag in ("use_batchnorm", "use_bias"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        inputs = keras.Input(shape=input_shape, name="model_input")
        x = inputs
        for i, units in enumerate(widths):
            x = keras.layers.Dense(units, use_bias=self.use_bias, name=f"dense{i}",
                                   kernel_initializer=self._kernel_initializer(i))(x)
            if self.activation is not None:
                x = self._activation_layer(i)(x)
            if self.use_batchnorm:
                x = keras.layers.BatchNormalization(name=f"batchnorm{i}")(x)
        if not widths or widths[-1] != output_shape[0]:
            i = len(widths)
            x = keras.layers.Dense(output_shape[0], use_bias=self.use_bias, name=f"dense{i}",
                                   kernel_initializer=self._kernel_initializer(i))(x)
        model = keras.Model(inputs, x, name=self.name)
        if verbose:
            model.summary()
        return model

"""What every neural arithmetic layer shares: initializer arguments, weights that can be
redrawn, output shapes and the formula read-out interface (the other argument rules
are :mod:`tensorflow_kappa._checks`)."""
from __future__ import annotations

import inspect
from typing import Any, Sequence

import keras
import tensorflow as tf

from tensorflow_kappa import _checks
from tensorflow_kappa.layers import _formula

# Options keras.layers.Layer itself accepts (besides the subclass's own).
_LAYER_OPTIONS = ("name", "dtype", "trainable", "autocast", "activity_regularizer",
                  "input_dim", "input_shape")


def check_initializer(name: str, value: Any, default: Any) -> Any:
    """Resolve an initializer argument (``None`` means the layer's default)."""
    if value is None:
        return default
    try:
        return keras.initializers.get(value)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name} must be a Keras initializer, got {value!r}") from err


def fresh_initializer(initializer: Any) -> Any:
    """A new instance of ``initializer`` (so each draw gets its own seed).

    Keras 3 initializers built with ``seed=None`` pick one seed when constructed and then
    return the same values on every call; cloning from the config draws a new seed (from
    the generator ``keras.utils.set_random_seed`` seeds). Initializers with an explicit
    integer seed clone to the same values, as their user asked.
    """
    if isinstance(initializer, keras.initializers.Initializer):
        return type(initializer).from_config(initializer.get_config())
    return initializer


class NALMLayer(keras.layers.Layer):
    """Base class of the neural arithmetic logic modules in this package.

    Subclasses create their weights in :meth:`_build_weights` with :meth:`_add_drawn_weight`,
    implement ``call``, :meth:`effective_weights` and :meth:`_unit_formulas`, and set
    ``_gated = True`` when they have a gate variable ``g``.
    """

    _gated = False

    def __init__(self, units: int, **kwargs: Any):
        self._check_options(kwargs)
        super().__init__(**kwargs)
        self.units = _checks.integer("units", units, minimum=1)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self._drawn: dict = {}  # weight attribute name -> initializer

    @classmethod
    def _check_options(cls, kwargs: dict) -> None:
        unknown = [k for k in kwargs if k not in _LAYER_OPTIONS]
        if unknown:
            own = [p for p in inspect.signature(cls.__init__).parameters
                   if p not in ("self", "kwargs")]
            raise ValueError(
                f"{cls.__name__} got unknown option(s) {', '.join(map(repr, unknown))}; "
                f"expected {', '.join(own)} or a keras.layers.Layer option "
                f"({', '.join(_LAYER_OPTIONS)})")

    # ------------------------------------------------------------ weights

    def build(self, input_shape: Sequence[int | None]) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"{type(self).__name__} needs a known last input dimension, "
                             f"got input_shape={tuple(input_shape)}")
        self.input_dim = int(input_dim)
        self._build_weights(self.input_dim)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: self.input_dim})

    def _build_weights(self, input_dim: int) -> None:
        raise NotImplementedError

    def _add_drawn_weight(self, name: str, shape: tuple, initializer: Any,
                          constraint: Any = None) -> keras.Variable:
        """Add a trainable weight that :meth:`reinitialize` redraws; it becomes ``self.<name>``."""
        variable = self.add_weight(name=name, shape=shape,
                                   initializer=fresh_initializer(initializer),
                                   constraint=constraint, trainable=True)
        self._drawn[name] = initializer
        setattr(self, name, variable)
        return variable

    def reinitialize(self) -> None:
        """Redraw every trainable weight from its initializer (and reset layer state).

        This is the restart of the iNALU recipe for a training run stuck in a local
        optimum. Optimizer slots are not touched.
        """
        if not self.built:
            raise RuntimeError(f"{self.name} is not built yet; call it on data first")
        for name, initializer in self._drawn.items():
            variable = getattr(self, name)
            variable.assign(fresh_initializer(initializer)(variable.shape, variable.dtype))
        self._reset_state()

    def _add_regularization_loss(self, value: tf.Tensor) -> None:
        """``add_loss`` in Keras' float type, the one the compiled loss is summed in.

        A float64 layer in a float32 (``floatx``) model would otherwise make ``fit`` fail
        when it adds the float64 regulariser to the float32 data loss.
        """
        self.add_loss(tf.cast(value, keras.config.floatx()))

    def _reset_state(self) -> None:
        """Reset non-trainable state on :meth:`reinitialize`; nothing by default."""

    def _inputs(self, inputs: Any) -> tf.Tensor:
        """The inputs as a tensor of the layer's compute dtype (integer inputs are cast)."""
        x = tf.convert_to_tensor(inputs)
        return x if x.dtype == self.compute_dtype else tf.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple:
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self) -> dict:
        config = super().get_config()
        config["units"] = self.units
        return config

    # ------------------------------------------------------------ read-out

    def effective_weights(self) -> dict:
        """The weights the layer computes with, as NumPy arrays of shape ``(inputs, units)``."""
        raise NotImplementedError

    def _unit_formulas(self, inputs: list, tolerance: float) -> list:
        """One :class:`_formula.Expr` or :class:`_formula.Undetermined` per output unit."""
        raise NotImplementedError

    def _weight_label(self, matrix: str, unit: int) -> Any:
        return lambda i, v: f"{self.name}: {matrix}[{i}, {unit}] = {v:.3g}"

    def explain(self, tolerance: float = 0.1,
                input_names: Sequence[str] | None = None) -> list:
        """Read the formula each output unit computes.

        Args:
            tolerance: how far an effective weight may be from {−1, 0, 1} (a gate from
                {0, 1}) and still count as that value.
            input_names: names of the inputs, plain identifiers; ``x1 … xN`` by default.

        Returns:
            One :class:`~tensorflow_kappa.layers.Formula` (a ``str``) per output unit: the
            formula, e.g. ``"x1 - x2"``, ``"x3 * x4"`` or ``"x5 / x6"``, or
            ``"not discrete: ..."`` naming the weights (0-based ``[input, unit]``
            indices into :meth:`effective_weights`) that are not discrete yet.
        """
        tolerance = _formula.check_tolerance(tolerance)
        if not self.built:
            raise RuntimeError(f"{self.name} is not built yet; call it on data first")
        inputs = _formula.input_variables(input_names, self.input_dim)
        return [_formula.Formula(node) for node in self._unit_formulas(inputs, tolerance)]

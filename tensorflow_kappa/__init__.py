"""tensorflow_kappa: fixed-point training, training-loop control and neural arithmetic units."""

__version__ = "0.1.0"

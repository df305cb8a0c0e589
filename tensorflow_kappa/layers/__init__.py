"""Keras 3 layers: the neural arithmetic family (iNALU, NALU, NAC, NAU, NMU and their
read-out) and ``Quantize`` (fixed-point rounding forward and of the gradient backward).

>>> from tensorflow_kappa.layers import INALU, explain
>>> model = keras.Sequential([keras.Input((7,)), INALU(3), INALU(2), INALU(1)])  # doctest: +SKIP
>>> # ... train ...
>>> explain(model)  # doctest: +SKIP
['(x1 - x2) * (x3 - x4) + x5 * x6']
"""
from tensorflow_kappa.layers._formula import Formula
from tensorflow_kappa.layers.explain import explain, gate_variables, sparsity_error
from tensorflow_kappa.layers.inalu import INALU
from tensorflow_kappa.layers.nalu import NAC, NALU, NACMultiplicative
from tensorflow_kappa.layers.nau_nmu import NAU, NMU
from tensorflow_kappa.layers.quantize import Quantize

__all__ = [
    "INALU",
    "NALU",
    "NAC",
    "NACMultiplicative",
    "NAU",
    "NMU",
    "Quantize",
    "gate_variables",
    "explain",
    "sparsity_error",
    "Formula",
]

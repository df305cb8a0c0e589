"""Training recipes: ready-made :class:`~tensorflow_kappa.callbacks.LoopController` set-ups.

The iNALU training recipe is recorded once, as :class:`InaluRecipe` (every
rule a field and a method; the record's docstring lists where the default
differs from the report's recipe).  Two paths execute that one record:
:class:`InaluController`, a :class:`LoopController` subclass for ``model.fit``
(one run; what users copy), and the population trainer
(:mod:`tensorflow_kappa.experiments.population`: many seeds × candidates as
one vectorised population, ``kappa arithmetic --seeds/--suite`` and ``kappa
nalm-benchmark``).  :func:`inalu_controller` builds a controller from keyword
arguments::

    model = keras.Sequential([keras.Input((7,)), INALU(3), INALU(2), INALU(1)])
    model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="mse")
    controller = inalu_controller()
    model.fit(x, y, batch_size=64, epochs=60, callbacks=[controller])

Modules: :mod:`.recipe` (:class:`InaluRecipe`), :mod:`.controller`
(:class:`InaluController`, :func:`inalu_controller`, :func:`inalu_layers`),
:mod:`.detectors` (:func:`stuck`, :func:`plateau`) and :mod:`.metrics`
(:class:`BatchMSE`).  The init families the recipe draws from are the INALU
layer's (:data:`INIT_FAMILIES`, :func:`draw_initial_weights` in
:mod:`tensorflow_kappa.layers.inalu`).
"""
from tensorflow_kappa.layers.inalu import INIT_FAMILIES, draw_initial_weights
from tensorflow_kappa.recipes.controller import InaluController, inalu_controller, inalu_layers
from tensorflow_kappa.recipes.detectors import plateau, stuck
from tensorflow_kappa.recipes.metrics import BatchMSE
from tensorflow_kappa.recipes.recipe import InaluRecipe

__all__ = ["BatchMSE", "INIT_FAMILIES", "InaluController", "InaluRecipe",
           "draw_initial_weights", "inalu_controller", "inalu_layers", "plateau", "stuck"]

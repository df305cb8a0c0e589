"""The iNALU recipe for ``model.fit``: :class:`InaluController`, a LoopController."""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.callbacks.loop_controller import LoopController
from tensorflow_kappa.layers import INALU
from tensorflow_kappa.layers.explain import nalm_layers
from tensorflow_kappa.recipes.recipe import InaluRecipe

__all__ = ["InaluController", "inalu_controller", "inalu_layers"]


def inalu_layers(model) -> list:
    """Every INALU layer of ``model`` (nested models included), in order."""
    return [layer for layer in nalm_layers(model) if isinstance(layer, INALU)]


class InaluController(LoopController):
    """A :class:`LoopController` that runs an :class:`InaluRecipe`.

    The recipe's rules are this class's methods, and the state they keep is
    declared here (cleared by :meth:`reset` with the controller's counters):

    Attributes:
        recipe: the :class:`InaluRecipe` it runs.
        reinitializations: ``(epoch, batch)`` at which the weights were redrawn.
        regularization_started: ``(epoch, batch)`` where the ``delay`` action
            first switched on after the start or a reinitialisation (for plots).
        regularizing: whether the ``delay`` action is on since the last
            reinitialisation.

    Args:
        recipe: the recipe (default: ``InaluRecipe()``; the report's is
            ``InaluRecipe.report()``).
        verbose, max_history: as for :class:`LoopController` (the history is
            kept whole by default: the reinitialisation test reads it).
        seed: seeds the redraws from init families other than ``"published"``
            (None, or an integer in [0, 2**63 - 1]); None draws one at each
            reset, reproducible under ``keras.utils.set_random_seed``.

    Example:
    >>> controller = InaluController(InaluRecipe(early_stopping_threshold=None))
    >>> controller.action_names, controller.reinitializations
    (('gate', 'delay'), [])
    """

    def __init__(self, recipe: Optional[InaluRecipe] = None, verbose: int = 0,
                 max_history: Optional[int] = None, seed: Optional[int] = None):
        self.recipe = InaluRecipe() if recipe is None else recipe
        if not isinstance(self.recipe, InaluRecipe):
            raise ValueError(f"recipe must be an InaluRecipe, got {recipe!r}")
        self.seed = _checks.random_seed("seed", seed)
        self._rng = np.random.default_rng(_checks.seed_or_drawn("seed", self.seed))
        self.reinitializations: List[Tuple[int, int]] = []
        self.regularization_started: List[Tuple[int, int]] = []
        self.regularizing = False
        super().__init__(self._config(), self._async_config() or None, verbose=verbose,
                         max_history=max_history)

    def reset(self) -> None:
        """Reset every counter, the history and the recipe's events (not the model)."""
        super().reset()
        self.reinitializations = []
        self.regularization_started = []
        self.regularizing = False
        self._rng = np.random.default_rng(_checks.seed_or_drawn("seed", self.seed))

    # ------------------------------------------------------------ configuration
    def _config(self) -> dict:
        r = self.recipe
        open_branch = {"excluded_variables": self.gates}
        gate_branch = {"variables": self.gates}
        if r.clipping is not None:
            open_branch["clipping"] = r.clipping
        if r.gate_clipping is not None:
            gate_branch["clipping"] = r.gate_clipping
        if r.gate_loss is not None:
            gate_branch["loss"] = r.gate_loss
        gate_action = {"cond": type(self).gate_open}
        if r.gate_period > r.gate_batches:
            gate_action[True] = open_branch
        if r.gate_batches > 0:
            gate_action[False] = gate_branch
        config = {"gate": gate_action}
        if r.regularization:
            reg_branch = {"loss": False, "regularize": True}
            if r.regularization_clipping is not None:
                reg_branch["clipping"] = r.regularization_clipping
            config["delay"] = {"cond": type(self).delay_regularization, True: reg_branch}
        return config

    def _async_config(self) -> dict:
        r = self.recipe
        config = {}
        if r.reinitialization:
            config["reinitialize"] = {"cond": type(self).should_reinitialize,
                                      "model": self.reinitialize_layers,
                                      "callback": type(self).after_reinitialization}
        if r.early_stopping_threshold is not None:
            config["early_stopping"] = {"cond": type(self).should_stop,
                                        "callback": type(self).stop}
        return config

    # ------------------------------------------------------------ the rules
    def layers_of(self, model) -> list:
        """The layers the recipe acts on: ``recipe.layers(model)``, else every INALU."""
        return (self.recipe.layers or inalu_layers)(model)

    def gates(self, model) -> list:
        """The gate variables ``g`` of :meth:`layers_of`."""
        return [layer.g for layer in self.layers_of(model)]

    def losses(self) -> np.ndarray:
        """The ``loss_key`` column since the last reinitialisation (empty before any)."""
        view = self.reinit_history
        key = self.recipe.loss_key
        if key not in view:
            if len(self.history):
                raise ValueError(
                    f"inalu_controller: loss_key {key!r} is not a column of the "
                    f"controller's history (columns: {', '.join(map(str, view.keys()))}); "
                    f"for 'batch_mse' compile the model with metrics=[BatchMSE()]")
            return np.empty(0)  # nothing recorded yet
        return view[key]

    def gate_open(self) -> bool:
        """``gate`` action: True on the batches that train everything but the gates."""
        return self.recipe.gate_open(self.batches)

    def delay_regularization(self) -> bool:
        """``delay`` action: regularise once the delay has passed and the loss is low."""
        if self.reinit_epochs <= self.recipe.regularization_delay_epochs:
            return False
        recorded = self.losses()
        on = bool(recorded.size) and self.recipe.regularize(self.reinit_epochs, recorded[-1])
        if on and not self.regularizing:  # first switch-on since the last reinit
            self.regularization_started.append((self.epochs, self.batches))
            self.regularizing = True
        return on

    def should_reinitialize(self) -> bool:
        """End of epoch: :meth:`InaluRecipe.stuck` on the losses since the last reinit."""
        return self.recipe.stuck(self.losses(), len(self.reinitializations))

    def reinitialize_layers(self, model) -> None:
        """Redraw every weight of :meth:`layers_of` from the next attempt's init family.

        ``"published"``: ``layer.reinitialize()`` (the layers' own initializers, as
        the report does); another family: ``layer.reinitialize(family, rng)`` from
        the controller's generator (seeded by ``seed``), layer by layer, the last
        layer the output.
        """
        family = self.recipe.family(0, len(self.reinitializations) + 1)
        layers = self.layers_of(model)
        for k, layer in enumerate(layers):
            if family == "published":
                layer.reinitialize()
            else:
                layer.reinitialize(family, self._rng, output_layer=k == len(layers) - 1)

    def after_reinitialization(self) -> None:
        """Record the redraw; the delay starts over."""
        self.reinitializations.append((self.epochs, self.batches))
        self.regularizing = False

    def should_stop(self) -> bool:
        """End of epoch: the mean of the recent losses is below the threshold."""
        return self.recipe.converged(self.losses())

    def stop(self) -> None:
        """Stop ``fit`` after this epoch."""
        self.model.stop_training = True


def inalu_controller(*, report: bool = False, verbose: int = 0,
                     max_history: Optional[int] = None, seed: Optional[int] = None,
                     **recipe: Any) -> InaluController:
    """An :class:`InaluController` for ``InaluRecipe(**recipe)``.

    Args:
        report: start from :meth:`InaluRecipe.report` (the published recipe)
            instead of the default one.
        verbose, max_history: passed to :class:`LoopController`.
        seed: seeds the redraws from init families other than ``"published"``.
        **recipe: fields of :class:`InaluRecipe`.

    Returns:
        The configured controller; it keeps ``reinitializations`` and
        ``regularization_started`` (lists of ``(epoch, batch)``) for plots.

    Example:
    >>> controller = inalu_controller(loss_key="batch_mse")
    >>> controller.recipe.loss_key
    'batch_mse'
    """
    record = InaluRecipe.report(**recipe) if report else InaluRecipe(**recipe)
    return InaluController(record, verbose=verbose, max_history=max_history, seed=seed)

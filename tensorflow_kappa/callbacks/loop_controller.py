"""Training-loop control from plain Python dictionaries, inside ``model.fit``.

:class:`LoopController` (the report's ``LoopControllerCallback``) lets a user decide, batch by batch, what a training
step does: which loss, which variables, whether regularisation enters, how
gradients are clipped or transformed, while keeping ``model.fit`` and
everything it brings (progress bar, validation, other callbacks,
distribution strategies).

Mechanism
---------
* ``config`` maps action names to ``{"cond": fn(callback) -> bool, True:
  branch, False: branch}``.  Before every batch the controller evaluates every
  ``cond`` with itself as the argument, which gives a tuple of control
  states.
* For each state tuple it meets, the controller builds one specialised
  Keras train function: it sets the *instance* attribute
  ``model.train_step`` to a step in which the active branches are unrolled
  in config order (see :mod:`tensorflow_kappa.callbacks.controlled_step`),
  calls ``model.make_train_function(force=True)``, takes the resulting
  ``model.train_function`` and removes the instance attribute again.  The
  functions are cached, and ``on_train_batch_begin`` points
  ``model.train_function`` (which ``fit`` reads every batch) at the one for
  the current states, assigning only on change.  Flipping a control
  therefore costs no retrace: each state tuple is traced once per ``fit``.
* ``on_train_end`` puts the original ``model.train_function`` back, so a
  later plain ``fit`` behaves as if the controller had never been there.  No
  controller state is attached to the model, so ``model.save`` /
  ``keras.models.load_model`` are unaffected.  Should a controlled ``fit``
  die with an exception (so ``on_train_end`` never runs), the stale
  controlled function notices on its next call that no controller armed it
  and rebuilds and runs the model's plain train function instead.

Documented caveats
------------------
* ``optimizer.iterations`` counts calls to ``optimizer.apply``, not batches:
  a batch with two active actions advances it by two (learning-rate
  schedules and Adam's bias correction advance with it); an action whose
  objective has no gradient (``"loss": None`` without regularisation) does
  not advance it.  Use the callback's ``batches`` counter for a per-batch
  clock.
* With ``steps_per_execution=k`` Keras calls the batch hooks once per k
  batches, so conditions are evaluated, and take effect, every k batches;
  ``history`` then gets one row per execution.
* On CPU under ``tf.distribute.MirroredStrategy`` stock Keras itself fails
  with ``steps_per_execution > 1`` and with ``jit_compile=True``; that is
  not the controller's doing.
* The controller replaces ``train_step`` while it runs: a model's own
  ``train_step`` override is not used for controlled batches (its
  ``compute_loss`` and ``compute_metrics`` overrides are).
* ``loss`` in the logs is what plain ``fit`` reports (compiled loss plus
  ``model.losses``, running mean over the epoch), computed, like the
  compiled metrics, from the first active action's forward pass (before its
  update).  A batch on which no action runs trains nothing; ``loss`` and
  the metrics still observe it through an inference-mode forward pass
  (``training=False``: BatchNorm statistics and dropout untouched).  For
  multi-output models, the per-output loss entries average over every
  action that uses the compiled loss.
* ``history`` rows are the logs Keras hands to ``on_train_batch_end``:
  ``loss``, metrics and ``loss_<action>`` are running means within the
  epoch there, as in every Keras batch log.
* Under a distribution strategy, ``clipping`` and ``gradient_transform``
  act on the all-reduced (global-batch) gradient, as on one device, at the
  cost of one extra all-reduce for such branches.  With a
  ``LossScaleOptimizer`` (mixed precision) they would see loss-scaled
  gradients; that combination is untested.
* Keras 3.15 under a multi-worker ``MultiWorkerMirroredStrategy``: its
  ``fit`` reduces every step log with ``strategy.reduce("MEAN", v,
  axis=0)``, which fails on scalars; the controller returns logs of shape
  ``[1]`` there so the reduction yields the right scalar.  Independently of
  the controller, Keras 3.15's ``fit`` fails there on ``(x, y)`` batches
  before the first step (``strategy.reduce`` on the tuple in its symbolic
  build); a single-tensor batch, with the target read in overridden
  ``compute_loss`` / ``compute_metrics``, avoids it.
* When several control states are traced for the first time in quick
  succession, TensorFlow may warn that ``multi_step_on_iterator``
  "triggered tf.function retracing": the calls are to distinct functions,
  one per state, each traced once; ``trace_count`` gives the real count.
"""
from __future__ import annotations

import logging
import sys
from typing import Callable, Dict, Mapping, Optional, Tuple

import keras
import numpy as np

from tensorflow_kappa import _checks
from tensorflow_kappa.callbacks.controlled_step import build_train_step, compile_train_function
from tensorflow_kappa.callbacks.loop_controller_config import (
    LoopControllerConfigError,
    parse_async_config,
    parse_config,
    select_variables,
)
from tensorflow_kappa.callbacks.step_history import HistoryView, StepHistory

__all__ = ["LoopController", "LoopControllerConfigError"]

_logger = logging.getLogger(__name__)
_MARK = "_tensorflow_kappa_loop_controller"


class LoopController(keras.callbacks.Callback):
    """Customise every training step of ``model.fit`` from dictionaries.

    Args:
        config: ``{action: {"cond": fn(callback) -> bool, True: branch,
            False: branch}}``.  Either branch may be absent (the action then
            does nothing in that state); ``"True"``/``"False"`` are accepted
            as keys.  A branch dict may hold ``"loss"`` (a
            ``keras.losses.Loss``, a loss name, a callable ``(y_true,
            y_pred)``, or ``None``/``False`` for zero data loss; absent: the
            compiled loss), ``"regularize"`` (``True`` adds
            ``model.losses``), ``"variables"`` / ``"excluded_variables"``
            (``fn(model) -> list`` of trainable variables to train / leave
            out), ``"clipping"`` (``(low, high)`` for ``tf.clip_by_value``)
            and ``"gradient_transform"`` (``fn(grads, variables) ->
            grads``, applied before clipping).  Each active action is one
            full training step on the batch, in config order.
        async_config: ``{name: {"cond": fn(callback), "model": fn(model),
            "callback": fn(callback), "reinit": bool}}`` evaluated at the end
            of every epoch; when ``cond`` holds, ``model`` then ``callback``
            run.  ``reinit`` (default: ``"model" in`` the entry) resets
            ``reinit_epochs`` and ``reinit_history`` afterwards.
        verbose: 1 prints control-state changes and async actions.
        max_history: keep only (about) this many most recent rows of
            ``history``; ``None`` keeps all.

    Counters (read them in conditions): ``epochs`` (completed epochs),
    ``batches`` (completed batches, over all epochs and ``fit`` calls),
    ``batches_in_epoch``, ``reinit_epochs`` (completed epochs since the last
    reinitialisation), ``history`` and ``reinit_history`` (per-step logs as
    :class:`~tensorflow_kappa.callbacks.step_history.HistoryView`: columns
    as NumPy views, ``history["loss"]``, or rows, ``history[-1]["loss"]``),
    ``loss_history`` (the ``loss`` column), ``states`` (current control
    states) and ``trace_count`` (how often a controlled step was traced).
    Counters persist across ``fit`` calls; :meth:`reset` clears them.

    Logs (so ``History.history`` shows them per epoch): ``loss`` as Keras
    reports it, ``loss_<action>`` (running mean over the epoch of the
    objective the action trained; 0 when it did not run), and ``<action>``
    (the control state, 0 or 1, of the epoch's last batch).

    Example (the report's iNALU recipe, chapter 6)::

        def gate_open(cb):
            return cb.batches % 10 < 8

        def delay_reg(cb):
            return (cb.reinit_epochs > 10 and cb.reinit_history
                    and cb.reinit_history[-1]["loss"] < 1.0)

        def gates(model):
            return [layer.g for layer in model.layers if isinstance(layer, INALU)]

        config = {
            "gate": {
                "cond": gate_open,
                True: {"clipping": (-0.1, 0.1), "excluded_variables": gates},
                False: {"clipping": (-0.1, 0.1), "variables": gates},
            },
            "delay": {"cond": delay_reg, True: {"loss": False, "regularize": True}},
        }

        def stuck(cb):  # steps since the last reinitialisation, as NumPy
            loss = cb.reinit_history["loss"]
            return len(loss) > 10000 and loss[-3000:].mean() > 0.2

        def reinitialise(model):
            for layer in model.layers:
                if isinstance(layer, INALU):
                    layer.reinitialize()

        async_config = {"reinitialize": {"cond": stuck, "model": reinitialise}}
        model.fit(data, epochs=120,
                  callbacks=[LoopController(config, async_config, verbose=1)])
    """

    def __init__(
        self,
        config: Mapping,
        async_config: Optional[Mapping] = None,
        verbose: int = 0,
        max_history: Optional[int] = None,
    ):
        super().__init__()
        self._actions = parse_config(config)
        self._async_actions = parse_async_config(async_config)
        self.verbose = _checks.integer("verbose", verbose, minimum=0)
        if max_history is not None:
            _checks.integer("max_history", max_history, minimum=1)
        self._store = StepHistory(max_history)
        self._trace_count = 0
        self.reset()
        self._clear_fit_state()

    # ------------------------------------------------------------------
    # Counters and history
    # ------------------------------------------------------------------
    def reset(self) -> None:
        """Reset every counter and the history (not the model)."""
        self.epochs = 0
        self.batches = 0
        self.batches_in_epoch = 0
        self.reinit_epochs = 0
        self._store.clear()
        self._reinit_start = self._store.end
        self._states: Dict[str, bool] = {}

    def mark_reinitialized(self) -> None:
        """Start ``reinit_epochs`` and ``reinit_history`` afresh from now."""
        self.reinit_epochs = 0
        self._reinit_start = self._store.end

    @property
    def history(self) -> HistoryView:
        """Per-step logs (one row per train-function call) since the last clear."""
        return HistoryView(self._store, self._store.first)

    @history.setter
    def history(self, value) -> None:
        # The report's reinitialisation idiom: ``self.history = []``.
        if value is None or (isinstance(value, (list, tuple)) and not value):
            self._store.clear()
            self._reinit_start = max(self._reinit_start, self._store.end)
            return
        raise TypeError("history can only be cleared (assign [] or None)")

    @property
    def reinit_history(self) -> HistoryView:
        """Per-step logs since the last reinitialisation."""
        return HistoryView(self._store, self._reinit_start)

    @reinit_history.setter
    def reinit_history(self, value) -> None:
        if value is None or (isinstance(value, (list, tuple)) and not value):
            self._reinit_start = self._store.end
            return
        raise TypeError("reinit_history can only be cleared (assign [] or None)")

    @property
    def loss_history(self) -> np.ndarray:
        """Read-only NumPy view of the per-step ``loss`` column."""
        if "loss" not in self._store.keys():
            return np.empty(0)
        return self._store.column("loss", self._store.first)

    @property
    def states(self) -> Dict[str, bool]:
        """Control state of every action for the current (last) batch."""
        return dict(self._states)

    @property
    def trace_count(self) -> int:
        """How many times a controlled train step has been traced."""
        return self._trace_count

    @property
    def action_names(self) -> Tuple[str, ...]:
        """The names of the config's actions, in the order the config gives them."""
        return tuple(a.name for a in self._actions)

    # ------------------------------------------------------------------
    # Building and switching train functions
    # ------------------------------------------------------------------
    def _clear_fit_state(self) -> None:
        self._functions: Dict[Tuple[bool, ...], Callable] = {}
        self._current: Optional[Tuple[bool, ...]] = None
        self._original_train_function = None
        self._selections: Dict = {}
        self._means: Dict[str, keras.metrics.Mean] = {}
        self._own_loss_tracker = None
        self._armed = False
        self._begin_step = 0
        self._in_epoch = False
        self._fit_model = None

    def _count_trace(self) -> None:
        self._trace_count += 1

    def _resolve(self) -> None:
        """Validate the variable selections and build the optimizer on all variables."""
        model = self._fit_model
        selections = {}
        for action in self._actions:
            for state, spec in action.branches.items():
                selections[(action.name, state)] = select_variables(spec, model)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self._selections.update(selections)

    def _function_for(self, states: Tuple[bool, ...]) -> Callable:
        fn = self._functions.get(states)
        if fn is not None:
            return fn
        model = self._fit_model
        step = build_train_step(
            model,
            self._actions,
            states,
            selections=self._selections,
            resolve=self._resolve,
            means=self._means,
            own_loss_tracker=self._own_loss_tracker,
            on_trace=self._count_trace,
        )
        fn = self._wrap(compile_train_function(model, step), model)
        self._functions[states] = fn
        return fn

    def _wrap(self, compiled: Callable, model) -> Callable:
        controller = self

        def controlled_train_function(iterator):
            if not controller._armed:
                # Called outside a controlled fit (e.g. after one crashed):
                # behave like the model's own train function.
                model.make_train_function(force=True)
                return model.train_function(iterator)
            controller._armed = False
            return compiled(iterator)

        setattr(controlled_train_function, _MARK, True)
        return controlled_train_function

    # ------------------------------------------------------------------
    # Messages
    # ------------------------------------------------------------------
    def _say(self, message: str) -> None:
        if not self.verbose:
            return
        message = f"LoopController: {message}"
        if keras.config.is_interactive_logging_enabled():
            # Mid-epoch on a terminal the progress bar owns the current line:
            # end it first, print the message, let the bar redraw below.
            tty = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
            prefix = "\n" if (self._in_epoch and tty) else ""
            sys.stdout.write(prefix + message + "\n")
            sys.stdout.flush()
        else:
            _logger.info(message)

    # ------------------------------------------------------------------
    # Keras hooks
    # ------------------------------------------------------------------
    def on_train_begin(self, logs=None) -> None:
        model = self.model
        if getattr(model, "optimizer", None) is None:
            raise ValueError("LoopController needs a compiled model (model.compile(...)).")
        self._clear_fit_state()
        self._fit_model = model
        original = model.train_function
        if original is not None and getattr(original, _MARK, False):
            original = None  # left over from a controlled fit that crashed
        self._original_train_function = original
        with model.distribute_strategy.scope():
            self._means = {
                a.name: keras.metrics.Mean(name=f"loss_{a.name}") for a in self._actions
            }
            if not any(m.name == "loss" for m in model.metrics):
                self._own_loss_tracker = keras.metrics.Mean(name="loss")
            if model.built and model.trainable_variables:
                self._resolve()  # else: inside the first trace, after the model is built

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.batches_in_epoch = 0
        self._in_epoch = True
        for mean in self._means.values():
            mean.reset_state()
        if self._own_loss_tracker is not None:
            self._own_loss_tracker.reset_state()

    def on_train_batch_begin(self, batch, logs=None) -> None:
        states = tuple(_evaluate_cond(action, self, "action") for action in self._actions)
        if states != self._current:
            self.model.train_function = self._function_for(states)
            if self.verbose:
                old = self._current
                changes = ", ".join(
                    f"{a.name} {'' if old is None else f'{old[i]} -> '}{states[i]}"
                    for i, a in enumerate(self._actions)
                    if old is None or old[i] != states[i]
                )
                self._say(f"epoch {self.epochs}, batch {self.batches}: {changes}")
            self._current = states
            self._states = {a.name: s for a, s in zip(self._actions, states)}
        self._begin_step = batch
        self._armed = True

    def on_train_batch_end(self, batch, logs=None) -> None:
        row = {"epoch": self.epochs, "batch": self.batches}
        if logs:
            row.update(logs)
        self._store.append(row)
        done = max(int(batch) - int(self._begin_step) + 1, 1)
        self.batches += done
        self.batches_in_epoch += done

    def on_epoch_end(self, epoch, logs=None) -> None:
        self._in_epoch = False
        self.epochs += 1
        self.reinit_epochs += 1
        for action in self._async_actions:
            if not _evaluate_cond(action, self, "async action"):
                continue
            self._say(f"end of epoch {self.epochs}: async action {action.name!r}")
            if action.model_fn is not None:
                action.model_fn(self.model)
            if action.callback_fn is not None:
                action.callback_fn(self)
            if action.reinit:
                self.mark_reinitialized()

    def on_train_end(self, logs=None) -> None:
        model = self._fit_model
        if model is not None:
            if self._original_train_function is not None:
                model.train_function = self._original_train_function
            else:
                model.make_train_function(force=True)
        self._clear_fit_state()


def _evaluate_cond(action, controller: "LoopController", kind: str) -> bool:
    """``action.cond(controller)``, which must return a bool (else TypeError naming it)."""
    try:
        value = action.cond(controller)
    except Exception as err:
        err.add_note(f"raised by the 'cond' of LoopController {kind} {action.name!r}")
        raise
    return _checks.bool_result(f"the 'cond' of LoopController {kind} {action.name!r}", value)

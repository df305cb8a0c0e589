"""Many small models trained as one: the population trainer and its masked optimizer.

A *population* holds the weights of ``P`` members (seeds × candidates of the
arithmetic job, operation × range × seed cells of the NALM benchmark) stacked
on a leading member axis.  The loss is the sum of the members' own losses, so
each member gets exactly its own gradient, and :class:`MaskedOptimizer` is
element-wise, so each member trains as if alone.  A chunk of steps (an epoch,
or the steps between two evaluations) is one compiled loop;
:class:`PopulationTrainer` runs the chunks and, between them, records each
member's step losses since its last (re)draw, evaluates (a hook), redraws the
members an :class:`~tensorflow_kappa.recipes.InaluRecipe` finds stuck, and
masks the members that are done: their weights and optimizer state stay as
they are.

Two jobs subclass it:
:class:`~tensorflow_kappa.experiments.arithmetic_population.ArithmeticPopulation`
(``kappa arithmetic --seeds/--suite``) and
:class:`~tensorflow_kappa.experiments.nalm.module_population.ModulePopulation`
(``kappa nalm-benchmark``).

Example (two members, the second masked):
>>> opt = MaskedOptimizer(keras.optimizers.RMSprop(0.01))
>>> w = np.ones((2, 1), np.float32)
>>> w, slots = opt.update(tf.constant(w), tf.ones((2, 1)), opt.slots(w), tf.constant([True, False]))
>>> [round(float(v), 4) for v in w[:, 0]]  # only member 0 moved
[0.9684, 1.0]
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tensorflow_kappa import _checks

__all__ = ["MaskedOptimizer", "PopulationTrainer", "member_mask", "quiet_retracing"]

# Keras optimizer settings the element-wise rules do not implement, and the value
# each must have.
_PLAIN = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
          "use_ema": False, "loss_scale_factor": None, "gradient_accumulation_steps": None}
_RULES = {"RMSprop": ("rho", "epsilon", {"momentum": 0.0, "centered": False}),
          "Adam": ("beta_1", "beta_2", "epsilon", {"amsgrad": False})}


def member_mask(mask: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """``mask`` (one entry per member) shaped to broadcast against ``like`` (members first)."""
    return tf.reshape(mask, [-1] + [1] * (len(like.shape) - 1))


class MaskedOptimizer:
    """A Keras optimizer's update rule, element-wise on member-stacked tensors, per member.

    Takes the rule and its constants from a Keras optimizer: ``RMSprop`` (its
    ``learning_rate``, ``rho`` and ``epsilon``) or ``Adam`` (``learning_rate``,
    ``beta_1``, ``beta_2``, ``epsilon``), with Keras 3's formulas, so an unmasked
    member steps exactly as that optimizer steps a single model.  The state is
    functional: :meth:`slots` gives a variable's initial slots, :meth:`update`
    returns the new value and slots (the compiled loops carry them).

    Args:
        optimizer: a ``keras.optimizers.RMSprop`` or ``keras.optimizers.Adam`` with
            a constant learning rate and none of momentum, ``centered``,
            ``amsgrad``, weight decay, gradient clipping, EMA, loss scaling or
            gradient accumulation.

    Raises:
        ValueError: another optimizer or a setting the rule does not implement.
    """

    def __init__(self, optimizer: keras.optimizers.Optimizer):
        kind = type(optimizer).__name__
        if not isinstance(optimizer, (keras.optimizers.RMSprop, keras.optimizers.Adam)) \
                or kind not in _RULES:
            raise ValueError(f"optimizer must be a keras.optimizers.RMSprop or Adam, "
                             f"got {optimizer!r}")
        config = optimizer.get_config()
        *names, fixed = _RULES[kind]
        unsupported = {k: config[k] for k, v in {**_PLAIN, **fixed}.items() if config[k] != v}
        if unsupported or not isinstance(config["learning_rate"], float):
            raise ValueError(f"optimizer: the masked {kind} takes a constant learning rate "
                             f"and only its defaults for {sorted({**_PLAIN, **fixed})}; got "
                             f"{unsupported or {'learning_rate': config['learning_rate']}}")
        self.kind = kind
        self.learning_rate = config["learning_rate"]
        self.constants = {name: config[name] for name in names}

    def slots(self, value: np.ndarray) -> tuple:
        """The initial state of one stacked variable: zeros (RMSprop: the velocity;
        Adam: both moments and, per member, the step count)."""
        zeros = np.zeros_like(value)
        if self.kind == "RMSprop":
            return (zeros,)
        return zeros, np.zeros_like(value), np.zeros(value.shape[:1], value.dtype)

    def reset(self, slots: tuple, member: int) -> None:
        """Zero member ``member``'s entries of one variable's NumPy ``slots`` in place."""
        for slot in slots:
            slot[member] = 0

    def update(self, value: tf.Tensor, grad: tf.Tensor, slots: tuple, mask: tf.Tensor,
               constraint: Optional[Callable] = None) -> Tuple[tf.Tensor, tuple]:
        """One step of the members where ``mask`` holds: ``(new value, new slots)``.

        ``constraint`` (e.g. a layer's weight clamp) applies to the stepped value,
        as Keras applies a variable's constraint after the update; the members
        outside ``mask`` keep their value and slots bit for bit.
        """
        m = member_mask(mask, value)
        lr = self.learning_rate
        if self.kind == "RMSprop":
            rho, eps = self.constants["rho"], self.constants["epsilon"]
            (velocity,) = slots
            new_v = rho * velocity + (1.0 - rho) * tf.square(grad)
            step = lr * grad / tf.sqrt(new_v + eps)
            slots = (tf.where(m, new_v, velocity),)
        else:
            b1, b2, eps = (self.constants[k] for k in ("beta_1", "beta_2", "epsilon"))
            first, second, count = slots
            count = tf.where(mask, count + 1.0, count)
            t = member_mask(count, value)
            new_m = first + (grad - first) * (1.0 - b1)
            new_s = second + (tf.square(grad) - second) * (1.0 - b2)
            alpha = lr * tf.sqrt(1.0 - tf.pow(b2, t)) / (1.0 - tf.pow(b1, t))
            step = alpha * new_m / (tf.sqrt(new_s) + eps)
            slots = (tf.where(m, new_m, first), tf.where(m, new_s, second), count)
        new = value - step
        if constraint is not None:
            new = constraint(new)
        return tf.where(m, new, value), slots


class PopulationTrainer:
    """Members' weights stacked on a leading axis, trained chunk by compiled chunk.

    A subclass says what a member is and what a step does:

    * :meth:`_draw`: member ``p``'s weights for an attempt (0: its first draw,
      then one per redraw), in the order of :attr:`weights`;
    * :meth:`_step`: one step of every member, in the compiled loop:
      ``(step index in the chunk, state, chunk inputs) -> (state, records)``; the
      state is ``(weights, slots, *the job's own)`` and the first record each
      member's training loss of the step;
    * :meth:`_chunk_inputs`: the tensors a chunk's steps read;
    * :meth:`_after_chunk`: evaluation and the job's own records;
    * :meth:`_on_redraw`, :meth:`_not_stuck`: the job's per-member state after
      a redraw, and what a member that is not stuck does (e.g. stop once converged).

    The subclass's ``__init__`` calls :meth:`_start` once :meth:`_draw` can run;
    then :meth:`train` runs chunks.

    Args:
        members: the number of members ``P``.
        recipe: the :class:`~tensorflow_kappa.recipes.InaluRecipe` whose
            ``stuck`` rule redraws members between chunks; ``None``: no redraws.
        optimizer: the :class:`MaskedOptimizer`.
        steps_per_chunk: training steps per compiled call.
        jit_compile: compile the chunk with XLA.
        reset_slots_on_redraw: a redrawn member also starts with zeroed optimizer
            slots (otherwise they carry on, as ``model.fit``'s redraw does).

    Attributes:
        weights: per variable, the members' values ``(P, ...)`` (NumPy).
        slots: per variable, the optimizer's state.
        active: ``(P,)`` members still training; a step leaves the others as they are.
        redraws: ``(P,)`` redraws per member so far.

    Example (each member learns its own number):
    >>> class Numbers(PopulationTrainer):
    ...     def __init__(self, targets):
    ...         super().__init__(len(targets), None,
    ...                          MaskedOptimizer(keras.optimizers.RMSprop(0.01)),
    ...                          steps_per_chunk=100, jit_compile=False,
    ...                          reset_slots_on_redraw=False)
    ...         self.targets = tf.constant(targets)
    ...         self._start()
    ...     def _draw(self, p, attempt):
    ...         return [np.zeros(())]
    ...     def _chunk_inputs(self, start):
    ...         return (tf.constant(self.active),)
    ...     def _step(self, i, state, inputs):
    ...         (w,), (slots,) = state
    ...         with tf.GradientTape() as tape:
    ...             tape.watch(w)
    ...             loss = tf.square(w - self.targets)  # each member's own
    ...             total = tf.reduce_sum(loss)
    ...         grad = tape.gradient(total, w)
    ...         w, slots = self.optimizer.update(w, grad, slots, inputs[0])
    ...         return ([w], [slots]), (loss,)
    >>> numbers = Numbers([1.0, -2.0])
    >>> numbers.train(chunks=4)
    4
    >>> [round(float(w), 1) for w in numbers.weights[0]]
    [1.0, -2.0]
    """

    def __init__(self, members: int, recipe: Any, optimizer: MaskedOptimizer,
                 steps_per_chunk: int, jit_compile: bool, reset_slots_on_redraw: bool):
        self.P = _checks.integer("members", members, minimum=1)
        self.recipe = recipe
        self.optimizer = optimizer
        self.steps_per_chunk = _checks.integer("steps_per_chunk", steps_per_chunk, minimum=1)
        self.jit_compile = jit_compile
        self.reset_slots_on_redraw = reset_slots_on_redraw
        self.active = np.ones(self.P, bool)
        self.redraws = np.zeros(self.P, np.int64)
        self._losses: List[List[np.ndarray]] = [[] for _ in range(self.P)]
        self._chunk = None

    def _start(self, initial: Optional[Sequence[Sequence[np.ndarray]]] = None) -> None:
        """Stack every member's first draw (or ``initial``, per member) and zero the slots."""
        if initial is None:
            initial = [self._draw(p, 0) for p in range(self.P)]
        if len(initial) != self.P:
            raise ValueError(f"initial_weights needs one entry per member ({self.P}), "
                             f"got {len(initial)}")
        self.weights = [np.stack(values).astype(np.float32) for values in zip(*initial)]
        self.slots = [self.optimizer.slots(w) for w in self.weights]

    # ------------------------------------------------------------ the member axis
    def member_weights(self, p: int) -> List[np.ndarray]:
        """Member ``p``'s weights, one array per variable."""
        return [w[p] for w in self.weights]

    def set_member_weights(self, p: int, values: Sequence[np.ndarray]) -> None:
        """Replace member ``p``'s weights (one array per variable)."""
        for w, value in zip(self.weights, values):
            w[p] = value

    def member_losses(self, p: int) -> np.ndarray:
        """Member ``p``'s training losses of every step since its last (re)draw."""
        return np.concatenate(self._losses[p]) if self._losses[p] else np.empty(0, np.float32)

    # ------------------------------------------------------------ what a subclass defines
    def _draw(self, p: int, attempt: int) -> List[np.ndarray]:
        raise NotImplementedError

    def _state(self) -> tuple:
        """The job's own state carried through the loop after weights and slots."""
        return ()

    def _set_state(self, state: tuple) -> None:
        """Keep the job's own state after a chunk."""

    def _step(self, i: tf.Tensor, state: tuple, inputs: tuple) -> Tuple[tuple, tuple]:
        raise NotImplementedError

    def _chunk_inputs(self, start: int) -> tuple:
        raise NotImplementedError

    def _record_dtypes(self) -> Tuple[tf.DType, ...]:
        """The dtypes of :meth:`_step`'s records (the first: the members' losses)."""
        return (tf.float32,)

    def _after_chunk(self, chunk: int, start: int, records: List[np.ndarray]) -> None:
        """After chunk ``chunk`` (1-based) from global step ``start``: evaluate, record."""

    def _rule_losses(self, p: int) -> np.ndarray:
        """The losses the recipe's rules read for member ``p``."""
        return self.member_losses(p)

    def _on_redraw(self, p: int) -> None:
        """The job's per-member state after member ``p`` was redrawn."""

    def _not_stuck(self, p: int, losses: np.ndarray) -> None:
        """What an active member that is not stuck does at the end of a chunk."""

    def _finished(self) -> bool:
        """True when the run is over although members are still active."""
        return False

    # ------------------------------------------------------------ training
    def _compile(self):
        steps, dtypes = self.steps_per_chunk, self._record_dtypes()

        def chunk(state, inputs):
            def body(i, state, records):
                state, outputs = self._step(i, state, inputs)
                return i + 1, state, [r.write(i, o) for r, o in zip(records, outputs)]

            records = [tf.TensorArray(dtype, size=steps) for dtype in dtypes]
            _, state, records = tf.while_loop(lambda i, *_: i < steps, body,
                                              (tf.constant(0), state, records))
            return state, [r.stack() for r in records]

        return tf.function(chunk, jit_compile=self.jit_compile, autograph=False)

    def train_chunk(self, start: int) -> List[np.ndarray]:
        """Run one compiled chunk from global step ``start``; keep the new state and
        return the records, each ``(steps_per_chunk, P, ...)``."""
        if self._chunk is None:
            self._chunk = self._compile()
        state = (self.weights, self.slots) + self._state()
        state, records = self._chunk(tf.nest.map_structure(tf.constant, state),
                                     self._chunk_inputs(start))
        weights, slots, *own = tf.nest.map_structure(lambda t: t.numpy(), state)
        self.weights, self.slots = list(weights), [tuple(s) for s in slots]
        self._set_state(tuple(own))
        return [r.numpy() for r in records]

    def train(self, chunks: int) -> int:
        """Train up to ``chunks`` chunks, fewer once no member is active or the run is
        :meth:`_finished`; the chunks run."""
        done = 0
        while done < chunks and self.active.any():
            start = done * self.steps_per_chunk
            records = self.train_chunk(start)
            for p in np.flatnonzero(self.active):
                self._losses[p].append(records[0][:, p])
            done += 1
            self._after_chunk(done, start, records)
            self._end_of_chunk()
            if self._finished():
                break
        return done

    def _end_of_chunk(self) -> None:
        """Per member active at the chunk's end: redraw it if the recipe finds it stuck,
        else :meth:`_not_stuck`."""
        for p in np.flatnonzero(self.active):
            losses = self._rule_losses(p)
            if self.recipe is not None and self.recipe.stuck(losses, int(self.redraws[p])):
                self.redraw(p)
            else:
                self._not_stuck(p, losses)

    def redraw(self, p: int) -> None:
        """Redraw member ``p`` from its next attempt (:meth:`_draw`); its losses start over."""
        self.redraws[p] += 1
        self.set_member_weights(p, self._draw(p, int(self.redraws[p])))
        if self.reset_slots_on_redraw:
            for slots in self.slots:
                self.optimizer.reset(slots, p)
        self._losses[p] = []
        self._on_redraw(p)


class quiet_retracing:
    """Silence TensorFlow's "triggered tf.function retracing" warning while populations run.

    Each population builds its own train and evaluation functions from the same code;
    TensorFlow counts those first traces together and warns, although every function is
    traced exactly once.
    """

    def __enter__(self):
        self.logger = tf.get_logger()
        self.level = self.logger.level
        self.logger.setLevel("ERROR")

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)
        return False

"""The training step :class:`LoopController` installs for one tuple of control states.

:func:`build_train_step` returns a plain Python ``train_step(data)`` that
Keras wraps (via ``model.make_train_function(force=True)``) into the same
``tf.function`` / ``strategy.run`` machinery it uses for its own step.  The
control states are *Python constants* of the step: each active action is
unrolled into the graph as one full training step (forward pass, objective,
gradients, update) and inactive ones are simply absent, so there is no
``tf.cond`` around optimizer updates (which fails under a distribution
strategy) and nothing is traced for branches that do not run.

Per action the objective is::

    compiled loss  (model.compute_loss(...) minus model.losses)   | "loss" absent
    branch loss    (a keras.losses.Loss, per output and summed)   | "loss" given
    0                                                             | "loss": None/False
  + model.losses (scaled by 1/num_replicas like Keras does)       | "regularize": True

Under a distribution strategy, a branch with ``clipping`` or a
``gradient_transform`` all-reduces its gradients before modifying them, so
both see the global-batch gradient exactly as on one device (Keras's own
optimizer ``clipvalue`` clips per-replica gradients instead); the optimizer
then receives ``g / num_replicas`` and its own SUM all-reduce restores ``g``.
This costs one extra all-reduce for such branches.

The compiled loss is taken from the public ``model.compute_loss`` (which is
what plain ``fit`` minimises and reports, including multi-output losses,
loss weights and the distribution scaling); when regularisation is off its
``model.losses`` part is subtracted again.  For ``add_loss`` terms (the same
tensors both times) the gradient cancels exactly; weight regularisers are
recomputed on every access of ``model.losses``, so theirs cancels up to float
rounding (about 1e-7 of the regulariser's gradient).
"""
from __future__ import annotations

import inspect
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import keras
import tensorflow as tf

from tensorflow_kappa.callbacks.loop_controller_config import (
    ActionSpec,
    BranchSpec,
    LoopControllerConfigError,
)

__all__ = ["build_train_step", "compile_train_function"]


def _num_replicas() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


def _unscale(value):
    """Undo the 1/num_replicas loss scaling for logging (as Keras does)."""
    replicas = _num_replicas()
    return value * float(replicas) if replicas > 1 else value


def multi_worker(strategy) -> bool:
    """Whether ``strategy`` is a MultiWorkerMirroredStrategy over several workers."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return sum(len(spec.get(job, [])) for job in ("chief", "worker")) > 1


def compile_train_function(model: keras.Model, train_step: Callable) -> Callable:
    """Keras' compiled train function of ``model`` with ``train_step`` in place of its
    own, leaving ``model.train_step`` and ``model.train_function`` as they were (so
    ``fit`` keeps its plain function and a callback swaps the returned one in)."""
    unset = object()
    saved_step = model.__dict__.get("train_step", unset)
    previous_function = model.train_function
    model.train_step = train_step
    try:
        model.make_train_function(force=True)
        return model.train_function
    finally:
        if saved_step is unset:
            del model.train_step
        else:
            model.train_step = saved_step
        model.train_function = previous_function


def _batch_size(x):
    first = next(t for t in keras.tree.flatten(x) if t is not None)
    return tf.shape(first)[0]


def _regularization(model):
    """``sum(model.losses)`` aggregated and scaled exactly as Keras's TF trainer does."""
    losses = model.losses
    if not losses:
        return None
    terms = [tf.reduce_sum(tf.cast(loss, tf.float32)) for loss in losses]
    total = tf.add_n(terms) if len(terms) > 1 else terms[0]
    replicas = _num_replicas()
    return total * (1.0 / replicas) if replicas > 1 else total


def _all_reduce_sum(pairs):
    grads = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, [g for g, _ in pairs])
    return list(zip(grads, [v for _, v in pairs]))


def _divide(grad, replicas: int):
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values / replicas, grad.indices, grad.dense_shape)
    return grad / replicas


def _custom_loss(spec: BranchSpec, y, y_pred, sample_weight):
    y_true_leaves = keras.tree.flatten(y)
    y_pred_leaves = keras.tree.flatten(y_pred)
    if len(y_true_leaves) != len(y_pred_leaves):
        raise LoopControllerConfigError(
            f"LoopController config, action {spec.action!r}, branch {spec.branch!r}, "
            f"key 'loss': the data has {len(y_true_leaves)} targets but the model "
            f"{len(y_pred_leaves)} outputs."
        )
    losses = spec.loss if isinstance(spec.loss, tuple) else (spec.loss,) * len(y_pred_leaves)
    if len(losses) != len(y_pred_leaves):
        raise LoopControllerConfigError(
            f"LoopController config, action {spec.action!r}, branch {spec.branch!r}, "
            f"key 'loss': {len(losses)} losses for {len(y_pred_leaves)} model outputs."
        )
    if sample_weight is None or not isinstance(sample_weight, (list, tuple, dict)):
        weights = [sample_weight] * len(y_pred_leaves)
    else:
        weights = keras.tree.flatten(sample_weight)
    terms = [
        tf.cast(loss(t, p, sample_weight=w), tf.float32)
        for loss, t, p, w in zip(losses, y_true_leaves, y_pred_leaves, weights)
    ]
    return tf.add_n(terms) if len(terms) > 1 else terms[0]


def _transform(spec: BranchSpec, grads: List, variables: List) -> List:
    out = spec.gradient_transform(list(grads), list(variables))
    where = (
        f"LoopController config, action {spec.action!r}, branch {spec.branch!r}, "
        "key 'gradient_transform'"
    )
    if not isinstance(out, (list, tuple)) or len(out) != len(grads):
        got = len(out) if isinstance(out, (list, tuple)) else type(out).__name__
        raise LoopControllerConfigError(
            f"{where}: fn(grads, variables) must return a list of {len(grads)} "
            f"gradients (one per variable), got {got}."
        )
    checked = []
    for i, (g, v) in enumerate(zip(out, variables)):
        if g is None:
            checked.append(None)
            continue
        if not isinstance(g, tf.IndexedSlices):
            g = tf.convert_to_tensor(g)
            if not g.shape.is_compatible_with(v.shape):
                raise LoopControllerConfigError(
                    f"{where}: gradient {i} has shape {g.shape} but variable "
                    f"{getattr(v, 'path', v.name)} has shape {tuple(v.shape)}."
                )
            g = tf.cast(g, grads[i].dtype)
        checked.append(g)
    return checked


def build_train_step(
    model: keras.Model,
    actions: Sequence[ActionSpec],
    states: Sequence[bool],
    *,
    selections: Mapping,
    resolve: Callable[[], None],
    means: Mapping[str, keras.metrics.Mean],
    own_loss_tracker: Optional[keras.metrics.Mean],
    on_trace: Callable[[], None],
) -> Callable:
    """Build ``train_step(data) -> logs`` for one tuple of control states.

    Args:
        model: the compiled model.
        actions: the validated actions, in config order.
        states: one bool per action.
        selections: ``{(action, state): [variables]}``; filled by ``resolve``.
        resolve: fills ``selections`` and builds the optimizer; called inside
            the first trace when the model was not built before ``fit``.
        means: per-action ``keras.metrics.Mean`` of the trained objective.
        own_loss_tracker: a ``Mean`` for ``"loss"`` when the model has no
            loss tracker of its own in ``model.metrics`` (else ``None``).
        on_trace: called every time the step body is traced.
    """
    active = [(a, a.branch(s)) for a, s in zip(actions, states)]
    active = [(a, b) for a, b in active if b is not None]
    state_logs = {a.name: 1.0 if s else 0.0 for a, s in zip(actions, states)}
    has_training_arg = "training" in inspect.signature(model.compute_loss).parameters
    # Keras 3.15 reduces every log of a multi-worker step with
    # strategy.reduce("MEAN", v, axis=0), which fails on scalars; logs of
    # shape [1] reduce to the right scalar.
    vector_logs = multi_worker(model.distribute_strategy)

    def compute_loss(x, y, y_pred, sample_weight, training=True):
        if has_training_arg:
            return model.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
            )
        return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)

    def loss_tracker():
        if own_loss_tracker is not None:
            return own_loss_tracker
        return next(m for m in model.metrics if m.name == "loss")

    def train_step(data):
        on_trace()
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        batch_size = _batch_size(x)
        metric_logs = None
        for index, (action, spec) in enumerate(active):
            with tf.GradientTape() as tape:
                y_pred = model(x, training=True)
                if not selections:
                    # The model was built by the call above; run the user's
                    # selectors and the optimizer build eagerly, as on_train_begin would.
                    with tf.init_scope():
                        resolve()
                reg = _regularization(model)
                keras_total = None
                if spec.loss_mode == "compiled":
                    keras_total = compute_loss(x, y, y_pred, sample_weight)
                    objective = tf.cast(keras_total, tf.float32)
                    if reg is not None and not spec.regularize:
                        objective = objective - reg
                else:
                    if spec.loss_mode == "custom":
                        objective = _custom_loss(spec, y, y_pred, sample_weight)
                    else:
                        objective = None
                    if spec.regularize and reg is not None:
                        objective = reg if objective is None else objective + reg
                scaled = None
                if objective is not None and model.optimizer is not None:
                    scaled = model.optimizer.scale_loss(objective)
            if objective is None:  # zero loss, nothing to regularise
                objective = tf.zeros((), tf.float32)
            variables = selections[(action.name, spec.branch)]
            if scaled is not None:
                grads = tape.gradient(scaled, variables)
                pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
            else:
                pairs = []
            modifies = spec.gradient_transform is not None or spec.clipping is not None
            replicas = _num_replicas()
            if pairs and modifies and replicas > 1:
                # Clip / transform the global-batch gradient, as on one device:
                # all-reduce first, and hand g / R to the optimizer, whose own
                # SUM all-reduce then restores g.
                pairs = _all_reduce_sum(pairs)
            if pairs and spec.gradient_transform is not None:
                new = _transform(spec, [g for g, _ in pairs], [v for _, v in pairs])
                pairs = [(g, v) for g, (_, v) in zip(new, pairs) if g is not None]
            if pairs and spec.clipping is not None:
                low, high = spec.clipping
                pairs = [(tf.clip_by_value(g, low, high), v) for g, v in pairs]
            if pairs and modifies and replicas > 1:
                pairs = [(_divide(g, replicas), v) for g, v in pairs]
            if pairs:
                model.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
            means[action.name].update_state(_unscale(objective), sample_weight=batch_size)
            if index == 0:
                # "loss" and the compiled metrics as plain fit reports them:
                # from the first active action's forward pass.
                if keras_total is None:
                    keras_total = compute_loss(x, y, y_pred, sample_weight)
                loss_tracker().update_state(_unscale(keras_total), sample_weight=batch_size)
                metric_logs = model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if metric_logs is None:
            # No action runs on this batch: nothing is trained, but "loss" and
            # the metrics still observe it, from an inference-mode forward pass
            # (no BatchNorm statistics or dropout), so the epoch logs average
            # over every batch as plain fit's do.
            y_pred = model(x, training=False)
            keras_total = compute_loss(x, y, y_pred, sample_weight, training=False)
            loss_tracker().update_state(_unscale(keras_total), sample_weight=batch_size)
            metric_logs = model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        logs: Dict = dict(metric_logs)
        if own_loss_tracker is not None:
            logs["loss"] = own_loss_tracker.result()
        for action in actions:
            logs[f"loss_{action.name}"] = means[action.name].result()
        for name, value in state_logs.items():
            logs[name] = tf.constant(value, tf.float32)
        if vector_logs:
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    return train_step

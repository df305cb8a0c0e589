"""What quantization did to an optimizer step: per-variable statistics and their per-layer view.

:class:`~tensorflow_kappa.optimizers.LowPrecisionOptimizer` measures, per model
variable and step, the columns below. The *update* columns come with every
step, for variables with an update or storage format, from the fused
:func:`~tensorflow_kappa.quantization.update_quantize_store` (no extra pass);
the *monitor* columns on monitored steps only (while
:class:`~tensorflow_kappa.callbacks.QuantizationMonitor` traces its step, or in
:meth:`LowPrecisionOptimizer.apply_and_record`). A column a step did not measure
for a variable (the variable has no such format, or the optimizer keeps no such
state) is NaN.

=============================  ===================================================
column                         meaning (per variable, this step)
=============================  ===================================================
``requested_sq``               ``||r||^2``, the step the optimizer computed
``applied_sq``                 ``||a||^2``, the change actually stored
``dot``                        ``<r, a>``
``update_underflow``           share of the step's nonzero entries the update
                               format rounded to 0
``storage_saturation``         share of entries pushed beyond the storage rails
``lost``                       share of the step's nonzero entries that left the
                               variable unchanged (update or storage rounding)
``update_saturation``          share of the step beyond the update format's rails
``gradient_<stat>``            the gradient against its format, before rounding
``weight_near_rail``           the stored variable near its storage rails
``momentum_<stat>``,           the new optimizer state against its format, before
``second_moment_<stat>``       rounding (the largest over states of the field)
=============================  ===================================================

(``<stat>`` is ``saturation``, ``near_rail`` and ``underflow`` for the gradient,
``saturation`` and ``underflow`` for state.) :func:`layer_statistics` turns them
into the per-layer keys ``stat/<layer>/<field>`` that the optimizer's
``statistics()`` returns and the monitor logs; the norms, cosine and progress
come from :func:`~tensorflow_kappa.quantization.geometry.update_geometry`.

Example:
>>> rows = {"requested_sq": [9.0, 16.0], "applied_sq": [9.0, 0.0], "dot": [9.0, 0.0],
...         "update_underflow": [0.0, 1.0]}
>>> rows = {k: tf.constant(v) for k, v in rows.items()}
>>> records = [VariableRecord(f"dense/{name}", "dense", field, None, None, None, None, None,
...                           size) for name, field, size in (("bias", "bias", 1),
...                                                           ("kernel", "weight", 3))]
>>> stats = layer_statistics(records, rows)
>>> [round(float(stats[k]), 3) for k in ("update_norm/dense/requested", "cosine/dense/update",
...                                      "underflow/dense/update_format")]
[5.0, 0.6, 0.75]
"""
from __future__ import annotations

from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

import tensorflow as tf

from tensorflow_kappa.core.fixed_point import FixedPoint
from tensorflow_kappa.quantization.geometry import update_geometry
from tensorflow_kappa.quantization.rail_stats import rail_stats
from tensorflow_kappa.quantization.update_store import UpdateStats
from tensorflow_kappa.quantization.variables import STATE_FIELDS, VariableRecord

__all__ = ["ALL_STATS", "GEOMETRY_STATS", "GRADIENT_STATS", "MONITOR_STATS", "STATE_STATS",
           "StepRecord", "UPDATE_STATS", "geometry_columns", "layer_statistics",
           "measured_columns", "rail_columns", "stat_rows", "update_columns"]

#: The columns every step measures for a variable with an update or storage format.
UPDATE_STATS = ("requested_sq", "applied_sq", "dot", "update_underflow", "storage_saturation")
#: The columns a monitored step adds.
MONITOR_STATS = (
    "lost", "update_saturation", "gradient_saturation", "gradient_near_rail",
    "gradient_underflow", "weight_near_rail", "momentum_saturation", "momentum_underflow",
    "second_moment_saturation", "second_moment_underflow",
)
#: Every column: :data:`UPDATE_STATS`, then :data:`MONITOR_STATS`.
ALL_STATS = UPDATE_STATS + MONITOR_STATS
#: The geometry columns (every variable has them on a recorded step).
GEOMETRY_STATS = ("requested_sq", "applied_sq", "dot")
#: The gradient's columns.
GRADIENT_STATS = ("gradient_saturation", "gradient_near_rail", "gradient_underflow")
#: The optimizer state's columns.
STATE_STATS = ("momentum_saturation", "momentum_underflow", "second_moment_saturation",
               "second_moment_underflow")


class StepRecord(NamedTuple):
    """What :meth:`LowPrecisionOptimizer.apply_and_record` measured in one step.

    Attributes:
        statistics: each column asked for, a float32 vector over the variables
            passed (NaN where not measured).
        steps: per variable, the step the wrapped optimizer asked to add to it
            (before any update or storage rounding), or None where it took none
            (or the steps were not asked for).
    """

    statistics: Dict[str, tf.Tensor]
    steps: List[Optional[tf.Tensor]]

_FRACTION_STATS = ("saturation", "near_rail", "underflow")
#: The per-layer field of a column's own prefix, where it differs (``lost`` is the
#: share of the update that did not arrive: ``underflow/<layer>/update``).
_LAYER_FIELDS = {"update": "update_format", "lost": "update"}


def _layer_key(column: str) -> Tuple[str, str]:
    """``(stat, field)`` of a fraction column in its per-layer key ``stat/<layer>/<field>``.

    >>> _layer_key("gradient_near_rail"), _layer_key("update_underflow"), _layer_key("lost")
    (('near_rail', 'gradient'), ('underflow', 'update_format'), ('underflow', 'update'))
    """
    if column == "lost":
        return "underflow", _LAYER_FIELDS[column]
    stat = next(s for s in _FRACTION_STATS if column.endswith("_" + s))
    field = column[:-len(stat) - 1]
    return stat, _LAYER_FIELDS.get(field, field)


#: Each fraction column, by the per-layer key ``(stat, field)`` it feeds.
_LAYER_KEYS = {column: _layer_key(column) for column in ALL_STATS
               if column not in GEOMETRY_STATS}


def update_columns(stats: UpdateStats) -> Dict[str, tf.Tensor]:
    """The :data:`UPDATE_STATS` columns of what the fused op reported."""
    return {
        "requested_sq": tf.square(tf.cast(stats.raw_update_norm, tf.float32)),
        "applied_sq": tf.square(tf.cast(stats.actual_update_norm, tf.float32)),
        "dot": tf.cast(stats.update_dot, tf.float32),
        "update_underflow": tf.cast(stats.update_underflow_fraction, tf.float32),
        "storage_saturation": tf.cast(stats.storage_saturation_fraction, tf.float32),
    }


def geometry_columns(requested: tf.Tensor, applied: tf.Tensor) -> Dict[str, tf.Tensor]:
    """The geometry columns of a step ``requested`` and the change ``applied``
    (summed in float64, as the fused op does)."""
    r = tf.cast(tf.reshape(requested, [-1]), tf.float64)
    a = tf.cast(tf.reshape(applied, [-1]), tf.float64)
    return {name: tf.cast(tf.reduce_sum(x), tf.float32)
            for name, x in (("requested_sq", r * r), ("applied_sq", a * a), ("dot", r * a))}


def rail_columns(prefix: str, x: tf.Tensor, fmt: FixedPoint,
                 stats: Sequence[str] = ("saturation", "near_rail", "underflow"),
                 ) -> Dict[str, tf.Tensor]:
    """``{prefix_stat: fraction}`` of :func:`rail_stats` of ``x`` against ``fmt``."""
    fractions = rail_stats(x, fmt)._asdict()
    return {f"{prefix}_{s}": tf.cast(fractions[f"{s}_fraction"], tf.float32) for s in stats}


def _weighted_mean(values: tf.Tensor, sizes: tf.Tensor) -> Optional[tf.Tensor]:
    """The element-weighted mean of the measured (non-NaN) ``values``."""
    measured = tf.logical_not(tf.math.is_nan(values))
    weights = tf.where(measured, sizes, 0.0)
    total = tf.reduce_sum(weights)
    return tf.where(total > 0, tf.reduce_sum(tf.where(measured, values, 0.0) * weights)
                    / tf.maximum(total, 1.0), float("nan"))


def stat_rows(variables: Sequence[Optional[tf.Variable]],
              names: Sequence[str]) -> Dict[str, tf.Tensor]:
    """The columns ``names`` of per-variable statistics vectors (NaN for a variable
    that keeps none): ``{column: vector over the variables}``."""
    nan = tf.fill([len(names)], float("nan"))
    table = tf.stack([nan if v is None else tf.convert_to_tensor(v) for v in variables])
    return {name: table[:, k] for k, name in enumerate(names)}


def measured_columns(records: Sequence[VariableRecord],
                     state_fields: Set[Tuple[int, str]]) -> Dict[str, List[bool]]:
    """Which variables each column applies to: by their formats, and for state
    columns by ``state_fields``, the ``(variable index, field)`` pairs of the
    optimizer's state that has a format."""
    applies = {
        "update_underflow": lambda i, r: r.update is not None,
        "storage_saturation": lambda i, r: r.storage is not None,
        "update_saturation": lambda i, r: r.update is not None,
        "weight_near_rail": lambda i, r: r.storage is not None,
    }
    for stat in ("saturation", "near_rail", "underflow"):
        applies[f"gradient_{stat}"] = lambda i, r: r.gradient is not None
    for field in STATE_FIELDS:
        for stat in ("saturation", "underflow"):
            applies[f"{field}_{stat}"] = lambda i, r, f=field: (i, f) in state_fields
    default = lambda i, r: r.quantized_store  # noqa: E731 (the geometry columns, lost)
    return {name: [applies.get(name, default)(i, r) for i, r in enumerate(records)]
            for name in ALL_STATS}


def layer_statistics(records: Sequence[VariableRecord], rows: Mapping[str, tf.Tensor],
                     measured: Optional[Mapping[str, Sequence[bool]]] = None,
                     ) -> Dict[str, tf.Tensor]:
    """Per-layer statistics from per-variable columns.

    Args:
        records: the variables' records (their layers group them; fractions
            are means over a layer's variables weighted by their sizes).
        rows: ``{column: float32 vector over the variables}``; columns may be
            missing.
        measured: ``{column: [bool per variable]}``: which variables a column
            applies to at all (default: all; see :func:`measured_columns`);
            NaN entries count as not measured this step either.

    Returns:
        For each layer with geometry columns: ``update_norm/<layer>/requested``
        and ``.../applied``, ``cosine/<layer>/update`` and
        ``progress/<layer>/update``
        (:func:`~tensorflow_kappa.quantization.geometry.update_geometry` of the
        layer's sums); for each fraction column with a measured variable in the
        layer, its ``stat/<layer>/<field>`` mean (the module docstring's table).
        Sorted by key.
    """
    layers: Dict[str, List[int]] = {}
    for i, record in enumerate(records):
        layers.setdefault(record.layer, []).append(i)
    out: Dict[str, tf.Tensor] = {}
    size_vector = tf.constant([float(r.size) for r in records], tf.float32)
    for layer, indices in layers.items():
        def pick(column: str):
            chosen = [i for i in indices if measured is None or measured[column][i]]
            if column not in rows or not chosen:
                return None
            return tf.gather(rows[column], chosen), tf.gather(size_vector, chosen)

        sums = [pick(c) for c in ("requested_sq", "applied_sq", "dot")]
        if all(s is not None for s in sums):
            g = update_geometry(*(tf.reduce_sum(values) for values, _ in sums))
            out[f"update_norm/{layer}/requested"] = g.requested_norm
            out[f"update_norm/{layer}/applied"] = g.applied_norm
            out[f"cosine/{layer}/update"] = g.cosine
            out[f"progress/{layer}/update"] = g.progress
        for column, (stat, field) in _LAYER_KEYS.items():
            picked = pick(column)
            if picked is not None:
                out[f"{stat}/{layer}/{field}"] = _weighted_mean(*picked)
    return dict(sorted(out.items()))

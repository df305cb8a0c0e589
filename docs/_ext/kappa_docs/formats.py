"""Tables of the number formats and of the rounding and overflow modes, generated from
their one definition in the code.

What the generator reads from :mod:`tensorflow_kappa.core` (its ``__all__``):

* **format kinds**: every exported class with a ``parse`` classmethod (today
  :class:`~tensorflow_kappa.core.FixedPoint`); a format string is parsed by the
  first kind that accepts it;
* **named formats**: a mapping ``FORMATS`` (name -> format), where the package
  declares one, each entry a row of the formats table;
* **modes**: every exported tuple named ``<FIELD>_MODES`` (``ROUNDING_MODES``,
  ``OVERFLOW_MODES``): the values a format's ``<field>`` takes, one row each.

``.. kappa-formats::`` tabulates the format strings of its content and the named
formats: the kind (where they are of more than one), the format's fields other than
its modes, its grid step and range where it has them, and the float dtypes that hold
it exactly. ``.. kappa-modes::`` tabulates every mode tuple: for the rounding and
overflow modes, what the NumPy binding (:func:`tensorflow_kappa.core.quantize`, the
same arithmetic as the ops) returns for a few probe values, computed at build time;
for a mode tuple it has no probes for, the names. In a Markdown page, put either in
an ``{eval-rst}`` block: they write reStructuredText.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

#: Per mode field: the format the probes are rounded into and the probe values.
PROBES: Dict[str, Tuple[str, Tuple[float, ...]]] = {
    "rounding": ("s8.0", (-2.5, -1.5, -0.75, 0.25, 0.5, 1.5, 2.5, 2.75)),
    "overflow": ("s4.0", (-10.0, -9.0, 7.0, 8.0, 9.0, 12.0)),
}
#: Samples per stochastic cell (the share rounded up is shown to two decimals).
STOCHASTIC_SAMPLES = 20000
#: Computed properties a format row shows where the format has them.
PROPERTIES = (("lsb", "grid step"), ("min_value", "smallest"), ("max_value", "largest"))
#: The float dtypes a format may be exact in (``fits_dtype``).
DTYPES = ("float16", "bfloat16", "float32", "float64")


def _core():
    from tensorflow_kappa import core
    return core


def format_kinds() -> List[type]:
    """The classes of :mod:`tensorflow_kappa.core` with a ``parse`` classmethod."""
    core = _core()
    return [obj for obj in (getattr(core, name) for name in core.__all__)
            if inspect.isclass(obj) and isinstance(inspect.getattr_static(obj, "parse", None),
                                                   classmethod)]


def mode_tuples() -> Dict[str, Tuple[str, ...]]:
    """``{field: modes}`` for every ``<FIELD>_MODES`` tuple of :mod:`tensorflow_kappa.core`,
    in the order the format kinds declare those fields."""
    core = _core()
    found = {name[:-len("_MODES")].lower(): tuple(getattr(core, name)) for name in core.__all__
             if name.endswith("_MODES") and isinstance(getattr(core, name), tuple)}
    order = [field.name for kind in format_kinds() if dataclasses.is_dataclass(kind)
             for field in dataclasses.fields(kind)]
    return dict(sorted(found.items(),
                       key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


def parse(text: str) -> Any:
    """A format from its string form, by the first kind that accepts it."""
    errors = []
    for kind in format_kinds():
        try:
            return kind.parse(text)
        except ValueError as err:
            errors.append(str(err))
    raise ValueError(f"no format kind parses {text!r}: {'; '.join(errors)}")


def named_formats() -> Dict[str, Any]:
    """The package's named formats (``core.FORMATS``), empty where it declares none."""
    return dict(getattr(_core(), "FORMATS", {}) or {})


def _number(value: Any) -> str:
    """A number as a reader wants it: a power of two beyond 2^±6 as ``2^k``, an integral
    float without ``.0``, any other float to ten significant digits."""
    if not isinstance(value, float):
        return str(value)
    if value != 0 and math.frexp(abs(value))[0] == 0.5:
        exponent = math.frexp(abs(value))[1] - 1
        if abs(exponent) > 6:
            return f"{'-' if value < 0 else ''}2^{exponent}"
    if value.is_integer():
        return str(int(value)) if value or math.copysign(1, value) > 0 else "-0"
    return f"{value:.10g}"


def format_rows(formats: Sequence[Tuple[str, Any]]) -> Tuple[List[str], List[List[str]]]:
    """The header and rows of the formats table."""
    modes = set(mode_tuples())
    fields: List[str] = []
    for _, fmt in formats:
        for field in dataclasses.fields(fmt) if dataclasses.is_dataclass(fmt) else ():
            if field.name not in modes and field.name not in fields:
                fields.append(field.name)
    kinds = len({type(fmt) for _, fmt in formats}) > 1   # a kind column where they differ
    header = ["format", *(["kind"] if kinds else []), *fields,
              *(title for _, title in PROPERTIES), "exact in"]
    rows = []
    for text, fmt in formats:
        row = [f"``{text}``"]
        if kinds:
            row.append(f":class:`~{type(fmt).__module__}.{type(fmt).__qualname__}`")
        row += [_number(getattr(fmt, field)) if hasattr(fmt, field) else "—" for field in fields]
        row += [_number(getattr(fmt, prop)) if hasattr(fmt, prop) else "—"
                for prop, _ in PROPERTIES]
        exact = [d for d in DTYPES if hasattr(fmt, "fits_dtype") and fmt.fits_dtype(d)]
        row.append(", ".join(exact) or "—")
        rows.append(row)
    return header, rows


def probe_cell(fmt: Any, value: float) -> str:
    """What quantizing ``value`` into ``fmt`` gives: the value, or for a stochastic
    format its two neighbours and the share rounded up."""
    core = _core()
    x = np.full(STOCHASTIC_SAMPLES, value, dtype=np.float32)
    q = core.quantize(x, fmt, seed=(1, 2))
    values = np.unique(q)
    if len(values) == 1:
        return _number(float(values[0]))
    low, high = (float(v) for v in values)
    return f"{_number(low)} or {_number(high)} ({np.mean(q == high):.2f} up)"


def mode_rows(field: str, modes: Sequence[str]) -> Tuple[List[str], List[List[str]]]:
    """The header and rows of one mode tuple's table."""
    if field not in PROBES:
        return [field], [[f"``{mode}``"] for mode in modes]
    base_text, values = PROBES[field]
    base = parse(base_text)
    header = [field] + [f"x = {_number(v)}" for v in values]
    rows = []
    for mode in modes:
        fmt = dataclasses.replace(base, **{field: mode})
        rows.append([f"``{mode}``"] + [probe_cell(fmt, v) for v in values])
    return header, rows


def list_table(header: List[str], rows: List[List[str]], caption: str = "",
               name: str = "") -> List[str]:
    """reStructuredText of a list-table (``name``: its HTML id)."""
    lines = [f".. list-table:: {caption}".rstrip(), "   :header-rows: 1", "   :widths: auto"]
    lines += [f"   :name: {name}", ""] if name else [""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return lines + [""]


class KappaFormats(SphinxDirective):
    """``.. kappa-formats::`` with format strings as content, one per line."""

    has_content = True

    def run(self) -> List[nodes.Node]:
        formats = [(line.strip(), parse(line.strip())) for line in self.content if line.strip()]
        formats += list(named_formats().items())
        header, rows = format_rows(formats)
        return _parse(self, list_table(header, rows, name="formats-table"))


class KappaModes(SphinxDirective):
    """``.. kappa-modes::``: one table per mode tuple, computed by the NumPy binding."""

    has_content = False

    def run(self) -> List[nodes.Node]:
        lines: List[str] = []
        for field, modes in mode_tuples().items():
            caption = f"``{field}``"
            if field in PROBES:
                caption += f": x quantized into ``{PROBES[field][0]}:<mode>``"
            lines += list_table(*mode_rows(field, modes), caption=caption,
                                name=f"modes-{field}")
        return _parse(self, lines)


def _parse(directive: SphinxDirective, lines: List[str]) -> List[nodes.Node]:
    node = nodes.container()
    directive.state.nested_parse(StringList(lines, source=directive.name),
                                 directive.content_offset, node)
    return node.children


def setup(app: Sphinx) -> dict:
    app.add_directive("kappa-formats", KappaFormats)
    app.add_directive("kappa-modes", KappaModes)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""A small symbolic algebra for reading formulas out of trained arithmetic layers.

Expressions are sums with rational coefficients, products with integer powers, ``abs``
and named variables. Constructors normalise as they build (nested sums and products are
flattened, like terms and like factors are merged, zero terms and powers dropped), so
composing the formulas of stacked layers gives readable results such as
``(x1 - x2) * (x3 - x4) + x5 * x6``. Rendering puts parentheses only where Python's
operator precedence needs them, so every rendered formula is also a valid Python
expression over its variable names.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Callable, Iterable, Sequence, Union

import numpy as np

from tensorflow_kappa import _checks

_SUM, _PRODUCT, _POWER, _ATOM = 1, 2, 3, 4


class Expr:
    """Base class of symbolic expressions; equality and hashing are structural."""

    __slots__ = ("_key",)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return _render(self)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class Var(Expr):
    """A named input; ``index`` is its position, which orders terms and factors."""

    __slots__ = ("name", "index")

    def __init__(self, name: str, index: int = 0):
        self.name = name
        self.index = index
        self._key = ("var", name)


class Sum(Expr):
    """``Σ c_k term_k + const`` with rational coefficients; also represents constants."""

    __slots__ = ("terms", "const")

    def __init__(self, terms: tuple, const: Fraction):
        self.terms = terms  # ((Expr, Fraction), ...) in first-appearance order
        self.const = const
        self._key = ("sum", frozenset((e._key, c) for e, c in terms), const)


class Product(Expr):
    """``∏ base_k ** power_k`` with nonzero integer powers and coefficient 1."""

    __slots__ = ("factors",)

    def __init__(self, factors: tuple):
        self.factors = factors  # ((Expr, int), ...) in first-appearance order
        self._key = ("prod", frozenset((e._key, p) for e, p in factors))


class Abs(Expr):
    """``abs(arg)``."""

    __slots__ = ("arg",)

    def __init__(self, arg: Expr):
        self.arg = arg
        self._key = ("abs", arg._key)


class Undetermined:
    """Stands for an output whose formula cannot be read yet, with the reasons why."""

    def __init__(self, reasons: Iterable[str]):
        self.reasons = tuple(dict.fromkeys(reasons))  # ordered, without repeats

    def __repr__(self) -> str:
        return f"Undetermined({list(self.reasons)!r})"


Node = Union[Expr, Undetermined]


def constant(value) -> Expr:
    """A constant expression."""
    return Sum((), Fraction(value))


def _is_constant(e: Expr) -> bool:
    return isinstance(e, Sum) and not e.terms


def _variables(e: Expr) -> set:
    if isinstance(e, Var):
        return {e.index}
    if isinstance(e, Abs):
        return _variables(e.arg)
    parts = e.terms if isinstance(e, Sum) else e.factors
    return set().union(*(_variables(sub) for sub, _ in parts)) if parts else set()


def _order(e: Expr) -> tuple:
    """Canonical order of terms and factors: by the input positions they use, then text.

    It makes a read-out independent of the (arbitrary) order of hidden units, e.g.
    ``(x1 - x2) * (x3 - x4) + x5 * x6`` whichever hidden unit computes which part.
    """
    return tuple(sorted(_variables(e))), str(e)


def _accumulate(acc: dict, e: Expr, amount) -> None:
    """Add ``amount`` (a coefficient or a power) to ``e``'s entry ``[e, total]`` of ``acc``,
    keyed by its canonical form; zero adds nothing."""
    if amount == 0:
        return
    if e._key in acc:
        acc[e._key][1] += amount
    else:
        acc[e._key] = [e, amount]


def _collected(acc: dict) -> tuple:
    """The ``(expr, total)`` entries of ``acc`` whose total is not zero, in canonical order."""
    return tuple(sorted(((e, t) for e, t in acc.values() if t != 0),
                        key=lambda et: _order(et[0])))


def linear(pairs: Iterable[tuple], const=0) -> Expr:
    """``Σ coeff * expr + const`` from ``(coeff, expr)`` pairs, normalised."""
    acc: dict = {}
    total_const = Fraction(const)
    for coeff, e in pairs:
        coeff = Fraction(coeff)
        if isinstance(e, Sum):
            for term, c in e.terms:
                _accumulate(acc, term, coeff * c)
            total_const += coeff * e.const
        else:
            _accumulate(acc, e, coeff)
    terms = _collected(acc)
    if len(terms) == 1 and total_const == 0 and terms[0][1] == 1:
        return terms[0][0]
    return Sum(terms, total_const)


def product(pairs: Iterable[tuple]) -> Expr:
    """``∏ expr ** power`` from ``(expr, power)`` pairs, normalised (constants pulled out)."""
    acc: dict = {}
    coeff = Fraction(1)
    for e, power in pairs:
        power = int(power)
        if power == 0:
            continue
        if isinstance(e, Product):
            for base, p in e.factors:
                _accumulate(acc, base, p * power)
        elif _is_constant(e) and (e.const != 0 or power > 0):
            coeff *= e.const**power
        elif isinstance(e, Sum) and len(e.terms) == 1 and e.const == 0:
            term, c = e.terms[0]
            coeff *= c**power
            if isinstance(term, Product):
                for base, p in term.factors:
                    _accumulate(acc, base, p * power)
            else:
                _accumulate(acc, term, power)
        elif isinstance(e, Sum) and e.terms[0][1] < 0:
            # Canonical sign: (x2 - x1) is -(x1 - x2), so equal products read the same.
            coeff *= (-1) ** power
            _accumulate(acc, linear([(-1, e)]), power)
        else:
            _accumulate(acc, e, power)
    factors = _collected(acc)
    if not factors:
        return constant(coeff)
    body = factors[0][0] if len(factors) == 1 and factors[0][1] == 1 else Product(factors)
    return body if coeff == 1 else linear([(coeff, body)])


def absolute(e: Expr) -> Expr:
    """``abs(e)``, simplified for constants, nested ``abs`` and scaled terms."""
    if _is_constant(e):
        return constant(abs(e.const))
    if isinstance(e, Abs):
        return e
    if isinstance(e, Sum) and len(e.terms) == 1 and e.const == 0:
        term, c = e.terms[0]
        return linear([(abs(c), absolute(term))])
    return Abs(e)


# ---------------------------------------------------------------- rendering


def _render_fraction(c: Fraction) -> tuple:
    if c.denominator == 1:
        return str(c.numerator), (_SUM if c < 0 else _ATOM)
    return f"{c.numerator} / {c.denominator}", (_SUM if c < 0 else _PRODUCT)


def _wrap(text: str, prec: int, needed: int) -> str:
    return f"({text})" if prec < needed else text


def _render_power(base: Expr, power: int) -> tuple:
    text, prec = _render(base)
    if power == 1:
        return text, prec
    return f"{_wrap(text, prec, _ATOM)} ** {power}", _POWER


def _render(e: Expr) -> tuple:
    """Return ``(text, precedence)`` of an expression."""
    if isinstance(e, Var):
        return e.name, _ATOM
    if isinstance(e, Abs):
        return f"abs({_render(e.arg)[0]})", _ATOM
    if isinstance(e, Product):
        numerator = [_render_power(b, p) for b, p in e.factors if p > 0]
        denominator = [_render_power(b, -p) for b, p in e.factors if p < 0]
        text = " * ".join(_wrap(t, prec, _PRODUCT) for t, prec in numerator) or "1"
        if len(denominator) == 1:
            t, prec = denominator[0]
            text += " / " + _wrap(t, prec, _POWER)
        elif denominator:
            inner = " * ".join(_wrap(t, prec, _PRODUCT) for t, prec in denominator)
            text += f" / ({inner})"
        return text, _PRODUCT
    if isinstance(e, Sum):
        if not e.terms:
            return _render_fraction(e.const)
        pieces = []
        terms = list(e.terms)
        if terms[0][1] < 0:  # lead with a positive term where there is one: x2 - x1
            first_positive = next((k for k, (_, c) in enumerate(terms) if c > 0), 0)
            terms.insert(0, terms.pop(first_positive))
        for i, (term, c) in enumerate(terms):
            t, prec = _render(term)
            t = _wrap(t, prec, _PRODUCT)
            magnitude = abs(c)
            if magnitude != 1:
                m_text, _ = _render_fraction(magnitude)
                t = f"{m_text} * {t}"
            if i == 0:
                pieces.append(f"-{t}" if c < 0 else t)
            else:
                pieces.append(f" - {t}" if c < 0 else f" + {t}")
        if e.const != 0:
            m_text, _ = _render_fraction(abs(e.const))
            pieces.append(f" - {m_text}" if e.const < 0 else f" + {m_text}")
        return "".join(pieces), _SUM
    raise TypeError(f"not an expression: {e!r}")


# ---------------------------------------------------------------- read-out


class Formula(str):
    """One output unit's read-out: the formula text, or ``"not discrete: ..."``.

    It is a ``str`` (compare it with ``"x1 + x2"`` directly) with three attributes:
    ``discrete`` (bool), ``expression`` (the symbolic :class:`Expr`, or ``None``) and
    ``reasons`` (the weights that are not discrete yet; empty when ``discrete``).
    """

    discrete: bool
    expression: Expr | None
    reasons: tuple

    def __new__(cls, node: Node) -> "Formula":
        if isinstance(node, Undetermined):
            obj = super().__new__(cls, "not discrete: " + "; ".join(node.reasons))
            obj.discrete, obj.expression, obj.reasons = False, None, node.reasons
        else:
            obj = super().__new__(cls, str(node))
            obj.discrete, obj.expression, obj.reasons = True, node, ()
        return obj


def check_tolerance(tolerance: float) -> float:
    """Validate the read-out tolerance (``0 ≤ tolerance < 0.5``)."""
    return _checks.number("tolerance", tolerance, minimum=0.0, maximum=0.5,
                          strict_maximum=True)


def input_variables(input_names: Sequence[str] | None, count: int) -> list:
    """``x1 … xN`` by default, or the given names (which must number ``count``)."""
    if input_names is None:
        return [Var(f"x{i + 1}", i) for i in range(count)]
    if isinstance(input_names, str) or not isinstance(input_names, (list, tuple)):
        raise ValueError(f"input_names must be a list or tuple of {count} strings, got "
                         f"{input_names!r}")
    names = list(input_names)
    if len(names) != count:
        raise ValueError(f"input_names has {len(names)} names but the layer takes {count} inputs")
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"input_names must be plain identifiers (letters, digits and "
                             f"'_', not starting with a digit), got {name!r}: a formula "
                             "built from other names would read ambiguously")
    if len(set(names)) != len(names):
        raise ValueError(f"input_names must be distinct, got {names!r}")
    return [Var(name, i) for i, name in enumerate(names)]


def snap_column(values: np.ndarray, allowed: Sequence[int], tolerance: float,
                label: Callable[[int, float], str]) -> tuple:
    """Round each value to the nearest allowed integer when within ``tolerance``.

    Returns ``(integers, problems)``; ``integers`` is ``None`` if any value is too far
    from every allowed value, and ``problems`` then names those values via ``label``.
    """
    allowed_arr = np.asarray(allowed, dtype=np.float64)
    ints, problems = [], []
    for i, v in enumerate(np.asarray(values, dtype=np.float64)):
        nearest = allowed_arr[np.argmin(np.abs(allowed_arr - v))]
        if abs(v - nearest) <= tolerance:
            ints.append(int(nearest))
        else:
            problems.append(label(i, float(v)))
    return (None if problems else ints), problems


def undetermined_inputs(ints: Sequence[int], inputs: Sequence[Node]) -> list:
    """Reasons carried by the undetermined inputs that ``ints`` actually uses."""
    reasons: list = []
    for k, node in zip(ints, inputs):
        if k != 0 and isinstance(node, Undetermined):
            reasons.extend(node.reasons)
    return reasons


def weighted_sum(coeffs: Sequence[int], inputs: Sequence[Node]) -> Node:
    """``Σ coeff_i input_i``, or the undetermined inputs it depends on."""
    reasons = undetermined_inputs(coeffs, inputs)
    if reasons:
        return Undetermined(reasons)
    return linear((c, e) for c, e in zip(coeffs, inputs) if c != 0)


def power_product(powers: Sequence[int], inputs: Sequence[Node]) -> Node:
    """``∏ input_i ** power_i``, or the undetermined inputs it depends on."""
    reasons = undetermined_inputs(powers, inputs)
    if reasons:
        return Undetermined(reasons)
    return product((e, p) for p, e in zip(powers, inputs) if p != 0)

"""A small, safe parser for arithmetic expressions over named inputs.

``parse_expression("(x1 - x2) * (x3 - x4) + x5 * x6")`` turns the text into an
:class:`Expression` (a tree of :class:`Number`, :class:`Variable`,
:class:`Negate` and :class:`BinaryOp` nodes) that is evaluated with NumPy.
Nothing is ever handed to ``eval``: the grammar is the whole language::

    expression := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := ("+" | "-") unary | primary
    primary    := NUMBER | VARIABLE | "(" expression ")"

``NUMBER`` is a decimal literal (``2``, ``0.5``, ``.5``, ``1e-3``);
``VARIABLE`` is ``x1``, ``x2``, ... (1-based, as in the report).  ``*`` and
``/`` bind tighter than ``+`` and ``-``; all four are left-associative.
Whitespace is ignored.  What a user can ask for is bounded: at most
:data:`MAX_LENGTH` characters, variables up to ``x``:data:`MAX_INPUTS`, and
at most :data:`MAX_DEPTH` levels of nesting (each parenthesis, sign and
chained operator is one level, so a sum has at most ``MAX_DEPTH`` terms);
number literals must be finite in float64.  Anything else raises
:class:`ExpressionError`, whose message repeats the expression with a caret
under the offending position::

    >>> parse_expression("x1 + * x2")
    Traceback (most recent call last):
    ...
    tensorflow_kappa.datasets.expression.ExpressionError: expected a number, a variable or '(' but found '*' at position 5 of the expression
      x1 + * x2
           ^
"""
from __future__ import annotations

import re
from typing import Callable, Iterator, Optional, Tuple

import numpy as np

from tensorflow_kappa import _checks

__all__ = [
    "MAX_DEPTH",
    "MAX_INPUTS",
    "MAX_LENGTH",
    "BinaryOp",
    "Expression",
    "ExpressionError",
    "Negate",
    "Number",
    "Variable",
    "parse_expression",
]


#: The longest expression text accepted, in characters.
MAX_LENGTH = 10_000
#: The highest variable index accepted (``x10000``), and the most inputs.
MAX_INPUTS = 10_000
#: The deepest nesting accepted: parentheses, signs and chained operators
#: (``x1 + x2 + x3`` nests two deep) each add a level.
MAX_DEPTH = 100
_SHOWN = 60  # characters of a long expression shown either side of an error


class ExpressionError(ValueError):
    """A malformed expression; ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, text: str, position: int):
        self.reason = message
        self.text = text
        self.position = position
        start = max(0, position - _SHOWN)
        shown = text[start:position + _SHOWN]
        prefix, suffix = ("…" if start else ""), ("…" if position + _SHOWN < len(text) else "")
        caret = " " * (len(prefix) + position - start)
        super().__init__(f"{message} at position {position} of the expression\n"
                         f"  {prefix}{shown}{suffix}\n"
                         f"  {caret}^")


# ---------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------
class Node:
    """Base class of the syntax tree; ``evaluate(columns)`` works on NumPy arrays."""

    precedence = 3
    depth = 1  # levels of nesting of the subtree (bounded by MAX_DEPTH)

    def evaluate(self, columns: Callable[[int], np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def variables(self) -> set:
        raise NotImplementedError


class Number(Node):
    """A numeric literal."""

    def __init__(self, value: float):
        self.value = float(value)

    def evaluate(self, columns):
        return np.float64(self.value)

    def variables(self):
        return set()

    def __str__(self):
        return repr(self.value) if not self.value.is_integer() else str(int(self.value))


class Variable(Node):
    """Input ``x<index + 1>`` (``index`` is 0-based); ``occurrence`` numbers the
    variable occurrences of an expression from left to right (0-based)."""

    def __init__(self, index: int, occurrence: int = 0):
        self.index = int(index)
        self.occurrence = int(occurrence)

    def evaluate(self, columns):
        return columns(self.index, self.occurrence)

    def variables(self):
        return {self.index}

    def __str__(self):
        return f"x{self.index + 1}"


class Negate(Node):
    """Unary minus."""

    precedence = 2

    def __init__(self, operand: Node):
        self.operand = operand
        self.depth = operand.depth + 1

    def evaluate(self, columns):
        return -self.operand.evaluate(columns)

    def variables(self):
        return self.operand.variables()

    def __str__(self):
        inner = str(self.operand)
        if self.operand.precedence < self.precedence:
            inner = f"({inner})"
        return f"-{inner}"


_BINARY = {
    "+": (0, np.add),
    "-": (0, np.subtract),
    "*": (1, np.multiply),
    "/": (1, np.divide),
}


class BinaryOp(Node):
    """``left <op> right`` for ``op`` in ``+ - * /``."""

    def __init__(self, op: str, left: Node, right: Node):
        if op not in _BINARY:
            raise ValueError(f"unknown operator {op!r}")
        self.op = op
        self.left = left
        self.right = right
        self.precedence = _BINARY[op][0]
        self.depth = max(left.depth, right.depth) + 1

    def evaluate(self, columns):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return _BINARY[self.op][1](self.left.evaluate(columns), self.right.evaluate(columns))

    def variables(self):
        return self.left.variables() | self.right.variables()

    def __str__(self):
        left, right = str(self.left), str(self.right)
        if self.left.precedence < self.precedence:
            left = f"({left})"
        # Left-associative: a right operand of equal precedence needs parentheses
        # for "-" and "/" (a - (b - c)) and keeps them for clarity otherwise.
        if self.right.precedence <= self.precedence and isinstance(self.right, BinaryOp):
            right = f"({right})"
        elif self.right.precedence < self.precedence:
            right = f"({right})"
        return f"{left} {self.op} {right}"


class Expression:
    """A parsed expression: the tree, its source text and the variables it uses.

    Attributes:
        text: the source text as given.
        root: the syntax tree.
        num_inputs: how many inputs ``x1 … xN`` the expression is evaluated on.
        variables: sorted 0-based indices of the variables that occur.
        num_leaves: the number of variable occurrences (``x1 * x1``: 2).
        input_names: ``("x1", …, "xN")``.

    Example:

    >>> e = parse_expression("(x1 - x2) * x3", num_inputs=4)
    >>> e.evaluate(np.array([[5.0, 2.0, 10.0, 7.0]]))
    array([30.])
    >>> str(e), e.variables
    ('(x1 - x2) * x3', (0, 1, 2))
    """

    def __init__(self, text: str, root: Node, num_inputs: int):
        self.text = text
        self.root = root
        self.num_inputs = int(num_inputs)
        self.variables = tuple(sorted(root.variables()))
        self.num_leaves = _count_leaves(root)
        self.input_names = tuple(f"x{i + 1}" for i in range(self.num_inputs))

    def evaluate(self, x, leaf: Optional[Callable[[np.ndarray, int, int], np.ndarray]] = None
                 ) -> np.ndarray:
        """Evaluate on inputs ``x`` of shape ``(n, num_inputs)`` in float64.

        Args:
            x: array-like, shape ``(n, num_inputs)``.
            leaf: optional ``fn(x, index, occurrence) -> column`` giving the
                value of each variable occurrence (default ``x[:, index]``;
                ``occurrence`` counts occurrences left to right, ``0 …
                num_leaves - 1``); the success criterion uses it to perturb
                the exact solution.

        Returns:
            float64 array of shape ``(n,)``.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.num_inputs:
            raise ValueError(f"expected inputs of shape (n, {self.num_inputs}), got {x.shape}")
        if leaf is None:
            def columns(i, k):
                return x[:, i]
        else:
            def columns(i, k):
                return leaf(x, i, k)
        out = self.root.evaluate(columns)
        return np.broadcast_to(np.asarray(out, dtype=np.float64), (x.shape[0],)).copy()

    def __call__(self, x) -> np.ndarray:
        return self.evaluate(x)

    def with_inputs(self, num_inputs: int) -> "Expression":
        """The same tree over ``num_inputs`` inputs (inputs it does not use are distractors).

        Raises:
            ValueError: ``num_inputs`` is not a positive integer, or the expression
                uses a variable beyond it.
        """
        num_inputs = _checks.integer("num_inputs", num_inputs, minimum=1, maximum=MAX_INPUTS)
        if self.variables and self.variables[-1] >= num_inputs:
            raise ValueError(f"expression {str(self)!r} uses x{self.variables[-1] + 1}, "
                             f"beyond num_inputs={num_inputs}")
        return Expression(self.text, self.root, num_inputs)

    def __str__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"Expression({str(self)!r}, num_inputs={self.num_inputs})"


def _count_leaves(node: Node) -> int:
    if isinstance(node, Variable):
        return 1
    if isinstance(node, Negate):
        return _count_leaves(node.operand)
    if isinstance(node, BinaryOp):
        return _count_leaves(node.left) + _count_leaves(node.right)
    return 0


# ---------------------------------------------------------------------------
# Tokenizer and recursive-descent parser
# ---------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>[-+*/()]))"
)
_VARIABLE = re.compile(r"x([1-9][0-9]*)")


def _shown(token: str) -> str:
    """A token as an error message quotes it (a long one cut short)."""
    return token if len(token) <= 20 else token[:20] + "…"


def _tokens(text: str) -> Iterator[Tuple[str, str, int]]:
    """Yield ``(kind, text, position)`` tokens lazily (errors surface in reading order)."""
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ExpressionError(f"unexpected character {text[pos]!r}", text, pos)
        kind = match.lastgroup
        yield kind, match.group(kind), match.start(kind)
        pos = match.end()
    yield "end", "", len(text)


class _Parser:
    def __init__(self, text: str, num_inputs: Optional[int]):
        self.text = text
        self.num_inputs = num_inputs
        self.tokens = _tokens(text)
        self.current = None
        self.leaves = 0
        self.nesting = 0  # open parentheses and signs around the current token

    def peek(self):
        if self.current is None:
            self.current = next(self.tokens)
        return self.current

    def take(self):
        token = self.peek()
        if token[0] != "end":
            self.current = None
        return token

    def error(self, message: str, position: int):
        raise ExpressionError(message, self.text, position)

    def nest(self, position: int) -> None:
        """Enter a parenthesis or a sign at ``position`` (leave with ``self.nesting -= 1``)."""
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            self.error(f"the expression nests deeper than {MAX_DEPTH} levels", position)

    def combine(self, op: str, left: Node, right: Node, position: int) -> Node:
        node = BinaryOp(op, left, right)
        if node.depth + self.nesting > MAX_DEPTH:
            self.error(f"the expression nests deeper than {MAX_DEPTH} levels (each "
                       f"parenthesis, sign and chained operator is a level: a sum or "
                       f"product takes at most {MAX_DEPTH} terms)", position)
        return node

    def describe(self, token) -> str:
        return "the end of the expression" if token[0] == "end" else repr(token[1])

    def parse(self) -> Node:
        if self.peek()[0] == "end":
            self.error("empty expression", 0)
        node = self.expression()
        token = self.peek()
        if token[0] != "end":
            if token[1] == ")":
                self.error("unmatched ')'", token[2])
            self.error(f"expected an operator but found {self.describe(token)}", token[2])
        return node

    def chain(self, operators: str, operand) -> Node:
        """``operand (op operand)*`` for ``op`` in ``operators``, grouped from the left."""
        node = operand()
        while self.peek()[0] == "op" and self.peek()[1] in operators:
            _, op, pos = self.take()
            node = self.combine(op, node, operand(), pos)
        return node

    def expression(self) -> Node:
        return self.chain("+-", self.term)

    def term(self) -> Node:
        return self.chain("*/", self.unary)

    def unary(self) -> Node:
        token = self.peek()
        if token[0] == "op" and token[1] in "+-":
            self.take()
            self.nest(token[2])
            operand = self.unary()
            self.nesting -= 1
            return Negate(operand) if token[1] == "-" else operand
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        kind, value, pos = token
        if kind == "number":
            number = float(value)
            if not np.isfinite(number):
                self.error(f"number {_shown(value)!r} is too large for float64", pos)
            return Number(number)
        if kind == "name":
            match = _VARIABLE.fullmatch(value)
            if match is None:
                self.error(f"unknown name {_shown(value)!r} (variables are x1, x2, ...)", pos)
            digits = match.group(1)
            if len(digits) > len(str(MAX_INPUTS)) or int(digits) > MAX_INPUTS:
                self.error(f"variable {_shown(value)!r} is out of range: at most {MAX_INPUTS} "
                           f"inputs (x1 … x{MAX_INPUTS})", pos)
            index = int(digits) - 1
            if self.num_inputs is not None and index >= self.num_inputs:
                self.error(f"variable {value!r} is out of range: num_inputs={self.num_inputs} "
                           f"(x1 … x{self.num_inputs})", pos)
            self.leaves += 1
            return Variable(index, self.leaves - 1)
        if kind == "op" and value == "(":
            self.nest(pos)
            node = self.expression()
            self.nesting -= 1
            closing = self.peek()
            if closing[0] != "op" or closing[1] != ")":
                self.error(f"expected ')' to close the '(' at position {pos} but found "
                           f"{self.describe(closing)}", closing[2])
            self.take()
            return node
        self.error(f"expected a number, a variable or '(' but found {self.describe(token)}", pos)


def parse_expression(text: str, num_inputs: Optional[int] = None) -> Expression:
    """Parse ``text`` into an :class:`Expression` over ``x1 … x<num_inputs>``.

    Args:
        text: e.g. ``"(x1 - x2) * (x3 - x4) + x5 * x6"``.
        num_inputs: the number of inputs; variables beyond it are an error.
            ``None``: the highest variable used.

    Raises:
        ExpressionError: (a ``ValueError``) for anything outside the grammar
            in the module docstring or beyond its bounds (:data:`MAX_LENGTH`,
            :data:`MAX_INPUTS`, :data:`MAX_DEPTH`), with the position of the
            problem.
        ValueError: ``num_inputs`` is not an integer in ``[1, MAX_INPUTS]``.
    """
    if not isinstance(text, str):
        raise TypeError(f"expression must be a str, got {type(text).__name__}")
    if num_inputs is not None:
        num_inputs = _checks.integer("num_inputs", num_inputs, minimum=1, maximum=MAX_INPUTS)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is {len(text)} characters long; at most "
                              f"{MAX_LENGTH} are accepted", text, MAX_LENGTH)
    root = _Parser(text, num_inputs).parse()
    used = root.variables()
    if num_inputs is None:
        num_inputs = max(used) + 1 if used else 1
    return Expression(text, root, int(num_inputs))


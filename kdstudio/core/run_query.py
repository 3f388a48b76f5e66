"""Filter expressions over runs, parsed by a small recursive-descent parser (never `eval`).

    kd_gain > 1 and distill.temperature >= 4
    (method == "kd" or method == "dkd") and not seed == 0

Grammar: `or` of `and` of `not` of a comparison or a parenthesised expression; a comparison
is `operand OP operand` with OP one of < <= > >= == !=; an operand is a name (a run column
or a config key path with dots), a number, a quoted text ("..." or '...') or true/false.
Keywords are case-insensitive. A comparison with a value the run does not have is false
(`!=` too). Text compares with == and != only; a list or table compares as its JSON text.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt,
}
KEYWORDS = ("and", "or", "not", "true", "false")
MISSING = object()  # what a getter returns for a key a run does not have

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<paren>[()])
  | (?P<string>"[^"]*"|'[^']*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<minus>-)
""", re.VERBOSE)


class QueryError(ValueError):
    """A filter that does not parse; `token` is the offending text, `position` its column
    (1-based)."""

    def __init__(self, message: str, token: str, position: int) -> None:
        super().__init__(message)
        self.token, self.position = token, position


@dataclass(frozen=True)
class Token:
    kind: str  # number, op, paren, string, name, keyword, end
    text: str
    position: int  # 1-based column


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            bad = text[at]
            if bad in "\"'":
                raise QueryError(f"unclosed quote {bad} at column {at + 1}", bad, at + 1)
            if bad == "=":
                raise QueryError(f"'=' at column {at + 1}: use == to compare", bad, at + 1)
            raise QueryError(f"unexpected character '{bad}' at column {at + 1}", bad, at + 1)
        kind, value = match.lastgroup or "", match.group()
        if kind == "minus":  # a sign belongs to the number right after it
            number = _TOKEN.match(text, match.end())
            if number is None or number.lastgroup != "number":
                raise QueryError(f"unexpected '-' at column {at + 1}", "-", at + 1)
            kind, value = "number", "-" + number.group()
            match = number
        if kind == "name" and value.lower() in KEYWORDS:
            kind, value = "keyword", value.lower()
        if kind != "space":
            tokens.append(Token(kind, value, at + 1))
        at = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


# ---------------------------------------------------------------- the expression tree


@dataclass(frozen=True)
class Operand:
    """A name to look up, or a literal value."""

    name: str | None = None
    value: Any = None

    def text(self) -> str:
        return self.name if self.name is not None else json.dumps(self.value)


@dataclass(frozen=True)
class Comparison:
    left: Operand
    op: str
    right: Operand


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    part: Expr


Expr = Comparison | BoolOp | Not


def names(expr: Expr) -> list[str]:
    """The names an expression looks up, in order of appearance, once each."""
    if isinstance(expr, Comparison):
        found = [o.name for o in (expr.left, expr.right) if o.name is not None]
    elif isinstance(expr, Not):
        found = names(expr.part)
    else:
        found = [name for part in expr.parts for name in names(part)]
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------- parsing


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.at = 0

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, token: Token, expected: str) -> QueryError:
        if token.kind == "end":
            return QueryError(f"the filter ends where {expected} was expected", "", token.position)
        return QueryError(f"unexpected '{token.text}' at column {token.position}: expected "
                          f"{expected}", token.text, token.position)

    def parse(self) -> Expr:
        if self.peek().kind == "end":
            raise QueryError("the filter is empty", "", 1)
        expr = self.either()
        token = self.peek()
        if token.kind != "end":
            raise self.fail(token, "and, or or the end")
        return expr

    def either(self) -> Expr:
        parts = [self.both()]
        while self.peek().kind == "keyword" and self.peek().text == "or":
            self.take()
            parts.append(self.both())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def both(self) -> Expr:
        parts = [self.negation()]
        while self.peek().kind == "keyword" and self.peek().text == "and":
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def negation(self) -> Expr:
        token = self.peek()
        if token.kind == "keyword" and token.text == "not":
            self.take()
            return Not(self.negation())
        if token.kind == "paren" and token.text == "(":
            self.take()
            expr = self.either()
            close = self.take()
            if close.kind != "paren" or close.text != ")":
                raise self.fail(close, "')'")
            return expr
        return self.comparison()

    def comparison(self) -> Comparison:
        left = self.operand()
        token = self.take()
        if token.kind != "op":
            raise self.fail(token, "a comparison (< <= > >= == !=)")
        right = self.operand()
        for side in (left, right):
            if isinstance(side.value, str) and token.text not in ("==", "!="):
                raise QueryError(f"'{token.text}' compares numbers; {side.text()} is text "
                                 "(text compares with == or !=)", side.text(), token.position)
        return Comparison(left, token.text, right)

    def operand(self) -> Operand:
        token = self.take()
        if token.kind == "name":
            return Operand(name=token.text)
        if token.kind == "number":
            return Operand(value=float(token.text))
        if token.kind == "string":
            return Operand(value=token.text[1:-1])
        if token.kind == "keyword" and token.text in ("true", "false"):
            return Operand(value=token.text == "true")
        raise self.fail(token, "a key, a number or a quoted text")


def parse(text: str) -> Expr:
    """The expression tree of a filter; raises QueryError naming the bad token."""
    return _Parser(text).parse()


def looks_like_expression(text: str) -> bool:
    """A filter with a comparison operator (or a lone '=') is an expression; anything else
    is a list of words to find."""
    return bool(re.search(r"[<>=!]", text))


# ---------------------------------------------------------------- evaluation


def _comparable(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def compare(left: Any, op: str, right: Any) -> bool:
    """One comparison; false when a side is missing, None, NaN or of another kind."""
    if left is MISSING or right is MISSING or left is None or right is None:
        return False
    a, b = _comparable(left), _comparable(right)
    if isinstance(a, bool) or isinstance(b, bool):
        if not (isinstance(a, bool) and isinstance(b, bool)) or op not in ("==", "!="):
            return False
    elif isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return False
    elif isinstance(a, str) and isinstance(b, str):
        if op not in ("==", "!="):
            return False
    else:
        return False
    return COMPARISONS[op](a, b)


Getter = Callable[[str], Any]  # name -> value, or MISSING


def evaluate(expr: Expr, get: Getter) -> bool:
    """Does a run whose values `get` returns match the expression?"""
    if isinstance(expr, Comparison):
        left = get(expr.left.name) if expr.left.name is not None else expr.left.value
        right = get(expr.right.name) if expr.right.name is not None else expr.right.value
        return compare(left, expr.op, right)
    if isinstance(expr, Not):
        return not evaluate(expr.part, get)
    if expr.op == "and":
        return all(evaluate(part, get) for part in expr.parts)
    return any(evaluate(part, get) for part in expr.parts)


def matching(expr: Expr, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indices of the rows (flat name -> value mappings) that match."""
    return [i for i, row in enumerate(rows)
            if evaluate(expr, lambda name, row=row: row.get(name, MISSING))]


def unknown_names(expr: Expr, known: Callable[[str], bool]) -> list[str]:
    """Names of the expression that `known` rejects (typos: no run has them)."""
    return [name for name in names(expr) if not known(name)]

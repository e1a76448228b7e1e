"""The filter expression language (spec §10.1): text -> a tree of plain dataclasses.

Lark does the parsing, so a syntax error comes with the line, column and the tokens that
would have been accepted there. Keywords are matched in any case and kept upper-case in
the tree. Which datasets and fields a filter may name is checked later, against the
dataset group's schemas (``validate.py``): the parser accepts any ``Name.FIELD``.

Inside one expression ``AND`` binds tighter than ``OR`` (as in SQL); the tree keeps the
conditions in disjunctive form, a tuple of AND-groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal as TypingLiteral

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from pertinent.errors import InvalidInputException

Action = TypingLiteral["INCLUDE", "EXCLUDE"]
Operator = TypingLiteral["IN", "NOT IN", "=", "!=", "<", "<=", ">", ">="]
SET_OPERATORS = ("IN", "NOT IN")
RANGE_OPERATORS = ("<", "<=", ">", ">=")


@dataclass(frozen=True)
class Values:
    """Literal values: strings (``"*"`` stays the string ``*``) or numbers."""

    items: tuple[str | float, ...]


@dataclass(frozen=True)
class Param:
    """A ``$NAME`` placeholder, filled from the request's ``filterValues``."""

    name: str


@dataclass(frozen=True)
class FieldRef:
    """``Dataset.FIELD``; ``dataset`` as written (``Items``, ``CurrentItem``, ...)."""

    dataset: str
    field: str


Operand = Values | Param | FieldRef


@dataclass(frozen=True)
class Condition:
    left: FieldRef
    op: Operator
    right: Operand


@dataclass(frozen=True)
class Expression:
    action: Action
    target: str  # ItemID, UserID or ActionID
    where: tuple[tuple[Condition, ...], ...]  # OR of AND-groups
    when: tuple[Condition, ...] = ()  # IF CurrentUser... conditions, AND-ed

    def conditions(self) -> tuple[Condition, ...]:
        return tuple(c for group in self.where for c in group) + self.when


@dataclass(frozen=True)
class FilterExpression:
    expressions: tuple[Expression, ...]

    def __hash__(self) -> int:
        # A key of the mask caches on every filtered request: hash the tree once.
        found: int | None = self.__dict__.get("_hash")
        if found is None:
            found = hash(self.expressions)
            object.__setattr__(self, "_hash", found)
        return found

    def conditions(self) -> tuple[Condition, ...]:
        return tuple(c for e in self.expressions for c in e.conditions())

    def params(self) -> tuple[str, ...]:
        names = (c.right.name for c in self.conditions() if isinstance(c.right, Param))
        return tuple(dict.fromkeys(names))


GRAMMAR = r"""
start: expression ("|" expression)*
expression: ACTION TARGET _WHERE where if_clause?
where: and_group (_OR and_group)*
and_group: condition (_AND condition)*
if_clause: _IF condition (_AND condition)*

condition: field SET_OP set_rhs      -> set_condition
         | field CMP_OP scalar_rhs   -> cmp_condition

set_rhs: "(" value ("," value)* ")"  -> values
       | "(" param ")"
       | param
       | field
scalar_rhs: number                   -> values
          | string                   -> values
          | param
          | "(" param ")"
          | field

field: NAME "." NAME
param: "$" NAME
?value: string | number | STAR
string: ESCAPED_STRING
number: SIGNED_NUMBER

ACTION.2: /INCLUDE\b/i | /EXCLUDE\b/i
TARGET.2: /ITEMID\b/i | /USERID\b/i | /ACTIONID\b/i
_WHERE.2: /WHERE\b/i
_AND.2: /AND\b/i
_OR.2: /OR\b/i
_IF.2: /IF\b/i
SET_OP.2: /NOT\s+IN\b/i | /IN\b/i
CMP_OP: "<=" | ">=" | "!=" | "=" | "<" | ">"
STAR: "*"
NAME: /[A-Za-z_][A-Za-z0-9_]*/

%import common.ESCAPED_STRING
%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
"""

_TARGETS = {"ITEMID": "ItemID", "USERID": "UserID", "ACTIONID": "ActionID"}


class _ToTree(Transformer[Token, FilterExpression]):
    def start(self, children: list[Expression]) -> FilterExpression:
        return FilterExpression(tuple(children))

    def expression(self, children: list[object]) -> Expression:
        action, target, where, *rest = children
        when = rest[0] if rest else ()
        assert isinstance(where, tuple) and isinstance(when, tuple)
        return Expression(
            action=str(action).upper(),  # type: ignore[arg-type]
            target=_TARGETS[str(target).upper()],
            where=where,
            when=when,
        )

    def where(self, groups: list[tuple[Condition, ...]]) -> tuple[tuple[Condition, ...], ...]:
        return tuple(groups)

    def and_group(self, conditions: list[Condition]) -> tuple[Condition, ...]:
        return tuple(conditions)

    def if_clause(self, conditions: list[Condition]) -> tuple[Condition, ...]:
        return tuple(conditions)

    def set_condition(self, children: list[object]) -> Condition:
        left, op, right = children
        assert isinstance(left, FieldRef)
        return Condition(left, " ".join(str(op).upper().split()), right)  # type: ignore[arg-type]

    def cmp_condition(self, children: list[object]) -> Condition:
        left, op, right = children
        assert isinstance(left, FieldRef)
        return Condition(left, str(op), right)  # type: ignore[arg-type]

    def values(self, children: list[object]) -> Values:
        return Values(tuple(str(c) if isinstance(c, Token) else c for c in children))  # type: ignore[misc]

    def set_rhs(self, children: list[Operand]) -> Operand:
        return children[0]

    def scalar_rhs(self, children: list[Operand]) -> Operand:
        return children[0]

    def field(self, children: list[Token]) -> FieldRef:
        return FieldRef(str(children[0]), str(children[1]))

    def param(self, children: list[Token]) -> Param:
        return Param(str(children[0]))

    def string(self, children: list[Token]) -> str:
        raw = str(children[0])[1:-1]
        return raw.replace('\\"', '"').replace("\\\\", "\\")

    def number(self, children: list[Token]) -> float:
        return float(children[0])


_PARSER = Lark(GRAMMAR, parser="lalr")
_TO_TREE = _ToTree()

# Lark's terminal names, as a person would write them.
_SPELLING = {
    "ACTION": "INCLUDE or EXCLUDE",
    "TARGET": "ItemID, UserID or ActionID",
    "_WHERE": "WHERE",
    "_AND": "AND",
    "_OR": "OR",
    "_IF": "IF",
    "SET_OP": "IN or NOT IN",
    "CMP_OP": "a comparison (=, !=, <, <=, >, >=)",
    "NAME": "a name",
    "DOT": '"."',
    "DOLLAR": "a $PLACEHOLDER",
    "LPAR": '"("',
    "RPAR": '")"',
    "COMMA": '","',
    "ESCAPED_STRING": 'a "quoted string"',
    "SIGNED_NUMBER": "a number",
    "STAR": '"*"',
    "VBAR": '"|"',
    "$END": "the end of the expression",
}


def _expected(exc: UnexpectedInput) -> str:
    wanted = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ()
    names = sorted({_SPELLING.get(t, t) for t in wanted})
    return f" Expected {' or '.join(names)}." if names else ""


def parse(text: str) -> FilterExpression:
    """The tree of a filter expression; InvalidInputException says where it breaks."""
    try:
        tree = _PARSER.parse(text)
    except UnexpectedEOF as exc:
        raise InvalidInputException(
            "Could not create filter. The expression ends too early." + _expected(exc)
        ) from None
    except UnexpectedCharacters as exc:
        raise InvalidInputException(
            f"Could not create filter. Invalid input symbol {text[exc.pos_in_stream or 0]!r} at "
            f"line {exc.line}, column {exc.column}." + _expected(exc)
        ) from None
    except UnexpectedInput as exc:
        token = getattr(exc, "token", None)
        line, column = getattr(exc, "line", -1), getattr(exc, "column", -1)
        if token is None or token.type == "$END":
            problem = "The expression ends too early"
        else:
            problem = f"Invalid input symbol {str(token)!r} at line {line}, column {column}"
        raise InvalidInputException(
            f"Could not create filter. {problem}." + _expected(exc)
        ) from None
    return _TO_TREE.transform(tree)


def render(tree: FilterExpression) -> str:
    """The canonical text of a tree: keywords upper-case, one space between tokens."""

    def operand(value: Operand, scalar: bool) -> str:
        if isinstance(value, Param):
            return f"${value.name}" if scalar else f"(${value.name})"
        if isinstance(value, FieldRef):
            return f"{value.dataset}.{value.field}"
        shown = [
            _number(v) if isinstance(v, float) else ("*" if v == "*" else _quote(v))
            for v in value.items
        ]
        return shown[0] if scalar else f"({', '.join(shown)})"

    def condition(c: Condition) -> str:
        right = operand(c.right, c.op not in SET_OPERATORS)
        return f"{c.left.dataset}.{c.left.field} {c.op} {right}"

    parts = []
    for e in tree.expressions:
        where = " OR ".join(" AND ".join(condition(c) for c in group) for group in e.where)
        text = f"{e.action} {e.target} WHERE {where}"
        if e.when:
            text += " IF " + " AND ".join(condition(c) for c in e.when)
        parts.append(text)
    return " | ".join(parts)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)

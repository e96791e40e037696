"""Run search: filter and order expressions parsed into SQLAlchemy, never into SQL text.

Grammar (case-insensitive keywords)::

    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "not" factor | "(" expr ")" | compare
    compare := field OP value | field ["not"] ("like" | "ilike") string
             | field ["not"] "in" "(" value ("," value)* ")" | field "is" ["not"] "null"
    field   := metrics.KEY | params.KEY | tags.KEY | [attributes.]ATTR
    OP      := = == != <> < <= > >=

``KEY`` is a bare key (``auc``, ``val.loss``) or one quoted with backticks or
double quotes; values are numbers or single- or double-quoted strings. Every
key and value reaches the database as a bound parameter.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from kiln.core.errors import InvalidArgument
from kiln.tracking._tables import experiments, latest_metrics, run_params, run_tags, runs

__all__ = ["Compiled", "compile_search", "decode_page_token", "encode_page_token"]

_MAX_FILTER = 4000
_MAX_JOINS = 24

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![A-Za-z_])
     |(?P<field>(?:metrics|metric|params|param|tags|tag|attributes|attribute|attr|run)\.
          (?:`[^`]+`|"[^"]+"|[A-Za-z0-9_][A-Za-z0-9_.\-/:]*))
     |(?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
     |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
     |(?P<op><=|>=|!=|<>|==|=|<|>)
     |(?P<lp>\()|(?P<rp>\))|(?P<comma>,)
    )""",
    re.X,
)

_KINDS = {
    "metrics": "metric", "metric": "metric", "params": "param", "param": "param",
    "tags": "tag", "tag": "tag", "attributes": "attr", "attribute": "attr", "attr": "attr", "run": "attr",
}

_STRING_ATTRS: dict[str, Any] = {
    "status": runs.c.status, "name": runs.c.name, "run_name": runs.c.name, "id": runs.c.id,
    "run_id": runs.c.id, "parent_run_id": runs.c.parent_run_id, "source": runs.c.source,
    "created_by": runs.c.created_by, "user": runs.c.created_by,
    "experiment": experiments.c.name, "experiment_name": experiments.c.name,
}
_TIME_ATTRS: dict[str, Any] = {"start_time": runs.c.start_time, "end_time": runs.c.end_time}

_ALL_ATTRS = sorted({*_STRING_ATTRS, *_TIME_ATTRS})


@dataclass
class Compiled:
    """A filter and order turned into SQLAlchemy pieces over ``runs``."""

    where: ColumnElement[bool] | None
    order_by: list[Any]
    from_: Any
    joins: dict[tuple[str, str], Any] = field(default_factory=dict)


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise InvalidArgument(
                f"cannot parse the filter at character {pos + 1}: {text[pos:pos + 20]!r}; "
                "write e.g. metrics.auc > 0.9 and params.max_depth = '5'"
            )
        kind = m.lastgroup or ""
        toks.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return toks


def _unquote(text: str) -> str:
    quote = text[0]
    body = text[1:-1]
    if quote == "'":
        body = body.replace("''", "'")
    return re.sub(r"\\(.)", r"\1", body)


class _Compiler:
    def __init__(self) -> None:
        self.joins: dict[tuple[str, str], Any] = {}

    def column(self, field_text: str) -> tuple[str, Any]:
        """('metric' | 'string' | 'time', column) for a field token or a bare attribute."""
        prefix, dot, key = field_text.partition(".")
        kind = _KINDS.get(prefix.lower()) if dot else "attr"
        if not dot:
            key = field_text
        if kind is None:  # pragma: no cover - the tokenizer only yields known prefixes
            raise InvalidArgument(f"unknown field {field_text!r}")
        if key[:1] in "`\"" and key[-1:] == key[:1] and len(key) >= 2:
            key = key[1:-1]
        if kind == "attr":
            name = key.lower()
            if name in _TIME_ATTRS:
                return "time", _TIME_ATTRS[name]
            if name in _STRING_ATTRS:
                return "string", _STRING_ATTRS[name]
            raise InvalidArgument(
                f"unknown run attribute {key!r}: use one of {', '.join(_ALL_ATTRS)}, "
                "or metrics.KEY / params.KEY / tags.KEY"
            )
        table = {"metric": latest_metrics, "param": run_params, "tag": run_tags}[kind]
        alias = self.joins.get((kind, key))
        if alias is None:
            if len(self.joins) >= _MAX_JOINS:
                raise InvalidArgument(f"a search may name at most {_MAX_JOINS} distinct metrics, params and tags")
            alias = table.alias(f"{kind[0]}{len(self.joins)}")
            self.joins[(kind, key)] = alias
        return ("metric" if kind == "metric" else "string"), alias.c.value


class _Parser:
    def __init__(self, toks: list[_Tok], comp: _Compiler, text: str) -> None:
        self.toks = toks
        self.i = 0
        self.comp = comp
        self.text = text

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def word(self, *words: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.lower() in words:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, what: str) -> _Tok:
        tok = self.peek()
        if tok is None or tok.kind != kind:
            where = f"at character {tok.pos + 1} ({tok.text!r})" if tok else "at the end"
            raise InvalidArgument(f"filter: expected {what} {where}")
        self.i += 1
        return tok

    def parse(self) -> ColumnElement[bool]:
        expr = self.expr()
        tok = self.peek()
        if tok is not None:
            raise InvalidArgument(
                f"filter: unexpected {tok.text!r} at character {tok.pos + 1}; join conditions with 'and' / 'or'"
            )
        return expr

    def expr(self) -> ColumnElement[bool]:
        parts = [self.term()]
        while self.word("or"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else sa.or_(*parts)

    def term(self) -> ColumnElement[bool]:
        parts = [self.factor()]
        while self.word("and"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else sa.and_(*parts)

    def factor(self) -> ColumnElement[bool]:
        if self.word("not"):
            return sa.not_(self.factor())
        tok = self.peek()
        if tok is not None and tok.kind == "lp":
            self.i += 1
            inner = self.expr()
            self.expect("rp", "')'")
            return inner
        return self.compare()

    def value(self, kind: str, name: str) -> Any:
        tok = self.peek()
        if tok is None or tok.kind not in ("num", "str"):
            where = f"{tok.text!r} at character {tok.pos + 1}" if tok else "the end of the filter"
            raise InvalidArgument(f"filter: expected a number or a quoted string after {name}, found {where}")
        self.i += 1
        if kind == "metric":
            if tok.kind != "num":
                raise InvalidArgument(f"filter: {name} is a metric; compare it with a number, not {tok.text}")
            return float(tok.text)
        if kind == "time":
            if tok.kind == "num":
                return float(tok.text)
            try:
                when = dt.datetime.fromisoformat(_unquote(tok.text).replace("Z", "+00:00"))
            except ValueError:
                raise InvalidArgument(f"filter: {name} takes a Unix time or an ISO date, not {tok.text}") from None
            return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
        return _unquote(tok.text) if tok.kind == "str" else tok.text

    def compare(self) -> ColumnElement[bool]:
        tok = self.peek()
        if tok is None or tok.kind not in ("field", "word"):
            where = f"{tok.text!r} at character {tok.pos + 1}" if tok else "the end of the filter"
            raise InvalidArgument(f"filter: expected a field such as metrics.auc or status, found {where}")
        self.i += 1
        kind, col = self.comp.column(tok.text)
        name = tok.text
        if self.word("is"):
            negate = self.word("not")
            if not self.word("null"):
                raise InvalidArgument(f"filter: write '{name} is null' or '{name} is not null'")
            return col.is_not(None) if negate else col.is_(None)
        negate = self.word("not")
        if self.word("like", "ilike"):
            op = self.toks[self.i - 1].text.lower()
            if kind != "string":
                raise InvalidArgument(f"filter: {op.upper()} works on params, tags and text attributes, not {name}")
            pattern = self.value(kind, name)
            expr = col.like(pattern) if op == "like" else col.ilike(pattern)
            return sa.not_(expr) if negate else expr
        if self.word("in"):
            self.expect("lp", "'(' after IN")
            values = [self.value(kind, name)]
            while self.peek() is not None and self.peek().kind == "comma":  # type: ignore[union-attr]
                self.i += 1
                values.append(self.value(kind, name))
            self.expect("rp", "')' closing the IN list")
            return col.not_in(values) if negate else col.in_(values)
        if negate:
            raise InvalidArgument(f"filter: 'not' after {name} must be followed by LIKE, ILIKE or IN")
        op_tok = self.expect("op", f"a comparison (=, !=, <, <=, >, >=, LIKE, IN) after {name}")
        value = self.value(kind, name)
        op = op_tok.text
        if kind == "string" and op in ("<", "<=", ">", ">="):
            raise InvalidArgument(
                f"filter: {name} holds text; use =, !=, LIKE or IN (params and tags are strings: "
                "log a number as a metric to compare it)"
            )
        if op in ("=", "=="):
            return col == value
        if op in ("!=", "<>"):
            return col != value
        return {"<": col < value, "<=": col <= value, ">": col > value, ">=": col >= value}[op]


def _order(text: str, comp: _Compiler) -> list[Any]:
    toks = _tokenize(text)
    out: list[Any] = []
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok.kind not in ("field", "word"):
            raise InvalidArgument(f"order by: expected a field such as metrics.auc, found {tok.text!r}")
        _, col = comp.column(tok.text)
        i += 1
        descending = False
        if i < len(toks) and toks[i].kind == "word" and toks[i].text.lower() in ("asc", "desc"):
            descending = toks[i].text.lower() == "desc"
            i += 1
        out.append((col.desc() if descending else col.asc()).nulls_last())
        if i < len(toks):
            if toks[i].kind != "comma":
                raise InvalidArgument(f"order by: expected ',' or ASC/DESC, found {toks[i].text!r}")
            i += 1
    return out


def compile_search(filter_string: str | None, order_by: list[str] | None) -> Compiled:
    """Parse a filter and an order into a WHERE clause, ORDER BY terms and joins.

    Raises:
        InvalidArgument: the filter or order cannot be parsed, names an unknown
            attribute, or compares a value of the wrong type.
    """
    comp = _Compiler()
    where = None
    text = (filter_string or "").strip()
    if len(text) > _MAX_FILTER:
        raise InvalidArgument(f"filter is longer than {_MAX_FILTER} characters")
    if text:
        where = _Parser(_tokenize(text), comp, text).parse()
    order: list[Any] = []
    for item in order_by or []:
        if item and item.strip():
            order.extend(_order(item, comp))
    order.extend([runs.c.start_time.desc(), runs.c.id])
    from_ = runs.join(experiments, experiments.c.id == runs.c.experiment_id)
    for (_, key), alias in comp.joins.items():
        from_ = from_.outerjoin(alias, sa.and_(alias.c.run_id == runs.c.id, alias.c.key == key))
    return Compiled(where=where, order_by=order, from_=from_, joins=comp.joins)


def _fingerprint(parts: list[Any]) -> str:
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:12]


def encode_page_token(offset: int, parts: list[Any]) -> str:
    raw = orjson.dumps({"o": offset, "f": _fingerprint(parts)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, parts: list[Any]) -> int:
    """The offset a page token stands for; it must come from the same search."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = int(data["o"])
        same = data["f"] == _fingerprint(parts)
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("invalid page token: pass the next_page_token of a previous search") from None
    if not same or offset < 0:
        raise InvalidArgument("this page token belongs to another search (filter, order or experiments differ)")
    return offset

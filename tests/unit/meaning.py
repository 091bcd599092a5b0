"""What a request means, as opposed to how it is spelled.

``meaning(request)`` replaces every ``*Expression`` of a DynamoDB request (at any depth, so
inside ``TransactItems`` too) by its structure with the ``#name``/``:value`` placeholders
substituted by the names and values they stand for, and drops the placeholder maps:

- an ``UpdateExpression`` becomes ``{"SET": {clause, ...}, "REMOVE": {...}, ...}``: the
  clauses of each action as a set, so their order does not matter;
- a condition (``ConditionExpression``, ``KeyConditionExpression``, ``FilterExpression``)
  becomes a tree of ``("AND", {...})``, ``("OR", {...})`` and ``("NOT", x)`` over leaf
  comparisons, so redundant parentheses and the order of operands of AND/OR do not matter;
- a ``ProjectionExpression`` becomes the set of its paths.

Placeholder numbering, spacing and clause order are spelling; which attribute gets which
value, under which condition, is meaning. ``meaning`` also fails when a declared placeholder
is unused or a used one undeclared (DynamoDB rejects both; botocore's model checks neither).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["condition", "meaning", "same_request", "update"]

_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")
_OPEN, _CLOSE = "⟨«", "⟩»"
_ACTIONS = ("SET", "REMOVE", "ADD", "DELETE")


def _canonical(wire: Any) -> Any:
    """A wire value as a hashable, order-free text: set members sorted."""
    if isinstance(wire, Mapping):
        parts = []
        for tag, value in sorted(wire.items()):
            if tag in ("SS", "NS", "BS"):
                parts.append(f"{tag}:{sorted(value)!r}")
            else:
                parts.append(f"{tag}:{_canonical(value)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(wire, list):
        return "[" + ",".join(_canonical(v) for v in wire) + "]"
    return repr(wire)


def _substitute(
    text: str, names: Mapping[str, str], values: Mapping[str, Any], used: set[str]
) -> str:
    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("#"):
            if token not in names:
                raise AssertionError(f"undeclared name placeholder {token} in {text!r}")
            used.add(token)
            return f"⟨{names[token]}⟩"
        if token not in values:
            raise AssertionError(f"undeclared value placeholder {token} in {text!r}")
        used.add(token)
        return f"«{_canonical(values[token])}»"

    return _PLACEHOLDER.sub(one, text)


def _split(text: str, separator: re.Pattern[str]) -> list[str]:
    """``text`` split where ``separator`` matches outside parentheses and substituted
    tokens."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if char in _OPEN:
            i = text.index(_CLOSE[_OPEN.index(char)], i) + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0:
            match = separator.match(text, i)
            if match and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
                parts.append(text[start:i])
                start = i = match.end()
                continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _leaf(text: str) -> str:
    """Whitespace is spelling: collapsed, and dropped next to punctuation."""
    pieces = re.split(r"(⟨[^⟩]*⟩|«[^»]*»)", text)
    out = []
    for piece in pieces:
        if piece.startswith(("⟨", "«")):
            out.append(piece)
            continue
        piece = re.sub(r"\s+", " ", piece)
        piece = re.sub(r" ?([=<>(),+\-]) ?", r"\1", piece)
        out.append(piece)
    return "".join(out).strip()


def _wrapped(text: str) -> bool:
    """Whether ``text`` is one parenthesised whole: ``(a) AND (b)`` is not."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth, i = 0, 0
    while i < len(text):
        char = text[i]
        if char in _OPEN:
            i = text.index(_CLOSE[_OPEN.index(char)], i) + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return False
        i += 1
    return True


_OR = re.compile(r"\s*\bOR\b\s*", re.IGNORECASE)
_AND = re.compile(r"\s*\bAND\b\s*", re.IGNORECASE)
_NOT = re.compile(r"NOT\b\s*", re.IGNORECASE)


def _condition(text: str) -> Any:
    text = text.strip()
    while _wrapped(text):
        text = text[1:-1].strip()
    for name, pattern in (("OR", _OR), ("AND", _AND)):
        parts = _split(text, pattern)
        if name == "AND":  # "x BETWEEN a AND b" is one comparison, not two
            merged: list[str] = []
            for part in parts:
                if merged and re.search(r"\bBETWEEN\s+\S+$", merged[-1], re.IGNORECASE):
                    merged[-1] = f"{merged[-1]} AND {part}"
                else:
                    merged.append(part)
            parts = merged
        if len(parts) > 1:
            members: set[Any] = set()
            for part in parts:
                child = _condition(part)
                if isinstance(child, tuple) and child[0] == name:
                    members |= child[1]  # (a AND b) AND c is a AND b AND c
                else:
                    members.add(child)
            return (name, frozenset(members))
    match = _NOT.match(text)
    if match:
        return ("NOT", _condition(text[match.end() :]))
    return _leaf(text)


def _update(text: str) -> dict[str, frozenset[str]]:
    keyword = re.compile(r"\s*\b(" + "|".join(_ACTIONS) + r")\b\s*", re.IGNORECASE)
    pieces = re.split(r"(⟨[^⟩]*⟩|«[^»]*»)", text)
    # Find the action keywords outside substituted tokens.
    marked = "".join(
        p if p.startswith(("⟨", "«")) else keyword.sub(lambda m: f"\0{m.group(1).upper()}\0", p)
        for p in pieces
    )
    actions: dict[str, frozenset[str]] = {}
    chunks = marked.split("\0")[1:]
    for action, body in zip(chunks[::2], chunks[1::2], strict=True):
        assert action not in actions, f"{action} twice in {text!r}"
        actions[action] = frozenset(_leaf(c) for c in _split(body, re.compile(r"\s*,\s*")))
    return actions


def meaning(request: Any) -> Any:
    """``request`` with its expressions replaced by what they mean (see the module doc)."""
    if isinstance(request, list):
        return [meaning(r) for r in request]
    if not isinstance(request, Mapping):
        return request
    out = {k: meaning(v) for k, v in request.items() if not k.startswith("ExpressionAttribute")}
    names = request.get("ExpressionAttributeNames", {})
    values = request.get("ExpressionAttributeValues", {})
    used: set[str] = set()
    for key, text in request.items():
        if not key.endswith("Expression"):
            continue
        substituted = _substitute(text, names, values, used)
        if key == "UpdateExpression":
            out[key] = _update(substituted)
        elif key == "ProjectionExpression":
            out[key] = frozenset(_leaf(p) for p in _split(substituted, re.compile(r"\s*,\s*")))
        else:
            out[key] = _condition(substituted)
    declared = set(names) | set(values)
    assert declared == used, f"declared {sorted(declared)} but used {sorted(used)}"
    return out


def same_request(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """Whether two requests mean the same (for ``assert same_request(sent, {...})``)."""
    return bool(meaning(actual) == meaning(expected))


def condition(text: str, **values: Any) -> Any:
    """The meaning of a condition written by hand: ``#name`` stands for the attribute
    ``name`` and ``:key`` for ``values["key"]`` (a wire value)."""
    names = {token: token[1:] for token in re.findall(r"#[A-Za-z0-9_]+", text)}
    return meaning(
        {
            "ConditionExpression": text,
            **({"ExpressionAttributeNames": names} if names else {}),
            **(
                {"ExpressionAttributeValues": {f":{k}": v for k, v in values.items()}}
                if values
                else {}
            ),
        }
    )["ConditionExpression"]


def update(text: str, **values: Any) -> Any:
    """The meaning of an update expression written by hand (placeholders as in
    :func:`condition`)."""
    names = {token: token[1:] for token in re.findall(r"#[A-Za-z0-9_]+", text)}
    return meaning(
        {
            "UpdateExpression": text,
            **({"ExpressionAttributeNames": names} if names else {}),
            **(
                {"ExpressionAttributeValues": {f":{k}": v for k, v in values.items()}}
                if values
                else {}
            ),
        }
    )["UpdateExpression"]

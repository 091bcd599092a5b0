"""Key columns composed from other columns: ``Column(String, hash_key=True,
template="ACCOUNT#{id}")``.

In a single-table design the key attributes hold composite strings (``ACCOUNT#42``,
``ORDER#2026-12-05#17``) built from an item's own attributes. A templated column is that
string, kept in step with its parts: setting a part recomposes it, and a part that is not
stored (a key-only image, a projected read) is read back from it when the template allows.
Parts are written as their DynamoDB value's text (a number as its digits, a datetime as
its stored string), so reading back goes through the same type.

This module is pure: templates are parsed once, when the model is declared.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from streamodel.exceptions import InvalidModelError, ValidationError

__all__ = ["KeyTemplate"]


class KeyTemplate:
    """A parsed ``str.format``-style template whose fields name columns of one model."""

    __slots__ = ("column", "literals", "parts", "pattern", "text")

    def __init__(self, column: Any, text: str, columns: Mapping[str, Any]) -> None:
        where = f"{column.model_name}.{column.name}"
        if column.type.backing_type != "S":
            raise InvalidModelError(f"{where}: a template column must be stored as a string")
        literals: list[str] = []
        parts: list[Any] = []
        try:
            pieces = list(string.Formatter().parse(text))
        except ValueError as error:
            raise InvalidModelError(f"{where}: template {text!r}: {error}") from None
        for literal, field, spec, conversion in pieces:
            literals.append(literal)
            if field is None:
                continue
            if spec or conversion or not field.isidentifier():
                raise InvalidModelError(
                    f"{where}: template {text!r}: fields are plain column names like {{id}}, "
                    f"got {{{field}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}}"
                )
            part = columns.get(field)
            if part is None:
                raise InvalidModelError(
                    f"{where}: template {text!r} names {field!r}, which is not a column; "
                    f"columns are {sorted(columns)}"
                )
            if part is column or part.template is not None:
                raise InvalidModelError(
                    f"{where}: template {text!r}: {field!r} is a templated column itself"
                )
            if part.type.backing_type not in ("S", "N") or part.version:
                raise InvalidModelError(
                    f"{where}: template {text!r}: {field!r} must be a column stored as a "
                    "string or number, other than the version"
                )
            if any(p is part for p in parts):
                raise InvalidModelError(f"{where}: template {text!r} names {field!r} twice")
            parts.append(part)
        if not parts:
            raise InvalidModelError(f"{where}: template {text!r} names no column")
        if len(literals) == len(parts):
            literals.append("")
        self.column = column
        self.text = text
        self.parts = parts
        self.literals = literals
        # Each part matches as little as it can; the literal text in between (and the end)
        # decides where it stops. Adjacent parts with nothing between cannot be told apart.
        regex = "".join(
            re.escape(literal) + ("(.+?)" if i < len(parts) else "")
            for i, literal in enumerate(literals)
        )
        self.pattern = re.compile(regex + r"\Z", re.DOTALL)

    def compose(self, values: Mapping[str, Any], *, prefix: bool = False) -> str | None:
        """The column's value from its parts' values; ``None`` while a part is unset.

        With ``prefix=True``, the text up to the first unset part (for ``begins_with``).
        """
        out = [self.literals[0]]
        for i, part in enumerate(self.parts):
            value = values.get(part.name)
            if value is None:
                return "".join(out) if prefix else None
            out += [_text(part, value), self.literals[i + 1]]
        return "".join(out)

    def parse(self, text: Any) -> dict[str, Any] | None:
        """The parts' values read back from the column's value, or ``None`` when it does not
        have the template's shape."""
        if not isinstance(text, str):
            return None
        match = self.pattern.match(text)
        if match is None:
            return None
        values = {}
        for part, piece in zip(self.parts, match.groups(), strict=True):
            try:
                values[part.name] = part.type.dynamo_load({part.type.backing_type: piece})
            except (ValueError, TypeError, ArithmeticError, KeyError):
                return None
        return values


def _text(part: Any, value: Any) -> str:
    """A part's value as written into the key: its DynamoDB value's text."""
    from streamodel.schema import check_values  # the types' own checks, errors and all

    checked = check_values(part.model, {part.name: value})[part.name]
    wire = part.type.dynamo_dump(checked)
    if not isinstance(wire, Mapping) or len(wire) != 1:
        raise ValidationError({part.name: [f"{value!r} cannot go into a key template"]})
    (text,) = wire.values()
    if not isinstance(text, str):
        raise ValidationError({part.name: [f"{value!r} cannot go into a key template"]})
    return text

"""DynamoDB's wire values: their size, their equality, and how a type declares its fast path.

Everything here depends on the wire value alone (``{"S": "x"}``), never on the type that
made it, except the declarations (:class:`Scalar`, :class:`Container`) that each type in
:mod:`streamodel.types` gives next to its ``dynamo_dump``/``dynamo_load``, from which
:mod:`streamodel._typegen` generates its fast functions.

Sizes are defined once, as source templates (:data:`SIZE`): :func:`attribute_size` is
generated from them, and so are the sizes that generated per-type and per-model code
computes inline.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from streamodel._source import define

__all__ = [
    "N_SIZE_BOUND",
    "RAW_SIZE",
    "SIZE",
    "SIZE_NAMES",
    "Container",
    "Scalar",
    "attribute_size",
    "same_wire",
    "wire_size",
]

Wire = dict[str, Any]


# -- declarations -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scalar:
    """A scalar type's common case, as source templates for generated code.

    Templates are Python expressions over ``{v}`` (a Python value, a plain name), ``{r}`` (a
    scratch name for the raw wire value) and ``{w}`` (a raw wire value of the type's tag,
    used once). The generated code takes the fast path only where ``check`` holds, and hands
    anything else to the type's own ``check``/``dynamo_dump``/``dynamo_load``, so errors are
    always the type's own.

    - ``check``: true when ``{v}`` is its own checked value (exactly the Python type, well
      inside DynamoDB's ranges), so ``type.check(v)`` would return it unchanged; false for
      ``None``. It may bind ``{r}`` (with ``:=``) for ``dump`` to use.
    - ``dump``: the raw wire value of ``{v}`` once ``check`` holds: ``type.dynamo_dump(v)``
      is ``{tag: dump}``.
    - ``load``: ``type.dynamo_load({tag: w})``; None when only the type's own load will do.
    - ``names``: the globals the templates use besides the generator's own (``_str``,
      ``_int``, ``_float``, ``_bool``, ``_bytes``, ``_Decimal``, ``_datetime``, ``_UTC``).
    """

    check: str
    dump: str
    load: str | None
    names: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Container:
    """A container type whose wire is one of DynamoDB's documents over typed members:

    - ``"set"``: the type has ``.inner``; the wire is ``{inner tag + "S": sorted raws}``,
      ``None`` when empty; the checked value of a ``set`` is a copy.
    - ``"list"``: the type has ``.inner``; the wire is ``{"L": [member wire or NULL]}``.
    - ``"map"``: the type has ``.types`` (key -> type); the wire is ``{"M": {key: wire}}``
      without the keys whose value is None; keys not declared are refused (and ignored when
      loading).
    """

    kind: Literal["set", "list", "map"]


# -- sizes -------------------------------------------------------------------------------

#: The bytes DynamoDB counts for the raw value ``{r}`` (a plain name) of each tag, as Python
#: source: the one definition of item sizes (400 KB limit). ``_size`` is the size of a whole
#: wire value, ``_size_<TAG>`` that of a raw value of that tag.
SIZE: dict[str, str] = {
    "S": "(len({r}) if {r}.isascii() else len({r}.encode('utf-8')))",
    # About one byte per two significant digits, plus one.
    "N": "((len({r}.lstrip('-').replace('.', '').lstrip('0')) + 1) // 2 + 1)",
    "B": "len({r})",
    "BOOL": "1",
    "NULL": "1",
    "SS": "_size_S(''.join({r}))",  # UTF-8 is concatenative: the members' bytes, joined
    "NS": "_sum(map(_size_N, {r}))",
    "BS": "_sum(map(_len, {r}))",
    "L": "(3 + _len({r}) + _sum(map(_size, {r})))",  # 1 byte per member, besides its value
    # The keys' bytes (joined, as for SS) and 1 byte per member, besides its value.
    "M": "(3 + _size_S(''.join({r})) + _len({r}) + _sum(map(_size, {r}.values())))",
}

#: A cheaper upper bound of ``SIZE["N"]``, from the text's length (the sign, the point and
#: leading zeros count too). A save whose bounded size passes the limit is counted again
#: exactly, so the bound is exact wherever it matters.
N_SIZE_BOUND = "(len({r}) + 3) // 2"


def _generate_sizes() -> tuple[dict[str, Any], Callable[[Wire], int]]:
    ns: dict[str, Any] = {"_len": len, "_sum": sum}
    for tag, template in SIZE.items():
        source = f"def size(r):\n    return {template.format(r='r')}\n"
        ns[f"_size_{tag}"] = define(source, ns, "size", f"size of {tag}")
    lines = ["def attribute_size(wire):", "    ((tag, r),) = wire.items()"]
    *first, last = SIZE
    for tag in first:
        lines += [f"    if tag == {tag!r}:", f"        return {SIZE[tag].format(r='r')}"]
    lines.append(f"    return {SIZE[last].format(r='r')}  # {last}")
    size: Callable[[Wire], int] = define("\n".join(lines) + "\n", ns, "attribute_size", "size")
    ns["_size"] = size
    return {k: v for k, v in ns.items() if k.startswith("_") and not k.startswith("__")}, size


#: The globals that the :data:`SIZE` templates use.
SIZE_NAMES, attribute_size = _generate_sizes()
attribute_size.__doc__ = "The bytes DynamoDB counts for one wire value."
#: Each tag's size of a raw value, as a function.
RAW_SIZE: dict[str, Callable[[Any], int]] = {tag: SIZE_NAMES[f"_size_{tag}"] for tag in SIZE}


def wire_size(item: Mapping[str, Wire]) -> int:
    """DynamoDB's size of an item in bytes (names plus values), as its 400 KB limit counts."""
    return sum(len(name.encode("utf-8")) + attribute_size(v) for name, v in item.items())


# -- equality ----------------------------------------------------------------------------


def same_wire(a: Wire | None, b: Wire | None) -> bool:
    """Whether two wire values hold the same value as DynamoDB sees it: sets in any order
    (DynamoDB returns their members in no particular order) and numbers in any spelling
    (``"1.50"`` is ``"1.5"``), through lists and maps."""
    if a == b:
        return True
    if a is None or b is None or len(a) != 1 or len(b) != 1:
        return False
    ((tag, x),) = a.items()
    ((other, y),) = b.items()
    if tag != other:
        return False
    try:
        if tag in ("SS", "BS"):
            return len(x) == len(y) and set(x) == set(y)
        if tag == "N":
            return bool(decimal.Decimal(x) == decimal.Decimal(y))
        if tag == "NS":
            return len(x) == len(y) and {decimal.Decimal(n) for n in x} == {
                decimal.Decimal(n) for n in y
            }
        if tag == "L":
            return len(x) == len(y) and all(map(same_wire, x, y))
        if tag == "M":
            return x.keys() == y.keys() and all(same_wire(x[k], y[k]) for k in x)
    except (TypeError, ArithmeticError, AttributeError):  # not a well-formed wire value
        return False
    return False

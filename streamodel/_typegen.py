"""Per-type generated functions: the fast paths of :mod:`streamodel.types`, from their declarations.

The types are the reference: ``check``, ``dynamo_dump`` and ``dynamo_load`` define what a
value means. Each type declares its common case next to them (``fast``: a
:class:`~streamodel._wire.Scalar` of source templates, or a
:class:`~streamodel._wire.Container` over its members), and this module generates from
those declarations, once per type, functions that give the same results with less
interpretation (no attribute lookups, no ``isinstance`` ladders):

- ``loader(typ)(wire)`` equals ``typ.dynamo_load(wire)``;
- ``dumper(typ)(value)`` equals ``typ.dynamo_dump(value)``;
- ``checker(typ)(value)`` equals ``typ.check(value)`` for a value that is not ``None``;
- ``sizer(typ)(wire)`` equals ``_wire.attribute_size(wire)``;
- ``inline(typ, ...)`` and ``encoder(typ)`` check, dump and size a value in one go, for
  the per-model ``encode`` of :mod:`streamodel._compiled`.

This module knows no type by name. Every fast path takes only the common case its type
declares and hands anything else to the type itself, so errors are always the reference's
own. Loads trust DynamoDB's data: a fast load that trips over an unexpected shape is
redone by the reference path, which raises its usual error. ``tests/unit/test_compiled.py``
holds both paths equal for every type in ``ALL_TYPES`` and for generated values.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable
from typing import Any

from streamodel._source import define
from streamodel._wire import N_SIZE_BOUND, SIZE, SIZE_NAMES, Container, Scalar, attribute_size

__all__ = [
    "SLOW",
    "checker",
    "dumper",
    "encoder",
    "inline",
    "load_expr",
    "loader",
    "namespace",
    "ref",
    "scalar_of",
    "sizer",
]

Fn = Callable[[Any], Any]


class _Slow:
    """Marker: the fast path cannot decide; the type's own method does."""


SLOW: Any = _Slow()

# The names every template may use (see Scalar), besides those a type declares.
_NAMES: dict[str, Any] = {
    "_str": str,
    "_int": int,
    "_float": float,
    "_bool": bool,
    "_bytes": bytes,
    "_repr": repr,
    "_list": list,
    "_set": set,
    "_dict": dict,
    "_sorted": sorted,
    "_Decimal": decimal.Decimal,
    "_datetime": datetime.datetime,
    "_UTC": datetime.UTC,
    "_SLOW": SLOW,
    **SIZE_NAMES,
}


def namespace(**extra: Any) -> dict[str, Any]:
    """A fresh namespace for generated source: the template names and ``extra``."""
    return {**_NAMES, **extra}


def ref(ns: dict[str, Any], obj: Any) -> str:
    """A global name in ``ns`` for ``obj``, for generated source to call."""
    name = f"_r{len(ns)}"
    ns[name] = obj
    return name


def _declared(typ: Any) -> Scalar | Container | None:
    """The class's own declaration: a subclass may override any hook, so it is not inherited."""
    fast = type(typ).__dict__.get("fast")
    return fast if isinstance(fast, Scalar | Container) else None


def scalar_of(typ: Any, ns: dict[str, Any]) -> Scalar | None:
    """The type's scalar declaration, its names added to ``ns``; None for any other type."""
    fast = _declared(typ)
    if not isinstance(fast, Scalar):
        return None
    for name, value in fast.names.items():
        if ns.setdefault(name, value) is not value:
            raise TypeError(f"{type(typ).__name__}.fast: {name} names another object")
    return fast


def _kind(typ: Any) -> str | None:
    fast = _declared(typ)
    return fast.kind if isinstance(fast, Container) else None


def _members_plain(typ: Any) -> bool:
    """Members without validators of their own (the fast paths do not run them)."""
    members = typ.types.values() if _kind(typ) == "map" else [typ.inner]
    return not any(member.validators for member in members)


def _raw(fast: Scalar, v: str, ns: dict[str, Any]) -> tuple[str, str]:
    """``(expr, name)``: source giving the raw wire value of ``v`` (``check`` holding), and
    a plain name that holds it once ``expr`` ran (``r`` is bound when it is not plain)."""
    raw = fast.dump.format(v=v, r="r")
    return (raw, raw) if raw.isidentifier() else (f"(r := {raw})", "r")


# -- loads ------------------------------------------------------------------------------------


def _raw_load(typ: Any, var: str, ns: dict[str, Any]) -> str | None:
    """Source for the Python value of ``var``, the raw value of a wire value with the type's
    tag, or None (the type's own load decides)."""
    if (fast := scalar_of(typ, ns)) is not None:
        return None if fast.load is None else fast.load.format(w=var)
    kind = _kind(typ)
    if kind == "set":
        inner = scalar_of(typ.inner, ns)
        if inner is None or inner.load is None:
            return None
        member = inner.load.format(w="x")
        return f"_set({var})" if member == "x" else f"{{{member} for x in {var}}}"
    if kind == "list":
        return f"[{ref(ns, loader(typ.inner))}(x) for x in {var}]"
    if kind == "map":
        loaders = {k: loader(v) for k, v in typ.types.items()}

        def load_map(raw: Any) -> dict[str, Any]:
            return {k: loaders[k](v) for k, v in raw.items() if k in loaders}

        return f"{ref(ns, load_map)}({var})"
    return None


def load_expr(typ: Any, var: str, ns: dict[str, Any]) -> str:
    """Source for ``typ.dynamo_load(var)`` with ``var`` (a plain name) not None."""
    reference = ref(ns, typ.dynamo_load)
    tag = typ.backing_type
    raw = _raw_load(typ, f"{var}[{tag!r}]", ns) if tag in SIZE else None
    if raw is None:
        return f"{reference}({var})"
    # One key, the expected tag: the common case. NULL, another tag or a malformed wire
    # value goes to the type itself (None, or its error).
    return f"({raw} if len({var}) == 1 and {tag!r} in {var} else {reference}({var}))"


def loader(typ: Any) -> Fn:
    """A function equal to ``typ.dynamo_load``."""
    ns = namespace()
    expr = load_expr(typ, "w", ns)
    source = f"def load(w):\n    if w is None:\n        return None\n    return {expr}\n"
    fn: Fn = define(source, ns, "load", f"load {type(typ).__name__}")
    return fn


# -- dumps ------------------------------------------------------------------------------------


def dumper(typ: Any) -> Fn:
    """A function equal to ``typ.dynamo_dump``."""
    ns = namespace()
    reference = ref(ns, typ.dynamo_dump)
    tag = typ.backing_type
    lines = ["def dump(v):"]
    kind = _kind(typ)
    if (fast := scalar_of(typ, ns)) is not None:
        lines += [
            "    if v is None:",
            "        return None",
            f"    if {fast.check.format(v='v', r='r')}:",
            f"        return {{{tag!r}: {_raw(fast, 'v', ns)[0]}}}",
            f"    return {reference}(v)",
        ]
    elif kind == "set" and (inner := scalar_of(typ.inner, ns)) is not None:
        lines += [
            "    if not v:",
            "        return None",
            "    out = []",
            "    for x in v:",
            f"        if not ({inner.check.format(v='x', r='r')}):",
            f"            return {reference}(v)",
            f"        out.append({_raw(inner, 'x', ns)[0]})",
            "    out.sort()",
            f"    return {{{tag!r}: out}}",
        ]
    elif kind == "list":
        lines += [
            "    if v is None:",
            "        return None",
            f"    return {{'L': [{ref(ns, dumper(typ.inner))}(x) or {{'NULL': True}} for x in v]}}",
        ]
    elif kind == "map":
        dumpers = {k: dumper(v) for k, v in typ.types.items()}
        lines += [
            "    if v is None:",
            "        return None",
            "    out = {}",
            "    for k, x in v.items():",
            f"        w = {ref(ns, dumpers)}[k](x)",
            "        if w is not None:",
            "            out[k] = w",
            "    return {'M': out}",
        ]
    else:
        fn: Fn = typ.dynamo_dump
        return fn
    dump: Fn = define("\n".join(lines) + "\n", ns, "dump", f"dump {type(typ).__name__}")
    return dump


# -- checks -----------------------------------------------------------------------------------


def _check_expr(typ: Any, v: str, ns: dict[str, Any]) -> str | None:
    """Source giving the checked value of ``v`` (not None), or ``_SLOW`` when the type's own
    check must decide; None when the type has no fast check. Validators are not run."""
    if (fast := scalar_of(typ, ns)) is not None:
        return f"({v} if {fast.check.format(v=v, r='r')} else _SLOW)"
    found = _fast_check(typ)
    return None if found is None else f"{ref(ns, found)}({v})"


def _fast_check(typ: Any) -> Fn | None:
    """A generated check of a container's common case, returning ``_SLOW`` when the
    reference must decide; None when there is none."""
    kind = _kind(typ)
    if kind is None or not _members_plain(typ):
        return None
    ns = namespace()
    if kind == "set":
        if (inner := scalar_of(typ.inner, ns)) is None:
            return None
        body = [
            "    if type(v) is not _set:",
            "        return _SLOW",
            "    for x in v:",
            f"        if not ({inner.check.format(v='x', r='r')}):",
            "            return _SLOW",
            "    return _set(v)",
        ]
    elif kind == "list":
        if (member := _check_expr(typ.inner, "x", ns)) is None:
            return None
        body = [
            "    if type(v) is not _list:",
            "        return _SLOW",
            "    out = []",
            "    for x in v:",
            "        if x is None:",
            "            out.append(None)",
            f"        elif (c := {member}) is not _SLOW:",
            "            out.append(c)",
            "        else:",
            "            return _SLOW",
            "    return out",
        ]
    else:
        body = ["    if type(v) is not _dict:", "        return _SLOW", "    out = {}"]
        body += ["    for k, x in v.items():"]
        keyword = "if"
        for key, inner_type in typ.types.items():
            if (member := _check_expr(inner_type, "x", ns)) is None:
                return None
            body += [
                f"        {keyword} k == {key!r}:",
                "            if x is None:",
                "                out[k] = None",
                f"            elif (c := {member}) is not _SLOW:",
                "                out[k] = c",
                "            else:",
                "                return _SLOW",
            ]
            keyword = "elif"
        body += ["        else:" if typ.types else "        if True:", "            return _SLOW"]
        body += ["    return out"]
    source = "def check(v):\n" + "\n".join(body) + "\n"
    fn: Fn = define(source, ns, "check", f"check {type(typ).__name__}")
    return fn


def checker(typ: Any) -> Fn:
    """A function equal to ``typ.check`` (for values that are not None)."""
    ns = namespace()
    reference = ref(ns, typ.check)
    if (fast := scalar_of(typ, ns)) is not None:
        lines = [f"    if {fast.check.format(v='v', r='r')}:", "        c = v"]
    elif (found := _fast_check(typ)) is not None:
        lines = [f"    c = {ref(ns, found)}(v)", "    if c is not _SLOW:"]
    else:
        fn: Fn = typ.check
        return fn
    if typ.validators:
        lines.append(f"        {ref(ns, typ._validate)}(c)")
    lines += ["        return c", f"    return {reference}(v)"]
    source = "def check(v):\n" + "\n".join(lines) + "\n"
    check: Fn = define(source, ns, "check", f"check {type(typ).__name__}")
    return check


# -- sizes ------------------------------------------------------------------------------------


def sizer(typ: Any) -> Fn:
    """A function equal to ``_wire.attribute_size`` for this type's wire values: the size of
    the type's own tag inline, any other wire value through ``attribute_size``."""
    tag = typ.backing_type
    if tag not in SIZE:
        return attribute_size
    source = "\n".join(
        [
            "def size(w):",
            f"    r = w.get({tag!r}) if len(w) == 1 else None",
            "    if r is None:",
            "        return _size(w)",
            f"    return {SIZE[tag].format(r='r')}",
        ]
    )
    fn: Fn = define(source + "\n", namespace(), "size", f"size {type(typ).__name__}")
    return fn


# -- fused check, dump and size ---------------------------------------------------------------
#
# A save needs, for each column, the checked value, its wire value and its size. These give
# all three in one pass for the common cases: the checks of checker, the wire values of
# dumper and the sizes of SIZE (numbers counted by N_SIZE_BOUND), inline.


def inline(typ: Any, v: str, ns: dict[str, Any]) -> tuple[str, str, str] | None:
    """``(test, wire, size)`` source over the plain name ``v`` (``r`` is a scratch name) for
    the common case of a scalar type without validators; None for any other type. Where
    ``test`` holds, ``v`` is its checked value, ``wire`` its wire value (evaluated once,
    before ``size``), and ``size`` a bound of that wire value's size."""
    fast = scalar_of(typ, ns)
    if fast is None or typ.validators:
        return None
    tag = typ.backing_type
    raw, name = _raw(fast, v, ns)
    size = N_SIZE_BOUND if tag == "N" else SIZE[tag]
    return fast.check.format(v=v, r="r"), f"{{{tag!r}: {raw}}}", size.format(r=name)


def encoder(typ: Any) -> Fn | None:
    """``enc(v) -> (checked, wire, size)``, or ``_SLOW`` when the reference must decide, for
    a set, list or map of inline scalars (see :func:`inline`); None for any other type."""
    kind = _kind(typ)
    if kind is None or typ.validators:
        return None
    ns = namespace()
    if kind == "list" and (parts := inline(typ.inner, "x", ns)) is not None:
        test, wire, size = parts
        body = [  # each item is checked as it is, so the checked list is a copy
            "    if type(v) is not _list:",
            "        return _SLOW",
            "    out = []",
            "    s = 3",
            "    for x in v:",
            "        if x is None:",
            "            out.append({'NULL': True})",
            "            s += 2",
            f"        elif {test}:",
            f"            out.append({wire})",
            f"            s += 1 + {size}",
            "        else:",
            "            return _SLOW",
            "    return _list(v), {'L': out}, s",
        ]
    elif kind == "set" and inline(typ.inner, "x", ns) is not None:
        inner = scalar_of(typ.inner, ns)
        assert inner is not None
        test = inner.check.format(v="x", r="r")
        raw, _ = _raw(inner, "x", ns)
        body = ["    if type(v) is not _set:", "        return _SLOW"]
        if raw == "x":  # members are their own raw values: check them, then sort the set
            body += ["    for x in v:", f"        if not ({test}):", "            return _SLOW"]
            body += ["    out = _sorted(v)"]
        else:
            body += ["    out = []", "    for x in v:", f"        if not ({test}):"]
            body += ["            return _SLOW", f"        out.append({raw})", "    out.sort()"]
        tag = typ.backing_type
        size = SIZE[tag].format(r="out")
        body += ["    if not out:", "        return _set(), None, 0"]
        body += [f"    return _set(v), {{{tag!r}: out}}, {size}"]
    elif kind == "map" and all(inline(m, "x", ns) for m in typ.types.values()):
        body = [  # each value is checked as it is, so the checked map is a copy
            "    if type(v) is not _dict:",
            "        return _SLOW",
            "    out = {}",
            "    s = 3",
            "    for k, x in v.items():",
        ]
        keyword = "if"
        for key, member in typ.types.items():
            test, wire, size = inline(member, "x", ns) or ("", "", "")
            body += [
                f"        {keyword} k == {key!r}:",
                "            if x is None:",
                "                continue  # kept in the checked map, not written",
                f"            elif {test}:",
                f"                out[k] = {wire}",
                f"                s += {len(key.encode('utf-8')) + 1} + {size}",
                "            else:",
                "                return _SLOW",
            ]
            keyword = "elif"
        body += ["        else:" if typ.types else "        if True:", "            return _SLOW"]
        body += ["    return _dict(v), {'M': out}, s"]
    else:
        return None
    source = "def enc(v):\n" + "\n".join(body) + "\n"
    fn: Fn = define(source, ns, "enc", f"encode {type(typ).__name__}")
    return fn

"""Per-model compiled wire functions: the fast paths of :mod:`streamodel.types`.

The types are the reference: ``check``, ``dynamo_dump`` and ``dynamo_load`` define what a
value means. This module builds, once per type and once per model, functions that give the
same results with less interpretation (no per-column attribute lookups, no ``isinstance``
ladders, one generated function that fills a whole object):

- ``loader(typ)(wire)`` equals ``typ.dynamo_load(wire)``;
- ``dumper(typ)(value)`` equals ``typ.dynamo_dump(value)``;
- ``checker(typ)(value)`` equals ``typ.check(value)`` for a value that is not ``None``;
- ``sizer(typ)(wire)`` equals ``types._attribute_size(wire)``.

Every fast path takes only the common, unambiguous case (exact built-in classes, exact
Python types, values well inside DynamoDB's ranges) and hands anything else to the type
itself, so errors are always the reference's own. Loads trust DynamoDB's data: a fast load
that trips over an unexpected shape is simply redone by the reference path, which raises
its usual error. ``tests/unit/test_compiled.py`` holds both paths equal for every type in
``ALL_TYPES`` and for generated values.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import linecache
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from streamodel import types as t
from streamodel._marshmallow import marshmallow
from streamodel.actions import Action
from streamodel.conditions import NotExists

_GENERATED = itertools.count(1)


def define(source: str, ns: dict[str, Any], name: str, what: str) -> Any:
    """Compile generated ``source`` into ``ns`` and return its function ``name``.

    The source is registered with :mod:`linecache` under a name of its own (``what`` and a
    serial number), so tracebacks and debuggers show the generated lines instead of
    ``<string>``. Sources are built from fixed templates only: never from data.
    """
    filename = f"<streamodel generated: {what} #{next(_GENERATED)}>"
    # mtime None: linecache.checkcache() keeps the entry (there is no file to compare with).
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), ns)
    return ns[name]


if TYPE_CHECKING:
    from streamodel.models import BaseModel

__all__ = ["CompiledModel", "checker", "compiled", "dumper", "loader", "sizer"]

Fn = Callable[[Any], Any]
UTC = datetime.UTC
_INT_LIMIT = 10**38  # ints below this in magnitude always fit DynamoDB's 38 digits


def _exact(typ: Any, *classes: type) -> bool:
    """Only the built-in classes themselves: a subclass may override any hook."""
    return type(typ) in classes


# -- loads ------------------------------------------------------------------------------------


def _raw_expr(typ: Any, var: str, ns: dict[str, Any]) -> str | None:
    """Python source for ``typ._load(tag, var)`` when the tag matches, or None (use ref)."""
    if _exact(typ, t.String, t.Boolean):
        return var
    if _exact(typ, t.Integer):
        return f"int({var})"
    if _exact(typ, t.Float):
        return f"float({var})"
    if _exact(typ, t.Number):
        ns["_Decimal"] = decimal.Decimal
        return f"_Decimal({var})"
    if _exact(typ, t.DateTime):
        ns["_fromiso"] = datetime.datetime.fromisoformat
        return f"_fromiso({var})"
    if _exact(typ, t.UUID):
        ns["_UUID"] = uuid.UUID
        return f"_UUID({var})"
    if _exact(typ, t.Set):
        inner = _raw_expr(typ.inner, "x", ns)
        if inner is None or not _exact(typ.inner, t.String, t.Integer, t.Number, t.Float):
            return None
        return f"set({var})" if inner == "x" else f"{{{inner} for x in {var}}}"
    if _exact(typ, t.List):
        name = _ref(ns, loader(typ.inner))
        return f"[{name}(x) for x in {var}]"
    if _exact(typ, t.Map):
        name = _ref(ns, _map_loader(typ))
        return f"{name}({var})"
    return None


def _ref(ns: dict[str, Any], obj: Any) -> str:
    name = f"_r{len(ns)}"
    ns[name] = obj
    return name


def _wire_expr(typ: Any, var: str, ns: dict[str, Any]) -> str:
    """Source for ``typ.dynamo_load(var)`` with ``var`` not None."""
    ref = _ref(ns, typ.dynamo_load)
    tag = typ.backing_type
    raw = _raw_expr(typ, f"{var}[{tag!r}]", ns) if tag != "*" else None
    if raw is None:
        return f"{ref}({var})"
    # One key, the expected tag: the common case. NULL, another tag or a malformed wire
    # value goes to the type itself (None, or its error).
    return f"({raw} if len({var}) == 1 and {tag!r} in {var} else {ref}({var}))"


def _map_loader(typ: t.Map) -> Fn:
    loaders = {k: loader(v) for k, v in typ.types.items()}

    def load_map(raw: Any) -> dict[str, Any]:
        return {k: loaders[k](v) for k, v in raw.items() if k in loaders}

    return load_map


def loader(typ: Any) -> Fn:
    """A function equal to ``typ.dynamo_load``."""
    ns: dict[str, Any] = {}
    expr = _wire_expr(typ, "w", ns)
    source = f"def load(w):\n    if w is None:\n        return None\n    return {expr}\n"
    fn: Fn = define(source, ns, "load", f"load {type(typ).__name__}")
    return fn


# -- dumps ------------------------------------------------------------------------------------


def dumper(typ: Any) -> Fn:
    """A function equal to ``typ.dynamo_dump``."""
    if _exact(typ, t.String, t.Boolean):
        tag = typ.backing_type
        return lambda v: None if v is None else {tag: v}
    if _exact(typ, t.Integer, t.Number):
        return lambda v: None if v is None else {"N": str(v)}
    if _exact(typ, t.Float):
        return lambda v: None if v is None else {"N": repr(v)}
    if _exact(typ, t.UUID):
        return lambda v: None if v is None else {"S": str(v)}
    if _exact(typ, t.DateTime):

        def dump_datetime(v: Any) -> Any:
            if v is None:
                return None
            if v.tzinfo is not UTC:  # astimezone(UTC) of a UTC datetime is itself
                v = v.astimezone(UTC)
            return {"S": v.isoformat(timespec="microseconds")}

        return dump_datetime
    if _exact(typ, t.Set) and _exact(typ.inner, t.String, t.Binary):
        tag = typ.backing_type
        return lambda v: {tag: sorted(v)} if v else None
    if _exact(typ, t.Set) and _exact(typ.inner, t.Integer, t.Number):
        tag = typ.backing_type
        return lambda v: {tag: sorted([str(x) for x in v])} if v else None
    if _exact(typ, t.List):
        inner = dumper(typ.inner)
        null = {"NULL": True}

        def dump_list(v: Any) -> Any:
            if v is None:
                return None
            return {"L": [inner(x) or dict(null) for x in v]}

        return dump_list
    if _exact(typ, t.Map):
        dumpers = {k: dumper(v) for k, v in typ.types.items()}

        def dump_map(v: Any) -> Any:
            if v is None:
                return None
            out = {}
            for key, item in v.items():
                wire = dumpers[key](item)
                if wire is not None:
                    out[key] = wire
            return {"M": out}

        return dump_map
    fn: Fn = typ.dynamo_dump
    return fn


# -- checks -----------------------------------------------------------------------------------


def _fast_check(typ: Any) -> Fn | None:
    """A check of the common case that returns ``_SLOW`` when the reference must decide."""
    if _exact(typ, t.String):
        return lambda v: v if type(v) is str else _SLOW
    if _exact(typ, t.Boolean):
        return lambda v: v if type(v) is bool else _SLOW
    if _exact(typ, t.Integer):
        limit = _INT_LIMIT
        return lambda v: v if type(v) is int and -limit < v < limit else _SLOW
    if _exact(typ, t.Number):
        decimal_type = decimal.Decimal

        def check_number(v: Any) -> Any:
            # At most 38 characters (so digits), and the first digit's exponent far from
            # both ends of DynamoDB's range (1e-130 to below 1e126): exact in DYNAMO_CONTEXT.
            if (
                type(v) is decimal_type
                and v.is_finite()
                and -90 <= v.adjusted() <= 100
                and len(str(v)) <= 38
            ):
                return v
            return _SLOW

        return check_number
    if _exact(typ, t.Float):

        def check_float(v: Any) -> Any:
            if type(v) is float and (v == 0.0 or 1e-120 < abs(v) < 1e120):
                return v  # finite, and its repr (17 digits at most) fits DynamoDB
            return _SLOW

        return check_float
    if _exact(typ, t.DateTime):
        datetime_type = datetime.datetime

        def check_datetime(v: Any) -> Any:
            # Aware in UTC itself: astimezone(UTC) is the identity and cannot overflow.
            return v if type(v) is datetime_type and v.tzinfo is UTC else _SLOW

        return check_datetime
    if _exact(typ, t.Set):
        inner = _fast_check(typ.inner)
        if inner is None or typ.inner.validators:
            return None
        inner_check = inner

        def check_set(v: Any) -> Any:
            if type(v) is not set:
                return _SLOW
            for item in v:
                if item is None or inner_check(item) is not item:
                    return _SLOW
            return set(v)

        return check_set
    if _exact(typ, t.List):
        inner = _fast_check(typ.inner)
        if inner is None or typ.inner.validators:
            return None
        inner_check = inner

        def check_list(v: Any) -> Any:
            if type(v) is not list:
                return _SLOW
            for item in v:
                if item is not None and inner_check(item) is not item:
                    return _SLOW
            return list(v)

        return check_list
    if _exact(typ, t.Map):
        inner_checks = {}
        for key, inner_type in typ.types.items():
            found = _fast_check(inner_type)
            if found is None or inner_type.validators:
                return None
            inner_checks[key] = found

        def check_map(v: Any) -> Any:
            if type(v) is not dict:
                return _SLOW
            out: dict[str, Any] = {}
            for key, item in v.items():
                check = inner_checks.get(key)
                if check is None:
                    return _SLOW
                if item is None:
                    out[key] = None
                    continue
                checked = check(item)
                if checked is _SLOW:
                    return _SLOW
                out[key] = checked
            return out

        return check_map
    return None


class _Slow:
    """Marker: the fast check cannot decide; the type's own ``check`` does."""


_SLOW: Any = _Slow()


def checker(typ: Any) -> Fn:
    """A function equal to ``typ.check`` (for values that are not None)."""
    fast = _fast_check(typ)
    reference: Fn = typ.check
    if fast is None:
        return reference
    fast_check = fast
    if typ.validators:
        validate = typ._validate

        def check_validated(v: Any) -> Any:
            checked = fast_check(v)
            if checked is _SLOW:
                return reference(v)
            validate(checked)
            return checked

        return check_validated

    def check(v: Any) -> Any:
        checked = fast_check(v)
        return reference(v) if checked is _SLOW else checked

    return check


# -- sizes ------------------------------------------------------------------------------------


def _size_s(wire: Any) -> int:
    raw = wire["S"]
    return len(raw) if raw.isascii() else len(raw.encode("utf-8"))


def _size_n(wire: Any) -> int:
    return (len(wire["N"].lstrip("-").replace(".", "").lstrip("0")) + 1) // 2 + 1


def _size_ss(wire: Any) -> int:
    joined = "".join(wire["SS"])
    return len(joined) if joined.isascii() else len(joined.encode("utf-8"))


def sizer(typ: Any) -> Fn:
    """A function equal to ``types._attribute_size`` for this type's wire values."""
    reference = t._attribute_size
    if _exact(typ, t.List):
        inner = sizer(typ.inner)

        def size_list(wire: Any) -> int:
            if len(wire) != 1 or "L" not in wire:
                return reference(wire)
            total = 3
            for item in wire["L"]:
                total += 1 + inner(item)
            return total

        return size_list
    if _exact(typ, t.Map):
        inner_sizes = {k: sizer(v) for k, v in typ.types.items()}

        def size_map(wire: Any) -> int:
            if len(wire) != 1 or "M" not in wire:
                return reference(wire)
            total = 3
            for key, item in wire["M"].items():
                size = inner_sizes.get(key, reference)
                total += (len(key) if key.isascii() else len(key.encode("utf-8"))) + 1
                total += size(item)
            return total

        return size_map
    tag = typ.backing_type if _exact(typ, *_FIXED_TAG) else "*"
    fast = {"S": _size_s, "N": _size_n, "BOOL": lambda wire: 1, "SS": _size_ss}.get(tag)
    if fast is None:
        return reference
    fast_size = fast

    def size(wire: Any) -> int:
        if len(wire) != 1 or tag not in wire:
            return reference(wire)
        return int(fast_size(wire))

    return size


_FIXED_TAG = (t.String, t.Integer, t.Number, t.Float, t.Boolean, t.DateTime, t.UUID, t.Set)

# -- fused check, dump and size -------------------------------------------------------------
#
# A save needs, for each column, the checked value, its wire value and its size. The
# functions below produce all three in one generated pass for the common cases: the same
# tests as _fast_check, the wire values of dumper and the sizes of sizer, inline.

# A number's size counted from its text, an upper bound of _size_n (which strips the sign,
# the point and leading zeros first): cheaper, and exact wherever it matters, because a save
# whose bounded size passes DynamoDB's limit is counted again exactly.
_N_SIZE = "(len(r) + 3) // 2"
_ENCODE_NS: dict[str, Any] = {
    "_str": str,
    "_int": int,
    "_bool": bool,
    "_list": list,
    "_set": set,
    "_dict": dict,
    "_sorted": sorted,
    "_Decimal": decimal.Decimal,
    "_datetime": datetime.datetime,
    "_UTC": UTC,
    "_LIMIT": _INT_LIMIT,
}


def _scalar(typ: Any, v: str) -> tuple[str, str, str] | None:
    """``(test, wire, size)`` source over the variable ``v`` (``r`` is a scratch name) for
    the fast case of a scalar type, or None when the type has no inline fast case."""
    if typ.validators:
        return None
    if _exact(typ, t.String):
        size = f"(len({v}) if {v}.isascii() else len({v}.encode('utf-8')))"
        return f"type({v}) is _str", f"{{'S': {v}}}", size
    if _exact(typ, t.Boolean):
        return f"type({v}) is _bool", f"{{'BOOL': {v}}}", "1"
    if _exact(typ, t.Integer):
        return (
            f"type({v}) is _int and -_LIMIT < {v} < _LIMIT",
            f"{{'N': (r := _str({v}))}}",
            _N_SIZE,
        )
    if _exact(typ, t.Number):
        test = (
            f"type({v}) is _Decimal and {v}.is_finite() and -90 <= {v}.adjusted() <= 100"
            f" and len(r := _str({v})) <= 38"
        )
        return test, "{'N': r}", _N_SIZE
    if _exact(typ, t.DateTime):
        test = f"type({v}) is _datetime and {v}.tzinfo is _UTC"
        # isoformat() shows the microseconds by itself when there are some: no keyword.
        iso = f"({v}.isoformat() if {v}.microsecond else {v}.isoformat(timespec='microseconds'))"
        return test, f"{{'S': (r := {iso})}}", "len(r)"
    return None


def _container_encoder(typ: Any) -> Fn | None:
    """``enc(v) -> (checked, wire, size)``, or ``_SLOW`` when the reference must decide, for
    a list, string set or map of inline scalars; None for any other type."""
    if typ.validators:
        return None
    if _exact(typ, t.List) and (parts := _scalar(typ.inner, "x")) is not None:
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
    elif _exact(typ, t.Set) and _exact(typ.inner, t.String) and not typ.inner.validators:
        body = [
            "    if type(v) is not _set:",
            "        return _SLOW",
            "    for x in v:",
            "        if type(x) is not _str:",
            "            return _SLOW",
            "    if not v:",
            "        return _set(), None, 0",
            "    out = _sorted(v)",
            "    j = ''.join(out)",
            "    return _set(v), {'SS': out}, len(j) if j.isascii() else len(j.encode('utf-8'))",
        ]
    elif _exact(typ, t.Map) and all(_scalar(inner, "x") for inner in typ.types.values()):
        body = [  # each value is checked as it is, so the checked map is a copy
            "    if type(v) is not _dict:",
            "        return _SLOW",
            "    out = {}",
            "    s = 3",
            "    for k, x in v.items():",
        ]
        keyword = "if"
        for key, inner in typ.types.items():
            test, wire, size = _scalar(inner, "x") or ("", "", "")
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
        body += ["        else:", "            return _SLOW", "    return _dict(v), {'M': out}, s"]
    else:
        return None
    ns = {**_ENCODE_NS, "_SLOW": _SLOW}
    source = "def enc(v):\n" + "\n".join(body) + "\n"
    fn: Fn = define(source, ns, "enc", f"encode {type(typ).__name__}")
    return fn


# -- per model --------------------------------------------------------------------------------


class CompiledModel:
    """The compiled functions of one model: whole-object fill, per-column check/dump/size."""

    def __init__(self, model: type[BaseModel]) -> None:
        meta: Any = model.Meta
        self.model = model
        self.columns = list(meta.columns)
        self.load = {c.name: loader(c.type) for c in self.columns}
        self.dump = {c.name: dumper(c.type) for c in self.columns}
        self.check = {c.name: checker(c.type) for c in self.columns}
        self.size = {c.name: sizer(c.type) for c in self.columns}
        # (name, dynamo name, check, dump) of the key columns, hash key first.
        self.keys = [
            (c.name, c.dynamo_name, self.check[c.name], self.dump[c.name]) for c in meta.keys
        ]
        self.columns_by_name = {c.name: (c, c.dynamo_name) for c in self.columns}
        # (name, dynamo name) of the columns a save diffs: neither key nor version.
        self.plain = [
            (c.name, c.dynamo_name)
            for c in self.columns
            if not any(c is k for k in meta.keys) and c is not meta.version
        ]
        self.plain_names = frozenset(name for name, _ in self.plain)
        self.fill_all, self.new_from = self._generate()
        self._item_size = self._generate_size()
        # What a save's item holds besides the columns it encodes: the key and the version.
        frame = [c for c in self.columns if c.name not in self.plain_names]
        # Their most bytes in an item DynamoDB accepts: a key value has at most 2048 bytes,
        # a number (the version) at most 21.
        self.frame_bound = sum(
            len(c.dynamo_name.encode("utf-8")) + (21 if c is meta.version else 2048) for c in frame
        )
        self.encode = self._generate_encode()
        # The version check of a new object (conditions are never changed once built).
        self.version_absent = None if meta.version is None else NotExists(meta.version)
        self.key = self._generate_key()

    def _generate_key(self) -> Fn:
        """``key(values)``: the key's wire values, or None when a key value is missing, empty
        or refused (the reference then says which, in its own words)."""
        ns: dict[str, Any] = {"_str": str}
        lines = ["def key(values):", "    get = values.get"]
        out = []
        for i, (name, dynamo_name, check, dump) in enumerate(self.keys):
            lines.append(f"    v = get({name!r})")
            typ = self.columns_by_name[name][0].type
            if _exact(typ, t.String) and not typ.validators:  # the usual key: a plain string
                lines += ["    if type(v) is not _str or not v:", "        return None"]
                lines.append(f"    w{i} = {{'S': v}}")
            else:
                lines += [
                    "    if v is None:",
                    "        return None",
                    "    try:",
                    f"        w{i} = {_ref(ns, dump)}({_ref(ns, check)}(v))",
                    "    except Exception:",
                    "        return None",
                    f"    if w{i} is None or w{i}.get('S') == '' or w{i}.get('B') == b'':",
                    "        return None",
                ]
            out.append(f"{dynamo_name!r}: w{i}")
        lines.append(f"    return {{{', '.join(out)}}}")
        fn: Fn = define("\n".join(lines) + "\n", ns, "key", f"{self.model.__name__}.key")
        return fn

    def item_size(self, item: Mapping[str, Any]) -> int:
        """``types.wire_size(item)`` for an item of this model's columns."""
        try:
            size = self._item_size(item)
        except Exception:  # an unexpected value: the reference decides (or raises)
            size = None
        return t.wire_size(item) if size is None else int(size)

    def _generate_size(self) -> Fn:
        """``item_size`` of an item of the model's columns (None for any other attribute)."""
        ns: dict[str, Any] = {"_str": str}
        lines = ["def item_size(item):", "    total = seen = 0", "    get = item.get"]
        for column in self.columns:
            dynamo_name = column.dynamo_name
            name_size = len(dynamo_name.encode("utf-8"))
            typ = column.type
            tag = typ.backing_type if _exact(typ, *_FIXED_TAG) else "*"
            lines += [f"    w = get({dynamo_name!r})", "    if w is not None:", "        seen += 1"]
            if tag in ("S", "N"):
                lines.append(f"        r = w.get({tag!r}) if len(w) == 1 else None")
                lines.append("        if type(r) is not _str:")
                lines.append(f"            total += {name_size} + {_ref(ns, sizer(typ))}(w)")
                if tag == "S":
                    size = "(len(r) if r.isascii() else len(r.encode('utf-8')))"
                else:
                    size = "(len(r.lstrip('-').replace('.', '').lstrip('0')) + 1) // 2 + 1"
                lines.append(f"        else:\n            total += {name_size} + {size}")
            else:
                lines.append(f"        total += {name_size} + {_ref(ns, sizer(typ))}(w)")
        lines += ["    if seen != len(item):", "        return None", "    return total"]
        source = "\n".join(lines) + "\n"
        fn: Fn = define(source, ns, "item_size", f"{self.model.__name__}.item_size")
        return fn

    def _generate_encode(self) -> Callable[[Mapping[str, Any], Any], Any]:
        """``encode(values, wanted)``: for the plain columns named in ``wanted``, in one
        generated pass, ``(checked, columns, wires, removes, bound, acted)``: each column's
        checked value (by name); the columns with a wire value and those wire values, and the
        columns without, in column order; a bound of the bytes they add to the item; and the
        names of the columns holding an update action, left out of the rest. ``None`` when
        some value is refused (the reference then builds the error).

        Equals ``check_values``, then ``dump`` of those columns, and ``item_size`` or more
        (numbers are counted by the length of their text, see ``_N_SIZE``): the fast cases
        are inline (see :func:`_scalar`, :func:`_container_encoder`), and every other value
        goes through the compiled check, dump and size of its column.
        """
        ns: dict[str, Any] = {
            **_ENCODE_NS,
            "_SLOW": _SLOW,
            "_Refused": marshmallow.ValidationError,
            "_Action": Action,
        }
        lines = [
            "def encode(values, wanted):",
            "    checked = {}",
            "    size = 0",
            "    acted = []",
            "    columns = []",
            "    wires = []",
            "    removes = []",
            "    get = values.get",
            "    try:",
            "        pass  # a model may have no plain columns",
        ]
        for column in self.columns:
            name = column.name
            if name not in self.plain_names:
                continue
            n, col = repr(name), _ref(ns, column)
            name_size = len(column.dynamo_name.encode("utf-8"))
            # A column whose wire may be None (an empty set) is set or removed by its value.
            place = [
                "                if w is None:",
                f"                    removes.append({col})",
                "                else:",
                f"                    columns.append({col})",
                "                    wires.append(w)",
                f"                    size += {name_size} + s",
            ]
            lines += [
                f"        if {n} in wanted:",
                f"            v = get({n})",
                "            if v is None:",
                f"                checked[{n}] = None",
                f"                removes.append({col})",
            ]
            if (parts := _scalar(column.type, "v")) is not None:
                test, wire, size = parts
                lines += [
                    f"            elif {test}:",
                    f"                checked[{n}] = v",
                    f"                columns.append({col})",
                    f"                wires.append({wire})",
                    f"                size += {name_size} + {size}",
                ]
            elif (encoder := _container_encoder(column.type)) is not None:
                lines += [
                    f"            elif (e := {_ref(ns, encoder)}(v)) is not _SLOW:",
                    f"                checked[{n}], w, s = e",
                    *place,
                ]
            check, dump = _ref(ns, self.check[name]), _ref(ns, self.dump[name])
            lines += [
                "            elif isinstance(v, _Action):",
                f"                acted.append({n})",
                "            else:",
                f"                c = checked[{n}] = {check}(v)",
                f"                w = {dump}(c)",
                f"                s = 0 if w is None else {_ref(ns, self.size[name])}(w)",
                *place,
            ]
        lines += [
            "    except _Refused:",
            "        return None",
            "    return checked, columns, wires, removes, size, acted",
        ]
        source = "\n".join(lines) + "\n"
        fn: Callable[[Mapping[str, Any], Any], Any] = define(
            source, ns, "encode", f"{self.model.__name__}.encode"
        )
        return fn

    def _generate(self) -> tuple[Callable[[Any, Mapping[str, Any]], bool], Fn]:
        ns: dict[str, Any] = {"_set": set}
        lines_get, lines_load, values, snapshot = [], [], [], []
        for i, column in enumerate(self.columns):
            lines_get.append(f"    w{i} = get({column.dynamo_name!r})")
            expr = _wire_expr(column.type, f"w{i}", ns)
            lines_load.append(f"        v{i} = None if w{i} is None else {expr}")
            values.append(f"{column.name!r}: v{i}")
            snapshot.append(f"{column.dynamo_name!r}: w{i}")
        body = "\n".join(
            [
                "    get = item.get",
                *lines_get,
                "    try:",
                *lines_load,
                "    except Exception:",
                "        return None",
                f"    return {{{', '.join(values)}}}, {{{', '.join(snapshot)}}}",
            ]
        )
        source = f"def decode(item):\n{body}\n"
        decode = define(source, ns, "decode", f"{self.model.__name__}.decode")
        model = self.model

        def fill_all(obj: Any, item: Mapping[str, Any]) -> bool:
            """Fill ``obj`` from a whole item; False when the reference path must decide."""
            decoded = decode(item)
            if decoded is None:
                return False
            obj._sm_values.update(decoded[0])
            obj._sm_snapshot = decoded[1]
            obj._sm_touched = set()
            return True

        def new_from(item: Mapping[str, Any]) -> Any:
            """A new object filled from a whole item, or None when the reference must decide."""
            decoded = decode(item)
            if decoded is None:
                return None
            obj = model.__new__(model)
            obj._sm_values, obj._sm_snapshot = decoded
            obj._sm_touched = set()
            return obj

        return fill_all, new_from

    def check_values(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """``schema.check_values`` for valid values; None when some value is refused (the
        reference then builds the error listing every bad column)."""
        checks = self.check
        checked: dict[str, Any] = {}
        try:
            for name, value in values.items():
                checked[name] = None if value is None else checks[name](value)
        except marshmallow.ValidationError:
            return None
        return checked


def compiled(model: type[BaseModel]) -> CompiledModel:
    """The model's compiled functions, built on first use and kept on the model class."""
    found = model.__dict__.get("_sm_compiled")
    if found is None:
        found = CompiledModel(model)
        model._sm_compiled = found  # type: ignore[attr-defined]
    assert isinstance(found, CompiledModel)
    return found

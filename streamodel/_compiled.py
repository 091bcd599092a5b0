"""Per-model compiled functions: a whole object's load, key, encode and size in one pass each.

Built once per model from the per-type pieces of :mod:`streamodel._typegen` (themselves
generated from each type's declaration in :mod:`streamodel.types`) and the sizes of
:mod:`streamodel._wire`; this module knows no type by name. Each function equals the
reference path of :mod:`streamodel._diff` and :mod:`streamodel.schema` for the values it
takes, and steps aside (``None``) for any other, so the reference decides and errors are
its own. ``tests/unit/test_compiled.py`` holds both paths equal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from streamodel._marshmallow import marshmallow
from streamodel._source import define
from streamodel._typegen import (
    checker,
    dumper,
    encoder,
    inline,
    load_expr,
    loader,
    namespace,
    ref,
    scalar_of,
    sizer,
)
from streamodel._wire import SIZE, wire_size
from streamodel.actions import Action
from streamodel.columns import Column
from streamodel.conditions import NotExists
from streamodel.entities import shared
from streamodel.types import Integer, String
from streamodel.upgrades import SchemaVersions

if TYPE_CHECKING:
    from streamodel.models import BaseModel

# checker, dumper, loader and sizer are the per-type functions the model's are built from.
__all__ = ["CompiledModel", "checker", "compiled", "define", "dumper", "loader", "sizer"]

Fn = Callable[[Any], Any]


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
        # Schema versions (see streamodel.upgrades): a model at version > 1 writes its version
        # with every save, as one more SET of this stand-in column (never one of the model's
        # columns, so neither a diff entry nor a value of the object).
        self.versions = SchemaVersions(model)
        self.schema_column: Column | None = None
        if self.versions.writes:
            self.schema_column = Column(Integer, name=self.versions.attribute)
            self.schema_column.name = f"Meta.schema_version_attribute {self.versions.attribute!r}"
            self.schema_column.model = model
        # Entities of a shared table (see streamodel.entities) write their entity name with
        # every new item, the same way: one more SET of a stand-in column.
        self.entity_column: Column | None = None
        self.entity_wire: dict[str, str] | None = None
        if shared(model):
            self.entity_wire = {"S": meta.entity}
            self.entity_column = Column(String, name=meta.entity_attribute)
            self.entity_column.name = f"Meta.entity_attribute {meta.entity_attribute!r}"
            self.entity_column.model = model
        # The decode of an item as it is stored, with no version logic (``_diff`` runs it on
        # items at the model's version). ``fill_all`` and ``new_from`` are the read path's
        # first try: for a model at version 1 the same functions, stepping aside (False,
        # None) for an item carrying a version; for a model with upgrades they always step
        # aside, so that every item goes through its upgrades first (``_diff.fill_whole``).
        self.fill_plain, self.new_plain = self._generate()
        self.fill_all: Callable[[Any, Mapping[str, Any]], bool]
        self.new_from: Fn
        if self.versions.writes:
            self.fill_all, self.new_from = _never_fill, _never_new
        else:
            self.fill_all, self.new_from = self.fill_plain, self.new_plain
        self._item_size = self._generate_size()
        # What a save's item holds besides the columns it encodes: the key and the version.
        frame = [c for c in self.columns if c.name not in self.plain_names]
        # Their most bytes in an item DynamoDB accepts: a key value has at most 2048 bytes,
        # a number (the version) at most 21.
        self.frame_bound = sum(
            len(c.dynamo_name.encode("utf-8")) + (21 if c is meta.version else 2048) for c in frame
        )
        if self.schema_column is not None:
            self.frame_bound += len(self.versions.attribute.encode("utf-8")) + 21
        if self.entity_column is not None:
            self.frame_bound += len(meta.entity_attribute.encode("utf-8")) + len(
                meta.entity.encode("utf-8")
            )
        self.encode = self._generate_encode()
        # The version check of a new object (conditions are never changed once built).
        self.version_absent = None if meta.version is None else NotExists(meta.version)
        self.key = self._generate_key()

    def _generate_key(self) -> Fn:
        """``key(values)``: the key's wire values, or None when a key value is missing, empty
        or refused (the reference then says which, in its own words)."""
        ns = namespace()
        lines = ["def key(values):", "    get = values.get"]
        out = []
        for i, (name, dynamo_name, check, dump) in enumerate(self.keys):
            typ = self.columns_by_name[name][0].type
            tag = typ.backing_type
            lines += [f"    v = get({name!r})", "    if v is None:", "        return None"]
            if (fast := scalar_of(typ, ns)) is not None and not typ.validators:
                # The usual key (a plain string, a number) inline; any other value below.
                raw = fast.dump.format(v="v", r="r")
                lines += [f"    if {fast.check.format(v='v', r='r')}:", f"        r = {raw}"]
                if tag in ("S", "B"):  # DynamoDB refuses empty key values
                    lines += ["        if not r:", "            return None"]
                lines += [f"        w{i} = {{{tag!r}: r}}", "    else:"]
                indent = "    "
            else:
                indent = ""
            lines += [
                f"{indent}    try:",
                f"{indent}        w{i} = {ref(ns, dump)}({ref(ns, check)}(v))",
                f"{indent}    except Exception:",
                f"{indent}        return None",
                f"{indent}    if w{i} is None or w{i}.get('S') == '' or w{i}.get('B') == b'':",
                f"{indent}        return None",
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
        return wire_size(item) if size is None else int(size)

    def _generate_size(self) -> Fn:
        """``item_size`` of an item of the model's columns (None for any other attribute):
        each column's size of its type's tag inline (see ``_wire.SIZE``)."""
        ns = namespace()
        lines = ["def item_size(item):", "    total = seen = 0", "    get = item.get"]
        for column in self.columns:
            name_size = len(column.dynamo_name.encode("utf-8"))
            tag = column.type.backing_type
            lines += [f"    w = get({column.dynamo_name!r})", "    if w is not None:"]
            lines.append("        seen += 1")
            if tag in SIZE:
                size = SIZE[tag].format(r="r")
                lines.append(f"        r = w.get({tag!r}) if len(w) == 1 else None")
                lines.append(f"        total += {name_size} + (_size(w) if r is None else {size})")
            else:
                lines.append(f"        total += {name_size} + _size(w)")
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
        (numbers are counted by the length of their text, see ``_wire.N_SIZE_BOUND``): the
        fast cases are inline (see ``_typegen.inline`` and ``_typegen.encoder``), and every
        other value goes through the compiled check, dump and size of its column.
        """
        ns = namespace(_Refused=marshmallow.ValidationError, _Action=Action)
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
            n, col = repr(name), ref(ns, column)
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
            if (parts := inline(column.type, "v", ns)) is not None:
                test, wire, size = parts
                lines += [
                    f"            elif {test}:",
                    f"                checked[{n}] = v",
                    f"                columns.append({col})",
                    f"                wires.append({wire})",
                    f"                size += {name_size} + {size}",
                ]
            elif (encode := encoder(column.type)) is not None:
                lines += [
                    f"            elif (e := {ref(ns, encode)}(v)) is not _SLOW:",
                    f"                checked[{n}], w, s = e",
                    *place,
                ]
            check, dump = ref(ns, self.check[name]), ref(ns, self.dump[name])
            lines += [
                "            elif isinstance(v, _Action):",
                f"                acted.append({n})",
                "            else:",
                f"                c = checked[{n}] = {check}(v)",
                f"                w = {dump}(c)",
                f"                s = 0 if w is None else {ref(ns, self.size[name])}(w)",
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
        ns = namespace()
        lines_get, lines_load, values, snapshot = [], [], [], []
        if not self.versions.writes:
            # An item of a version-1 model normally has no version attribute; one that has
            # it goes the way that checks it (a newer model may have written it).
            attribute = self.versions.attribute
            lines_get += [f"    if get({attribute!r}) is not None:", "        return None"]
        for i, column in enumerate(self.columns):
            lines_get.append(f"    w{i} = get({column.dynamo_name!r})")
            expr = load_expr(column.type, f"w{i}", ns)
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


def _never_fill(obj: Any, item: Mapping[str, Any]) -> bool:
    return False


def _never_new(item: Mapping[str, Any]) -> Any:
    return None


def compiled(model: type[BaseModel]) -> CompiledModel:
    """The model's compiled functions, built on first use and kept on the model class."""
    found = model.__dict__.get("_sm_compiled")
    if found is None:
        found = CompiledModel(model)
        model._sm_compiled = found  # type: ignore[attr-defined]
    assert isinstance(found, CompiledModel)
    return found

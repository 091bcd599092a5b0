"""Schema versions: declaration checks, the pure upgrade of raw items, and what a save of an
upgraded object writes (requests only; the stored items are checked on DynamoDB Local in
tests/integration/test_schema_versions_local.py)."""

from __future__ import annotations

import decimal
from typing import Any

import pytest

import streamodel
from streamodel import Column, Integer, Set, String, new_base
from streamodel._diff import fill, load_new, plan_save
from streamodel.exceptions import InvalidModelError, SchemaVersionError, UndecodableItemError
from streamodel.models import new_instance
from streamodel.stream.records import UndecodableRecordError, decode_record
from streamodel.upgrades import as_current, schema_versions
from streamodel.writes import put, save

Base = new_base()


def split_name(item: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2: ``fullname`` becomes ``first`` and ``last``."""
    first, _, last = item.pop("fullname").partition(" ")
    item["first"], item["last"] = first, last
    return item


def scale_points(item: dict[str, Any]) -> dict[str, Any]:
    """v2 -> v3: ``points`` becomes ``score`` (ten times), ``legacy`` is dropped."""
    item["score"] = item.pop("points", decimal.Decimal(0)) * 10
    item.pop("legacy", None)
    return item


class Person(Base):
    class Meta:
        schema_version = 3
        upgrades = {1: split_name, 2: scale_points}

    id = Column(String, hash_key=True)
    first = Column(String)
    last = Column(String)
    score = Column(Integer)
    tags = Column(Set(String))
    legacy = Column(String)


class Plain(Base):
    id = Column(String, hash_key=True)
    name = Column(String)


V1 = {
    "id": {"S": "p1"},
    "fullname": {"S": "Ada Lovelace"},
    "points": {"N": "4"},
    "tags": {"SS": ["a", "b"]},
    "legacy": {"S": "old"},
}
V2 = {
    "id": {"S": "p2"},
    "first": {"S": "Alan"},
    "last": {"S": "Turing"},
    "points": {"N": "7"},
    "_schema": {"N": "2"},
}
V3 = {
    "id": {"S": "p3"},
    "first": {"S": "Grace"},
    "last": {"S": "Hopper"},
    "score": {"N": "90"},
    "_schema": {"N": "3"},
}


def model(**meta: Any) -> type[Any]:
    """A fresh model whose Meta holds ``meta``."""
    attrs = {"Meta": type("Meta", (), meta), "id": Column(String, hash_key=True)}
    return type("Versioned", (Base,), attrs)


# -- declaration ------------------------------------------------------------------------------


def test_defaults_are_version_one_without_upgrades() -> None:
    """A model without the options is at version 1 with no upgrades and the default attribute."""
    meta: Any = Plain.Meta
    assert (meta.schema_version, meta.upgrades, meta.schema_version_attribute) == (1, {}, "_schema")
    assert Person.Meta.schema_version == 3  # type: ignore[attr-defined]
    assert list(Person.Meta.upgrades) == [1, 2]  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", [0, -1, "2", 2.0, True, None])
def test_schema_version_must_be_a_positive_int(version: Any) -> None:
    """schema_version is an int >= 1; the error names the model and the option."""
    with pytest.raises(InvalidModelError, match=r"Versioned\.Meta\.schema_version"):
        model(schema_version=version)


@pytest.mark.parametrize(
    "upgrades",
    [
        {},  # no chain at all
        {1: split_name},  # missing 2
        {2: scale_points},  # missing 1
        {1: split_name, 2: scale_points, 3: split_name},  # one too many
        {"1": split_name, 2: scale_points},  # not int keys
        {True: split_name, 2: scale_points},  # a bool is not a version
    ],
)
def test_upgrades_must_be_the_complete_chain(upgrades: Any) -> None:
    """A model at version 3 needs exactly upgrades 1 and 2."""
    with pytest.raises(InvalidModelError, match=r"Versioned\.Meta\.upgrades.*\[1, 2\]"):
        model(schema_version=3, upgrades=upgrades)


def test_version_above_one_without_upgrades_is_refused() -> None:
    """schema_version = 2 with no upgrades leaves version-1 items no way up: refused."""
    with pytest.raises(InvalidModelError, match=r"Versioned\.Meta\.upgrades"):
        model(schema_version=2)


def test_upgrades_must_be_callable_and_a_mapping() -> None:
    """Each upgrade is a function; upgrades is a dict."""
    with pytest.raises(InvalidModelError, match=r"Versioned\.Meta\.upgrades\[1\] must be"):
        model(schema_version=2, upgrades={1: "split"})
    with pytest.raises(InvalidModelError, match=r"Versioned\.Meta\.upgrades must be a dict"):
        model(schema_version=2, upgrades=[split_name])
    with pytest.raises(InvalidModelError, match=r"Versioned\.Meta\.upgrades"):
        model(upgrades={1: split_name})  # version 1 takes no upgrades


def test_version_attribute_is_checked_and_may_not_be_a_column() -> None:
    """The attribute is a non-empty string, and no column may be stored under its name."""
    with pytest.raises(InvalidModelError, match=r"Versioned\.Meta\.schema_version_attribute"):
        model(schema_version_attribute="")
    with pytest.raises(InvalidModelError, match=r"Clash\.Meta\.schema_version_attribute.*'s'"):
        type(
            "Clash",
            (Base,),
            {"id": Column(String, hash_key=True), "s": Column(String)}
            | {"Meta": type("Meta", (), {"schema_version_attribute": "s"})},
        )
    with pytest.raises(InvalidModelError, match=r"column 'kind' is stored as '_schema'"):
        type(
            "Clash",
            (Base,),
            {"id": Column(String, hash_key=True), "kind": Column(String, name="_schema")},
        )
    custom = model(schema_version_attribute="v")
    assert custom.Meta.schema_version_attribute == "v"


def test_schema_version_error_is_exported_and_undecodable() -> None:
    """SchemaVersionError is a public UndecodableItemError."""
    assert streamodel.SchemaVersionError is SchemaVersionError
    assert issubclass(SchemaVersionError, UndecodableItemError)


# -- the pure upgrade -------------------------------------------------------------------------


def test_upgrade_runs_the_chain_from_the_stored_version() -> None:
    """A v1 item runs both upgrades, a v2 item the second, a v3 item none (the same item)."""
    versions = schema_versions(Person)
    up1 = versions.upgrade(V1)
    assert up1 == {
        "id": {"S": "p1"},
        "first": {"S": "Ada"},
        "last": {"S": "Lovelace"},
        "score": {"N": "40"},
        "tags": up1["tags"],
        "_schema": {"N": "3"},
    }
    assert sorted(up1["tags"]["SS"]) == ["a", "b"]
    assert versions.upgrade(V2)["score"] == {"N": "70"}
    assert versions.upgrade(V3) is V3
    assert V1["fullname"] == {"S": "Ada Lovelace"}  # the stored item is not touched


def test_upgrades_see_type_deserializer_values() -> None:
    """An upgrade gets Decimal numbers, sets, Binary, maps and lists, and no version."""
    seen: dict[str, Any] = {}

    def look(item: dict[str, Any]) -> dict[str, Any]:
        seen.update(item)
        return item

    Looked = model(schema_version=2, upgrades={1: look})
    item = {
        "id": {"S": "x"},
        "n": {"N": "1.5"},
        "ss": {"SS": ["a"]},
        "b": {"B": b"\x00"},
        "m": {"M": {"k": {"L": [{"N": "2"}, {"BOOL": True}]}}},
        "_schema": {"N": "1"},
    }
    upgraded = schema_versions(Looked).upgrade(item)
    assert seen["n"] == decimal.Decimal("1.5") and seen["ss"] == {"a"}
    assert bytes(seen["b"].value) == b"\x00"
    assert seen["m"] == {"k": [decimal.Decimal(2), True]}
    assert "_schema" not in seen
    assert upgraded["b"] == {"B": b"\x00"} and upgraded["_schema"] == {"N": "2"}


def test_none_and_empty_sets_mean_absent() -> None:
    """An upgrade that sets None or an empty set drops the attribute."""
    Dropper = model(schema_version=2, upgrades={1: lambda i: {**i, "a": None, "s": set()}})
    assert schema_versions(Dropper).upgrade({"id": {"S": "x"}, "a": {"S": "y"}}) == {
        "id": {"S": "x"},
        "_schema": {"N": "2"},
    }


def test_newer_item_names_its_key_and_both_versions() -> None:
    """An item from a newer model version is refused, naming the key and both versions."""
    newer = {**V3, "_schema": {"N": "4"}}
    with pytest.raises(SchemaVersionError) as caught:
        schema_versions(Person).upgrade(newer)
    error = caught.value
    assert error.key == {"id": "p3"} and (error.stored_version, error.model_version) == (4, 3)
    assert "Person item {'id': 'p3'}" in str(error)
    assert "stored at schema version 4, the model is at version 3" in str(error)
    assert error.model is Person and error.column == "_schema" and error.item == newer


def test_a_version_one_model_refuses_newer_items_too() -> None:
    """A model with no versions refuses an item written by a newer version of it."""
    with pytest.raises(SchemaVersionError, match=r"stored at schema version 2.*version 1"):
        load_new(Plain, {"id": {"S": "x"}, "name": {"S": "n"}, "_schema": {"N": "2"}})
    obj = load_new(Plain, {"id": {"S": "x"}, "name": {"S": "n"}, "_schema": {"N": "1"}})
    assert obj.name == "n"  # type: ignore[attr-defined]


def test_a_raising_upgrade_names_the_step_key_and_versions() -> None:
    """An upgrade that raises gives SchemaVersionError, its exception the cause."""
    broken = {"id": {"S": "b"}, "points": {"N": "1"}}  # no fullname: split_name fails
    with pytest.raises(SchemaVersionError) as caught:
        schema_versions(Person).upgrade(broken)
    error = caught.value
    assert isinstance(error.__cause__, KeyError)
    assert (error.stored_version, error.model_version, error.key) == (1, 3, {"id": "b"})
    assert "upgrade 1 -> 2 (split_name) raised KeyError" in str(error)


@pytest.mark.parametrize(
    ("upgrade", "message"),
    [
        (lambda i: None, "returned NoneType, not the item"),
        (lambda i: {**i, "f": 1.5}, "cannot store in 'f'.*never float"),
        (lambda i: {**i, "id": "other"}, "changed 'id'.*cannot change key"),
    ],
)
def test_upgrades_that_return_bad_items_are_refused(upgrade: Any, message: str) -> None:
    """An upgrade returning no item, a float, or another key is refused clearly."""
    Bad = model(schema_version=2, upgrades={1: upgrade})
    with pytest.raises(SchemaVersionError, match=message):
        schema_versions(Bad).upgrade({"id": {"S": "x"}})


@pytest.mark.parametrize("wire", [{"S": "3"}, {"N": "0"}, {"N": "1.5"}, "3"])
def test_malformed_versions_are_refused(wire: Any) -> None:
    """A version attribute that is not a positive whole number is refused."""
    with pytest.raises(SchemaVersionError, match="not a schema version"):
        schema_versions(Person).upgrade({**V3, "_schema": wire})


# -- reads -----------------------------------------------------------------------------------


def test_whole_reads_hold_upgraded_values_and_snapshot_the_stored_item() -> None:
    """fill and load_new upgrade; the snapshot is the stored item, the changed columns set."""
    for obj in (load_new(Person, V1), new_instance(Person)):
        if obj._sm_snapshot is None:
            fill(obj, V1)
        assert (obj.first, obj.last, obj.score, obj.legacy) == ("Ada", "Lovelace", 40, None)
        assert obj.tags == {"a", "b"}
        assert obj._sm_snapshot["legacy"] == {"S": "old"}
        assert obj._sm_snapshot["first"] is None and obj._sm_snapshot["_schema"] is None
        assert obj._sm_touched == {"first", "last", "score", "legacy"}


def test_projected_reads_are_not_upgraded() -> None:
    """A projected read (columns given) fills those columns as stored: no version known."""
    obj = new_instance(Person)
    fill(obj, {"id": {"S": "p"}, "first": {"S": "F"}}, [Person.id, Person.first])
    assert obj.first == "F" and obj._sm_touched == set()


# -- saves -----------------------------------------------------------------------------------


def sets(request: dict[str, Any]) -> dict[str, Any]:
    """Attribute name -> value SET by an UpdateItem, and the names REMOVEd."""
    names = request.get("ExpressionAttributeNames", {})
    values = request.get("ExpressionAttributeValues", {})
    out: dict[str, Any] = {}
    expression = request.get("UpdateExpression", "")
    set_part, _, remove_part = expression.partition(" REMOVE ")
    if set_part.startswith("REMOVE "):
        set_part, remove_part = "", set_part[len("REMOVE ") :]
    for clause in set_part.removeprefix("SET ").split(", "):
        if clause:
            name, value = clause.split("=")
            out[names.get(name, name)] = values[value]
    for name in filter(None, remove_part.split(", ")):
        out[names.get(name, name)] = "REMOVE"
    return out


def test_save_after_an_upgrade_writes_changed_columns_and_the_version(
    valid_request: Any,
) -> None:
    """Saving an upgraded object SETs the upgraded columns and the version, REMOVEs the
    columns the upgrades dropped, and leaves unchanged columns alone."""
    obj = load_new(Person, V1)
    request = save("Table", obj).request
    valid_request("dynamodb", "UpdateItem", request)
    assert sets(request) == {
        "first": {"S": "Ada"},
        "last": {"S": "Lovelace"},
        "score": {"N": "40"},
        "legacy": "REMOVE",
        "_schema": {"N": "3"},
    }
    assert "_schema" not in save("Table", obj).plan.diff  # type: ignore[union-attr]


def test_save_of_a_current_object_writes_no_version() -> None:
    """An object loaded at the current version writes only what changed, no version."""
    obj = load_new(Person, V3)
    assert save("Table", obj).plan.writes_nothing  # type: ignore[union-attr]
    obj.score = 91
    assert sets(save("Table", obj).request) == {"score": {"N": "91"}}


def test_a_v2_item_without_column_changes_still_writes_the_version() -> None:
    """An upgrade that changes no column still makes the next save write the version."""
    Quiet = model(schema_version=2, upgrades={1: lambda i: i})
    obj = load_new(Quiet, {"id": {"S": "q"}})
    assert sets(save("Table", obj).request) == {"_schema": {"N": "2"}}


def test_new_objects_write_the_version_and_version_one_models_do_not() -> None:
    """A new object of a versioned model writes its version; a version-1 model's requests
    and batch items carry no version attribute."""
    assert sets(save("Table", Person(id="n", first="F")).request)["_schema"] == {"N": "3"}
    assert "_schema" not in sets(save("Table", Plain(id="n", name="x")).request)
    assert put("Table", Person(id="n"))._diff is not None
    assert put("Table", Person(id="n")).request["_schema"] == {"N": "3"}
    assert "_schema" not in put("Table", Plain(id="n")).request


def test_a_projected_object_does_not_write_the_version() -> None:
    """An object that did not read the version (a projected read) never writes it: the
    item's other columns may still be in an older shape."""
    obj = new_instance(Person)
    fill(obj, {"id": {"S": "p"}, "first": {"S": "F"}}, [Person.id, Person.first])
    obj.first = "G"
    assert sets(save("Table", obj).request) == {"first": {"S": "G"}}


def test_a_saved_object_is_current_afterwards() -> None:
    """After a save the object knows the stored version: saving again writes nothing."""
    from streamodel._diff import mark_saved

    obj = load_new(Person, V2)
    plan = plan_save(obj, condition=None, atomic=False)
    mark_saved(plan)
    assert plan_save(obj, condition=None, atomic=False).writes_nothing


# -- stream records --------------------------------------------------------------------------


def record(event: str, old: Any = None, new: Any = None) -> dict[str, Any]:
    data: dict[str, Any] = {"Keys": {"id": (old or new)["id"]}, "SequenceNumber": "1"}
    data["ApproximateCreationDateTime"] = 1700000000
    if old is not None:
        data["OldImage"] = old
    if new is not None:
        data["NewImage"] = new
    return {"eventID": "e", "eventName": event, "dynamodb": data}


def test_both_images_of_a_record_are_upgraded() -> None:
    """A MODIFY from a v1 image to a v2 one gives two v3 objects; changed compares them."""
    new_image = {**V2, "id": V1["id"], "first": {"S": "Ada"}, "last": {"S": "King"}}
    change = decode_record(
        Person, record("MODIFY", V1, new_image), shard_id="s", sequence_number="1"
    )
    assert (change.old.first, change.old.last, change.old.score) == ("Ada", "Lovelace", 40)
    assert (change.new.first, change.new.last, change.new.score) == ("Ada", "King", 70)
    assert change.changed == ("last", "score", "tags")
    insert = decode_record(Person, record("INSERT", new=V1), shard_id="s", sequence_number="1")
    assert insert.changed == ("id", "first", "last", "score", "tags")
    assert as_current(Person, None) is None


def test_an_image_that_cannot_be_upgraded_makes_the_record_undecodable() -> None:
    """A newer image is an UndecodableRecordError naming the key and both versions."""
    newer = {**V3, "_schema": {"N": "9"}}
    with pytest.raises(UndecodableRecordError, match=r"\{'id': 'p3'\}.*version 9.*version 3"):
        decode_record(Person, record("INSERT", new=newer), shard_id="s", sequence_number="1")

"""Update actions: golden UpdateItem requests, values read back, refusals before sending."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from meaning import meaning, same_request, update

import streamodel
from streamodel import (
    JSON,
    Column,
    Integer,
    InvalidConditionError,
    List,
    Map,
    Set,
    String,
    add,
    add_to_set,
    append,
    delete_from_set,
    if_not_exists,
    prepend,
    remove,
)

Base = streamodel.new_base()


class Page(Base):
    id = Column(String, hash_key=True)
    views = Column(Integer)
    title = Column(String)
    tags = Column(Set(String))
    log = Column(List(Integer))
    meta = Column(Map(hits=Integer, owner=String, seen=List(String)))
    doc = Column(JSON)


def stored_page(**values: Any) -> Page:
    """A Page as if loaded from DynamoDB with exactly ``values`` stored."""
    from streamodel._diff import fill
    from streamodel.models import new_instance

    obj = new_instance(Page)
    cols = Page.Meta.columns_by_name  # type: ignore[attr-defined]
    fill(obj, {cols[k].dynamo_name: cols[k].type.dynamo_dump(v) for k, v in values.items()})
    return obj  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("column", "action", "expression", "values"),
    [
        ("views", add(2), "ADD #n0 :v0", {":v0": {"N": "2"}}),
        ("views", add(-3), "ADD #n0 :v0", {":v0": {"N": "-3"}}),
        ("tags", add_to_set("b", "a"), "ADD #n0 :v0", {":v0": {"SS": ["a", "b"]}}),
        ("tags", delete_from_set({"x"}), "DELETE #n0 :v0", {":v0": {"SS": ["x"]}}),
        (
            "log",
            append(1, 2),
            "SET #n0=list_append(if_not_exists(#n0, :v0), :v1)",
            {":v0": {"L": []}, ":v1": {"L": [{"N": "1"}, {"N": "2"}]}},
        ),
        (
            "log",
            prepend([0]),
            "SET #n0=list_append(:v1, if_not_exists(#n0, :v0))",
            {":v0": {"L": []}, ":v1": {"L": [{"N": "0"}]}},
        ),
        ("title", if_not_exists("x"), "SET #n0=if_not_exists(#n0, :v0)", {":v0": {"S": "x"}}),
        ("title", remove(), "REMOVE #n0", {}),
    ],
    ids=["add", "subtract", "add_to_set", "delete_from_set", "append", "prepend", "ine", "rm"],
)
def test_action_assigned_to_a_column(
    engine: Any, transport: Any, column: str, action: Any, expression: str, values: Any
) -> None:
    """An action assigned to a column renders its clause and asks for the result back."""
    page = Page(id="p")
    setattr(page, column, action)
    engine.save(page)
    expected: dict[str, Any] = {
        "TableName": "Page",
        "Key": {"id": {"S": "p"}},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": {"#n0": Page.Meta.columns_by_name[column].dynamo_name},  # type: ignore[attr-defined]
        "ReturnValues": "UPDATED_NEW",
    }
    if values:
        expected["ExpressionAttributeValues"] = values
    assert same_request(transport.only("UpdateItem"), expected)


def test_results_are_read_back_into_the_object(engine: Any, transport: Any) -> None:
    """After a save with actions the object holds what DynamoDB computed, known stored."""
    page = stored_page(id="p", views=4, title="t", tags={"a"})
    page.views = add(1)
    page.tags = delete_from_set("a")
    page.title = "u"
    transport.queue("UpdateItem", {"Attributes": {"views": {"N": "5"}, "title": {"S": "u"}}})
    engine.save(page)
    assert (page.views, page.title, page.tags) == (5, "u", None)
    assert page._sm_snapshot is not None
    assert page._sm_snapshot["views"] == {"N": "5"} and page._sm_snapshot["tags"] is None
    assert meaning(transport.only("UpdateItem"))["UpdateExpression"] == update(
        "SET #title = :u ADD #views :one DELETE #tags :a",
        u={"S": "u"},
        one={"N": "1"},
        a={"SS": ["a"]},
    )
    engine.save(page)  # known stored as it is: nothing more to send
    assert transport.operations() == ["UpdateItem"]


def test_object_saved_diff_has_the_computed_value(engine: Any, transport: Any) -> None:
    """before_save sees the action, object_saved the value DynamoDB computed."""
    seen: list[tuple[Any, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs["diff"]["views"])

    streamodel.signals.before_save.connect(receiver, sender=Page)
    streamodel.signals.object_saved.connect(receiver, sender=Page)
    try:
        page = stored_page(id="p", views=1)
        action = add(1)
        page.views = action
        transport.queue("UpdateItem", {"Attributes": {"views": {"N": "2"}}})
        engine.save(page)
    finally:
        streamodel.signals.before_save.disconnect(receiver, sender=Page)
        streamodel.signals.object_saved.disconnect(receiver, sender=Page)
    assert seen[0] == (1, action)
    assert seen[1] == (1, 2)


def test_nested_paths_and_all_new(engine: Any, transport: Any) -> None:
    """Paths inside documents SET/REMOVE in place; nested counters use if_not_exists; the
    whole item is read back (ALL_NEW) because nested results are partial."""
    page = stored_page(id="p", meta={"hits": 1}, doc={"a": [1, 2]})
    item = {"id": {"S": "p"}, "meta": {"M": {"hits": {"N": "2"}, "owner": {"S": "o"}}}}
    transport.queue("UpdateItem", {"Attributes": item})
    engine.save(
        page,
        actions={
            Page.meta["hits"]: add(1),
            Page.meta["owner"]: "o",
            Page.meta["seen"]: append("x"),
            Page.doc["a"][0]: remove(),
            Page.doc["b"]: {"c": None},
        },
    )
    assert same_request(
        transport.only("UpdateItem"),
        {
            "TableName": "Page",
            "Key": {"id": {"S": "p"}},
            "UpdateExpression": (
                "SET #n0.#n1=if_not_exists(#n0.#n1, :v0) + :v1, #n0.#n2=:v2, "
                "#n0.#n3=list_append(if_not_exists(#n0.#n3, :v3), :v4), #n4.#n5=:v5 "
                "REMOVE #n4.#n6[0]"
            ),
            "ExpressionAttributeNames": {
                "#n0": "meta",
                "#n1": "hits",
                "#n2": "owner",
                "#n3": "seen",
                "#n4": "doc",
                "#n5": "b",
                "#n6": "a",
            },
            "ExpressionAttributeValues": {
                ":v0": {"N": "0"},
                ":v1": {"N": "1"},
                ":v2": {"S": "o"},
                ":v3": {"L": []},
                ":v4": {"L": [{"S": "x"}]},
                ":v5": {"M": {"c": {"NULL": True}}},
            },
            "ReturnValues": "ALL_NEW",
        },
    )
    assert page.meta == {"hits": 2, "owner": "o"}
    assert page.doc is None  # not in the returned item: known absent


def test_sync_reads_the_whole_item(engine: Any, transport: Any) -> None:
    """save(sync=True) asks for ALL_NEW and fills every column from the stored item."""
    transport.queue(
        "UpdateItem", {"Attributes": {"id": {"S": "p"}, "title": {"S": "t"}, "views": {"N": "9"}}}
    )
    page = Page(id="p", title="t")
    engine.save(page, sync=True)
    assert transport.only("UpdateItem")["ReturnValues"] == "ALL_NEW"
    assert page.views == 9


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: {Page.title: add(1)}, r"Page\.title: add\(\) needs a number column"),
        (lambda: {Page.views: add("x")}, r"Page\.views: add\(\) takes a number"),
        (lambda: {Page.tags: add_to_set(5)}, r"Page\.tags: add_to_set\(\)"),
        (lambda: {Page.views: add_to_set("a")}, r"needs a Set column"),
        (lambda: {Page.tags: add_to_set()}, r"at least a value"),
        (lambda: {Page.log: append("x")}, r"Page\.log: append\(\)"),
        (lambda: {Page.title: append("x")}, r"needs a List column"),
        (lambda: {Page.meta["hits"]: "many"}, r"Page\.meta\['hits'\]"),
        (lambda: {Page.doc["a"]: add_to_set("x")}, r"top-level"),
        (lambda: {Page.id: "other"}, r"key columns cannot be updated"),
        (lambda: {"title": "x"}, r"maps column paths"),
        (lambda: {Page.meta: {}, Page.meta["hits"]: 1}, r"overlap"),
        (lambda: {Page.doc["a"]: 1, Page.doc["a"][0]: 2}, r"overlap"),
    ],
)
def test_bad_actions_refused_before_sending(
    engine: Any, transport: Any, build: Callable[[], Any], message: str
) -> None:
    """A bad operand, target or overlapping path raises InvalidConditionError naming the
    path, and nothing is sent."""
    with pytest.raises(InvalidConditionError, match=message):
        engine.save(Page(id="p"), actions=build())
    assert transport.calls == []


def test_action_overlapping_a_changed_column_refused(engine: Any, transport: Any) -> None:
    """A nested action on a column also changed on the object is refused (paths overlap)."""
    page = stored_page(id="p", meta={"hits": 1})
    page.meta = {"hits": 5}
    with pytest.raises(InvalidConditionError, match=r"Page\.meta and Page\.meta\['hits'\]"):
        engine.save(page, actions={Page.meta["hits"]: add(1)})
    assert transport.calls == []


def test_path_of_another_model_refused(engine: Any, transport: Any) -> None:
    """actions= keys must be paths of the saved object's model."""

    class Other(Base):
        id = Column(String, hash_key=True)
        views = Column(Integer)

    with pytest.raises(InvalidConditionError, match="not a column path of Page"):
        engine.save(Page(id="p"), actions={Other.views: add(1)})


def test_actions_in_a_transaction_leave_results_unknown(engine: Any, transport: Any) -> None:
    """A transaction returns no values: action columns read None afterwards, not stale."""
    page = stored_page(id="p", views=3, title="t")
    with engine.transaction() as tx:
        tx.save(page, actions={Page.views: add(1)})
    request = transport.only("TransactWriteItems")["TransactItems"][0]["Update"]
    assert meaning(request)["UpdateExpression"] == update("ADD #views :one", one={"N": "1"})
    assert "ReturnValues" not in request
    assert page.views is None and "views" not in (page._sm_snapshot or {})
    assert page.title == "t"


def test_batch_put_refuses_actions(engine: Any, transport: Any) -> None:
    """save(replace=True) cannot apply actions: refused by column, nothing sent."""
    page = Page(id="p")
    page.views = add(1)
    with pytest.raises(InvalidConditionError, match=r"\['views'\]"):
        engine.save(page, Page(id="q"), replace=True)
    assert transport.calls == []

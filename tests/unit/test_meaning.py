"""The request normaliser of ``meaning.py`` ignores spelling and sees meaning."""

from __future__ import annotations

from typing import Any

import pytest
from meaning import condition, meaning, same_request, update

SENT: dict[str, Any] = {
    "TableName": "User",
    "Key": {"id": {"S": "u1"}},
    "UpdateExpression": "SET #n0=:v0, #n1=:v1 REMOVE #n2",
    "ConditionExpression": (
        "(attribute_not_exists(#n0)) OR ((#n1 < :v1) AND (#n3 BETWEEN :v2 AND :v3))"
    ),
    "ExpressionAttributeNames": {"#n0": "name", "#n1": "age", "#n2": "email", "#n3": "score"},
    "ExpressionAttributeValues": {
        ":v0": {"S": "Ann"},
        ":v1": {"N": "18"},
        ":v2": {"N": "1"},
        ":v3": {"N": "9"},
    },
}


def respelled(**changes: Any) -> dict[str, Any]:
    """SENT renumbered, reordered and re-spaced, then ``changes`` applied."""
    request = {
        "TableName": "User",
        "Key": {"id": {"S": "u1"}},
        "UpdateExpression": "SET #age = :eighteen , #name = :ann  REMOVE #email",
        "ConditionExpression": "#score BETWEEN :one AND :nine AND #age < :eighteen"
        " OR attribute_not_exists( #name )",
        "ExpressionAttributeNames": {
            "#name": "name",
            "#age": "age",
            "#email": "email",
            "#score": "score",
        },
        "ExpressionAttributeValues": {
            ":ann": {"S": "Ann"},
            ":eighteen": {"N": "18"},
            ":one": {"N": "1"},
            ":nine": {"N": "9"},
        },
    }
    request.update(changes)
    return request


def test_spelling_does_not_matter() -> None:
    """Placeholder names and numbers, clause and operand order, spaces and redundant
    parentheses are spelling: the requests mean the same."""
    assert same_request(SENT, respelled())


@pytest.mark.parametrize(
    "changes",
    [
        {"Key": {"id": {"S": "u2"}}},
        {"UpdateExpression": "SET #age = :eighteen, #name = :ann REMOVE #score, #email"},
        {"UpdateExpression": "SET #age = :ann, #name = :eighteen REMOVE #email"},
        {"UpdateExpression": "SET #age = :eighteen, #name = :ann, #email = :one"},
        {
            "ConditionExpression": "#score BETWEEN :one AND :nine OR #age < :eighteen"
            " OR attribute_not_exists(#name)"
        },
        {
            "ConditionExpression": "#score BETWEEN :one AND :nine AND #age < :eighteen"
            " AND attribute_not_exists(#name)"
        },
        {
            "ConditionExpression": "#score BETWEEN :nine AND :one AND #age < :eighteen"
            " OR attribute_not_exists(#name)"
        },
        {
            "ConditionExpression": "#score BETWEEN :one AND :nine AND #age < :eighteen"
            " OR attribute_exists(#name)"
        },
        {
            "ConditionExpression": "NOT (#score BETWEEN :one AND :nine AND #age < :eighteen)"
            " OR attribute_not_exists(#name)"
        },
    ],
)
def test_meaning_matters(changes: dict[str, Any]) -> None:
    """Another key, value, attribute, action, operator or operand order of BETWEEN is
    another request."""
    assert not same_request(SENT, respelled(**changes))


def test_unused_or_undeclared_placeholders_fail() -> None:
    """DynamoDB rejects an unused declared placeholder and an undeclared one: so does
    ``meaning``."""
    unused = {**SENT, "ExpressionAttributeNames": {**SENT["ExpressionAttributeNames"], "#x": "x"}}
    with pytest.raises(AssertionError, match="declared"):
        meaning(unused)
    with pytest.raises(AssertionError, match="undeclared"):
        meaning({**SENT, "UpdateExpression": "SET #n9 = :v0"})


def test_hand_written_helpers_match_rendered_requests() -> None:
    """``condition`` and ``update`` read ``#name`` as the attribute ``name``."""
    assert meaning(SENT)["UpdateExpression"] == update(
        "SET #name = :a, #age = :b REMOVE #email", a={"S": "Ann"}, b={"N": "18"}
    )
    assert meaning(SENT)["ConditionExpression"] == condition(
        "attribute_not_exists(#name) OR (#age < :b AND #score BETWEEN :lo AND :hi)",
        b={"N": "18"},
        lo={"N": "1"},
        hi={"N": "9"},
    )
    assert (
        meaning(
            {"ProjectionExpression": "#a, #b", "ExpressionAttributeNames": {"#a": "x", "#b": "y"}}
        )["ProjectionExpression"]
        == meaning(
            {"ProjectionExpression": "#q,#p", "ExpressionAttributeNames": {"#p": "x", "#q": "y"}}
        )["ProjectionExpression"]
    )

"""Hypothesis fuzzing of the condition renderer and of the lean transport's wire round trip.

test_types.py already checks dump/load identity per type and the integration suite checks
random trees against DynamoDB Local; these add what neither covers: rendered expressions
never leak a raw attribute name or value and always pass botocore's validation, and every
wire value of every type survives the lean transport's JSON encoding and decoding unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from test_types import PROPERTY_CASES, _make

from streamodel import Column, Integer, String, new_base
from streamodel._render import Renderer
from streamodel.exceptions import InvalidConditionError
from streamodel.transport.answers import _restore
from streamodel.transport.lean import _ENCODER

Base = new_base()

# Reserved words, DynamoDB's own syntax characters and non-ASCII: none may reach the text.
EXOTIC = ["size", "name", "a.b", "#x", ":v", "x y", "ключ", "[0]", "and", "OR"]


class Fuzzed(Base):
    id = Column(String, hash_key=True)
    s0 = Column(String, name=EXOTIC[0])
    s1 = Column(String, name=EXOTIC[1])
    s2 = Column(String, name=EXOTIC[2])
    s3 = Column(String, name=EXOTIC[3])
    s4 = Column(String, name=EXOTIC[4])
    n0 = Column(Integer, name=EXOTIC[5])
    n1 = Column(Integer, name=EXOTIC[6])
    n2 = Column(Integer, name=EXOTIC[7])
    n3 = Column(Integer, name=EXOTIC[8])
    n4 = Column(Integer, name=EXOTIC[9])


STRINGS = [Fuzzed.s0, Fuzzed.s1, Fuzzed.s2, Fuzzed.s3, Fuzzed.s4]
NUMBERS = [Fuzzed.n0, Fuzzed.n1, Fuzzed.n2, Fuzzed.n3, Fuzzed.n4]
texts = st.text(min_size=1, max_size=6)
ints = st.integers(-(10**6), 10**6)


@st.composite
def leaves(draw: Any) -> Any:
    if draw(st.booleans()):
        col, value, other = draw(st.sampled_from(STRINGS)), texts, st.sampled_from(STRINGS)
    else:
        col, value, other = draw(st.sampled_from(NUMBERS)), ints, st.sampled_from(NUMBERS)
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "between", "in", "is", "col"]))
    try:
        if op == "between":
            low, high = sorted([draw(value), draw(value)])
            return col.between(low, high)
        if op == "in":
            return col.in_(*draw(st.lists(value, min_size=1, max_size=4)))
        if op == "is":
            return col.is_(None)
        operand = draw(other) if op == "col" else draw(value)
        op = "==" if op == "col" else op
        return {
            "==": col.__eq__,
            "!=": col.__ne__,
            "<": col.__lt__,
            "<=": col.__le__,
            ">": col.__gt__,
            ">=": col.__ge__,
        }[op](operand)
    except InvalidConditionError:
        reject()  # refused when built (e.g. a column compared with itself): not renderable


def combine(children: Any) -> Any:
    return st.one_of(
        st.tuples(children, children).map(lambda p: p[0] & p[1]),
        st.tuples(children, children).map(lambda p: p[0] | p[1]),
        children.map(lambda c: ~c),
    )


conditions = st.recursive(leaves(), combine, max_leaves=12)

SYNTAX = re.compile(
    r"^(?:[#:][A-Za-z0-9_]+|\(|\)|,|=|<>|<=|>=|<|>|AND|OR|NOT|BETWEEN|IN|\s|"
    r"attribute_not_exists|attribute_exists)+$"
)


def test_rendered_conditions_are_placeholders_and_syntax_only(
    placeholders_used: Any, valid_request: Any
) -> None:
    """Any condition tree renders to placeholders and DynamoDB syntax only, declares exactly
    the placeholders it uses, renders the same twice, and passes botocore's validation."""

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
    @given(conditions)
    def check(condition: Any) -> None:
        r = Renderer()
        expression = r.condition(condition)
        params = r.params()
        assert SYNTAX.match(expression), expression
        assert expression.count("(") == expression.count(")")
        placeholders_used(expression, params)
        again = Renderer()
        assert again.condition(condition) == expression and again.params() == params
        request = {
            "TableName": "fuzzed",
            "Key": {"id": {"S": "k"}},
            "ConditionExpression": expression,
        }
        valid_request("dynamodb", "DeleteItem", {**request, **params})

    check()


@pytest.mark.parametrize(
    ("name", "factory", "strategy"), PROPERTY_CASES, ids=[c[0] for c in PROPERTY_CASES]
)
def test_wire_values_survive_the_lean_json_round_trip(
    name: str, factory: Any, strategy: Any
) -> None:
    """Every type's wire value comes back identical after the lean transport's JSON encoding
    and response decoding, in an item, a query page and a stream record."""
    typ = _make(factory)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(strategy)
    def check(value: Any) -> None:
        wire = typ.dynamo_dump(typ.check(value))
        if wire is None:
            return
        item = {"id": {"S": "k"}, "v": wire}
        for operation, response in (
            ("GetItem", {"Item": item}),
            ("Query", {"Items": [item], "LastEvaluatedKey": {"id": {"S": "k"}}}),
            (
                "GetRecords",
                {"Records": [{"dynamodb": {"Keys": {"id": {"S": "k"}}, "NewImage": item}}]},
            ),
        ):
            raw = _ENCODER.encode(response).encode()
            decoded = json.loads(raw)
            _restore(operation, decoded, raw)
            assert decoded == response
        decoded = json.loads(_ENCODER.encode({"Item": item}))
        _restore("GetItem", decoded, b'"B"')
        assert typ.dynamo_load(decoded["Item"]["v"]) == value

    check()

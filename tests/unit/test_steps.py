"""Operations written as steps (streamodel.steps): driven by hand with no transport at all,
and run by the sync driver on a fake one."""

from __future__ import annotations

from typing import Any

import pytest

from streamodel import Column, String, TableMismatchError, Timestamp, new_base
from streamodel.exceptions import ResourceNotFoundError, StreamodelError
from streamodel.models import BaseModel
from streamodel.steps import Call, Pause, run
from streamodel.tables import bind_steps

Base = new_base()


class Stepped(Base):
    class Meta:
        ttl = {"column": "expires"}

    id = Column(String, hash_key=True)
    expires = Column(Timestamp)


def _meta(model: type[BaseModel]) -> Any:
    return model.Meta  # type: ignore[attr-defined]


def test_bind_is_a_sequence_of_steps_decided_by_the_answers() -> None:
    """A missing table: describe (not found), create, describe until ACTIVE with pauses in
    between, then TTL described and enabled; the steps return the table."""
    from streamodel.tables import create_table_request

    meta = _meta(Stepped)
    expected = create_table_request(meta, "t-stepped")
    active = {**expected, "TableStatus": "ACTIVE"}
    steps = bind_steps(meta, "t-stepped")
    seen: list[Any] = [next(steps)]
    seen.append(steps.throw(ResourceNotFoundError("no table", operation="DescribeTable")))
    seen.append(steps.send({}))  # CreateTable's answer
    seen.append(steps.send({"Table": {**expected, "TableStatus": "CREATING"}}))
    seen.append(steps.send(None))  # after the pause
    seen.append(steps.send({"Table": active}))
    seen.append(steps.send({"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}))
    with pytest.raises(StopIteration) as done:
        steps.send({})
    assert [type(s).__name__ + ":" + getattr(s, "operation", "") for s in seen] == [
        "Call:DescribeTable",
        "Call:CreateTable",
        "Call:DescribeTable",
        "Pause:",
        "Call:DescribeTable",
        "Call:DescribeTimeToLive",
        "Call:UpdateTimeToLive",
    ]
    assert seen[3] == Pause(0.05)
    assert done.value.value == active


def test_a_table_created_meanwhile_by_another_process_is_fine_anything_else_is_not() -> None:
    """ResourceInUse on CreateTable means another process won the race; another error is
    raised out of the steps."""
    meta = _meta(Stepped)
    steps = bind_steps(meta, "t-stepped")
    next(steps)
    steps.throw(ResourceNotFoundError("no table", operation="DescribeTable"))
    raced = StreamodelError("in use")
    raced.code = "ResourceInUseException"  # type: ignore[attr-defined]
    assert steps.throw(raced) == Call("dynamodb", "DescribeTable", {"TableName": "t-stepped"})
    steps = bind_steps(meta, "t-stepped")
    next(steps)
    steps.throw(ResourceNotFoundError("no table", operation="DescribeTable"))
    with pytest.raises(StreamodelError, match="denied"):
        steps.throw(StreamodelError("denied"))


def test_the_sync_driver_sends_calls_throws_errors_and_sleeps_pauses() -> None:
    """run() sends each Call on the transport, throws its error into the steps, and sleeps
    each Pause with the given sleep."""
    from streamodel.tables import create_table_request

    meta = _meta(Stepped)
    expected = create_table_request(meta, "t-stepped")
    answers: list[Any] = [
        ResourceNotFoundError("no table", operation="DescribeTable"),
        {},
        {"Table": {**expected, "TableStatus": "CREATING"}},
        {"Table": {**expected, "TableStatus": "ACTIVE"}},
        {"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": "other"}},
    ]
    sent: list[str] = []

    class Transport:
        def call(self, service: Any, operation: str, params: dict[str, Any]) -> Any:
            sent.append(operation)
            answer = answers.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer

    slept: list[float] = []
    with pytest.raises(TableMismatchError, match="TTL on 'other'"):
        run(Transport(), bind_steps(meta, "t-stepped"), sleep=slept.append)
    assert sent == [
        "DescribeTable",
        "CreateTable",
        "DescribeTable",
        "DescribeTable",
        "DescribeTimeToLive",
    ]
    assert slept == [0.05]

"""Unit-test fixtures: a fake transport that records requests and checks each one against
botocore's own service model, so a wrong parameter name or shape cannot pass a test."""

from __future__ import annotations

import copy
import datetime
import functools
import types
from collections.abc import Callable
from typing import Any

import botocore.auth
import botocore.session
import botocore.validate
import pytest

from streamodel import Engine
from streamodel.transport.retry import RetryPolicy


@pytest.fixture
def signing_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Callable[[], datetime.datetime]], None]:
    """``signing_clock(clock)`` makes botocore's SigV4 signer read its time from ``clock``:
    through ``botocore.auth.get_current_datetime`` where botocore has it, else (the lowest
    botocore the bounds allow) through ``datetime.datetime.utcnow`` as ``botocore.auth`` sees
    it."""

    def freeze(clock: Callable[[], datetime.datetime]) -> None:
        if hasattr(botocore.auth, "get_current_datetime"):
            monkeypatch.setattr(botocore.auth, "get_current_datetime", clock)
            return

        class FrozenDatetime(datetime.datetime):
            @classmethod
            def utcnow(cls) -> datetime.datetime:  # type: ignore[override]
                return clock()

        frozen = types.SimpleNamespace(**vars(datetime))
        frozen.datetime = FrozenDatetime
        monkeypatch.setattr(botocore.auth, "datetime", frozen)

    return freeze


Response = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] | BaseException

DEFAULT_RESPONSES: dict[str, dict[str, Any]] = {
    "UpdateItem": {},
    "DeleteItem": {},
    "PutItem": {},
    "BatchGetItem": {"Responses": {}},
    "TransactWriteItems": {},
    "TransactGetItems": {"Responses": []},
    "Query": {"Items": [], "Count": 0},
    "Scan": {"Items": [], "Count": 0},
    "CreateTable": {},
    "UpdateTable": {},
    "UpdateTimeToLive": {},
    "DescribeTimeToLive": {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}},
}


@functools.cache
def _service_model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def check_request(service: str, operation: str, params: dict[str, Any]) -> None:
    """Fail the test unless ``params`` is a valid ``operation`` request per botocore."""
    model = _service_model(service)
    assert operation in model.operation_names, f"{service} has no operation {operation}"
    shape = model.operation_model(operation).input_shape
    report = botocore.validate.ParamValidator().validate(params, shape)
    assert not report.has_errors(), f"invalid {operation} request:\n{report.generate_report()}"


class FakeTransport:
    """Records ``(service, operation, params)`` and answers with canned responses.

    ``responses[operation]`` is a list consumed in order (a dict, a function of the request,
    or an exception to raise); when it is empty the default for that operation is used.
    Every request is validated against botocore's service model before it is recorded.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.responses: dict[str, list[Response]] = {}

    def queue(self, operation: str, *responses: Response) -> None:
        self.responses.setdefault(operation, []).extend(responses)

    def call(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        check_request(service, operation, params)
        self.calls.append((service, operation, copy.deepcopy(params)))
        queued = self.responses.get(operation)
        response: Response = queued.pop(0) if queued else DEFAULT_RESPONSES.get(operation, {})
        if isinstance(response, BaseException):
            raise response
        if callable(response):
            return response(params)
        return copy.deepcopy(response)

    def operations(self) -> list[str]:
        return [operation for _, operation, _ in self.calls]

    def only(self, operation: str) -> dict[str, Any]:
        """The params of the one recorded call, which must be ``operation``."""
        assert self.operations() == [operation], self.operations()
        return self.calls[0][2]


@pytest.fixture
def transport() -> FakeTransport:
    """A fresh recording transport."""
    return FakeTransport()


@pytest.fixture
def engine(transport: FakeTransport) -> Engine:
    """An engine whose every call goes to ``transport`` (retries without real waits)."""
    return Engine(transport=transport, retry=RetryPolicy(attempts=2, base=0.0, max_wait=0.0))


@pytest.fixture
def valid_request() -> Callable[[str, str, dict[str, Any]], None]:
    """``valid_request(service, operation, params)`` asserts botocore accepts the request."""
    return check_request


@pytest.fixture
def render() -> Callable[[Any], tuple[str, dict[str, Any]]]:
    """``render(condition)`` -> (expression, ExpressionAttributeNames/Values), checking that
    every declared placeholder is used in the expression."""
    from streamodel._render import Renderer

    def _render(condition: Any) -> tuple[str, dict[str, Any]]:
        r = Renderer()
        expression = r.condition(condition)
        params = r.params()
        assert_placeholders_used(expression, params)
        return expression, params

    return _render


def assert_placeholders_used(expression: str, params: dict[str, Any]) -> None:
    import re

    used = set(re.findall(r"[#:][A-Za-z0-9_]+", expression))
    declared = set(params.get("ExpressionAttributeNames", {})) | set(
        params.get("ExpressionAttributeValues", {})
    )
    assert declared == used, f"declared {sorted(declared)} but used {sorted(used)}"


@pytest.fixture
def placeholders_used() -> Callable[[str, dict[str, Any]], None]:
    """``placeholders_used(expression_text, params)``: declared == used placeholders."""
    return assert_placeholders_used

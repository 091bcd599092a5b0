"""LeanTransport over a fake HTTP layer: exact requests, botocore-identical parsing, errors."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import zlib
from collections.abc import Mapping
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import botocore.parsers
import botocore.session
import pytest

from streamodel import ConditionFailedError, Engine, TransactionCanceledError
from streamodel.exceptions import (
    ResourceNotFoundError,
    ServerError,
    ThrottledError,
    TransportError,
)
from streamodel.transport import (
    LeanTransport,
    ObservedTransport,
    RetryingTransport,
    RetryPolicy,
)
from streamodel.transport.internals import host_of
from streamodel.transport.lean import LEAN_OPERATIONS
from streamodel.transport.signing import Signer

ENDPOINT = "https://dynamodb.example.test"
Answer = tuple[int, dict[str, str], bytes] | BaseException


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    raw = json.dumps(body).encode()
    return status, {"x-amz-crc32": str(zlib.crc32(raw)), **(headers or {})}, raw


class FakeSender:
    """Records each POST and answers from a queue (a tuple, or an exception to raise)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        self.sent.append((url, body, headers))
        answer = self.answers.pop(0) if self.answers else _json(200, {})
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def body(self, index: int = -1) -> Any:
        return json.loads(self.sent[index][1])


def _session(token: str | None = None) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        aws_session_token=token,
        region_name="eu-west-1",
    )


def _lean(*answers: Answer, **options: Any) -> tuple[LeanTransport, FakeSender]:
    sender = FakeSender(*answers)
    options.setdefault("session", _session())
    transport = LeanTransport(endpoint_url=ENDPOINT, sender=sender, **options)
    return transport, sender


def _botocore_parse(service: str, operation: str, raw: bytes) -> dict[str, Any]:
    """What botocore's own JSON parser makes of a 200 answer (without ResponseMetadata)."""
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).output_shape
    parsed: dict[str, Any] = botocore.parsers.create_parser("json").parse(
        {"body": raw, "headers": {}, "status_code": 200}, shape
    )
    parsed.pop("ResponseMetadata", None)
    return parsed


def typed(value: Any) -> Any:
    """``value`` with every leaf's type and repr spelled out, key order ignored."""
    if isinstance(value, dict):
        return sorted((key, typed(member)) for key, member in value.items())
    if isinstance(value, list):
        return [typed(member) for member in value]
    return (type(value).__name__, repr(value))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# An item with every place a binary value can hide: top level, sets, maps, lists, nested.
WIRE_ITEM_JSON = {
    "pk": {"S": "k1"},
    "bin": {"B": _b64(b"\x00\x01\xff")},
    "bins": {"BS": [_b64(b"a"), _b64(b"\xfe")]},
    "map": {"M": {"inner": {"B": _b64(b"m")}, "deep": {"L": [{"B": _b64(b"l")}, {"N": "1"}]}}},
    "list": {"L": [{"M": {"b": {"BS": [_b64(b"x")]}}}, {"S": "B"}, {"NULL": True}]},
    "n": {"N": "12.5"},
    "flag": {"BOOL": False},
    "ss": {"SS": ["B", "BS"]},
}
WIRE_ITEM = {
    "pk": {"S": "k1"},
    "bin": {"B": b"\x00\x01\xff"},
    "bins": {"BS": [b"a", b"\xfe"]},
    "map": {"M": {"inner": {"B": b"m"}, "deep": {"L": [{"B": b"l"}, {"N": "1"}]}}},
    "list": {"L": [{"M": {"b": {"BS": [b"x"]}}}, {"S": "B"}, {"NULL": True}]},
    "n": {"N": "12.5"},
    "flag": {"BOOL": False},
    "ss": {"SS": ["B", "BS"]},
}
KEY_JSON = {"pk": {"S": "k1"}, "bin": {"B": _b64(b"\x07")}}

RESPONSES: list[tuple[str, str, dict[str, Any]]] = [
    ("dynamodb", "GetItem", {"Item": WIRE_ITEM_JSON}),
    ("dynamodb", "PutItem", {"Attributes": WIRE_ITEM_JSON}),
    (
        "dynamodb",
        "UpdateItem",
        {
            "Attributes": WIRE_ITEM_JSON,
            "ItemCollectionMetrics": {"ItemCollectionKey": KEY_JSON, "SizeEstimateRangeGB": [1]},
        },
    ),
    ("dynamodb", "DeleteItem", {"Attributes": WIRE_ITEM_JSON}),
    (
        "dynamodb",
        "BatchGetItem",
        {
            "Responses": {"t1": [WIRE_ITEM_JSON, KEY_JSON], "t2": []},
            "UnprocessedKeys": {"t1": {"Keys": [KEY_JSON], "ConsistentRead": True}},
        },
    ),
    (
        "dynamodb",
        "BatchWriteItem",
        {
            "UnprocessedItems": {
                "t1": [
                    {"PutRequest": {"Item": WIRE_ITEM_JSON}},
                    {"DeleteRequest": {"Key": KEY_JSON}},
                ]
            },
            "ItemCollectionMetrics": {"t1": [{"ItemCollectionKey": KEY_JSON}]},
        },
    ),
    (
        "dynamodb",
        "Query",
        {"Items": [WIRE_ITEM_JSON], "Count": 1, "ScannedCount": 1, "LastEvaluatedKey": KEY_JSON},
    ),
    ("dynamodb", "Scan", {"Items": [WIRE_ITEM_JSON, KEY_JSON], "Count": 2, "ScannedCount": 9}),
    ("dynamodb", "TransactGetItems", {"Responses": [{"Item": WIRE_ITEM_JSON}, {}]}),
    (
        "dynamodb",
        "TransactWriteItems",
        {"ItemCollectionMetrics": {"t1": [{"ItemCollectionKey": KEY_JSON}]}},
    ),
    (
        "dynamodbstreams",
        "GetRecords",
        {
            "Records": [
                {
                    "eventID": "e1",
                    "eventName": "MODIFY",
                    "dynamodb": {
                        "ApproximateCreationDateTime": 1764000000.123,
                        "Keys": KEY_JSON,
                        "NewImage": WIRE_ITEM_JSON,
                        "OldImage": KEY_JSON,
                        "SequenceNumber": "100",
                        "SizeBytes": 10,
                        "StreamViewType": "NEW_AND_OLD_IMAGES",
                    },
                },
                {
                    "eventID": "e2",
                    "eventName": "REMOVE",
                    "userIdentity": {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"},
                    "dynamodb": {"ApproximateCreationDateTime": 1764000001, "Keys": KEY_JSON},
                },
            ],
            "NextShardIterator": "it-2",
        },
    ),
    (
        "dynamodbstreams",
        "DescribeStream",
        {
            "StreamDescription": {
                "StreamArn": "arn:aws:dynamodb:eu-west-1:1:table/t1/stream/x",
                "CreationRequestDateTime": 1764000000.5,
                "Shards": [
                    {"ShardId": "s1", "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
                ],
            }
        },
    ),
    ("dynamodbstreams", "GetShardIterator", {"ShardIterator": "it-1"}),
    ("dynamodbstreams", "ListStreams", {"Streams": [{"StreamArn": "a", "TableName": "t1"}]}),
]


@pytest.mark.parametrize(("service", "operation", "body"), RESPONSES, ids=lambda v: str(v)[:20])
def test_responses_equal_botocores_parse(
    service: Any, operation: str, body: dict[str, Any]
) -> None:
    """Every lean operation's answer is parsed to exactly what botocore's parser gives."""
    answer = _json(200, body)
    transport, _ = _lean(answer)
    lean = transport.call(service, operation, {})
    assert isinstance(answer, tuple)
    expected = _botocore_parse(service, operation, answer[2])
    assert lean == expected
    assert typed(lean) == typed(expected)  # same types too: bytes, datetimes with one zone


def test_fields_outside_botocores_model_are_kept() -> None:
    """Unlike botocore's parser, fields its model does not name are kept, not dropped.

    Lambda-style lower-case ``userIdentity`` keys are the known case: botocore's model names
    ``Type``/``PrincipalId`` and turns ``{"type": ..., "principalId": ...}`` into ``{}``.
    """
    identity = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    body = {"Records": [{"eventName": "REMOVE", "userIdentity": identity, "dynamodb": {}}]}
    answer = _json(200, body)
    transport, _ = _lean(answer)
    assert isinstance(answer, tuple)
    assert transport.call("dynamodbstreams", "GetRecords", {})["Records"][0]["userIdentity"] == (
        identity
    )
    assert (
        _botocore_parse("dynamodbstreams", "GetRecords", answer[2])["Records"][0]["userIdentity"]
        == {}
    )


def test_every_lean_operation_is_covered_by_the_comparison() -> None:
    """The botocore comparison above covers each operation sent on the lean path."""
    covered = {(service, operation) for service, operation, _ in RESPONSES}
    for service, operations in LEAN_OPERATIONS.items():
        for operation in operations:
            assert (service, operation) in covered


def test_request_headers_body_and_signature() -> None:
    """A request is JSON with base64 binaries, the JSON 1.0 target and a SigV4 signature."""
    transport, sender = _lean()
    params = {
        "TableName": "t1",
        "Item": {"pk": {"S": "é"}, "b": {"B": b"\x00\xff"}, "bs": {"BS": [b"a"]}},
        "ConditionExpression": "attribute_not_exists(#n0)",
        "ExpressionAttributeNames": {"#n0": "pk"},
    }
    transport.call("dynamodb", "PutItem", params)
    url, body, headers = sender.sent[0]
    assert url == ENDPOINT + "/"
    assert json.loads(body) == {
        "TableName": "t1",
        "Item": {"pk": {"S": "é"}, "b": {"B": "AP8="}, "bs": {"BS": ["YQ=="]}},
        "ConditionExpression": "attribute_not_exists(#n0)",
        "ExpressionAttributeNames": {"#n0": "pk"},
    }
    assert params["Item"]["b"] == {"B": b"\x00\xff"}  # the caller's dict is untouched
    assert headers["Content-Type"] == "application/x-amz-json-1.0"
    assert headers["X-Amz-Target"] == "DynamoDB_20120810.PutItem"
    date = headers["X-Amz-Date"]
    authorization = headers["Authorization"]
    assert authorization.startswith(
        f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{date[:8]}/eu-west-1/dynamodb/aws4_request, "
        "SignedHeaders=accept-encoding;content-type;host;x-amz-date;x-amz-target, Signature="
    )
    assert len(authorization.rsplit("Signature=", 1)[1]) == 64
    assert "X-Amz-Security-Token" not in headers
    assert set(headers) == {
        "Content-Type",
        "X-Amz-Target",
        "Accept-Encoding",
        "User-Agent",
        "X-Amz-Date",
        "Authorization",
    }


def test_signature_is_botocores() -> None:
    """The signature is the one botocore's SigV4 signer computes for the same request."""
    import botocore.auth
    import botocore.awsrequest

    transport, sender = _lean()
    transport.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {"pk": {"S": "a"}}})
    url, body, headers = sender.sent[0]
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={k: v for k, v in headers.items() if k not in ("Authorization", "X-Amz-Date")},
    )
    signer = botocore.auth.SigV4Auth(
        botocore.credentials.Credentials("AKIDEXAMPLE", "secret"), "dynamodb", "eu-west-1"
    )
    stamp = datetime.datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    request.context["timestamp"] = headers["X-Amz-Date"]
    request.headers["X-Amz-Date"] = headers["X-Amz-Date"]
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    assert stamp.strftime("%Y%m%d") in string_to_sign
    assert headers["Authorization"].endswith(
        "Signature=" + signer.signature(string_to_sign, request)
    )


def test_streams_target_and_session_token() -> None:
    """Streams calls use their own target prefix; a session token is sent and signed."""
    transport, sender = _lean(session=_session(token="TOKEN"))
    transport.call("dynamodbstreams", "GetRecords", {"ShardIterator": "it", "Limit": 5})
    _url, body, headers = sender.sent[0]
    assert headers["X-Amz-Target"] == "DynamoDBStreams_20120810.GetRecords"
    assert headers["X-Amz-Security-Token"] == "TOKEN"
    assert "x-amz-security-token" in headers["Authorization"]
    assert json.loads(body) == {"ShardIterator": "it", "Limit": 5}


class _RotatingCredentials(botocore.credentials.Credentials):
    """Credentials that change on every freeze, as refreshed credentials do."""

    def __init__(self) -> None:
        super().__init__("AKID0", "secret")
        self.count = 0

    def get_frozen_credentials(self) -> botocore.credentials.ReadOnlyCredentials:
        self.count += 1
        return botocore.credentials.ReadOnlyCredentials(f"AKID{self.count}", "secret", None)


def _Session(credentials: botocore.credentials.Credentials) -> botocore.session.Session:
    """A botocore session whose clients sign with ``credentials`` (its cached chain result)."""
    session = botocore.session.Session()
    session.set_config_variable("region", "eu-west-1")
    session._credentials = credentials  # type: ignore[attr-defined]
    return session


def test_credentials_are_frozen_per_request() -> None:
    """Each request signs with freshly frozen credentials, so refreshes are respected."""
    credentials = _RotatingCredentials()
    transport, sender = _lean(session=_Session(credentials))
    transport.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}})
    transport.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}})
    assert "Credential=AKID1/" in sender.sent[0][2]["Authorization"]
    assert "Credential=AKID2/" in sender.sent[1][2]["Authorization"]


SIGNED_ENDPOINTS = [
    ("dynamodb", "https://dynamodb.eu-west-1.amazonaws.com/"),
    ("dynamodbstreams", "https://streams.dynamodb.eu-west-1.amazonaws.com/"),
    ("dynamodb", "https://dynamodb.example.test:443/"),
    ("dynamodb", "http://localhost:8000/"),
    ("dynamodbstreams", "http://LocalHost:8000/"),
    ("dynamodb", "http://127.0.0.1:80/"),
    ("dynamodb", "http://[::1]:8000/"),
    ("dynamodb", "https://[2001:db8::1]/"),
]


def _botocore_signed(
    credentials: botocore.credentials.Credentials, url: str, headers: dict[str, str], body: bytes
) -> list[tuple[str, str]]:
    """The headers botocore's own SigV4Auth.add_auth gives an AWSRequest."""
    request = botocore.awsrequest.AWSRequest(method="POST", url=url, data=body, headers=headers)
    signer = botocore.auth.SigV4Auth(credentials.get_frozen_credentials(), "dynamodb", "eu-west-1")
    signer.add_auth(request)
    return list(request.headers.items())


def _unsigned_headers(service: str) -> dict[str, str]:
    prefix = "DynamoDB_20120810." if service == "dynamodb" else "DynamoDBStreams_20120810."
    return {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": prefix + "GetItem",
        "User-Agent": "streamodel-lean test",
    }


@pytest.mark.parametrize("token", [None, "SESSION/TOKEN+="])
@pytest.mark.parametrize(("service", "url"), SIGNED_ENDPOINTS)
def test_signer_headers_equal_botocores(
    signing_clock: Any, service: str, url: str, token: str | None
) -> None:
    """The lean signer adds exactly the headers, in the order, botocore's add_auth adds."""
    now = [datetime.datetime(2024, 2, 29, 23, 59, 59)]
    signing_clock(lambda: now[0])
    credentials = botocore.credentials.Credentials("AKIDEXAMPLE", "wJalr/K7+MDENG", token)
    body = b'{"TableName":"t1","Key":{"pk":{"S":"a b"}}}'
    signer = Signer(credentials, "dynamodb", "eu-west-1")
    for stamp in (now[0], now[0], now[0] + datetime.timedelta(seconds=1)):  # cached, next day
        now[0] = stamp
        expected = _botocore_signed(credentials, url, _unsigned_headers(service), body)
        signed = signer.sign(url, _unsigned_headers(service), body)
        assert list(signed.items()) == expected
    assert signed["X-Amz-Date"] == "20240301T000000Z"
    assert ("X-Amz-Security-Token" in signed) == (token is not None)


def test_signer_follows_refreshed_secret_keys(signing_clock: Any) -> None:
    """A signing key is never reused for another secret key (refreshed credentials)."""
    signing_clock(lambda: datetime.datetime(2024, 5, 1, 12))
    url = "https://dynamodb.eu-west-1.amazonaws.com/"
    credentials = botocore.credentials.Credentials("AKID", "first")
    signer = Signer(credentials, "dynamodb", "eu-west-1")
    for secret in ("first", "second", "first"):
        credentials.secret_key = secret
        expected = _botocore_signed(credentials, url, _unsigned_headers("dynamodb"), b"{}")
        assert list(signer.sign(url, _unsigned_headers("dynamodb"), b"{}").items()) == expected


def test_signing_key_is_derived_once_per_secret_and_day(
    monkeypatch: pytest.MonkeyPatch, signing_clock: Any
) -> None:
    """The four key-derivation HMACs run on the first request of a day, then only the
    final one."""
    import streamodel.transport.signing as signing

    now = [datetime.datetime(2024, 5, 1, 23, 59, 59)]
    signing_clock(lambda: now[0])
    hmacs: list[str] = []
    original = botocore.auth.SigV4Auth._sign  # type: ignore[attr-defined]

    def counted(self: Any, key: bytes, msg: str, hex: bool = False) -> Any:
        hmacs.append(msg)
        return original(self, key, msg, hex)

    monkeypatch.setattr(signing._SigV4, "_sign", counted, raising=False)
    url = "https://dynamodb.eu-west-1.amazonaws.com/"
    signer = Signer(botocore.credentials.Credentials("AKID", "s"), "dynamodb", "eu-west-1")
    counts = []
    next_day = now[0] + datetime.timedelta(seconds=1)
    for stamp in (now[0], now[0], next_day, next_day):
        now[0] = stamp
        del hmacs[:]
        signer.sign(url, _unsigned_headers("dynamodb"), b"{}")
        counts.append(len(hmacs))
    assert counts == [5, 1, 5, 1]


def test_host_of_is_botocores_signed_host() -> None:
    """The Host the sender sends is the host botocore signs: default port dropped, IPv6
    in brackets, lower case."""
    assert host_of("https://Dynamodb.Example.test:443/") == "dynamodb.example.test"
    assert host_of("http://localhost:8000/") == "localhost:8000"
    assert host_of("http://[::1]:8000/") == "[::1]:8000"
    assert host_of("https://[2001:db8::1]/") == "[2001:db8::1]"


def test_missing_transact_token_is_filled_like_botocore() -> None:
    """TransactWriteItems without ClientRequestToken gets one, as botocore's serializer adds."""
    transport, sender = _lean()
    transport.call("dynamodb", "TransactWriteItems", {"TransactItems": []})
    assert len(sender.body()["ClientRequestToken"]) == 36
    transport.call(
        "dynamodb", "TransactWriteItems", {"TransactItems": [], "ClientRequestToken": "t"}
    )
    assert sender.body()["ClientRequestToken"] == "t"


def test_control_plane_is_delegated_to_botocore() -> None:
    """Operations outside the lean set go through the BotocoreTransport held inside."""
    transport, sender = _lean()
    seen: list[tuple[str, str, dict[str, Any]]] = []

    class Delegate:
        def call(self, service: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
            seen.append((service, operation, params))
            return {"Table": {"TableName": "t1"}}

    transport.botocore = Delegate()  # type: ignore[assignment]
    assert transport.call("dynamodb", "DescribeTable", {"TableName": "t1"}) == {
        "Table": {"TableName": "t1"}
    }
    assert seen == [("dynamodb", "DescribeTable", {"TableName": "t1"})]
    assert sender.sent == []


def test_endpoint_and_region_come_from_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without endpoint_url, the AWS_ENDPOINT_URL_* variables or the regional AWS endpoint."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://127.0.0.1:9999")
    transport = LeanTransport(session=_session(), sender=FakeSender())
    assert transport.endpoint("dynamodb") == "https://dynamodb.eu-west-1.amazonaws.com/"
    assert transport.endpoint("dynamodbstreams") == "http://127.0.0.1:9999/"


# -- errors ---------------------------------------------------------------------------------


def test_conditional_check_failed_carries_the_item() -> None:
    """ConditionalCheckFailedException becomes ConditionFailedError with the decoded item."""
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        "message": "The conditional request failed",
        "Item": WIRE_ITEM_JSON,
    }
    transport, _ = _lean(_json(400, body))
    with pytest.raises(ConditionFailedError) as caught:
        transport.call("dynamodb", "UpdateItem", {"TableName": "t1", "Key": {}})
    assert caught.value.item == WIRE_ITEM
    assert "ConditionalCheckFailedException: The conditional request failed" in str(caught.value)


def test_transaction_canceled_carries_reasons_and_items() -> None:
    """TransactionCanceledException gives one reason per item, items decoded."""
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
        "CancellationReasons": [
            {"Code": "None"},
            {
                "Code": "ConditionalCheckFailed",
                "Message": "The conditional request failed",
                "Item": KEY_JSON,
            },
        ],
    }
    transport, _ = _lean(_json(400, body))
    with pytest.raises(TransactionCanceledError) as caught:
        transport.call("dynamodb", "TransactWriteItems", {"TransactItems": []})
    assert caught.value.reasons == [
        {"code": "None", "message": "", "item": None},
        {
            "code": "ConditionalCheckFailed",
            "message": "The conditional request failed",
            "item": {"pk": {"S": "k1"}, "bin": {"B": b"\x07"}},
        },
    ]


@pytest.mark.parametrize(
    "code",
    ["ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException"],
)
def test_throttling_is_retried_by_the_retrying_transport(code: str) -> None:
    """Throttling maps to ThrottledError, which RetryingTransport retries, even for writes."""
    throttled = _json(
        400, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "slow"}
    )
    transport, sender = _lean(throttled, throttled, _json(200, {}))
    with pytest.raises(ThrottledError) as caught:
        transport.call("dynamodb", "PutItem", {"TableName": "t1", "Item": {}})
    assert caught.value.code == code
    retrying = RetryingTransport(transport, RetryPolicy(base=0.0001, max_wait=0.001))
    assert retrying.call("dynamodb", "PutItem", {"TableName": "t1", "Item": {}}) == {}
    assert len(sender.sent) == 3


def test_html_500_is_a_server_error() -> None:
    """A 5xx without a JSON body is a ServerError coded with the status, as botocore does."""
    transport, _ = _lean((503, {}, b"<html><body>Service Unavailable</body></html>"))
    with pytest.raises(ServerError) as caught:
        transport.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}})
    assert caught.value.code == "503"
    assert "Service Unavailable" in str(caught.value)


def test_json_500_is_a_server_error() -> None:
    """InternalServerError (500 with a JSON body) is a ServerError."""
    body = {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "oops"}
    transport, _ = _lean(_json(500, body))
    with pytest.raises(ServerError) as caught:
        transport.call("dynamodb", "Query", {"TableName": "t1"})
    assert caught.value.code == "InternalServerError"


def test_other_client_errors_keep_their_code() -> None:
    """Unknown and known 4xx codes map through errors.error_from_response."""
    transport, _ = _lean(
        _json(400, {"__type": "com.amazon.coral.validate#ValidationException", "message": "bad"}),
        _json(400, {"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"}),
    )
    with pytest.raises(TransportError) as caught:
        transport.call("dynamodb", "Scan", {"TableName": "t1"})
    assert type(caught.value) is TransportError
    assert caught.value.code == "ValidationException"
    with pytest.raises(ResourceNotFoundError):
        transport.call("dynamodb", "Scan", {"TableName": "t1"})


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionResetError(104, "Connection reset by peer"),
        # What BotocoreHTTPSender raises for an endpoint behind a proxy.
        botocore.exceptions.ConnectionClosedError(endpoint_url=ENDPOINT),
        botocore.exceptions.ReadTimeoutError(endpoint_url=ENDPOINT),
    ],
)
def test_connection_failures_are_server_errors(failure: BaseException) -> None:
    """Resets and timeouts become ServerError 'Connection': reads retried, writes not."""
    transport, sender = _lean(failure, _json(200, {"Items": [], "Count": 0}), failure)
    retrying = RetryingTransport(transport, RetryPolicy(base=0.0001, max_wait=0.001))
    assert retrying.call("dynamodb", "Query", {"TableName": "t1"}) == {"Items": [], "Count": 0}
    with pytest.raises(ServerError) as caught:
        retrying.call("dynamodb", "PutItem", {"TableName": "t1", "Item": {}})
    assert caught.value.code == "Connection"
    assert len(sender.sent) == 3  # the write whose outcome is unknown was sent once


def test_crc32_mismatch_is_a_server_error() -> None:
    """A body that does not match DynamoDB's x-amz-crc32 header is refused."""
    transport, _ = _lean((200, {"x-amz-crc32": "1"}, b"{}"))
    with pytest.raises(ServerError) as caught:
        transport.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}})
    assert caught.value.code == "CRC32CheckFailed"


def test_unreadable_success_body_is_a_server_error() -> None:
    """A 200 whose body is not JSON (a proxy page, a cut-off answer) is a ServerError."""
    transport, _ = _lean((200, {}, b"<html>hello</html>"), (200, {}, b'{"Item": {"b": {"B": 1}}}'))
    for _ in range(2):
        with pytest.raises(ServerError) as caught:
            transport.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}})
        assert caught.value.code == "InvalidResponse"


# -- observability --------------------------------------------------------------------------


def test_on_request_reports_operation_table_duration_and_capacity() -> None:
    """on_request receives each request's operation, table, duration and consumed capacity."""
    seen: list[tuple[str, str | None, float, Any]] = []
    capacity = {"TableName": "t1", "CapacityUnits": 1.0}
    transport, _ = _lean(
        _json(200, {"ConsumedCapacity": capacity}),
        _json(400, {"__type": "x#ConditionalCheckFailedException"}),
        _json(200, {"Responses": {}}),
        on_request=lambda *args: seen.append(args),
    )
    transport.call("dynamodb", "PutItem", {"TableName": "t1", "ReturnConsumedCapacity": "TOTAL"})
    with pytest.raises(ConditionFailedError):
        transport.call("dynamodb", "DeleteItem", {"TableName": "t2"})
    transport.call("dynamodb", "BatchGetItem", {"RequestItems": {"t3": {"Keys": []}}})
    assert [(op, table, cap) for op, table, _, cap in seen] == [
        ("PutItem", "t1", capacity),
        ("DeleteItem", "t2", None),
        ("BatchGetItem", "t3", None),
    ]
    assert all(isinstance(duration, float) and duration >= 0 for _, _, duration, _ in seen)


def test_observed_transport_wraps_any_transport() -> None:
    """ObservedTransport gives the same hook around any transport."""
    seen: list[tuple[str, str | None, float, Any]] = []

    class Inner:
        def call(self, service: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
            return {"ConsumedCapacity": [{"TableName": "a"}]}

    observed = ObservedTransport(Inner(), lambda *args: seen.append(args))
    observed.call(
        "dynamodb",
        "TransactWriteItems",
        {"TransactItems": [{"Put": {"TableName": "a"}}, {"Update": {"TableName": "a"}}]},
    )
    assert seen[0][0:2] == ("TransactWriteItems", "a")
    assert seen[0][3] == [{"TableName": "a"}]


# -- the engine switch ----------------------------------------------------------------------


def _inner(engine: Engine) -> Any:
    return engine.transport.inner  # type: ignore[attr-defined]


def test_engine_transport_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine(transport="lean"|"botocore"), STREAMODEL_TRANSPORT, and bad names refused; lean
    is the default unless boto3 clients are given."""
    from streamodel.transport import BotocoreTransport

    monkeypatch.delenv("STREAMODEL_TRANSPORT", raising=False)
    assert isinstance(_inner(Engine(endpoint_url=ENDPOINT)), LeanTransport)
    client = _session().client("dynamodb", endpoint_url=ENDPOINT)
    assert isinstance(_inner(Engine(client)), BotocoreTransport)
    assert isinstance(_inner(Engine(endpoint_url=ENDPOINT, transport="lean")), LeanTransport)
    monkeypatch.setenv("STREAMODEL_TRANSPORT", "lean")
    lean = _inner(Engine(endpoint_url=ENDPOINT))
    assert isinstance(lean, LeanTransport)
    assert lean.endpoint("dynamodb") == ENDPOINT + "/"
    assert isinstance(_inner(Engine(transport="botocore")), BotocoreTransport)
    with pytest.raises(ValueError, match="'botocore', 'lean'"):
        Engine(transport="fast")  # type: ignore[arg-type]


def test_engine_lean_uses_given_clients() -> None:
    """Engine(client, transport="lean") takes endpoint, region and credentials from the client."""
    client = _session(token="T").client("dynamodb", endpoint_url="http://127.0.0.1:1")
    sender = FakeSender()
    lean = _inner(Engine(client, transport="lean"))
    lean._sender = sender
    assert lean.endpoint("dynamodb") == "http://127.0.0.1:1/"
    lean.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}})
    url, _, headers = sender.sent[0]
    assert url == "http://127.0.0.1:1/"
    assert "/eu-west-1/dynamodb/aws4_request" in headers["Authorization"]
    assert "Credential=AKIDEXAMPLE/" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "T"


def test_environment_never_overrides_given_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """STREAMODEL_TRANSPORT picks the default transport, never the one for clients the program
    passed in; a bad value names the variable."""
    from streamodel.transport import BotocoreTransport

    monkeypatch.setenv("STREAMODEL_TRANSPORT", "lean")
    client = _session().client("dynamodb", endpoint_url=ENDPOINT)
    assert isinstance(_inner(Engine(client)), BotocoreTransport)
    monkeypatch.setenv("STREAMODEL_TRANSPORT", "fast")
    with pytest.raises(ValueError, match="STREAMODEL_TRANSPORT"):
        Engine(endpoint_url=ENDPOINT)


# -- botocore's configuration, honoured -----------------------------------------------------


def _route_of(transport: LeanTransport) -> Any:
    transport.endpoint("dynamodb")
    return transport._routes["dynamodb"]


def test_connection_settings_come_from_the_client(tmp_path: Any) -> None:
    """verify, a CA bundle, client certificate, timeouts and pool size are the client's."""
    from botocore.config import Config

    from streamodel.transport.pool import ConnectionPool

    (tmp_path / "ca.pem").write_text("not read until a TLS connection is made")
    config = Config(connect_timeout=3, read_timeout=7, max_pool_connections=4)
    client = _session().client(
        "dynamodb",
        endpoint_url=ENDPOINT,
        verify=str(tmp_path / "ca.pem"),
        config=config,
        # botocore's client_cert config: (certificate, key)
    )
    pool = _route_of(LeanTransport(dynamodb=client)).send
    assert isinstance(pool, ConnectionPool)
    assert (pool._verify, pool._ca_bundle) == (True, str(tmp_path / "ca.pem"))
    assert (pool._connect_timeout, pool._read_timeout, pool._max_idle) == (3, 7, 4)
    unverified = _session().client("dynamodb", endpoint_url=ENDPOINT, verify=False)
    assert _route_of(LeanTransport(dynamodb=unverified)).send._verify is False
    with_cert = _session().client(
        "dynamodb",
        endpoint_url=ENDPOINT,
        config=Config(client_cert=(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))),
    )
    pool = _route_of(LeanTransport(dynamodb=with_cert)).send
    assert (pool._cert_file, pool._key_file) == (str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))


def test_an_endpoint_behind_a_proxy_goes_through_botocores_http_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Proxies from Config or the environment (NO_PROXY honoured) send through the client's
    own HTTP session, with its proxy credentials."""
    from botocore.config import Config

    from streamodel.transport.lean import BotocoreHTTPSender
    from streamodel.transport.pool import ConnectionPool

    configured = _session().client(
        "dynamodb",
        endpoint_url=ENDPOINT,
        config=Config(proxies={"https": "http://user:pw@127.0.0.1:3128"}),
    )
    sender = _route_of(LeanTransport(dynamodb=configured)).send
    assert isinstance(sender, BotocoreHTTPSender)
    assert sender.session is configured._endpoint.http_session
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "")
    from_environment = _session().client("dynamodb", endpoint_url=ENDPOINT)
    assert isinstance(_route_of(LeanTransport(dynamodb=from_environment)).send, BotocoreHTTPSender)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "dynamodb.example.test")
    bypassed = _session().client("dynamodb", endpoint_url=ENDPOINT)
    assert isinstance(_route_of(LeanTransport(dynamodb=bypassed)).send, ConnectionPool)


def _delegated(transport: LeanTransport, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The operations the transport hands to its botocore transport (which answers {})."""
    seen: list[str] = []

    def call(service: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        seen.append(operation)
        return {}

    monkeypatch.setattr(transport.botocore, "call", call)
    return seen


def test_a_before_send_handler_keeps_requests_on_the_botocore_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a before-send handler could answer (moto's mock_aws does), lean operations go
    through botocore, so they never escape a mock; a handler that says enabled=False does not
    count."""
    client = _session().client("dynamodb", endpoint_url=ENDPOINT)
    transport = LeanTransport(dynamodb=client, sender=FakeSender())
    seen = _delegated(transport, monkeypatch)

    class Handler:
        enabled = True

        def __call__(self, **kwargs: Any) -> None:
            return None

    handler = Handler()
    client.meta.events.register("before-send.dynamodb", handler)
    transport.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}})
    assert seen == ["GetItem"]
    handler.enabled = False
    transport.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}})
    assert seen == ["GetItem"]
    assert len(transport._sender.sent) == 1  # type: ignore[union-attr]


def test_changed_botocore_internals_fall_back_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When botocore's private parts are not what the lean path reads, every request goes
    through botocore after a single WARNING, and none fails."""
    client = _session().client("dynamodb", endpoint_url=ENDPOINT)
    monkeypatch.delattr(type(client._endpoint.http_session), "send")
    del client._endpoint.http_session._proxy_config
    transport = LeanTransport(dynamodb=client, sender=FakeSender())
    seen = _delegated(transport, monkeypatch)
    with caplog.at_level("WARNING", logger="streamodel.transport"):
        for _ in range(3):
            assert transport.call("dynamodb", "Query", {"TableName": "t1"}) == {}
        assert transport.call("dynamodbstreams", "GetRecords", {"ShardIterator": "i"}) == {}
    assert seen == ["Query", "Query", "Query", "GetRecords"]
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    assert "internals" in caplog.records[0].getMessage()


# -- content codings --------------------------------------------------------------------------


def test_identity_is_asked_for_and_compressed_answers_are_decoded() -> None:
    """Requests ask for an identity encoding; a gzip or deflate answer anyway is decoded."""
    import gzip

    body = json.dumps({"Item": WIRE_ITEM_JSON}).encode()
    gzipped = gzip.compress(body)
    deflated = zlib.compress(body)
    transport, sender = _lean(
        (200, {"content-encoding": "gzip", "x-amz-crc32": str(zlib.crc32(gzipped))}, gzipped),
        (200, {"content-encoding": "deflate"}, deflated),
    )
    for _ in range(2):
        assert transport.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}}) == {
            "Item": WIRE_ITEM
        }
    assert sender.sent[0][2]["Accept-Encoding"] == "identity"


def test_unknown_or_broken_content_codings_are_refused_clearly() -> None:
    """A coding streamodel does not decode is a TransportError that names it; a broken gzip
    body is a retryable ServerError."""
    transport, _ = _lean(
        (200, {"content-encoding": "br"}, b"\x0b\x01\x80{}\x03"),
        (200, {"content-encoding": "gzip"}, b"\x1f\x8b not gzip"),
    )
    with pytest.raises(TransportError, match="'br'") as refused:
        transport.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}})
    assert refused.value.code == "UnsupportedContentEncoding"
    with pytest.raises(ServerError, match="gzip") as broken:
        transport.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}})
    assert broken.value.code == "InvalidResponse"


# -- failures that retrying cannot fix ----------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "code", "words"),
    [
        (
            ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] self-signed"),
            "CertificateVerifyFailed",
            "certificate of dynamodb.example.test could not be verified",
        ),
        (
            botocore.exceptions.SSLError(
                endpoint_url=ENDPOINT,
                error=ssl.SSLCertVerificationError(1, "certificate verify failed"),
            ),
            "CertificateVerifyFailed",
            "could not be verified",
        ),
        (
            botocore.exceptions.ProxyConnectionError(
                proxy_url="http://127.0.0.1:3128",
                error=OSError("Tunnel connection failed: 407 Proxy Authentication Required"),
            ),
            "ProxyAuthenticationRequired",
            "proxy refused its credentials",
        ),
        (
            (407, {"proxy-authenticate": 'Basic realm="p"'}, b"denied"),
            "ProxyAuthenticationRequired",
            "proxy refused its credentials",
        ),
    ],
    ids=["tls", "tls-via-botocore", "proxy-connect", "proxy-forwarding"],
)
def test_certificate_and_proxy_refusals_fail_at_once(
    failure: Answer, code: str, words: str
) -> None:
    """An unverifiable certificate or refused proxy credentials fail on the first attempt,
    even for a read, with a TransportError that says what to fix."""
    transport, sender = _lean(failure, failure)
    retrying = RetryingTransport(transport, RetryPolicy(base=0.0001, max_wait=0.001))
    with pytest.raises(TransportError, match=words) as caught:
        retrying.call("dynamodb", "GetItem", {"TableName": "t1", "Key": {}})
    assert not isinstance(caught.value, ServerError)
    assert caught.value.code == code
    assert len(sender.sent) == 1

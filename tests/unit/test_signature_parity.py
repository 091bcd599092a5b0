"""The lean transport's SigV4 signature is botocore's, for every lean operation and every kind
of credentials (static, with a session token, refreshed between requests).

Each lean request is captured by a fake sender; botocore's ``SigV4Auth.add_auth`` then signs
the same URL, body and headers at the same ``X-Amz-Date`` (botocore's clock is pinned to the
date the lean request carries) with the keys the lean request names, and both
``Authorization`` headers and security tokens must be equal.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import threading
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.session
import pytest

from streamodel.transport import LeanTransport
from streamodel.transport.lean import LEAN_OPERATIONS

ENDPOINT = "https://dynamodb.eu-west-1.amazonaws.com"
REGION = "eu-west-1"
STREAM = "arn:aws:dynamodb:eu-west-1:123456789012:table/Parity/stream/2024-01-01T00:00:00.000"
KEY = {"pk": {"S": "é \u2603"}, "sk": {"B": b"\x00\xff binary"}}
ITEM = {**KEY, "n": {"N": "1.5"}, "bs": {"BS": [b"\x01", b"\x02"]}, "m": {"M": {"s": {"S": "x"}}}}

PARAMS: dict[str, dict[str, Any]] = {
    "GetItem": {"TableName": "Parity", "Key": KEY, "ConsistentRead": True},
    "PutItem": {"TableName": "Parity", "Item": ITEM, "ReturnValues": "ALL_OLD"},
    "UpdateItem": {
        "TableName": "Parity",
        "Key": KEY,
        "UpdateExpression": "SET #a = :a",
        "ExpressionAttributeNames": {"#a": "a"},
        "ExpressionAttributeValues": {":a": {"B": b"\x10"}},
    },
    "DeleteItem": {"TableName": "Parity", "Key": KEY},
    "BatchGetItem": {"RequestItems": {"Parity": {"Keys": [KEY]}}},
    "BatchWriteItem": {"RequestItems": {"Parity": [{"PutRequest": {"Item": ITEM}}]}},
    "Query": {
        "TableName": "Parity",
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "é"}},
        "ExclusiveStartKey": KEY,
    },
    "Scan": {"TableName": "Parity", "Segment": 1, "TotalSegments": 4},
    "TransactGetItems": {"TransactItems": [{"Get": {"TableName": "Parity", "Key": KEY}}]},
    "TransactWriteItems": {"TransactItems": [{"Put": {"TableName": "Parity", "Item": ITEM}}]},
    "DescribeStream": {"StreamArn": STREAM},
    "GetShardIterator": {
        "StreamArn": STREAM,
        "ShardId": "shardId-00000001",
        "ShardIteratorType": "TRIM_HORIZON",
    },
    "GetRecords": {"ShardIterator": "arn:aws:dynamodb:iterator/abc+/=", "Limit": 100},
    "ListStreams": {"TableName": "Parity"},
}

OPERATIONS = sorted(
    (service, operation)
    for service, operations in LEAN_OPERATIONS.items()
    for operation in operations
)


def test_every_lean_operation_has_parameters() -> None:
    """The parity cases cover every operation the lean path sends."""
    assert {operation for _, operation in OPERATIONS} == set(PARAMS)


# -- credentials ------------------------------------------------------------------------


class Issuer:
    """Hands out numbered keys; remembers each one's secret and token."""

    def __init__(self, prefix: str, with_token: bool = True) -> None:
        self.prefix = prefix
        self.with_token = with_token
        self.issued: dict[str, tuple[str, str | None]] = {}
        self.latest = ""
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, str, str | None]:
        with self._lock:
            number = next(self._numbers)
            key = f"{self.prefix}{number:010d}"
            secret = f"secret/{number}+key=="
            token = f"token-{number}/+=" if self.with_token else None
            self.issued[key] = (secret, token)
            self.latest = key
            return key, secret, token

    def refresh(self) -> dict[str, Any]:
        """botocore's refresh metadata, expiring in 5 minutes: inside the mandatory refresh
        window (10 minutes), so every use refreshes."""
        key, secret, token = self.issue()
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        return {
            "access_key": key,
            "secret_key": secret,
            "token": token,
            "expiry_time": expiry.isoformat(),
        }


def static_credentials(issuer: Issuer) -> botocore.credentials.Credentials:
    key, secret, token = issuer.issue()
    return botocore.credentials.Credentials(key, secret, token)


def refreshable_credentials(issuer: Issuer) -> botocore.credentials.Credentials:
    return botocore.credentials.RefreshableCredentials.create_from_metadata(
        metadata=issuer.refresh(), refresh_using=issuer.refresh, method="parity-test"
    )


KINDS: dict[str, tuple[Callable[[], Issuer], Callable[[Issuer], Any]]] = {
    "static": (lambda: Issuer("AKIASTATIC", with_token=False), static_credentials),
    "session-token": (lambda: Issuer("ASIATOKEN"), static_credentials),
    "refreshable": (lambda: Issuer("ASIAREFRESH"), refreshable_credentials),
}


class _Provider(botocore.credentials.CredentialProvider):
    METHOD = "parity-test"

    def __init__(self, credentials: botocore.credentials.Credentials) -> None:
        super().__init__()
        self.credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self.credentials


def session_with(credentials: botocore.credentials.Credentials) -> boto3.Session:
    """A boto3 session whose credential chain yields exactly ``credentials`` (same object)."""
    core = botocore.session.Session()
    core.register_component(
        "credential_provider", botocore.credentials.CredentialResolver([_Provider(credentials)])
    )
    return boto3.Session(botocore_session=core, region_name=REGION)


# -- capture and re-sign ----------------------------------------------------------------


class FakeSender:
    """Records each POST and answers an empty JSON document."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        self.sent.append((url, body, dict(headers)))
        return 200, {"x-amz-crc32": str(zlib.crc32(b"{}"))}, b"{}"


_ADDED_BY_SIGNING = {"authorization", "x-amz-date", "x-amz-security-token"}


def header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def botocore_signature(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    issuer: Issuer,
    monkeypatch: pytest.MonkeyPatch,
    signing_clock: Callable[[Callable[[], datetime.datetime]], None],
) -> tuple[str, str | None]:
    """botocore's (Authorization, X-Amz-Security-Token) for the request the lean transport
    sent, signed at its X-Amz-Date with the keys its Authorization header names."""
    authorization = header(headers, "Authorization")
    assert authorization is not None and authorization.startswith("AWS4-HMAC-SHA256 ")
    key = authorization.split("Credential=", 1)[1].split("/", 1)[0]
    secret, token = issuer.issued[key]
    stamp = header(headers, "X-Amz-Date")
    assert stamp is not None
    moment = datetime.datetime.strptime(stamp, botocore.auth.SIGV4_TIMESTAMP)
    signing_clock(lambda: moment)
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={k: v for k, v in headers.items() if k.lower() not in _ADDED_BY_SIGNING},
    )
    frozen = botocore.credentials.ReadOnlyCredentials(key, secret, token)
    botocore.auth.SigV4Auth(frozen, "dynamodb", REGION).add_auth(request)
    monkeypatch.undo()
    assert request.headers["X-Amz-Date"] == stamp
    return request.headers["Authorization"], request.headers.get("X-Amz-Security-Token")


def lean_transport(issuer: Issuer, make: Callable[[Issuer], Any]) -> tuple[Any, FakeSender]:
    sender = FakeSender()
    transport = LeanTransport(
        session=session_with(make(issuer)), endpoint_url=ENDPOINT, sender=sender
    )
    return transport, sender


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(("service", "operation"), OPERATIONS)
def test_lean_signature_is_botocores(
    service: Any, operation: str, kind: str, monkeypatch: pytest.MonkeyPatch, signing_clock: Any
) -> None:
    """One request of each lean operation carries exactly botocore's signature and token."""
    new_issuer, make = KINDS[kind]
    issuer = new_issuer()
    transport, sender = lean_transport(issuer, make)
    transport.call(service, operation, copy.deepcopy(PARAMS[operation]))
    ((url, body, headers),) = sender.sent
    assert url.startswith(ENDPOINT)
    expected, token = botocore_signature(url, body, headers, issuer, monkeypatch, signing_clock)
    assert header(headers, "Authorization") == expected
    assert header(headers, "X-Amz-Security-Token") == token
    if kind == "static":
        assert token is None
    else:
        assert token is not None


def test_refreshed_credentials_sign_each_request_with_the_newest_keys(
    monkeypatch: pytest.MonkeyPatch,
    signing_clock: Any,
) -> None:
    """Credentials refreshed mid-run: every request of a run over all lean operations is
    signed with the keys current when it was sent, each time as botocore would."""
    issuer = Issuer("ASIAMIDRUN")
    transport, sender = lean_transport(issuer, refreshable_credentials)
    used = []
    for service, operation in OPERATIONS * 2:
        transport.call(service, operation, copy.deepcopy(PARAMS[operation]))
        url, body, headers = sender.sent[-1]
        expected, token = botocore_signature(url, body, headers, issuer, monkeypatch, signing_clock)
        assert header(headers, "Authorization") == expected, operation
        assert header(headers, "X-Amz-Security-Token") == token
        key = expected.split("Credential=", 1)[1].split("/", 1)[0]
        assert key == issuer.latest, "signed with credentials older than the newest"
        used.append(key)
    assert len(set(used)) == len(used), "a request reused expiring credentials"

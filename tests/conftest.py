"""Fixtures shared by every test suite.

Import-time setup comes first because boto3 reads the environment when a client is created, and
test modules may create clients at import time. DynamoDB Local starts only when a test asks for
``local_endpoint`` (directly or through another fixture), so unit tests never pay for a JVM.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

# boto3 must work on a machine with no AWS configuration, and must never pick up a developer's
# profile (which could point at a real account) while the tests run.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_PROFILE", None)
# A proxy configured for the outside world must not intercept calls to DynamoDB Local.
for _name in ("NO_PROXY", "no_proxy"):
    os.environ[_name] = ",".join(filter(None, [os.environ.get(_name), "127.0.0.1", "localhost"]))


@pytest.fixture(scope="session")
def local_endpoint() -> Iterator[str]:
    """One DynamoDB Local for the whole session; yields its endpoint URL.

    One instance, because DynamoDB Local slows down as stream tables are created and dropped
    (STREAMS.md): tests create tables once per session with ``nonce`` in the name. While it
    runs, ``AWS_ENDPOINT_URL_DYNAMODB`` and ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS`` point at it,
    so ``Engine()`` with no arguments reaches it. It never skips: an integration test that
    cannot reach DynamoDB Local fails, with the server's output in the message.
    """
    from streamodel.local import DynamoDBLocal, DynamoDBLocalError

    server = DynamoDBLocal()
    try:
        server.start()
    except DynamoDBLocalError as exc:
        pytest.fail(f"could not start DynamoDB Local for the integration tests:\n{exc}")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.endpoint_url)
            patch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", server.endpoint_url)
            yield server.endpoint_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nonce() -> str:
    """A short random hex string for table names, unique to this test session."""
    return secrets.token_hex(4)

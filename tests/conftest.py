"""Fixtures shared by every test suite.

Import-time setup comes first because boto3 reads the environment when a client is created, and
test modules may create clients at import time. DynamoDB Local starts only when a test asks for
``local_endpoint`` (directly or through another fixture), so unit tests never pay for a JVM.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from streamodel.testing.local import DynamoDBLocal

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
def local_endpoint(streamodel_local: DynamoDBLocal) -> Iterator[str]:
    """The session's DynamoDB Local (the plugin's ``streamodel_local``); yields its endpoint URL.

    One instance, shared with the plugin's fixtures, because DynamoDB Local slows down as
    stream tables are created and dropped (STREAMS.md): tests create tables once per session
    with ``nonce`` in the name. While it runs, ``AWS_ENDPOINT_URL_DYNAMODB`` and
    ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS`` point at it, so ``Engine()`` with no arguments
    reaches it. It never skips: when DynamoDB Local cannot start, ``streamodel_local`` fails
    the test with the server's output.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_DYNAMODB", streamodel_local.endpoint_url)
        patch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", streamodel_local.endpoint_url)
        yield streamodel_local.endpoint_url


@pytest.fixture(scope="session")
def nonce() -> str:
    """A short random hex string for table names, unique to this test session."""
    return secrets.token_hex(4)

"""Where streamodel's own botocore clients come from: new botocore sessions (the environment as
it is now) that share one data loader; boto3 is never imported for them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import boto3
import pytest

from streamodel.transport.botocore import default_session, make_client


def test_new_sessions_share_one_data_loader() -> None:
    """Two engines' sessions parse botocore's service models once, not once each."""
    first, second = default_session(), default_session()
    assert first is not second
    assert first.get_component("data_loader") is second.get_component("data_loader")


def test_each_session_reads_the_environment_as_it_is_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session made after the environment changed sees the change, even when boto3's own
    default session was set up (and cached its view) earlier."""
    boto3.client("dynamodb", region_name="us-east-1")  # sets up boto3.DEFAULT_SESSION
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    client = make_client("dynamodb", default_session())
    assert client.meta.region_name == "eu-north-1"


def test_an_engine_does_not_import_boto3() -> None:
    """Making an engine and its clients loads botocore only: boto3 (and s3transfer) stay out
    of a cold start."""
    script = textwrap.dedent(
        """
        import sys
        from streamodel import Engine
        engine = Engine(endpoint_url="http://127.0.0.1:9")
        engine.transport.inner.botocore.client("dynamodb")
        assert "botocore.client" in sys.modules
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "s3transfer")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"

"""Which credentials sign, on both transports: profiles, credential_process, refreshed keys.

DynamoDB Local accepts any signature, so the requests go through a recording forwarder
(tests/support/tls.py with ``tls=False, record=True``) and the tests read the access key id
in each ``Authorization`` header and the ``X-Amz-Security-Token`` sent with it.
"""

from __future__ import annotations

import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from support.notes import TRANSPORTS, Base, Note, roundtrip

from streamodel import Engine
from streamodel.transport import LeanTransport

# Prints the JSON a credential_process returns: a new key on every run (numbered by a counter
# file), valid for LIFETIME seconds.
PROCESS = """\
import datetime, json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
    seconds=float(sys.argv[2])
)
print(json.dumps({
    "Version": 1,
    "AccessKeyId": f"AKIAPROC{n:08d}",
    "SecretAccessKey": f"process-secret-{n}",
    "SessionToken": f"process-token-{n}",
    "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
}))
"""


@pytest.fixture(scope="module", autouse=True)
def _tables(local_endpoint: str, table_template: str) -> None:
    """The table, created once (DynamoDB Local runs with -sharedDb: any key sees it)."""
    Engine(endpoint_url=local_endpoint, table_name_template=table_template).bind(base=Base)


@pytest.fixture
def aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Empty AWS config and credentials files in use, and no credentials anywhere else."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    config.write_text("")
    credentials.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    return config, credentials


def process_profile(config: Path, tmp_path: Path, lifetime: float) -> Path:
    """A profile ``proc`` whose credential_process returns a new key per run; returns the
    counter file (how many times it ran)."""
    script, counter = tmp_path / "credentials_process.py", tmp_path / "runs"
    script.write_text(PROCESS)
    command = " ".join(
        shlex.quote(part) for part in (sys.executable, str(script), str(counter), str(lifetime))
    )
    config.write_text(f"[profile proc]\nregion = us-east-1\ncredential_process = {command}\n")
    return counter


def signed_by(forwarder: Any) -> list[tuple[str, str, str | None]]:
    """(operation, access key id, session token) of every recorded request, in order."""
    found = []
    for request in forwarder.recorded():
        authorization = request.header("authorization") or ""
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential="), authorization
        key = authorization.split("Credential=", 1)[1].split("/", 1)[0]
        target = (request.header("x-amz-target") or "").rpartition(".")[2]
        found.append((target, key, request.header("x-amz-security-token")))
    return found


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_named_profile_static_keys(
    transport: str,
    aws_files: tuple[Path, Path],
    recording_forwarder: Any,
    table_template: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AWS_PROFILE names a profile with static keys: every request is signed with them,
    without a session token."""
    config, credentials = aws_files
    config.write_text("[profile static]\nregion = us-east-1\n")
    credentials.write_text(
        "[static]\naws_access_key_id = AKIASTATICPROFILE1\naws_secret_access_key = sekret\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "static")
    engine = Engine(
        endpoint_url=recording_forwarder.endpoint_url,
        transport=transport,
        table_name_template=table_template,
    )
    roundtrip(engine)
    signed = signed_by(recording_forwarder)
    assert len(signed) >= 4
    assert {(key, token) for _, key, token in signed} == {("AKIASTATICPROFILE1", None)}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_session_and_client_credentials_win_over_the_environment(
    transport: str,
    aws_files: tuple[Path, Path],
    recording_forwarder: Any,
    table_template: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A transport made from a session (profile_name=...) or from clients with their own keys
    signs with those, not with AWS_ACCESS_KEY_ID from the environment."""
    _, credentials = aws_files
    credentials.write_text(
        "[named]\naws_access_key_id = AKIANAMEDPROFILE01\naws_secret_access_key = named\n"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "environment")
    endpoint = recording_forwarder.endpoint_url
    session = boto3.Session(profile_name="named", region_name="us-east-1")
    from_session: Any = (
        LeanTransport(session=session, endpoint_url=endpoint) if transport == "lean" else "botocore"
    )
    made = {
        service: session.client(service, endpoint_url=endpoint)
        for service in ("dynamodb", "dynamodbstreams")
    }
    roundtrip(Engine(transport=from_session, table_name_template=table_template, **made))
    assert {key for _, key, _ in signed_by(recording_forwarder)} == {"AKIANAMEDPROFILE01"}

    count = len(recording_forwarder.recorded())
    given = {
        service: boto3.session.Session().client(
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="AKIACLIENTKEYS0001",
            aws_secret_access_key="client",
            aws_session_token="client-token",
        )
        for service in ("dynamodb", "dynamodbstreams")
    }
    roundtrip(Engine(**given, transport=transport, table_name_template=table_template))
    signed = signed_by(recording_forwarder)[count:]
    assert {(key, token) for _, key, token in signed} == {("AKIACLIENTKEYS0001", "client-token")}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_credential_process(
    transport: str,
    aws_files: tuple[Path, Path],
    recording_forwarder: Any,
    table_template: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A profile's credential_process (valid for an hour) signs every request, and its
    session token is sent."""
    config, _ = aws_files
    process_profile(config, tmp_path, lifetime=3600)
    monkeypatch.setenv("AWS_PROFILE", "proc")
    engine = Engine(
        endpoint_url=recording_forwarder.endpoint_url,
        transport=transport,
        table_name_template=table_template,
    )
    roundtrip(engine)
    signed = signed_by(recording_forwarder)
    assert len(signed) >= 4
    keys = {(key, token) for _, key, token in signed}
    assert len(keys) == 1, keys
    ((key, token),) = keys
    assert key.startswith("AKIAPROC")
    assert token == f"process-token-{int(key[8:])}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_expiring_credentials_are_refreshed_during_a_run(
    transport: str,
    aws_files: tuple[Path, Path],
    recording_forwarder: Any,
    table_template: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Credentials that expire in 5 minutes (inside botocore's mandatory refresh window of
    10) are refreshed before each use: later requests carry the new key and its token."""
    config, _ = aws_files
    runs = process_profile(config, tmp_path, lifetime=300)
    monkeypatch.setenv("AWS_PROFILE", "proc")
    engine = Engine(
        endpoint_url=recording_forwarder.endpoint_url,
        transport=transport,
        table_name_template=table_template,
    )
    owner = uuid.uuid4().hex
    engine.save(Note(owner=owner, n=0, text="t"))
    for _ in range(5):
        note = Note(owner=owner, n=0)
        engine.load(note, consistent=True)
        assert note.text == "t"
    signed = signed_by(recording_forwarder)
    assert [operation for operation, _, _ in signed] == ["UpdateItem"] + ["GetItem"] * 5
    numbers = [int(key[len("AKIAPROC") :]) for _, key, _ in signed]
    for (_, key, token), number in zip(signed, numbers, strict=True):
        assert key.startswith("AKIAPROC") and token == f"process-token-{number}"
    # Each request was signed with a key issued after the one before it, the last with the
    # newest key the process handed out.
    assert numbers == sorted(set(numbers)), numbers
    assert numbers[-1] == int(runs.read_text())

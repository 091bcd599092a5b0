"""Short versions of the reliability scenarios (the full ones: ``make reliability``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))
import scenarios

TRANSPORTS = ["botocore", "lean"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_increment_with_lost_answer_is_sent_once(
    local_endpoint: str, table_template: str, transport: str
) -> None:
    """An ADD whose answer is lost raises ServerError and counts once; a transaction retried
    with its token counts once."""
    scenarios.unknown_increment_is_not_retried(local_endpoint, table_template, transport=transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_workload_under_faults_loses_and_duplicates_nothing(
    local_endpoint: str, table_template: str, transport: str
) -> None:
    """Under 5% faults of each kind, every acknowledged write is stored with its value, every
    failure is a streamodel error, and no counter counts twice."""
    figures = scenarios.data_plane(
        local_endpoint, table_template, transport=transport, operations=50
    )
    assert figures.problems == []
    assert figures.faults > 0 and figures.lost == 0 and figures.duplicates == 0
    # Each transaction group was read back and compared (all of it or none of it stored).
    assert figures.notes["transaction groups checked"] > 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_lost_answers_over_tls_are_unknown_outcomes(
    local_endpoint: str, table_template: str, transport: str
) -> None:
    """Over TLS (client -TLS-> terminator -> fault proxy -> DynamoDB Local, the test CA trusted
    through AWS_CA_BUNDLE), a reset, a cut answer and a 500 on the plain side reach the client
    as failures: the increment raises ServerError and is sent once, and a transaction retried
    with its token counts once."""
    scenarios.unknown_increment_is_not_retried(
        local_endpoint, table_template, transport=transport, tls=True
    )


@pytest.mark.parametrize("transport", ["lean"])  # both transports: make reliability
def test_workload_over_tls_under_faults_loses_and_duplicates_nothing(
    local_endpoint: str, table_template: str, transport: str
) -> None:
    """The same workload over TLS, faults injected behind the TLS terminator: every
    acknowledged write is stored, every failure is a streamodel error, no counter counts
    twice, and every handshake succeeded."""
    figures = scenarios.data_plane(
        local_endpoint, table_template, transport=transport, operations=50, tls=True
    )
    assert figures.problems == []
    assert figures.faults > 0 and figures.lost == 0 and figures.duplicates == 0
    assert figures.notes["TLS connections accepted"] > 0
    assert figures.notes["TLS handshakes failed"] == 0


@pytest.mark.parametrize("transport", ["lean"])  # both transports: make reliability
def test_worker_under_faults_delivers_everything(
    local_endpoint: str, table_template: str, transport: str
) -> None:
    """A worker reading through 5% faults of each kind delivers every change, and never
    checkpoints past an unhandled one."""
    figures = scenarios.worker_under_faults(
        local_endpoint, table_template, transport=transport, changes=25
    )
    assert figures.problems == []
    assert figures.lost == 0


def test_killed_writer_leaves_whole_transactions_and_batches(
    local_endpoint: str, table_template: str
) -> None:
    """A writer SIGKILLed mid-run leaves every transaction whole or absent, and every
    acknowledged batch whole."""
    figures = scenarios.writes_killed(local_endpoint, table_template, kills=2)
    assert figures.problems == []
    assert figures.acknowledged > 0 and figures.lost == 0


def test_no_secret_or_item_value_is_logged_above_debug(
    local_endpoint: str, table_template: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Saves, failed calls and a worker with dead letters, run with DEBUG logging, log no
    access key, secret key or item value at INFO or above."""
    import logging
    import uuid

    import boto3

    from streamodel import Engine
    from streamodel.exceptions import StreamodelError
    from streamodel.stream import Worker

    access, secret = f"AKIA{uuid.uuid4().hex[:16].upper()}", uuid.uuid4().hex
    value = f"item-value-{uuid.uuid4().hex}"
    session = boto3.session.Session(aws_access_key_id=access, aws_secret_access_key=secret)
    caplog.set_level(logging.DEBUG)
    with scenarios.FaultProxy(local_endpoint, seed=5, **scenarios.FAULTS_5) as proxy:
        proxy.enabled = False
        for transport in ["lean"]:  # both: make reliability
            clients = {
                name: session.client(name, endpoint_url=proxy.endpoint_url, region_name="us-east-1")
                for name in ("dynamodb", "dynamodbstreams")
            }
            engine = Engine(
                clients["dynamodb"],
                clients["dynamodbstreams"],
                transport=transport,  # type: ignore[arg-type]
                table_name_template=table_template,
            )
            engine.bind(scenarios.Doc)
            engine.bind(scenarios.Event)
            worker = Worker(
                engine,
                group=f"log-{uuid.uuid4().hex[:8]}",
                start="latest",
                max_attempts=2,
                retry_wait=0.001,
            )

            @worker.subscribe(scenarios.Event)
            def fail(change: object) -> None:
                raise RuntimeError("handler refuses")

            worker.run(until_caught_up=True)
            proxy.enabled = True
            for n in range(10):
                try:
                    engine.save(scenarios.Doc(id=f"{value}-{n}", value=value))
                    engine.save(scenarios.Event(id=f"{value}-{n}", value=n))
                except StreamodelError:
                    pass
            proxy.enabled = False
            stale = scenarios.Doc(id=f"{value}-0", value=value)
            with pytest.raises(StreamodelError):
                engine.save(stale, condition=scenarios.Doc.value == "other")
            worker.run(until_caught_up=True)
    formatter = logging.Formatter()
    loud = [formatter.format(r) for r in caplog.records if r.levelno > logging.DEBUG]
    assert loud, "the workload logged nothing above DEBUG; the check would prove nothing"
    for text in loud:
        assert access not in text and secret not in text
        assert value not in text, text

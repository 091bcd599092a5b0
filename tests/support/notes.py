"""What the transport tests (TLS, proxy, credentials) share: one small model, boto3 clients
made the way a user makes them, and a round trip through every kind of request."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import botocore.config

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.transport import LeanTransport

TRANSPORTS = ["lean", "botocore"]

Base = new_base()


class Note(Base):
    class Meta:
        stream = None

    owner = Column(String, hash_key=True)
    n = Column(Integer, range_key=True)
    text = Column(String)


def clients(endpoint: str, verify: Any = None, **config: Any) -> dict[str, Any]:
    """boto3 clients for both services (botocore's own retries off: one attempt per call)."""
    options = botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": 1}, **config
    )
    session = boto3.session.Session(region_name="us-east-1")
    return {
        service: session.client(service, endpoint_url=endpoint, verify=verify, config=options)
        for service in ("dynamodb", "dynamodbstreams")
    }


def roundtrip(engine: Engine, count: int = 3, text: str = "note") -> None:
    """save, load, query and scan all go through and agree."""
    owner = uuid.uuid4().hex
    engine.save(*(Note(owner=owner, n=i, text=f"{text} {i}") for i in range(count)))
    loaded = Note(owner=owner, n=count - 1)
    engine.load(loaded, consistent=True)
    assert loaded.text == f"{text} {count - 1}"
    assert [note.n for note in engine.query(Note).key(Note.owner == owner)] == list(range(count))
    assert len(engine.scan(Note).filter(Note.owner == owner).all()) == count


def lean_of(engine: Engine) -> LeanTransport:
    """The LeanTransport inside the engine's retry (and any other) wrapper."""
    transport: Any = engine.transport
    for _ in range(5):
        if isinstance(transport, LeanTransport):
            return transport
        transport = getattr(transport, "inner", None)
    raise AssertionError(f"no LeanTransport in {engine.transport!r}")

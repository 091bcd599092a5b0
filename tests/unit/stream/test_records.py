"""Stream records decode into Changes: TTL deletes in both spellings of userIdentity."""

from __future__ import annotations

from typing import Any

import pytest

from streamodel import Column, Integer, String, new_base
from streamodel.stream.records import decode_record, is_ttl_delete
from streamodel.testing.fake_streams import FakeStreams

Base = new_base()


class Session(Base):
    id = Column(String, hash_key=True)
    hits = Column(Integer)


@pytest.mark.parametrize(
    "identity",
    [
        {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"},  # GetRecords (botocore)
        {"type": "Service", "principalId": "dynamodb.amazonaws.com"},  # Lambda events
    ],
)
def test_ttl_delete_is_expired_in_both_spellings(identity: dict[str, str]) -> None:
    """A REMOVE whose userIdentity is the DynamoDB service is expired, however it is spelled."""
    fake = FakeStreams()
    record: dict[str, Any] = fake.put({"id": {"S": "a"}}, old_image={"id": {"S": "a"}})
    record["userIdentity"] = identity
    change = decode_record(Session, record, shard_id="s", sequence_number="1")
    assert change.expired and change.event == "remove"


def test_user_delete_is_not_expired() -> None:
    """A REMOVE without the service identity (or by a user) is not a TTL delete."""
    assert not is_ttl_delete({"eventName": "REMOVE"})
    assert not is_ttl_delete({"userIdentity": {"Type": "Service", "PrincipalId": "someone"}})


def test_fake_streams_ttl_record_decodes_as_expired() -> None:
    """FakeStreams' TTL deletes look like GetRecords' and decode with expired=True."""
    fake = FakeStreams()
    record = fake.put(
        {"id": {"S": "a"}}, old_image={"id": {"S": "a"}, "hits": {"N": "2"}}, ttl=True
    )
    change = decode_record(Session, record, shard_id="s", sequence_number="1")
    assert change.expired and change.old.hits == 2 and change.new is None

"""The pytest plugin (``streamodel.testing``): ``streamodel_engine`` gives every test empty
tables, fresh streams and an empty worker state table; the entry point works with no import.

Tests here come in identical pairs on purpose: whichever of a pair runs second fails if what
the first one left behind (items, stream records, checkpoints) were still visible.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.stream import Change, Worker
from streamodel.testing.local import DynamoDBLocal, default_directory

Base = new_base()


class Note(Base):
    id = Column(String, hash_key=True)
    count = Column(Integer)


class Tag(Base):
    class Meta:
        stream = None

    name = Column(String, hash_key=True)
    owner = Column(String, range_key=True)


# A stream read gets at most this many empty answers before the test gives up; DynamoDB
# Local returns a fresh record on the first or second GetRecords.
_MAX_READS = 50


def _save_first_note_and_tags(engine: Engine) -> None:
    engine.bind(base=Base)
    # The condition fails if an earlier test's item with this key is still there.
    engine.save(Note(id="first", count=1), condition=Note.id.is_(None))
    engine.save(*(Tag(name="t", owner=str(n)) for n in range(30)))  # more than one batch
    assert engine.scan(Note).count() == 1
    assert engine.scan(Tag).count() == 30


def test_tables_are_empty_for_the_first_of_a_pair(streamodel_engine: Engine) -> None:
    """A test sees none of the items an earlier test saved (the second of a pair fails if not)."""
    _save_first_note_and_tags(streamodel_engine)


def test_tables_are_empty_for_the_second_of_a_pair(streamodel_engine: Engine) -> None:
    """A test sees none of the items an earlier test saved (the second of a pair fails if not)."""
    _save_first_note_and_tags(streamodel_engine)


def _changes_up_to_own_record(engine: Engine) -> list[Change]:
    engine.bind(Note)
    engine.save(Note(id="mine", count=1))
    stream = engine.stream(Note, "trim_horizon")
    changes: list[Change] = []
    for _ in range(_MAX_READS):
        change = next(stream)
        if change is not None:
            changes.append(change)
            if change.key == {"id": "mine"}:
                break
    return changes


def test_trim_horizon_holds_only_this_tests_records(streamodel_engine: Engine) -> None:
    """A stream read from trim_horizon starts with the test's own first change."""
    changes = _changes_up_to_own_record(streamodel_engine)
    assert [(c.event, c.key) for c in changes] == [("insert", {"id": "mine"})]


def test_trim_horizon_holds_only_this_tests_records_again(streamodel_engine: Engine) -> None:
    """A stream read from trim_horizon starts with the test's own first change."""
    changes = _changes_up_to_own_record(streamodel_engine)
    assert [(c.event, c.key) for c in changes] == [("insert", {"id": "mine"})]


def _worker_starts_without_checkpoints(engine: Engine) -> None:
    engine.bind(Note)
    worker = Worker(engine, group="plugin-test")
    handled: list[Change] = []
    worker.subscribe(Note)(handled.append)
    worker.store.setup()
    assert engine.scan(worker.store.ShardState).count() == 0
    engine.save(Note(id="w", count=1))
    worker.run(until_caught_up=True)
    assert [c.key for c in handled] == [{"id": "w"}]
    assert engine.scan(worker.store.ShardState).count() >= 1


def test_worker_state_table_is_empty(streamodel_engine: Engine) -> None:
    """A worker group starts with no checkpoints, whatever an earlier test's worker stored."""
    _worker_starts_without_checkpoints(streamodel_engine)


def test_worker_state_table_is_empty_again(streamodel_engine: Engine) -> None:
    """A worker group starts with no checkpoints, whatever an earlier test's worker stored."""
    _worker_starts_without_checkpoints(streamodel_engine)


def _factory_engine_starts_empty(make: Callable[..., Engine]) -> None:
    engine = make(table_name_template="plugin-app-{table_name}")
    assert engine.table_name(Note) == "plugin-app-Note"
    engine.bind(Note)
    engine.save(Note(id="app", count=1), condition=Note.id.is_(None))
    assert engine.scan(Note).count() == 1


def test_factory_engine_with_own_template(streamodel_engine_factory: Callable[..., Engine]) -> None:
    """An engine from the factory, with the application's template, starts with empty tables."""
    _factory_engine_starts_empty(streamodel_engine_factory)


def test_factory_engine_with_own_template_again(
    streamodel_engine_factory: Callable[..., Engine],
) -> None:
    """An engine from the factory, with the application's template, starts with empty tables."""
    _factory_engine_starts_empty(streamodel_engine_factory)


def test_engine_is_on_the_sessions_dynamodb_local(
    streamodel_engine: Engine, streamodel_local: DynamoDBLocal, local_endpoint: str
) -> None:
    """The project's local_endpoint and the plugin share one DynamoDB Local, and the engine's
    table names carry a session nonce."""
    assert local_endpoint == streamodel_local.endpoint_url
    name = streamodel_engine.table_name(Note)
    assert name.startswith("streamodel-") and name.endswith("-Note") and name != "streamodel--Note"


USER_TESTS = '''
"""A user's tests: no import from streamodel.testing, only the fixtures."""
from streamodel import Column, String, new_base

Base = new_base()


class Item(Base):
    id = Column(String, hash_key=True)


def _save_one(engine):
    engine.bind(base=Base)
    engine.save(Item(id="x"), condition=Item.id.is_(None))
    assert engine.scan(Item).count() == 1


def test_one(streamodel_engine):
    _save_one(streamodel_engine)


def test_two(streamodel_engine):
    _save_one(streamodel_engine)


def test_local(streamodel_local):
    assert streamodel_local.endpoint_url.startswith("http://127.0.0.1:")
'''


def test_entry_point_gives_the_fixtures_to_a_plain_pytest_run(tmp_path: Path) -> None:
    """pytest run on a user's test file finds the fixtures through the pytest11 entry point,
    with no AWS configuration in the environment."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST_"))}
    env["HOME"] = str(tmp_path)  # no ~/.aws either
    env["STREAMODEL_DYNAMODB_LOCAL_DIR"] = str(default_directory())  # the jar already fetched
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout

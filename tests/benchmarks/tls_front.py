"""TLS terminators for ``run.py``'s TLS section, in processes of their own.

``python tests/benchmarks/tls_front.py UPSTREAM NAME...`` starts one loopback TLS terminator
per NAME in front of the plain-HTTP ``UPSTREAM``, all with certificates from one test CA, and
prints one JSON line: ``{"ca_bundle": PATH, "endpoints": {NAME: URL}, "terminator": WHAT}``.
Then each line ``count`` read from standard input is answered with one JSON line
``{NAME: connections accepted}``; the terminators stop when standard input closes.

The terminator is the benchmark's server side, so it should cost the clients as little as
possible: every request crosses it. ``socat`` (Debian's package, C and OpenSSL, one process
per connection) is used when installed; its hop measured 0.35 ms less per request here than
the Python terminator of ``tests/support/tls.py``, which is the fallback (on uvloop when that
is installed). Either way it runs outside the benchmark's process, so its TLS work is not in
the clients' CPU figures, and one terminator per client counts each client's new connections.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: ``support``

import trustme
from support.tls import TLSTerminator

try:
    import uvloop
except ImportError:  # the pure-asyncio terminator works too, with more latency per hop
    uvloop = None


class SocatTerminator:
    """``socat`` terminating TLS on a free loopback port and forwarding to ``upstream``;
    counts accepted connections from its log."""

    def __init__(self, upstream: str, ca: trustme.CA, directory: Path, name: str) -> None:
        host, port = upstream.split("//", 1)[1].rstrip("/").rsplit(":", 1)
        pem = directory / f"{name.replace(' ', '-')}.pem"
        ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
            str(pem)
        )
        with socket.socket() as probe:  # a free port (socat binds it right after)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.endpoint_url = f"https://127.0.0.1:{self.port}"
        self.connections_accepted = 0
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            [
                "socat",
                "-d",
                "-d",
                f"OPENSSL-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork,cert={pem},verify=0,"
                "nodelay",
                f"TCP:{host}:{port},nodelay",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError("socat did not start listening")

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if "listening on" in line:
                self._ready.set()
            elif "accepting connection" in line:
                self.connections_accepted += 1

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: tls_front.py http://127.0.0.1:PORT NAME...", file=sys.stderr)
        return 2
    upstream, names = argv[0], argv[1:]
    ca = trustme.CA()
    with ExitStack() as stack:
        terminators: dict[str, Any]
        if shutil.which("socat"):
            what = "socat (OpenSSL)"
            directory = Path(stack.enter_context(_temporary_directory()))
            ca_path = directory / "ca.pem"
            ca.cert_pem.write_to_path(str(ca_path))
            terminators = {}
            for name in names:
                terminators[name] = SocatTerminator(upstream, ca, directory, name)
                stack.callback(terminators[name].close)
        else:
            what = "tests/support/tls.py" + (" on uvloop" if uvloop is not None else "")
            if uvloop is not None:
                asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            terminators = {
                name: stack.enter_context(TLSTerminator(upstream, ca=ca)) for name in names
            }
            ca_path = Path(next(iter(terminators.values())).ca_bundle_path)
        print(
            json.dumps(
                {
                    "ca_bundle": str(ca_path),
                    "endpoints": {name: t.endpoint_url for name, t in terminators.items()},
                    "terminator": what,
                }
            ),
            flush=True,
        )
        for line in sys.stdin:
            if line.strip() == "count":
                counts = {name: t.connections_accepted for name, t in terminators.items()}
                print(json.dumps(counts), flush=True)
    return 0


def _temporary_directory() -> Any:
    import tempfile

    return tempfile.TemporaryDirectory(prefix="streamodel-tls-front-")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

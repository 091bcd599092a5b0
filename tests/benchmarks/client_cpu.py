"""Client CPU per versioned update, with DynamoDB Local's noise taken out.

DynamoDB Local shares this machine's two cores with the client, so the ops/s rows of
``run.py`` move by about ±10% between runs even for identical requests. Here the server is a
stub in another process that answers every request at once with ``{}``, so what is measured
is the client alone: raw boto3 sending a hand-written conditional ``UpdateItem``, and
streamodel's ``engine.save`` of one changed column (plan, request, botocore or lean
transport, snapshot update). Each round runs every client in turn; the best round counts.

    python tests/benchmarks/client_cpu.py [--n 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import socketserver
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

BODY = b"{}"
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n"
    b"x-amz-crc32: " + str(zlib.crc32(BODY)).encode() + b"\r\n\r\n" + BODY
)


class _Answer(socketserver.BaseRequestHandler):
    """Reads each request on a kept-alive connection and answers it in one write."""

    def handle(self) -> None:
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = sock.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            while len(rest) < length:
                data = sock.recv(65536)
                if not data:
                    return
                rest += data
            buffer = rest[length:]
            sock.sendall(ANSWER)


def serve(port_file: str) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Answer)
    server.daemon_threads = True
    written = Path(port_file + ".tmp")
    written.write_text(str(server.server_address[1]))
    written.rename(port_file)  # whole, or not there yet
    server.serve_forever()


def measure(n: int, rounds: int, endpoint: str) -> dict[str, float]:
    import boto3
    from run import Account, Plain, hand_dump, sample_values

    from streamodel import Engine
    from streamodel._diff import load_new

    raw = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    key = {"tenant": {"S": "t"}, "id": {"S": "id-00000001"}}

    def raw_update(i: int) -> None:
        raw.update_item(
            TableName="Account",
            Key=key,
            UpdateExpression="SET #n = :n, #v = :new",
            ConditionExpression="#v = :old",
            ExpressionAttributeNames={"#n": "name", "#v": "version"},
            ExpressionAttributeValues={
                ":n": {"S": f"name {i}"},
                ":new": {"N": str(i + 1)},
                ":old": {"N": str(i)},
            },
        )

    item = hand_dump(Plain(**sample_values("t", 1)))
    clients: dict[str, Callable[[int], None]] = {"raw boto3": raw_update}
    for transport in ("botocore", "lean"):
        engine = Engine(endpoint_url=endpoint, transport=transport)
        obj: Any = load_new(Account, item)

        def save(i: int, engine: Engine = engine, obj: Any = obj) -> None:
            obj.name = f"name {i}"
            engine.save(obj)

        clients[f"streamodel {transport}"] = save
    best = {name: float("inf") for name in clients}
    for call in clients.values():  # warm up: connections, caches
        for i in range(200):
            call(i)
    names = list(clients)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            gc.collect()
            gc.disable()
            started = time.process_time()
            for i in range(n):
                clients[name](i)
            best[name] = min(best[name], (time.process_time() - started) / n)
            gc.enable()
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    port_file = Path(f"/tmp/streamodel-client-cpu-{os.getpid()}")
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the stub server did not start")
            time.sleep(0.01)
        endpoint = f"http://127.0.0.1:{port_file.read_text()}"
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "bench")
        best = measure(args.n, args.rounds, endpoint)
    finally:
        server.kill()
        port_file.unlink(missing_ok=True)
    base = best["raw boto3"]
    print(f"client CPU per versioned update (best of {args.rounds} rounds of {args.n}):")
    for name, seconds in best.items():
        print(f"  {name:20} {seconds * 1e6:7.1f} µs  ({seconds / base:.2f}x raw boto3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

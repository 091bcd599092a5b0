"""Client CPU per request of the asyncio lean transport, against the same requests sent
through aiohttp and httpx, at 1, 16 and 64 requests in flight.

The server is ``client_cpu.py``'s stub in another process, answering every request at once
with ``{}``, so what is measured is the client alone (``time.process_time`` of this process,
which runs nothing else meanwhile). Every row sends the same ``GetItem``, built, signed and
read by :class:`~streamodel.transport.AsyncLeanTransport` (``exchange``, ``answers``); only
the HTTP layer differs: streamodel's own asyncio pool (``aio_pool``: an ``asyncio.Protocol``
feeding the sans-I/O ``ResponseParser``), or a sender over an ``aiohttp.ClientSession`` or
an ``httpx.AsyncClient``. Each client may open as many connections as requests are in flight.
The sync ``LeanTransport`` at 1 in flight is the reference. Each round runs every client in
turn; the best round counts.

aiohttp and httpx are not streamodel dependencies: install them to compare
(``pip install aiohttp httpx``); a missing one is left out.

    python tests/benchmarks/async_transport.py [--n 3000] [--rounds 5] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from streamodel.transport import AsyncLeanTransport, LeanTransport

HERE = Path(__file__).resolve()
PARAMS = {"TableName": "Account", "Key": {"tenant": {"S": "t"}, "id": {"S": "id-00000001"}}}
LEVELS = (1, 16, 64)


def serve(port_file: str) -> None:
    """client_cpu.py's instant stub, with a listen backlog for 64 connections at once."""
    import socketserver

    sys.path.insert(0, str(HERE.parent))
    from client_cpu import _Answer

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), _Answer)
    written = Path(port_file + ".tmp")
    written.write_text(str(server.server_address[1]))
    written.rename(port_file)  # whole, or not there yet
    server.serve_forever()


def start_server() -> tuple[subprocess.Popen[bytes], str, Path]:
    port_file = Path(f"/tmp/streamodel-async-bench-{os.getpid()}")
    server = subprocess.Popen([sys.executable, str(HERE), "--serve", str(port_file)])
    deadline = time.monotonic() + 10
    while not port_file.exists():
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("the stub server did not start")
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{port_file.read_text()}", port_file


def clients(endpoint: str, connections: int) -> dict[str, Any]:
    config = botocore.config.Config(
        max_pool_connections=connections, retries={"mode": "standard", "total_max_attempts": 1}
    )
    session = boto3.session.Session(region_name="us-east-1")
    return {
        service: session.client(service, endpoint_url=endpoint, config=config)
        for service in ("dynamodb", "dynamodbstreams")
    }


class AiohttpSender:
    def __init__(self, connections: int) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections), auto_decompress=False
        )

    async def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        async with self.session.post(url, data=body, headers=headers) as response:
            return response.status, response.headers, await response.read()

    async def aclose(self) -> None:
        await self.session.close()


class HttpxSender:
    def __init__(self, connections: int) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        )

    async def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        response = await self.client.post(url, content=body, headers=headers)
        return response.status_code, response.headers, response.content

    async def aclose(self) -> None:
        await self.client.aclose()


def senders(connections: int) -> dict[str, Callable[[], Any]]:
    """The HTTP layers to compare (``None``: streamodel's own pool)."""
    made: dict[str, Callable[[], Any]] = {"streamodel asyncio": lambda: None}
    for name, module, cls in (
        ("aiohttp", "aiohttp", AiohttpSender),
        ("httpx", "httpx", HttpxSender),
    ):
        try:
            __import__(module)
        except ImportError:
            print(f"({name} is not installed: left out)", file=sys.stderr)
            continue
        made[name] = lambda cls=cls: cls(connections)  # type: ignore[misc]
    return made


async def run_level(endpoint: str, level: int, n: int, rounds: int) -> dict[str, float]:
    transports: dict[str, AsyncLeanTransport] = {}
    for name, make in senders(level).items():
        transports[name] = AsyncLeanTransport(**clients(endpoint, level), sender=make())
    jobs: dict[str, Callable[[int], Awaitable[None]]] = {}
    for name, transport in transports.items():

        async def job(count: int, transport: AsyncLeanTransport = transport) -> None:
            async def worker(requests: int) -> None:
                for _ in range(requests):
                    await transport.call("dynamodb", "GetItem", PARAMS)

            await asyncio.gather(*(worker(count // level) for _ in range(level)))

        jobs[name] = job
    for job in jobs.values():  # warm up: connections, caches
        await job(max(level * 20, 200))
    best = {name: float("inf") for name in jobs}
    names = list(jobs)
    per_round = n - n % level
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            gc.collect()
            gc.disable()
            started = time.process_time()
            await jobs[name](per_round)
            best[name] = min(best[name], (time.process_time() - started) / per_round)
            gc.enable()
    for transport in transports.values():
        await transport.aclose()
        sender = transport._sender
        if sender is not None:
            await sender.aclose()  # type: ignore[attr-defined]
    return best


def sync_reference(endpoint: str, n: int, rounds: int) -> float:
    transport = LeanTransport(**clients(endpoint, 1))
    for _ in range(200):
        transport.call("dynamodb", "GetItem", PARAMS)
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        started = time.process_time()
        for _ in range(n):
            transport.call("dynamodb", "GetItem", PARAMS)
        best = min(best, (time.process_time() - started) / n)
        gc.enable()
    transport.close()
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="requests per client and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--uvloop", action="store_true", help="run the clients on uvloop")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(name, None)
    server, endpoint, port_file = start_server()
    try:
        reference = sync_reference(endpoint, args.n, args.rounds)
        results: dict[int, dict[str, float]] = {}
        for level in LEVELS:
            coroutine = run_level(endpoint, level, args.n, args.rounds)
            if args.uvloop:
                import uvloop

                results[level] = uvloop.run(coroutine)
            else:
                results[level] = asyncio.run(coroutine)
    finally:
        server.kill()
        port_file.unlink(missing_ok=True)
    loop = "uvloop" if args.uvloop else "asyncio"
    print(
        f"client CPU per GetItem (best of {args.rounds} rounds of {args.n}; {loop} loop; "
        f"sync LeanTransport, 1 at a time: {reference * 1e6:.1f} µs)"
    )
    names = list(results[LEVELS[0]])
    print("| HTTP layer | " + " | ".join(f"{level} in flight" for level in LEVELS) + " |")
    print("| --- |" + " ---: |" * len(LEVELS))
    for name in names:
        base = results
        cells = []
        for level in LEVELS:
            seconds = base[level][name]
            ratio = seconds / base[level]["streamodel asyncio"]
            cells.append(f"{seconds * 1e6:.1f} µs ({ratio:.2f}x)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A :class:`~streamodel.testing.FakeStreams` served over HTTP, for tests with processes.

DynamoDB Local keeps one shard per table, so splits, lineage and several workers sharing
many shards need the fake; when those workers are separate processes (to SIGKILL them), the
fake has to be reachable the way DynamoDB Streams is. :class:`FakeStreamsServer` speaks the
service's JSON 1.0 protocol on a loopback port, so any client (boto3, the lean transport,
``streamodel worker``) reads the fake once ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS`` points at
``server.endpoint_url``. Request signatures are not checked.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from streamodel.exceptions import TransportError
from streamodel.testing.fake_streams import FakeStreams
from streamodel.transport.json_shape import to_json_shape

__all__ = ["FakeStreamsServer"]

_TARGET_PREFIX = "DynamoDBStreams_20120810."
_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"


class FakeStreamsServer:
    """``with FakeStreamsServer(fake) as server:`` serves ``fake`` at ``server.endpoint_url``."""

    def __init__(self, fake: FakeStreams, *, port: int = 0) -> None:
        self.fake = fake
        handler = _handler_for(fake)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-streams", daemon=True
        )

    @property
    def endpoint_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> FakeStreamsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FakeStreamsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _handler_for(fake: FakeStreams) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            target = self.headers.get("X-Amz-Target", "")
            # Stream requests carry no attribute values: plain JSON is all there is.
            params = json.loads(self.rfile.read(length) or b"{}")
            operation = target.removeprefix(_TARGET_PREFIX)
            try:
                result = fake.call("dynamodbstreams", operation, params)
                status, body = 200, result
            except TransportError as error:
                status = 500 if error.code in ("InternalServerError", "ServiceUnavailable") else 400
                body = {"__type": _ERROR_PREFIX + error.code, "message": str(error)}
            payload = json.dumps(to_json_shape(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read their own logs

    return Handler

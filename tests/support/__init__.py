"""Real loopback servers for the tests and benchmarks: a TLS terminator (also a plain,
optionally recording, forwarder) and an HTTP CONNECT proxy with Basic auth.

Import as ``support`` with ``tests/`` on ``sys.path`` (pytest puts it there through
``tests/conftest.py``; scripts insert it themselves, as the benchmarks do).
"""

from support.connect_proxy import ConnectProxy, ProxyRequest
from support.tls import RecordedRequest, TLSTerminator

__all__ = ["ConnectProxy", "ProxyRequest", "RecordedRequest", "TLSTerminator"]

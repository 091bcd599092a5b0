"""The only code that talks to AWS.

Everything above this package builds plain request dicts in DynamoDB's wire format and hands
them to a :class:`Transport` as ``transport.call(service, operation, params)`` (or to an
:class:`AsyncTransport` as ``await transport.call(...)``); everything that comes back is a
plain response dict, and every failure is a streamodel error (see
:mod:`streamodel.transport.errors`). Retries wrap any transport (:class:`RetryingTransport`,
:class:`AsyncRetryingTransport`), so fakes used in tests go through the same retry path.
"""

from streamodel.transport.aio_lean import AsyncLeanTransport
from streamodel.transport.aio_retry import AsyncRetryingTransport
from streamodel.transport.base import AsyncTransport, Service, Transport
from streamodel.transport.botocore import BotocoreTransport
from streamodel.transport.lean import LeanTransport
from streamodel.transport.observed import ObservedTransport, OnRequest
from streamodel.transport.retry import RetryingTransport, RetryPolicy

__all__ = [
    "AsyncLeanTransport",
    "AsyncRetryingTransport",
    "AsyncTransport",
    "BotocoreTransport",
    "LeanTransport",
    "ObservedTransport",
    "OnRequest",
    "RetryPolicy",
    "RetryingTransport",
    "Service",
    "Transport",
]

"""Deprecated: :class:`FakeStreamsServer` moved to :mod:`streamodel.testing.http`.

Kept so existing test suites keep running; importing it warns once with the new path.
"""

import warnings

from streamodel.testing.http import FakeStreamsServer

__all__ = ["FakeStreamsServer"]

warnings.warn(
    "streamodel.testing_http is deprecated: import FakeStreamsServer from "
    "streamodel.testing.http (or streamodel.testing)",
    DeprecationWarning,
    stacklevel=2,
)

"""marshmallow, imported for all of streamodel without compiling its e-mail domain pattern.

Importing ``marshmallow.validate`` compiles ``Email.DOMAIN_REGEX``, a case-insensitive pattern
over most of Unicode: about 20 ms, an eighth of a Lambda cold start to the first answered
request, spent on a validator most programs never call. While marshmallow is imported for the
first time, the patterns ``marshmallow.validate`` compiles at its top level become
:class:`_DeferredPattern` class attributes that compile on first use and then put the real
pattern in their place, so ``Email.DOMAIN_REGEX`` is an ``re.Pattern`` again from the first
e-mail validated on. Every streamodel module imports marshmallow through this one.
"""

from __future__ import annotations

import re
import sys
from typing import Any

__all__ = ["fields", "marshmallow"]


class _DeferredPattern:
    """A pattern compiled when its class attribute is first read (or used directly)."""

    # ABCMeta (marshmallow's validators are ABCs) asks every class attribute this.
    __isabstractmethod__ = False

    def __init__(self, pattern: str, flags: int) -> None:
        self._arguments = (pattern, flags)
        self._name: str | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: object, owner: type | None = None) -> re.Pattern[str]:
        compiled = re.compile(*self._arguments)
        if owner is not None and self._name is not None:
            setattr(owner, self._name, compiled)  # later reads find the pattern itself
        return compiled

    def __getattr__(self, name: str) -> Any:
        return getattr(re.compile(*self._arguments), name)


def _import_marshmallow() -> None:
    real_compile = re.compile

    def compile_later(pattern: Any, flags: int = 0) -> Any:
        # Only marshmallow.validate's own top-level patterns; any other caller (another
        # thread, a module marshmallow imports) gets a compiled pattern as always.
        if isinstance(pattern, str) and sys._getframe(1).f_globals.get("__name__") == (
            "marshmallow.validate"
        ):
            return _DeferredPattern(pattern, flags)
        return real_compile(pattern, flags)

    re.compile = compile_later
    try:
        import marshmallow.validate  # noqa: F401
    finally:
        re.compile = real_compile


if "marshmallow.validate" not in sys.modules:
    _import_marshmallow()

import marshmallow  # noqa: E402  # after the deferral above
from marshmallow import fields  # noqa: E402

"""A string that stays out of sight: the bearer token, the OAuth credential.

Error reporters (Sentry, Rollbar, ``traceback.TracebackException(capture_locals=True)``)
record the ``repr`` of every local variable of every frame of a traceback. pecapi's own
frames therefore hold secrets only as :class:`Secret` objects, whose ``repr`` and ``str``
say ``<redacted>``; the plain value exists only inside a call expression (a header built
and handed to aiohttp in one go), never in a named local of a frame that can raise.
"""

from __future__ import annotations

import hmac

__all__ = ["Secret"]


class Secret:
    """A secret value: ``reveal()`` gives it; ``repr``, ``str`` and pickling never do."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("secrets are not picklable")

"""Settings of a request: timeouts and per-call options, in one typed object each."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs

from pecapi.errors import ValidationError

if TYPE_CHECKING:
    from pecapi.transport.retry import RetryPolicy

__all__ = ["DEFAULT_TIMEOUT", "RequestOptions", "Timeout"]


def _positive_or_none(value: float | None, name: str) -> None:
    if value is None:
        return
    # not (value > 0): NaN compares false to everything; infinity is no limit (say None)
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if bad or not (0 < value < math.inf):
        raise ValidationError(name, f"must be a positive number of seconds, not {value!r}")


@attrs.frozen(kw_only=True)
class Timeout:
    """Time limits of one request in seconds: ``connect`` to open the connection,
    ``total`` for the whole exchange (sending, waiting, reading the body). None: no limit."""

    total: float | None = 60.0
    connect: float | None = 10.0

    def __attrs_post_init__(self) -> None:
        _positive_or_none(self.total, "timeout.total")
        _positive_or_none(self.connect, "timeout.connect")

    @classmethod
    def of(cls, value: Timeout | float | None) -> Timeout | None:
        """A Timeout from a Timeout or a number of seconds (the total)."""
        if value is None or isinstance(value, Timeout):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("timeout", f"must be seconds or a pecapi.Timeout, not {value!r}")
        connect = DEFAULT_TIMEOUT.connect
        return cls(total=float(value), connect=min(connect, value) if connect else None)


DEFAULT_TIMEOUT = Timeout()


def _to_timeout(value: Timeout | float | None) -> Timeout | None:
    return Timeout.of(value)


@attrs.frozen(kw_only=True)
class RequestOptions:
    """Options of one call, or defaults of a client (``client.with_options``).

    Every field left None falls back to the client's setting.
    """

    timeout: Timeout | None = attrs.field(default=None, converter=_to_timeout)
    retry: RetryPolicy | None = None

    def merged_over(self, base: RequestOptions) -> RequestOptions:
        """These options, with ``base`` filling what is unset."""
        return RequestOptions(
            timeout=self.timeout if self.timeout is not None else base.timeout,
            retry=self.retry if self.retry is not None else base.retry,
        )

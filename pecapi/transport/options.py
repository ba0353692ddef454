"""Settings of a request: timeouts and per-call options, in one typed object each."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

import attrs

from pecapi.errors import ValidationError

if TYPE_CHECKING:
    from pecapi.transport.retry import RetryPolicy

__all__ = ["DEFAULT_TIMEOUT", "PROTECTED_HEADERS", "RequestOptions", "Timeout"]


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


# -- extra headers and query parameters ------------------------------------------------

#: Headers ``extra_headers`` may not set (compared in any letter case): the credential,
#: what describes the body pecapi encodes (type, length, framing, encoding), the
#: encodings its bounded readers can inflate, the host the token is sent to, the
#: connection itself, and the method overrides a gateway may honour (a retried read
#: must never become a paid write).
PROTECTED_HEADERS = frozenset(
    (
        "authorization",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "accept-encoding",
        "host",
        "connection",
        "upgrade",
        "te",
        "expect",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    )
)
# RFC 9110's token: what a header name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Control characters but tab: a CR or LF in a value would start another header.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _extra_headers(value: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """A read-only copy of ``value``, every header checked (nothing is sent otherwise)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError("extra_headers", f"must be a mapping, not {type(value).__name__}")
    seen: dict[str, str] = {}
    for name, text in value.items():
        # Exactly str: a subclass could answer .lower() with anything, and pass as
        # another header than the one sent.
        if type(name) is not str or not _TOKEN.fullmatch(name):
            raise ValidationError("extra_headers", f"{name!r} is not a header name")
        field = f"extra_headers.{name}"
        if name.lower() in PROTECTED_HEADERS:
            raise ValidationError(field, "is set by pecapi and cannot be overridden")
        if name.lower() in seen:
            raise ValidationError(field, f"given twice (also as {seen[name.lower()]!r})")
        seen[name.lower()] = name
        if not isinstance(text, str):
            raise ValidationError(field, f"must be a string, not {type(text).__name__}")
        if _CONTROL.search(text) or not _latin1(text):
            # The value itself is not quoted: it may be a credential of the caller's.
            raise ValidationError(field, "holds a control character or non-Latin-1 text")
    return MappingProxyType(dict(value))


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _extra_query(value: Mapping[str, str] | None) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError("extra_query", f"must be a mapping, not {type(value).__name__}")
    for name, text in value.items():
        if not isinstance(name, str) or not name:
            raise ValidationError("extra_query", f"{name!r} is not a parameter name")
        if not isinstance(text, str):
            raise ValidationError(
                f"extra_query.{name}", f"must be a string, not {type(text).__name__}"
            )
    return MappingProxyType(dict(value))


def _names_only(value: Mapping[str, str] | None) -> str:
    # Header values can be credentials of the caller's (an API gateway's key): a repr of
    # the options (in a log, an error reporter's frame locals) shows the names only.
    return "None" if value is None else repr(sorted(value))


def _merged(
    over: Mapping[str, str] | None, base: Mapping[str, str] | None, *, fold: bool
) -> Mapping[str, str] | None:
    """``base`` updated with ``over``; header names (``fold``) compared in any case."""
    if not over or not base:
        return over or base
    names = {name.lower() if fold else name for name in over}
    kept = {k: v for k, v in base.items() if (k.lower() if fold else k) not in names}
    return MappingProxyType({**kept, **over})


@attrs.frozen(kw_only=True)
class RequestOptions:
    """Options of one call, or defaults of a client (``client.with_options``).

    Every field left None falls back to the client's setting. ``extra_headers`` and
    ``extra_query`` are added to the request (a call's over its client's, name by name);
    they cannot set the headers in :data:`PROTECTED_HEADERS` nor a query parameter the
    operation sets itself (``anni`` of a renewal): a :class:`ValidationError` naming it,
    and nothing is sent.
    """

    timeout: Timeout | None = attrs.field(default=None, converter=_to_timeout)
    retry: RetryPolicy | None = None
    # hash=False: a mapping cannot be hashed; options stay usable as keys without them.
    extra_headers: Mapping[str, str] | None = attrs.field(
        default=None, converter=_extra_headers, repr=_names_only, hash=False
    )
    extra_query: Mapping[str, str] | None = attrs.field(
        default=None, converter=_extra_query, hash=False
    )

    def merged_over(self, base: RequestOptions) -> RequestOptions:
        """These options, with ``base`` filling what is unset."""
        return RequestOptions(
            timeout=self.timeout if self.timeout is not None else base.timeout,
            retry=self.retry if self.retry is not None else base.retry,
            extra_headers=_merged(self.extra_headers, base.extra_headers, fold=True),
            extra_query=_merged(self.extra_query, base.extra_query, fold=False),
        )

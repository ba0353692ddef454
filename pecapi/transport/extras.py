"""What a request carries: extra query parameters (checked against the operation's own),
the headers of every attempt (pecapi's own set last) and of the session pecapi creates,
its payload and its aiohttp timeout."""

from __future__ import annotations

import platform
from collections.abc import Mapping

import aiohttp
from aiohttp.payload import BytesPayload, Payload

from pecapi._version import __version__
from pecapi.errors import ValidationError
from pecapi.secret import Secret
from pecapi.transport.auth import StaticAuth
from pecapi.transport.exchange import Exchange
from pecapi.transport.limits import ACCEPT_ENCODING
from pecapi.transport.options import Timeout

__all__ = [
    "USER_AGENT",
    "client_timeout",
    "content_type",
    "request_headers",
    "request_payload",
    "request_query",
    "session_headers",
]

#: The User-Agent of every request pecapi sends, to the PEC API and to the token service.
USER_AGENT = (
    f"pecapi/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"
)


def request_query(
    query: Mapping[str, str] | None, extra: Mapping[str, str] | None
) -> Mapping[str, str] | None:
    """The operation's ``query`` with ``extra`` added; a clash is refused, not resolved:
    either winner would silently change a call (``anni`` of a paid renewal)."""
    if not extra:
        return query
    own = query or {}
    for name in extra:
        if name in own:
            raise ValidationError(
                f"extra_query.{name}", "is set by the operation itself: use its argument"
            )
    return {**own, **extra}


def request_headers(
    authorization: Secret | None, exchange: Exchange, content_type: str | None = None
) -> dict[str, str]:
    """The headers of one attempt; ``authorization`` is the whole ``Authorization`` value
    (``Bearer ...``, ``Basic ...``: see :class:`~pecapi.transport.auth.Auth`), None when
    the pipeline's session carries it (a fixed one, on the session pecapi created).
    ``extra_headers`` were checked when the options were made (RequestOptions refuses
    the protected ones); pecapi's own are still set after them, so that no path could
    let a caller's value replace the credential.
    ``content_type``: the body's, set explicitly, since a session passed in by the user
    may carry a default ``Content-Type`` or skip the payload's."""
    headers = {"Accept": exchange.endpoint.accept}
    extra = exchange.options.extra_headers
    if extra:
        # A caller may negotiate Accept, in any letter case; every other extra name was
        # checked against pecapi's own (and given once) when the options were made.
        for name, value in extra.items():
            if name.lower() == "accept":
                del headers["Accept"]
            headers[name] = value
    if authorization is not None:
        headers["Authorization"] = authorization.reveal()
    headers["Accept-Encoding"] = ACCEPT_ENCODING  # only what the readers can inflate
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


def session_headers(auth: StaticAuth | None) -> dict[str, str]:
    """The headers of a session pecapi creates: its User-Agent and, for a fixed
    ``Authorization`` (``auth``), that too, set once instead of on every request."""
    if auth is None:
        return {"User-Agent": USER_AGENT}
    return {"User-Agent": USER_AGENT, "Authorization": auth.value.reveal()}


def request_payload(exchange: Exchange) -> Payload | None:
    """The body of one attempt as a payload object: its repr (what error reporters record
    of a frame's locals) is its type, never the body."""
    body = exchange.body()
    if isinstance(body, bytes):  # an encoded JSON object (json_body)
        return BytesPayload(body, content_type="application/json")
    return body  # None, or a streamed payload with its own Content-Type


def content_type(payload: Payload | None) -> str | None:
    return payload.content_type if payload is not None else None


def client_timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=timeout.total, connect=timeout.connect)

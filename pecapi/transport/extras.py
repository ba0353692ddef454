"""What a call's options add to its request: extra query parameters (checked against the
operation's own) and the headers of every attempt, pecapi's own set last."""

from __future__ import annotations

from collections.abc import Mapping

from pecapi.errors import ValidationError
from pecapi.secret import Secret
from pecapi.transport.exchange import Exchange
from pecapi.transport.limits import ACCEPT_ENCODING

__all__ = ["request_headers", "request_query"]


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
    authorization: Secret, exchange: Exchange, content_type: str | None = None
) -> dict[str, str]:
    """The headers of one attempt; ``authorization`` is the whole ``Authorization`` value
    (``Bearer ...``, ``Basic ...``: see :class:`~pecapi.transport.auth.Auth`).
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
    headers["Authorization"] = authorization.reveal()
    headers["Accept-Encoding"] = ACCEPT_ENCODING  # only what the readers can inflate
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers

"""aiohttp's exceptions, typed as pecapi's, with a scrubbed copy chained in their place."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import aiohttp
import attrs

from pecapi.errors import (
    PecConnectionError,
    PecTimeoutError,
    ScrubbedCause,
    TransportError,
)

__all__ = ["ErrorWording", "raise_again", "raise_unchained", "transport_error"]


@attrs.frozen(kw_only=True)
class ErrorWording:
    """How the errors of one pipeline name what it talks to and who holds it.

    - ``service`` starts its transport errors' messages (``"OAuth service: cannot
      connect: ..."``); empty for the PEC API;
    - ``owner`` is named when it is used closed or in another event loop
      (``"this OAuthTokenProvider is closed"``);
    - ``quote``: whether aiohttp's message is kept (see :func:`transport_error`); False
      for a service whose answers may hold a token.
    """

    service: str = ""
    owner: str = "PecClient"
    quote: bool = True


def transport_error(
    exc: BaseException,
    where: dict[str, Any],
    total: float | None,
    service: str = "",
    *,
    quote: bool = True,
) -> TransportError:
    """The :class:`~pecapi.TransportError` for aiohttp's ``exc`` (or a timeout), with a
    :class:`~pecapi.ScrubbedCause` as its ``__cause__``.

    Never raise this from inside the ``except`` block that caught ``exc``: Python would
    make ``exc`` its ``__context__``, and ``exc`` carries the request headers (the token)
    in its attributes and in its traceback's frame locals.

    ``quote=False`` leaves out aiohttp's message, which can quote the answer's bytes (a
    bad status line, say): the token service's answer may hold a token.
    """
    to = f"{service}: " if service else ""
    error: TransportError
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = PecTimeoutError(
            f"{to}timed out opening the connection", **where, request_sent=False
        )
    elif isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        error = PecTimeoutError(f"{to}no complete answer within {total}s", **where)
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = PecConnectionError(
            f"{to}cannot connect: {exc.strerror or type(exc).__name__}",
            **where,
            request_sent=False,
        )
    elif isinstance(exc, aiohttp.ClientPayloadError):
        error = PecConnectionError(f"{to}the response body was cut short", **where)
    elif isinstance(exc, aiohttp.ClientConnectionError):
        error = PecConnectionError(
            f"{to}connection lost before a full response ({type(exc).__name__})", **where
        )
    elif isinstance(exc, aiohttp.ClientResponseError):
        said = f" ({exc.message})" if quote else ""
        error = PecConnectionError(f"{to}invalid HTTP response{said}", **where)
    else:
        error = TransportError(f"{to}HTTP failure ({type(exc).__name__})", **where)
    error.__cause__ = ScrubbedCause.of(exc, keep_message=quote)
    return error


def raise_again(error: BaseException) -> NoReturn:
    """Raise ``error`` again, later than where it was caught, with the context it had.

    A plain ``raise error`` outside its ``except`` block sets the exception being handled
    as its ``__context__``, and on 3.10 a coroutine can still see aiohttp's exception as
    that one (see :func:`raise_unchained`): the request headers would hang off the error.
    """
    context = error.__context__
    try:
        raise error
    except BaseException as raised:
        raised.__context__ = context
        raise
    finally:
        # This frame is in the error's traceback: it must not hold the error (a cycle
        # that keeps the request's frames alive until a garbage collection).
        del error, context


def raise_unchained(error: BaseException) -> NoReturn:
    """Raise ``error`` with no implicit ``__context__``.

    Raising after the ``except`` block that caught aiohttp's exception is not enough on
    every Python: on 3.10 a coroutine can still see that exception as the one being
    handled, and Python makes it the new error's ``__context__`` (with the request
    headers in its attributes and frames). The context is cleared here, and the bare
    ``raise`` that follows sets none.
    """
    try:
        raise error
    except BaseException as raised:
        raised.__context__ = None
        raise

"""One HTTP attempt: the single place where a request leaves the process."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from yarl import URL

from pecapi.errors import PecError, safe_url
from pecapi.secret import Secret
from pecapi.transport.exchange import Exchange, where
from pecapi.transport.extras import content_type, request_headers, request_payload
from pecapi.transport.pending import ACTIVE_GUARD, check_guard
from pecapi.transport.raw import answered
from pecapi.transport.throttle import Throttle
from pecapi.transport.transport_errors import ErrorWording, raise_unchained, transport_error

__all__ = ["send_once"]

R = TypeVar("R")

logger = logging.getLogger("pecapi")


async def send_once(
    session: aiohttp.ClientSession,
    throttle: Throttle,
    exchange: Exchange,
    read: Callable[[aiohttp.ClientResponse], Awaitable[R]],
    authorization: Secret | None,
    total: float | None,
    aiohttp_timeout: aiohttp.ClientTimeout,
    wording: ErrorWording,
    base_url: URL,
) -> R:
    """Send ``exchange`` once through ``throttle`` and ``read`` the response, with
    transport errors typed (worded by ``wording``; ``total``: the attempt's timeout, for
    the message). ``authorization`` is the whole ``Authorization`` value (see ``Auth``);
    None when the session carries it."""
    # A payload object: its repr (what error reporters record of this frame's
    # locals) is its type, never the body (personal data, a signed callback URL).
    payload = request_payload(exchange)
    started = time.perf_counter()
    # Its repr names the URL (``/tokens/{token}`` holds a token): dropped before this
    # frame ends (``finally``), so no error raised through here keeps it in a local.
    response: aiohttp.ClientResponse | None = None
    try:
        entered_now = throttle.enter_now()
        if not entered_now:
            await throttle.__aenter__()
        try:
            active = ACTIVE_GUARD.get()
            if active is not None and active[1] is asyncio.current_task():
                check_guard(active[0])  # a fleet's write: its lease may have gone meanwhile
            async with session.request(
                exchange.method,
                exchange.url,
                # Built in the call: no local of this frame holds the plain token.
                data=payload,
                headers=request_headers(authorization, exchange, content_type(payload)),
                timeout=aiohttp_timeout,
                allow_redirects=False,
                # A session passed in by the user may say otherwise: pecapi's error
                # types and resend rules do not depend on its settings.
                raise_for_status=False,
                auto_decompress=False,  # inflated by limits.LimitedBody, bounded
            ) as response:
                # Told before the body is read: an answer whose body cannot be read
                # (cut, too large, undecodable) is reported by with_raw_response all
                # the same.
                answered(exchange, response)
                result = await read(response)
                status = response.status
        finally:
            if entered_now:
                throttle.leave()
            else:
                await throttle.__aexit__(None, None, None)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # not TimeoutError on 3.10
        if isinstance(exc, PecError):  # PecTimeoutError is a TimeoutError too
            raise
        error = transport_error(exc, where(exchange), total, wording.service, quote=wording.quote)
    else:
        if logger.isEnabledFor(logging.DEBUG):
            # The token service (quote=False) has tokens in some of its paths (OAuth
            # v2's /tokens/{token}): its requests are logged by the path's template.
            shown = (
                safe_url(exchange.url)
                if wording.quote
                else f"{safe_url(base_url).rstrip('/')}{exchange.endpoint.path}"
            )
            logger.debug(
                "%s %s -> %s in %.1f ms",
                exchange.method,
                shown,
                status,
                (time.perf_counter() - started) * 1000,
            )
        return result
    finally:
        response = None
    # Raised here, outside the handler, so that aiohttp's exception is not even the
    # implicit ``__context__``: it holds the request headers, and its traceback holds
    # aiohttp's frames, whose locals are those headers. ``transport_error`` chained a
    # scrubbed copy (its type and message) instead.
    raise_unchained(error)

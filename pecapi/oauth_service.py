"""The token service (Openapi.it's OAuth API) through the one request pipeline.

Its operations are :class:`~pecapi.transport.endpoint.Endpoint` declarations on a second
base URL (``oauth.openapi.it``), sent by a :class:`~pecapi.transport.pipeline.Pipeline`
of their own: the same transport errors (a connection that could not be opened, or a
connect timeout, says ``request_sent=False``), the same scrubbed chaining, the same
User-Agent, a throttle of its own, and reads retried under a
:class:`~pecapi.RetryPolicy`. Every request carries HTTP Basic credentials (the
account's e-mail and API key) unless the call brings its own ``auth`` (a refresh token
as ``Bearer``, for one call).

What differs from the PEC API is the reading of the answers, since any of them can hold
a token: every answer, whatever its status, is read up to ``TOKEN_ANSWER_LIMIT``; an
error keeps only the JSON envelope's ``success``, ``message`` and ``error`` fields, and
of an answer that is not JSON only its type and size (a token can hide in any text);
the transport errors never quote aiohttp's message (it can quote the answer's bytes);
and an answer an endpoint cannot decode is reported without its content.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import aiohttp
from yarl import URL

from pecapi.errors import (
    PecApiError,
    PecError,
    RateLimitError,
    ResponseDecodeError,
    api_error_class,
)
from pecapi.jsontext import JsonError, loads, whole_number
from pecapi.transport.auth import Auth
from pecapi.transport.decode import retry_after_seconds
from pecapi.transport.endpoint import Endpoint, Reply
from pecapi.transport.exchange import Exchange, RawResponse, json_body, no_body, where
from pecapi.transport.limits import TOKEN_ANSWER_LIMIT, read_limited
from pecapi.transport.options import RequestOptions, Timeout
from pecapi.transport.pipeline import Pipeline
from pecapi.transport.retry import RetryPolicy
from pecapi.transport.throttle import Throttle
from pecapi.transport.transport_errors import ErrorWording, raise_unchained

__all__ = ["ONE_ATTEMPT", "SERVICE", "TokenService", "UnusableAnswer"]

T = TypeVar("T")

SERVICE = "OAuth service"

#: The policy of a call sent once, whatever happens (its callers retry it): token
#: creation (see ``pecapi.oauth_v1.CREATE_TOKEN``).
ONE_ATTEMPT = RetryPolicy.never()

# At most this many requests to the token service at once: one creation at a time is
# what a provider needs; a few more for the listings and revocations of v2.
_MAX_IN_FLIGHT = 8


class UnusableAnswer(Exception):
    """Raised by a token service endpoint's ``decode``: the answer is not usable. Its
    message is shown (``"has no usable token"``), so it must never quote the answer;
    any other exception of a decoder is reported by its type alone."""


class TokenService:
    """The token service at ``base_url``, authenticated by ``credentials`` (usually
    :func:`~pecapi.transport.auth.basic_auth` of the e-mail and API key).

    ``owner`` names what holds it in its errors (``"this OAuthTokenProvider is
    closed"``). ``session`` is an aiohttp session to use and not close (its silent
    re-send of idempotent requests is turned off, as for ``PecClient``); otherwise one
    is made on first use and closed by :meth:`aclose`. ``timeout`` bounds each attempt
    and ``retry`` is the policy of the calls that do not pass their own (reads are
    retried; see ``Effect``).
    """

    __slots__ = ("pipeline",)

    def __init__(
        self,
        base_url: URL,
        credentials: Auth,
        *,
        owner: str,
        timeout: Timeout,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.pipeline = Pipeline(
            base_url=base_url,
            auth=credentials,
            session=session,
            throttle=Throttle(_MAX_IN_FLIGHT),
            defaults=RequestOptions(timeout=timeout, retry=retry or RetryPolicy()),
            wording=ErrorWording(service=SERVICE, owner=owner, quote=False),
        )

    @property
    def base_url(self) -> URL:
        return self.pipeline.base_url

    @property
    def closed(self) -> bool:
        return self.pipeline.closed

    async def aclose(self) -> None:
        """Close the session (only one made here). Idempotent."""
        await self.pipeline.aclose()

    async def call(
        self,
        endpoint: Endpoint[T],
        *,
        params: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        json: Any = None,
        auth: Auth | None = None,
        retry: RetryPolicy | None = None,
    ) -> T:
        """Send ``endpoint`` (its path filled with ``params``, ``json`` as its body) and
        return what its ``decode`` makes of the answer.

        ``decode`` gets a :class:`~pecapi.transport.endpoint.Reply` whose ``data`` is the
        whole JSON answer (v1 answers a token at the top level, not in ``data``), None
        for an empty one; it raises :class:`UnusableAnswer` to refuse it. ``auth``
        replaces the credentials for this call; ``retry`` the policy.

        Raises the :class:`~pecapi.PecApiError` of the status (the envelope's fields
        only), a :class:`~pecapi.TransportError`, or a :class:`~pecapi.ResponseDecodeError`
        (an answer that is not JSON or that ``decode`` refuses; never its content).
        """
        pipeline = self.pipeline
        options = RequestOptions(retry=retry).merged_over(pipeline.defaults)
        exchange = pipeline.exchange(
            endpoint,
            params=params,
            query=query,
            body=no_body if json is None else json_body(json),
            options=options,
        )
        return await pipeline.send(exchange, _read, _Finish(exchange), auth=auth)


async def _read(response: aiohttp.ClientResponse) -> RawResponse:
    # Whatever the status: an error of a token service can carry a token as well (a
    # gateway's 500 after the token was made), and is bounded the same way.
    try:
        body = await read_limited(response, TOKEN_ANSWER_LIMIT, setting="the token answer limit")
    except PecError as exc:  # too large, or not inflatable
        # Without the frames that raised it (the reader's hold the response, whose repr
        # names the URL: ``/tokens/{token}``), and raised from a frame that no longer
        # holds the response either.
        error: PecError = exc.with_traceback(None)
    else:
        return RawResponse(response.status, dict(response.headers), body)
    del response
    raise_unchained(error)


class _Failed:
    """An error to raise, returned by the frame that looked at the answer: no frame of
    its traceback then holds the answer (which may hold a token)."""

    __slots__ = ("error",)

    def __init__(self, error: PecError) -> None:
        self.error = error


class _Finish(Generic[T]):
    """The answer of one exchange, decoded (a callable for ``Pipeline.send``)."""

    __slots__ = ("exchange",)

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def __call__(self, raw: RawResponse) -> T:
        outcome: T | _Failed = _outcome(self.exchange, raw)
        del raw  # this frame is in the error's traceback
        if isinstance(outcome, _Failed):
            raise_unchained(outcome.error)
        return outcome


_NOT_JSON = object()


def _parse(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return loads(body)
    except JsonError:  # dropped here, with its traceback (whose frames hold the body)
        return _NOT_JSON


def _outcome(exchange: Exchange, raw: RawResponse) -> Any:
    status, headers = raw.status, raw.headers
    payload = _parse(raw.body)
    envelope = payload if isinstance(payload, dict) else {}
    if status >= 300 or envelope.get("success") is False:
        return _Failed(service_error(exchange, raw, payload))
    if payload is _NOT_JSON:
        return _Failed(
            ResponseDecodeError(
                f"the {SERVICE} answered something that is not JSON",
                **where(exchange),
                status=status,
                headers=headers,
            )
        )
    message = envelope.get("message")
    reply = Reply(
        status=status,
        data=payload,
        message=message if isinstance(message, str) else None,
        code=_code(envelope.get("error")),
        params=exchange.params,
    )
    endpoint = exchange.endpoint
    assert endpoint.decode is not None  # the token service answers JSON
    try:
        return endpoint.decode(reply)
    except UnusableAnswer as exc:
        reason = str(exc)
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        # Its message may quote the answer: the type alone.
        reason = f"is not what {endpoint} answers ({type(exc).__name__})"
    return _Failed(
        ResponseDecodeError(
            f"the {SERVICE}'s answer {reason}", **where(exchange), status=status, headers=headers
        )
    )


def _code(error: Any) -> int | None:
    if isinstance(error, int) and not isinstance(error, bool):
        return error
    if isinstance(error, str):
        return whole_number(error)
    return None


def service_error(exchange: Exchange, raw: RawResponse, payload: Any) -> PecApiError:
    """The typed error of a refusal (an error status, or ``success: false``).

    The answer of a token service may carry a token even when it is an error (a
    gateway's 500 after the token was made): the error keeps the envelope's fields only,
    and of an answer that is not JSON only its type and size (a token can hide in any
    text, under any name)."""
    status, headers = raw.status, raw.headers
    message: str | None = None
    code: int | None = None
    body: Any = None
    if isinstance(payload, dict):
        code = _code(payload.get("error"))
        if isinstance(payload.get("message"), str) and payload["message"]:
            message = payload["message"]
        body = {k: payload[k] for k in ("success", "message", "error") if k in payload}
    elif raw.body.strip():
        kind = headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
        message = f"{len(raw.body)} bytes of {kind}, not shown (a token may hide in them)"
    endpoint = exchange.endpoint
    common: dict[str, Any] = {
        "status": status,
        "code": code,
        "method": exchange.method,
        "url": exchange.url,
        "headers": headers,
        "body": body,
    }
    text = f"the {SERVICE} refused {endpoint}: {message or f'HTTP {status}'}"
    if status == 429:
        return RateLimitError(text, retry_after=retry_after_seconds(headers), **common)
    return api_error_class(status)(text, **common)

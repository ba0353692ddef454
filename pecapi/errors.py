"""The one exception hierarchy of pecapi, rooted at :class:`PecError`.

Every error pecapi raises on purpose is a :class:`PecError`. ``asyncio.CancelledError``
is never wrapped. Messages, reprs and attributes never carry the bearer token or API
key: URLs are stripped of credentials and request headers are never kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from yarl import URL

if TYPE_CHECKING:
    from pecapi.transport.pending import PendingOutcome

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "CoordinationError",
    "EventLoopError",
    "InsufficientCreditError",
    "NotAcceptableError",
    "NotFoundError",
    "OperationFailedError",
    "OutcomeUnknownError",
    "PecApiError",
    "PecConnectionError",
    "PecError",
    "PecTimeoutError",
    "PermissionDeniedError",
    "PreconditionRequiredError",
    "RateLimitError",
    "ResponseDecodeError",
    "ResponseTooLargeError",
    "ScrubbedCause",
    "ServerError",
    "TokenError",
    "TransportError",
    "UnexpectedStatusError",
    "ValidationError",
]

_BODY_PREVIEW = 200


def safe_url(url: URL | str | None) -> str:
    """The URL as text with any user-info removed, safe to show and log."""
    if url is None:
        return ""
    u = URL(url) if isinstance(url, str) else url
    if u.user is not None or u.password is not None:
        u = u.with_user(None)
    return str(u)


def _preview(body: bytes | str | None) -> str:
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= _BODY_PREVIEW else text[:_BODY_PREVIEW] + "…"


class PecError(Exception):
    """Base class of every error raised by pecapi."""


class ConfigurationError(PecError, ValueError):
    """The client was set up wrongly (no token, a plain-HTTP base URL that is not loopback...)."""


class ClientClosedError(PecError, RuntimeError):
    """A call was made on a client after ``aclose()``, or in an event loop other than
    the one it was first used in (e.g. a second ``asyncio.run()``)."""


class EventLoopError(ClientClosedError):
    """The client (or token provider) was used in an event loop other than the one its
    HTTP session was made in: typically a second ``asyncio.run()`` with a client made
    for the first. A session cannot move between loops: make one client per loop."""


class ScrubbedCause(Exception):
    """What pecapi chains in place of a third-party exception (aiohttp's, the JSON
    parser's...): its type and message, nothing else.

    aiohttp's exceptions carry the request headers (``Authorization: Bearer ...``) in
    their attributes, and their tracebacks hold frames whose locals are those headers;
    error reporters record both. This copy keeps what is needed to debug (which error,
    what it said) and has no traceback, attributes or chain of its own.
    """

    def __init__(self, type_name: str, message: str) -> None:
        self.type_name = type_name
        self.message = message
        super().__init__(f"{type_name}: {message}" if message else type_name)

    @classmethod
    def of(cls, exc: BaseException, *, keep_message: bool = True) -> ScrubbedCause:
        """The copy of ``exc``; without its message when that may quote a secret."""
        kind = type(exc)
        message = str(exc) if keep_message else "(message not kept)"
        return cls(f"{kind.__module__}.{kind.__qualname__}", message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message))


class ValidationError(PecError, ValueError):
    """Bad input, found before anything was sent. ``field`` names the API field at fault."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.message))


class _RequestError(PecError):
    """An error tied to one HTTP request: carries its method and (secret-free) URL."""

    def __init__(self, message: str, *, method: str = "", url: URL | str | None = None) -> None:
        self.method = method
        self.url = safe_url(url)
        self.message = message
        where = f" ({method} {self.url})" if method else ""
        super().__init__(f"{message}{where}")


class TransportError(_RequestError):
    """The HTTP exchange itself failed: no usable response was received.

    ``request_sent`` is False only when pecapi knows the request never left this
    process (for example the connection could not be opened); when it is True the
    server may have received and processed the request.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: URL | str | None = None,
        request_sent: bool = True,
    ) -> None:
        self.request_sent = request_sent
        super().__init__(message, method=method, url=url)


class PecConnectionError(TransportError):
    """The connection could not be opened, or was lost before a full response arrived."""


class PecTimeoutError(TransportError, TimeoutError):
    """The request took longer than its timeout."""


class OutcomeUnknownError(PecError):
    """A write may or may not have taken effect, and pecapi could not find out in time.

    ``cause`` is the error of the write itself (a timeout, a lost connection, a 5xx...).
    ``pending`` (a :class:`~pecapi.PendingOutcome`; None when there is nothing to check
    it with: ``RetryPolicy(reconcile=False)``, or the read before the write failed) lets
    you finish the check later: ``await client.reconcile(exc.pending)`` returns the
    operation's result if it took effect, None if it did not. Do not send the write again
    before that: it may still be charged.
    """

    def __init__(
        self,
        message: str,
        *,
        cause: BaseException | None = None,
        pending: PendingOutcome[Any] | None = None,
    ) -> None:
        self.cause = cause
        self.pending = pending
        self.message = message
        super().__init__(message)


class TokenError(PecError):
    """No token could be had from the token provider, so nothing was sent to the PEC API.

    ``cause`` is the provider's error (e.g. the token service's 503). ``retryable`` says
    whether trying again may help (the service was unreachable or busy); pecapi's retry
    policy then retries the call, writes included, since nothing reached the API.
    """

    request_sent = False

    def __init__(self, message: str, *, cause: BaseException | None, retryable: bool) -> None:
        self.cause = cause
        self.retryable = retryable
        self.message = message
        super().__init__(message)


class CoordinationError(PecError):
    """The coordination store of a fleet (``pecapi.fleet``: Redis) could not be used, so
    nothing was sent: the account-wide rate, the one paid write per mailbox and the shared
    token cannot be guaranteed without it. ``cause`` is a scrubbed copy of the store's
    error. With ``on_unavailable="local"`` pecapi falls back to per-process limits instead.
    """

    request_sent = False

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        self.cause = cause
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_coordination_error, (self.message, self.cause))


def _coordination_error(message: str, cause: BaseException | None) -> CoordinationError:
    return CoordinationError(message, cause=cause)


class ResponseDecodeError(_RequestError):
    """The server answered 2xx, but not with what the API sends (HTML, truncated JSON...)."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: URL | str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = dict(headers or {})
        self.body = body
        preview = _preview(body)
        detail = f"{message} [HTTP {status}]" if status is not None else message
        if preview:
            detail = f"{detail}: {preview!r}"
        super().__init__(detail, method=method, url=url)


class ResponseTooLargeError(ResponseDecodeError):
    """The answer was larger than the client's limit for it (``limit``: in bytes, counted
    after decompression, or in JSON values for ``ResponseLimits.json_values``): pecapi
    stopped reading (or did not parse) it. See :class:`~pecapi.ResponseLimits`.

    A read is not retried (the next answer would be as large); a write's outcome is
    unknown (the server did answer) and is settled like any unreadable answer."""

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        method: str = "",
        url: URL | str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.limit = limit
        super().__init__(message, method=method, url=url, status=status, headers=headers)


class PecApiError(_RequestError):
    """The API answered with an error: an HTTP error status, or ``success: false``.

    ``status`` is the HTTP status, ``code`` the API's own error number (the envelope's
    ``error`` field), ``message`` the API's message.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        method: str = "",
        url: URL | str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        self.status = status
        self.code = code
        self.headers: Mapping[str, str] = dict(headers or {})
        self.body = body
        self.api_message = message
        code_text = f" (code {code})" if code is not None else ""
        super().__init__(f"HTTP {status}{code_text}: {message}", method=method, url=url)


class BadRequestError(PecApiError):
    """HTTP 400: typically a malformed id ("Wrong id")."""


class AuthenticationError(PecApiError):
    """HTTP 401: the token is missing, invalid or expired."""


class InsufficientCreditError(PecApiError):
    """HTTP 402: the wallet has not enough credit for this paid operation."""


class PermissionDeniedError(PecApiError):
    """HTTP 403: the token's scopes do not allow this operation."""


class NotFoundError(PecApiError):
    """HTTP 404: no such mailbox or request."""


class NotAcceptableError(PecApiError):
    """HTTP 406: the API refused the values sent (already revoked, bad space multiple...)."""


class PreconditionRequiredError(PecApiError):
    """HTTP 428: a required field is missing, or the object is in the wrong state."""


class RateLimitError(PecApiError):
    """HTTP 429: too many requests. ``retry_after`` is the server's hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ServerError(PecApiError):
    """HTTP 5xx from the API."""


class OperationFailedError(PecApiError):
    """The API answered a 2xx status with ``success: false``."""


class UnexpectedStatusError(PecApiError):
    """Any other HTTP status the API is not documented to send."""


_BY_STATUS: dict[int, type[PecApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditError,
    403: PermissionDeniedError,
    404: NotFoundError,
    406: NotAcceptableError,
    428: PreconditionRequiredError,
    429: RateLimitError,
}


def api_error_class(status: int) -> type[PecApiError]:
    """The :class:`PecApiError` subclass for an HTTP status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 200 <= status <= 299:
        return OperationFailedError
    if 500 <= status <= 599:
        return ServerError
    return UnexpectedStatusError

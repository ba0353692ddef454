"""Tokens from the Openapi.it OAuth service: scopes for the PEC API, and a renewing provider.

::

    provider = OAuthTokenProvider(
        "me@example.org", api_key, scopes=pec_scopes("mailboxes.list", sandbox=True),
        sandbox=True,
    )
    async with provider, PecClient(provider, sandbox=True) as client:
        ...

The service is the OAuth API v1 (``oauth.openapi.it``, sandbox ``test.oauth.openapi.it``):
``POST /token`` with HTTP Basic authentication (the account's e-mail and API key) and the
body ``{"scopes": [...], "ttl": seconds}`` answers ``{"token", "expire", "scopes", "success",
"message", "error"}``. A scope is ``METHOD:host/segment``, e.g.
``GET:test.pec.openapi.it/pec``, where the segment is the first segment of the path.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import aiohttp
from yarl import URL

from pecapi import __version__
from pecapi.closing import AsyncClosing, check_loop
from pecapi.errors import (
    ClientClosedError,
    ConfigurationError,
    PecError,
    ResponseDecodeError,
    api_error_class,
    safe_url,
)
from pecapi.jsontext import JsonError, loads, whole_number
from pecapi.resources import comunica_pec as _comunica_pec
from pecapi.resources import domains as _domains
from pecapi.resources import mailboxes as _mailboxes
from pecapi.secret import Secret
from pecapi.transport.endpoint import Endpoint
from pecapi.transport.limits import ACCEPT_ENCODING, TOKEN_ANSWER_LIMIT, read_limited
from pecapi.transport.transport_errors import raise_unchained, transport_error
from pecapi.transport.urls import check_base_url

__all__ = [
    "API_KEY_ENV",
    "EMAIL_ENV",
    "OAUTH_PRODUCTION_URL",
    "OAUTH_SANDBOX_URL",
    "PEC_HOSTS",
    "PEC_OPERATIONS",
    "PEC_SEGMENTS",
    "SANDBOX_API_KEY_ENV",
    "OAuthTokenProvider",
    "all_pec_scopes",
    "pec_scopes",
]

logger = logging.getLogger("pecapi")

OAUTH_PRODUCTION_URL = "https://oauth.openapi.it"
OAUTH_SANDBOX_URL = "https://test.oauth.openapi.it"

#: Environment variables the provider reads when ``email`` / ``api_key`` are not given.
EMAIL_ENV = "OPENAPI_EMAIL"
API_KEY_ENV = "OPENAPI_API_KEY"
SANDBOX_API_KEY_ENV = "OPENAPI_SANDBOX_API_KEY"

#: The host of the PEC API as it appears in scopes: production and sandbox.
PEC_HOSTS: Mapping[bool, str] = MappingProxyType(
    {False: "pec.openapi.it", True: "test.pec.openapi.it"}
)
#: The first path segments of the PEC API: the ``segment`` of its scopes.
PEC_SEGMENTS = ("pec", "verifica_pec", "domini_pec", "comunica_pec")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "*"})

_DEFAULT_TTL = 24 * 3600
_MAX_TTL = 365 * 24 * 3600
_DEFAULT_RENEW_BEFORE = 300.0
# After a failed renewal while the current token is still valid: wait at most this long.
_RETRY_AFTER_FAILURE = 30.0

USER_AGENT = (
    f"pecapi/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"
)


def _operations() -> Mapping[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for module in (_mailboxes, _comunica_pec, _domains):
        for value in vars(module).values():
            if isinstance(value, Endpoint):
                segment = value.path.strip("/").split("/", 1)[0]
                found[value.name] = (value.method, segment)
    return MappingProxyType(dict(sorted(found.items())))


#: Every operation of the client -> the (method, segment) of the scope it needs,
#: e.g. ``"mailboxes.renew": ("GET", "pec")``.
PEC_OPERATIONS: Mapping[str, tuple[str, str]] = _operations()


def _scope_pair(item: object) -> tuple[str, str]:
    if isinstance(item, str):
        pair = PEC_OPERATIONS.get(item.strip())
        if pair is None:
            known = ", ".join(PEC_OPERATIONS)
            raise ConfigurationError(f"unknown PEC operation {item!r}; known: {known}")
        return pair
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
        method, segment = item[0].strip().upper(), item[1].strip().strip("/")
        if method not in _METHODS:
            raise ConfigurationError(f"{item[0]!r} is not an HTTP method (or '*')")
        if segment not in PEC_SEGMENTS:
            raise ConfigurationError(
                f"{item[1]!r} is not a segment of the PEC API ({', '.join(PEC_SEGMENTS)})"
            )
        return method, segment
    raise ConfigurationError(
        f"an operation is a name like 'mailboxes.renew' or a (method, segment) pair, not {item!r}"
    )


def pec_scopes(*operations: str | tuple[str, str], sandbox: bool) -> list[str]:
    """The OAuth scopes that allow ``operations`` on the PEC API, without duplicates.

    An operation is a client method name (``"mailboxes.renew"``, ``"comunica_pec.create"``,
    ``"domains.check"``: see :data:`PEC_OPERATIONS`) or a ``(method, segment)`` pair such as
    ``("GET", "pec")``. The scopes name ``test.pec.openapi.it`` when ``sandbox`` is true,
    ``pec.openapi.it`` otherwise::

        >>> pec_scopes("mailboxes.renew", "mailboxes.get", ("POST", "pec"), sandbox=True)
        ['GET:test.pec.openapi.it/pec', 'POST:test.pec.openapi.it/pec']
    """
    if not operations:
        raise ConfigurationError("pec_scopes() needs at least one operation")
    host = PEC_HOSTS[bool(sandbox)]
    scopes: dict[str, None] = {}
    for item in operations:
        method, segment = _scope_pair(item)
        scopes[f"{method}:{host}/{segment}"] = None
    return list(scopes)


def all_pec_scopes(*, sandbox: bool) -> list[str]:
    """Every scope the client's operations can need: one per (method, segment) in use."""
    order = {segment: i for i, segment in enumerate(PEC_SEGMENTS)}
    pairs = sorted(set(PEC_OPERATIONS.values()), key=lambda p: (order.get(p[1], 99), p[0]))
    return pec_scopes(*pairs, sandbox=sandbox)


# -- the provider ------------------------------------------------------------------------


class _Issued:
    """One token the service created, and when to stop handing it out."""

    __slots__ = ("expires_at", "refresh_at", "secret")

    def __init__(self, value: str, expires_at: float, refresh_at: float) -> None:
        self.secret = Secret(value)
        self.expires_at = expires_at
        self.refresh_at = refresh_at

    def __repr__(self) -> str:
        return f"_Issued(<redacted>, expires_at={self.expires_at})"


def _credential(value: Secret | None, env: str, what: str) -> Secret:
    """The credential given, else the environment's, checked. It travels as a
    :class:`Secret` (``repr`` redacted) so that no frame of a ConfigurationError's
    traceback holds it in plain text."""
    if value is None:
        value = Secret(os.environ.get(env, "").strip())
        if not value.reveal():
            raise ConfigurationError(f"no {what}: pass {what}=... or set {env} in the environment")
    problem = _credential_problem(value.reveal())
    if problem:
        raise ConfigurationError(f"the {what} {problem}")
    return Secret(value.reveal().strip())


def _credential_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if any(not ch.isprintable() for ch in value):
        return "contains control characters"
    return None


def _check_scopes(scopes: Iterable[str], sandbox: bool) -> tuple[str, ...]:
    if isinstance(scopes, str):
        raise ConfigurationError("scopes must be a list of scopes, not one string")
    out: dict[str, None] = {}
    other_host = PEC_HOSTS[not sandbox]
    for scope in scopes:
        if not isinstance(scope, str) or ":" not in scope or "/" not in scope:
            raise ConfigurationError(f"{scope!r} is not a scope like 'GET:pec.openapi.it/pec'")
        if any(ch.isspace() or not ch.isprintable() for ch in scope):
            raise ConfigurationError(f"the scope {scope!r} contains whitespace")
        if scope.split(":", 1)[1].startswith(f"{other_host}/"):
            env = "the sandbox" if sandbox else "production"
            raise ConfigurationError(f"the scope {scope!r} is not for {env}: see pec_scopes()")
        out[scope] = None
    if not out:
        raise ConfigurationError("at least one scope is required (see pec_scopes())")
    return tuple(out)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _token_object(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The object holding ``token``: the answer itself (v1), or its ``data``."""
    candidates: list[Any] = [payload]
    data = payload.get("data")
    if isinstance(data, dict):
        candidates.append(data)
    elif isinstance(data, list) and len(data) == 1:
        candidates.append(data[0])
    for candidate in candidates:
        if isinstance(candidate, dict) and isinstance(candidate.get("token"), str):
            return candidate
    return None


def _valid_token(value: str) -> bool:
    return bool(value) and not any(ch.isspace() or not ch.isprintable() for ch in value)


class OAuthTokenProvider(AsyncClosing):
    """A :class:`~pecapi.TokenProvider` that creates its tokens with the OAuth service.

    It creates one token with exactly ``scopes`` and a lifespan of ``ttl`` seconds, hands
    it to every request, and creates the next one ``renew_before`` seconds before it
    expires. Concurrent callers share one creation (a thousand first calls create one
    token). When the API answers 401, the client calls :meth:`token_rejected`; the token
    is dropped (once, however many requests report it) and the next call creates another.

    ``email`` and ``api_key`` default to ``OPENAPI_EMAIL`` and ``OPENAPI_SANDBOX_API_KEY``
    (sandbox) / ``OPENAPI_API_KEY`` (production). ``base_url`` replaces the service's URL
    (e.g. the emulator's, ``pecapi.testing.OAuthEmulator``). ``session`` is an aiohttp
    session to use and not close; otherwise the provider creates one and closes it in
    :meth:`aclose` (or ``async with``). ``clock`` returns unix seconds (tests inject one).

    The API key and the tokens never appear in a repr, an exception or a log record.
    """

    __slots__ = (
        "_base_url",
        "_basic",
        "_clock",
        "_closed",
        "_current",
        "_email",
        "_owns_session",
        "_pending",
        "_renew_before",
        "_sandbox",
        "_scopes",
        "_session",
        "_timeout",
        "_ttl",
    )

    def __init__(
        self,
        email: str | None = None,
        api_key: str | None = None,
        *,
        scopes: Iterable[str],
        sandbox: bool = False,
        base_url: str | URL | None = None,
        ttl: int = _DEFAULT_TTL,
        renew_before: float = _DEFAULT_RENEW_BEFORE,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
    ) -> None:
        # The key is wrapped before anything can raise: the frames of a traceback keep
        # their locals, and error reporters record them.
        key = None if api_key is None else Secret(api_key)
        del api_key
        self._sandbox = bool(sandbox)
        self._scopes = _check_scopes(scopes, self._sandbox)
        email = _credential(None if email is None else Secret(email), EMAIL_ENV, "email").reveal()
        if ":" in email:
            raise ConfigurationError("the email must not contain ':'")
        key_env = SANDBOX_API_KEY_ENV if self._sandbox else API_KEY_ENV
        key = _credential(key, key_env, "api_key")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= _MAX_TTL:
            raise ConfigurationError("ttl must be an int of seconds from 60 to one year")
        if isinstance(renew_before, bool) or not isinstance(renew_before, (int, float)):
            raise ConfigurationError("renew_before must be a number of seconds")
        if not 0 <= renew_before < ttl:
            raise ConfigurationError("renew_before must be at least 0 and less than ttl")
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError("session must be an aiohttp.ClientSession")
        if not timeout > 0:
            raise ConfigurationError("timeout must be positive")
        default = OAUTH_SANDBOX_URL if self._sandbox else OAUTH_PRODUCTION_URL
        self._base_url = check_base_url(
            base_url if base_url is not None else default, secret="API key"
        )
        self._email = email
        self._basic = _basic(email, key)
        self._ttl = ttl
        self._renew_before = float(renew_before)
        self._session = session
        self._owns_session = session is None
        self._clock = clock
        self._timeout = float(timeout)
        self._closed = False
        self._current: _Issued | None = None
        self._pending: asyncio.Task[str] | None = None

    # -- information -----------------------------------------------------------------------

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes every token is created with."""
        return self._scopes

    @property
    def sandbox(self) -> bool:
        return self._sandbox

    @property
    def expires_at(self) -> float | None:
        """Unix time at which the current token expires; None when there is none."""
        return self._current.expires_at if self._current is not None else None

    def __repr__(self) -> str:
        if not hasattr(self, "_basic"):  # an __init__ that raised (a traceback's local)
            return "OAuthTokenProvider(<not initialised>)"
        return (
            f"OAuthTokenProvider(email={self._email!r}, sandbox={self._sandbox}, "
            f"scopes={len(self._scopes)}, base_url={str(self._base_url)!r})"
        )

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("token providers are not picklable")

    # -- the TokenProvider protocol ----------------------------------------------------------

    async def get_token(self) -> str:
        """The current token; created (once, whoever asks) when missing or about to expire."""
        if self._closed:
            raise ClientClosedError("this OAuthTokenProvider is closed")
        current = self._current
        if current is not None and self._clock() < current.refresh_at:
            return current.secret.reveal()
        pending = self._pending
        if pending is None:
            pending = self._pending = asyncio.ensure_future(self._refresh())
            pending.add_done_callback(self._flight_done)
        # shield: a caller cancelled while waiting does not cancel the others' creation.
        return await asyncio.shield(pending)

    async def token_rejected(self, token: str) -> None:
        """The API refused ``token``: drop it if it is the current one (else: nothing)."""
        current = self._current
        if current is not None and current.secret.reveal() == token:
            self._current = None
            logger.debug("the API refused the OAuth token: the next request creates another")

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop a creation in flight, forget the token, close an own session. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._current = None
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    # -- internals -------------------------------------------------------------------------

    def _flight_done(self, task: asyncio.Task[str]) -> None:
        if self._pending is task:
            self._pending = None
        if not task.cancelled():
            task.exception()  # retrieved: the waiters got it (or nobody was left to)

    async def _refresh(self) -> str:
        previous = self._current
        try:
            issued = await self._create()
        except PecError as exc:
            now = self._clock()
            if previous is not None and self._current is previous and now < previous.expires_at:
                # Renewal failed but the token still works: keep it, try again soon.
                previous.refresh_at = now + min(
                    _RETRY_AFTER_FAILURE, (previous.expires_at - now) / 2
                )
                logger.warning(
                    "could not renew the OAuth token (%s); the current one is kept until %s",
                    type(exc).__name__,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(previous.expires_at)),
                )
                return previous.secret.reveal()
            raise
        self._current = issued
        return issued.secret.reveal()

    def _session_for_call(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("this OAuthTokenProvider is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"}
            )
        else:
            check_loop(self._session, "OAuthTokenProvider")
        return self._session

    async def _create(self) -> _Issued:
        # The answer is read and parsed in ``_exchange``; only its outcome comes back, so
        # no frame of an error raised here holds the answer's bytes (a token, perhaps).
        outcome = await self._exchange()
        if isinstance(outcome, PecError):
            raise_unchained(outcome)
        return outcome

    async def _exchange(self) -> _Issued | PecError:
        session = self._session_for_call()
        url = self._base_url.with_path(self._base_url.raw_path.rstrip("/") + "/token")
        where: dict[str, Any] = {"method": "POST", "url": url}
        started = time.perf_counter()
        asked_at = self._clock()
        try:
            async with session.post(
                url,
                data=json.dumps({"scopes": list(self._scopes), "ttl": self._ttl}).encode(),
                headers={
                    "Authorization": self._basic.reveal(),
                    "Content-Type": "application/json",
                    "Accept-Encoding": ACCEPT_ENCODING,
                },
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                allow_redirects=False,
                raise_for_status=False,  # whatever a session passed in says
                auto_decompress=False,  # inflated by read_limited, bounded (see limits.py)
            ) as response:
                status = response.status
                headers = dict(response.headers)
                raw = await read_limited(
                    response, TOKEN_ANSWER_LIMIT, setting="the token answer limit"
                )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # not TimeoutError on 3.10
            # Returned, not raised here: aiohttp's exception (it holds the request's
            # headers, the credential) must not become the error's __context__.
            return transport_error(exc, where, self._timeout, "OAuth service", quote=False)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "POST %s -> %s in %.1f ms",
                safe_url(url),
                status,
                (time.perf_counter() - started) * 1000,
            )
        payload: Any = None
        try:
            payload = loads(raw) if raw.strip() else None
        except JsonError:
            payload = None
        if status >= 300 or not isinstance(payload, dict) or payload.get("success") is False:
            if status < 300 and not isinstance(payload, dict):
                # A 2xx that is not the service's JSON: no body in the error (it could
                # hold a token).
                return ResponseDecodeError(
                    "the OAuth service answered something that is not JSON",
                    **where,
                    status=status,
                    headers=headers,
                )
            return _oauth_error(status, payload, raw, headers, url)
        found = _token_object(payload)
        if found is None or not _valid_token(found["token"]):
            return ResponseDecodeError(
                "the OAuth service's answer has no usable token", **where, status=status
            )
        return self._issued(found, asked_at)

    def _issued(self, found: dict[str, Any], asked_at: float) -> _Issued:
        now = self._clock()
        latest = asked_at + self._ttl
        expire = _number(found.get("expire"))
        # Trust the service's expiry, but never beyond what was asked (clock skew).
        expires_at = min(expire, latest) if expire is not None and expire > now else latest
        lifetime = max(0.0, expires_at - now)
        refresh_at = expires_at - min(self._renew_before, lifetime / 2)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "created an OAuth token with %d scope(s), valid for %.0f s",
                len(self._scopes),
                lifetime,
            )
        return _Issued(found["token"], expires_at, refresh_at)


def _basic(email: str, key: Secret) -> Secret:
    return Secret("Basic " + base64.b64encode(f"{email}:{key.reveal()}".encode()).decode("ascii"))


def _oauth_error(
    status: int, payload: Any, raw: bytes, headers: Mapping[str, str], url: URL
) -> PecError:
    # The answer of a token service may carry a token even when it is an error (a
    # gateway's 500 after the token was made): the error keeps the envelope's fields only,
    # and of an answer that is not JSON only its type and size (a token can hide in any
    # text, under any name).
    code: int | None = None
    message: str | None = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, int) and not isinstance(error, bool):
            code = error
        elif isinstance(error, str):
            code = whole_number(error)
        if isinstance(payload.get("message"), str) and payload["message"]:
            message = payload["message"]
        body: Any = {k: payload[k] for k in ("success", "message", "error") if k in payload}
    else:
        kind = headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
        message = (
            f"{len(raw)} bytes of {kind}, not shown (a token may hide in them)"
            if raw.strip()
            else None
        )
        body = None
    reason = message or f"HTTP {status}"
    cls = api_error_class(status)
    return cls(
        f"the OAuth service refused to create a token: {reason}",
        status=status,
        code=code,
        method="POST",
        url=url,
        headers=headers,
        body=body,
    )

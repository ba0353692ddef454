"""An emulator of the Openapi.it OAuth service (v1), issuing tokens for a PEC :class:`Emulator`.

It is a separate small server (the real service is another host, ``oauth.openapi.it``)::

    emu = Emulator()
    oauth = OAuthEmulator(emu, email="me@example.org", api_key="k")
    async with emu.serve() as pec, oauth.serve() as auth:
        provider = OAuthTokenProvider("me@example.org", "k", scopes=[...], sandbox=True,
                                      base_url=auth.url, clock=emu.now)

``POST /token`` (HTTP Basic: the configured e-mail and API key; body ``{"scopes": [...],
"ttl": seconds}``) creates a token, registers it with its scopes and expiry in the PEC
emulator (``emu.tokens`` / ``emu.token_expiry``, on the PEC emulator's clock) and answers
``{"scopes", "expire", "token", "success", "message"}`` as the specification's example
(without its ``"error": null``, which the schema types as an integer). ``GET /token`` lists
the unexpired tokens it created; ``DELETE /token/{token}`` revokes one; ``GET /credit``
reads the PEC emulator's wallet. The OAuth v2 service: :mod:`pecapi.testing.oauth_v2`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from pecapi.jsontext import MAX_DEPTH, JsonError, loads

from .emulator import Emulator
from .faults import Fault
from .late import Incoming
from .oauth_http import TokenService, failure, json_reply
from .replies import JSON_HEADERS, Reply
from .routes import ROUTES

__all__ = ["IssuedToken", "OAuthEmulator", "RunningOAuth", "pec_host_scopes"]

MAX_TTL = 365 * 24 * 3600

# (status, error code, message). 406/110 (POST /token) and 404/150 (DELETE) are the
# specification's examples; the others are the emulator's own choice.
UNAUTHORIZED = (401, 401, "Unauthorized: HTTP Basic authentication with email and API key")
MISSING_SCOPES = (406, 110, "missing scopes array")
INVALID_SCOPES = (406, 120, "invalid scopes specified")
INVALID_TTL = (406, 130, "invalid ttl: from 1 second to one year")
BAD_JSON = (400, 400, "invalid JSON body")
MISSING_TOKEN = (404, 150, "Missing Token")
NOT_FOUND = (404, 404, "resource not found")
METHOD_NOT_ALLOWED = (405, 405, "method not allowed")
#: Every error the v1 service answers: (status, code, message).
ERRORS_V1 = (
    UNAUTHORIZED,
    MISSING_SCOPES,
    INVALID_SCOPES,
    INVALID_TTL,
    BAD_JSON,
    MISSING_TOKEN,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
)

_CHALLENGE: Mapping[str, str] = {**JSON_HEADERS, "WWW-Authenticate": "Basic"}


@dataclass(frozen=True)
class IssuedToken:
    """A token the OAuth emulator created: its value, expanded scopes and expiry. The
    value is left out of ``repr``."""

    token: str = field(repr=False)
    scopes: tuple[str, ...]
    expire: int
    ttl: int


@dataclass(frozen=True, slots=True)
class RunningOAuth:
    """An OAuth v1 emulator being served: ``url`` has no trailing slash."""

    url: str
    host: str
    port: int
    oauth: OAuthEmulator


def pec_host_scopes(host: str) -> tuple[str, ...]:
    """Every concrete scope ``METHOD:host/segment`` of the PEC API on ``host``, sorted."""
    pairs = sorted({(route.method, route.segment) for route in ROUTES})
    return tuple(f"{method}:{host}/{segment}" for method, segment in pairs)


def _fail(error: tuple[int, int, str], headers: Mapping[str, str] = JSON_HEADERS) -> Reply:
    return failure(*error, headers=headers)


class OAuthEmulator(TokenService):
    """Issues tokens for ``emulator`` to one account (``email``, ``api_key``): the OAuth v1
    service (``POST``/``GET /token``, ``DELETE /token/{token}``, ``GET /credit``).

    ``created`` records every token created (``creations`` counts them); :meth:`revoke`
    makes the PEC emulator answer 401 to a token; :meth:`fail_next` makes the next token
    creations fail with an HTTP status; ``faults`` (a :class:`~pecapi.testing.FaultPlan`)
    and ``request_log`` / ``count()`` are the service's own.
    """

    def __init__(
        self,
        emulator: Emulator,
        *,
        email: str = "mail@domain.com",
        api_key: str = "pecapi-emulator-api-key",
        seed: int = 0,
    ) -> None:
        super().__init__(emulator, email=email, api_key=api_key, seed=seed, stream="oauth tokens")
        self.created: list[IssuedToken] = []

    @property
    def requests(self) -> int:
        """How many ``POST /token`` requests arrived (successful or not)."""
        return self.count("POST", "/token")

    @property
    def creations(self) -> int:
        """How many tokens were created."""
        return len(self.created)

    @property
    def pec_scopes(self) -> tuple[str, ...]:
        """Every concrete scope of the PEC emulator's host (what wildcards expand to)."""
        return pec_host_scopes(self.emulator.host)

    def revoke(self, token: str) -> bool:
        """Revoke ``token``: the PEC emulator answers 401 to it from now on."""
        return self.emulator.revoke_token(token)

    def fail_next(self, status: int = 503, times: int = 1) -> None:
        """The next ``times`` token creations answer ``status`` (nothing created): a rule
        ``Fault.status(status)`` on ``POST /token`` of ``faults``."""
        self.faults.next(times, Fault.status(status), method="POST", path="/token")

    def _log_path(self, path: str) -> str:
        return "/token/{token}" if path.startswith("/token/") else path

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[RunningOAuth]:
        """Serve over HTTP on ``host:port`` (0: a free port) while the context is open."""
        async with self._serving(host, port) as (url, bound_host, bound_port):
            yield RunningOAuth(url, bound_host, bound_port, self)

    # --- HTTP -----------------------------------------------------------------------------------

    def _route(self, incoming: Incoming) -> Reply:
        method, path = incoming.method, incoming.path
        segments = path.strip("/").split("/")
        if segments[0] not in ("token", "credit") or len(segments) > 2:
            return _fail(NOT_FOUND)
        if segments[0] == "credit":
            if len(segments) > 1:
                return _fail(NOT_FOUND)
            if method != "GET":
                return _fail(METHOD_NOT_ALLOWED, {**JSON_HEADERS, "Allow": "GET"})
        elif len(segments) == 1 and method not in ("GET", "POST"):
            return _fail(METHOD_NOT_ALLOWED, {**JSON_HEADERS, "Allow": "GET, POST"})
        elif len(segments) == 2 and method != "DELETE":
            return _fail(METHOD_NOT_ALLOWED, {**JSON_HEADERS, "Allow": "DELETE"})
        if not self.basic_ok(incoming.authorization):
            return _fail(UNAUTHORIZED, _CHALLENGE)
        if segments[0] == "credit":
            return json_reply(
                200,
                {"data": {"credit": float(self.emulator.wallet)}, "success": True, "message": ""},
            )
        if len(segments) == 2:
            return self._delete(segments[1])
        return self._create(incoming.body) if method == "POST" else self._list()

    def _create(self, raw: bytes) -> Reply:
        try:
            body = loads(raw or b"null", max_depth=MAX_DEPTH)
        except JsonError:  # too deeply nested is a bad body too, not a 500
            return _fail(BAD_JSON)
        if not isinstance(body, dict):
            return _fail(BAD_JSON)
        requested = body.get("scopes")
        if not isinstance(requested, list) or not requested:
            return _fail(MISSING_SCOPES)
        known = self.pec_scopes
        expanded: dict[str, None] = {}
        for scope in requested:
            if not isinstance(scope, str):
                return _fail(INVALID_SCOPES)
            matched = [s for s in known if fnmatchcase(s, scope)]
            if not matched:
                return _fail(INVALID_SCOPES)
            expanded.update(dict.fromkeys(matched))
        now = self.emulator.now()
        ttl: Any = body.get("ttl")
        if ttl is None and isinstance(body.get("expire"), int):  # deprecated form
            ttl = int(body["expire"] - now)
        if ttl is None:
            ttl = MAX_TTL
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
            return _fail(INVALID_TTL)
        issued = IssuedToken(self.new_value(), tuple(expanded), int(now) + ttl, ttl)
        self.created.append(issued)
        self.emulator.add_token(issued.token, issued.scopes, expires=issued.expire)
        payload = {
            "scopes": list(issued.scopes),
            "expire": issued.expire,
            "token": issued.token,
            "success": True,
            "message": "",
        }
        return json_reply(200, payload)

    def _list(self) -> Reply:
        emu = self.emulator
        live = [
            {"scopes": list(t.scopes), "expire": t.expire, "token": t.token}
            for t in self.created
            if t.token in emu.tokens and not emu.token_expired(t.token)
        ]
        if not live:
            return 204, b"", {}
        return json_reply(200, {"data": live, "success": True, "message": ""})

    def _delete(self, token: str) -> Reply:
        if not any(t.token == token for t in self.created) or not self.revoke(token):
            return _fail(MISSING_TOKEN)
        return json_reply(200, {"message": "1 deleted token", "success": True})

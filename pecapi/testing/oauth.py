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
``{"scopes", "expire", "token", "success", "message", "error"}`` as the specification's
example. ``GET /token`` lists the unexpired tokens it created; ``DELETE /token/{token}``
revokes one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from aiohttp import web

from pecapi.jsontext import MAX_DEPTH, JsonError, loads

from .account import seeded_random
from .app import EVERY_PATH
from .emulator import Emulator
from .routes import ROUTES

__all__ = ["IssuedToken", "OAuthEmulator", "RunningOAuth"]

MAX_TTL = 365 * 24 * 3600
JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}

# (status, error code, message). 406/110 is the specification's example for POST /token;
# the others are the emulator's own choice.
UNAUTHORIZED = (401, 401, "Unauthorized: HTTP Basic authentication with email and API key")
MISSING_SCOPES = (406, 110, "missing scopes array")
INVALID_SCOPES = (406, 120, "invalid scopes specified")
INVALID_TTL = (406, 130, "invalid ttl: from 1 second to one year")
BAD_JSON = (400, 400, "invalid JSON body")
MISSING_TOKEN = (404, 150, "Missing Token")
NOT_FOUND = (404, 404, "resource not found")
METHOD_NOT_ALLOWED = (405, 405, "method not allowed")


@dataclass(frozen=True)
class IssuedToken:
    """A token the OAuth emulator created: its value, expanded scopes and expiry."""

    token: str
    scopes: tuple[str, ...]
    expire: int
    ttl: int


@dataclass(frozen=True, slots=True)
class RunningOAuth:
    """An OAuth emulator being served: ``url`` has no trailing slash."""

    url: str
    host: str
    port: int
    oauth: OAuthEmulator


def _pec_scopes(host: str) -> tuple[str, ...]:
    pairs = sorted({(route.method, route.segment) for route in ROUTES})
    return tuple(f"{method}:{host}/{segment}" for method, segment in pairs)


def _reply(
    status: int, payload: Mapping[str, Any], headers: Mapping[str, str] = JSON_HEADERS
) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload).encode(), headers=headers)


def _fail(error: tuple[int, int, str], headers: Mapping[str, str] = JSON_HEADERS) -> web.Response:
    status, code, message = error
    payload = {"success": False, "message": message, "error": code, "data": None}
    return _reply(status, payload, headers)


class OAuthEmulator:
    """Issues tokens for ``emulator`` to one account (``email``, ``api_key``).

    ``created`` records every token created (``creations`` counts them); :meth:`revoke`
    makes the PEC emulator answer 401 to a token; :meth:`fail_next` makes the next token
    creations fail with an HTTP status.
    """

    def __init__(
        self,
        emulator: Emulator,
        *,
        email: str = "mail@domain.com",
        api_key: str = "pecapi-emulator-api-key",
        seed: int = 0,
    ) -> None:
        self.emulator = emulator
        self.email = email
        self.api_key = api_key
        self.created: list[IssuedToken] = []
        #: how many POST /token requests arrived (successful or not)
        self.requests = 0
        self._failures: list[int] = []
        # its own stream: with Random(seed), as the PEC emulator's ids, the first token of
        # an emulator was its first mailbox id
        self._rng = seeded_random(seed, "oauth tokens")

    @property
    def creations(self) -> int:
        """How many tokens were created."""
        return len(self.created)

    @property
    def pec_scopes(self) -> tuple[str, ...]:
        """Every concrete scope of the PEC emulator's host (what wildcards expand to)."""
        return _pec_scopes(self.emulator.host)

    def revoke(self, token: str) -> bool:
        """Revoke ``token``: the PEC emulator answers 401 to it from now on."""
        return self.emulator.revoke_token(token)

    def fail_next(self, status: int = 503, times: int = 1) -> None:
        """The next ``times`` token creations answer ``status`` (nothing created)."""
        self._failures.extend([status] * times)

    # --- HTTP -----------------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        email, sep, key = decoded.partition(":")
        return bool(sep) and email == self.email and key == self.api_key

    async def _create(self, request: web.Request) -> web.Response:
        self.requests += 1
        if not self._authorized(request):
            return _fail(UNAUTHORIZED, {**JSON_HEADERS, "WWW-Authenticate": "Basic"})
        if self._failures:
            status = self._failures.pop(0)
            return _fail((status, status, "service temporarily unavailable"))
        try:
            body = loads(await request.read() or b"null", max_depth=MAX_DEPTH)
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
        token = f"{self._rng.getrandbits(96):024x}"
        expire = int(now) + ttl
        issued = IssuedToken(token, tuple(expanded), expire, ttl)
        self.created.append(issued)
        self.emulator.add_token(token, issued.scopes, expires=expire)
        payload = {
            "scopes": list(issued.scopes),
            "expire": expire,
            "token": token,
            "success": True,
            "message": "",
            "error": None,
        }
        return _reply(200, payload)

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _fail(UNAUTHORIZED, {**JSON_HEADERS, "WWW-Authenticate": "Basic"})
        emu = self.emulator
        live = [
            {"scopes": list(t.scopes), "expire": t.expire, "token": t.token}
            for t in self.created
            if t.token in emu.tokens and not emu.token_expired(t.token)
        ]
        if not live:
            return web.Response(status=204)
        return _reply(200, {"data": live, "success": True, "message": "", "error": None})

    async def _delete(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _fail(UNAUTHORIZED, {**JSON_HEADERS, "WWW-Authenticate": "Basic"})
        token = request.match_info["token"]
        if not any(t.token == token for t in self.created) or not self.revoke(token):
            return _fail(MISSING_TOKEN)
        return _reply(200, {"message": "1 deleted token", "success": True, "error": None})

    async def _unknown(self, request: web.Request) -> web.Response:
        # Every answer is the JSON envelope, aiohttp's plain-text 404/405 never.
        segments = request.rel_url.raw_path.strip("/").split("/")
        if segments[0] == "token" and len(segments) <= 2:
            allow = "GET, POST" if len(segments) == 1 else "DELETE"
            return _fail(METHOD_NOT_ALLOWED, {**JSON_HEADERS, "Allow": allow})
        return _fail(NOT_FOUND)

    def app(self) -> web.Application:
        """The aiohttp application of the OAuth emulator."""
        app = web.Application()
        app.router.add_post("/token", self._create)
        app.router.add_get("/token", self._list)
        app.router.add_delete("/token/{token}", self._delete)
        app.router.add_route("*", EVERY_PATH, self._unknown)
        return app

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[RunningOAuth]:
        """Serve over HTTP on ``host:port`` (0: a free port) while the context is open."""
        runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            address = runner.addresses[0]
            bound_host, bound_port = str(address[0]), int(address[1])
            url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
            yield RunningOAuth(f"http://{url_host}:{bound_port}", bound_host, bound_port, self)
        finally:
            await runner.cleanup()

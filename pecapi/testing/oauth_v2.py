"""An emulator of the Openapi OAuth service v2 (``oauth.openapi.com``, sandbox
``test.oauth.openapi.com``), issuing tokens for a PEC :class:`Emulator`::

    emu = Emulator(tokens={})
    oauth = OAuthV2Emulator(emu, email="me@example.org", api_key="k")
    async with emu.serve() as pec, oauth.serve() as auth:
        ...  # auth.url is the token service's base URL

- ``POST /tokens`` (HTTP Basic: the account's e-mail and API key) creates a token with
  exactly the scopes asked and a refresh token, and registers the token with the PEC
  emulator (its scopes, its expiry on the PEC emulator's clock);
- ``PATCH /tokens/{token}`` with the refresh token as ``Bearer`` renews it: a new token and
  a new refresh token with the same scopes, the old token deleted (the PEC emulator answers
  it 401); with HTTP Basic it updates the token in place (scopes, ttl, name, limits);
- ``GET /tokens``, ``GET``/``DELETE /tokens/{token}``, ``GET /scopes``;
- ``GET /wallet`` and ``GET /wallet/transactions`` read the PEC emulator's wallet and the
  charges of its ledger.

The records, the body checks and the errors: :mod:`pecapi.testing.oauth_v2_records`.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from pecapi.jsontext import MAX_DEPTH, JsonError, loads, whole_number

from . import oauth_v2_records as R
from .emulator import Emulator
from .faults import Fault
from .late import Incoming
from .oauth import pec_host_scopes
from .oauth_http import TokenService, json_reply
from .oauth_v2_records import IssuedTokenV2, Refusal
from .replies import JSON_HEADERS, Reply

__all__ = ["IssuedTokenV2", "OAuthV2Emulator", "RunningOAuthV2"]

_CHALLENGE: Mapping[str, str] = {**JSON_HEADERS, "WWW-Authenticate": 'Basic realm="oauth"'}
# The methods of each path of the service, for 405 answers and their Allow header.
_ALLOW: Mapping[str, str] = {
    "tokens": "GET, POST",
    "tokens/{token}": "GET, PATCH, DELETE",
    "scopes": "GET",
    "wallet": "GET",
    "wallet/transactions": "GET",
}


@dataclass(frozen=True, slots=True)
class RunningOAuthV2:
    """An OAuth v2 emulator being served: ``url`` has no trailing slash."""

    url: str
    host: str
    port: int
    oauth: OAuthV2Emulator


class OAuthV2Emulator(TokenService):
    """The OAuth v2 token service of one account (``email``, ``api_key``), issuing tokens
    for ``emulator`` (see the module docstring and ``pecapi/testing/README.md``).

    - ``scopes``: the scopes the account may ask for (``GET /scopes``); by default every
      concrete scope ``METHOD:host/segment`` of the PEC emulator's host;
    - ``default_ttl``: the lifetime of a token created without a ttl (or with 0 or less);
    - ``refresh_grace``: how long after its token expired a refresh token is still accepted
      (seconds; ``None``: for as long as the token was neither deleted nor renewed);
    - ``bare_token_answers``: answer ``POST``/``PATCH``/``GET /tokens/{token}`` with a bare
      ``TokenDetail``, as the specification's schema has it, instead of ``{"data": ...}``.

    ``issued`` lists every token issued, in order; ``creations``, ``renewals``,
    ``updates``, ``revocations`` and ``refused_refreshes`` count what happened;
    :meth:`refuse_refreshes`, :meth:`fail_next` and ``faults`` force failures.
    """

    def __init__(
        self,
        emulator: Emulator,
        *,
        email: str = "mail@domain.com",
        api_key: str = "pecapi-emulator-api-key",
        seed: int = 0,
        scopes: Iterable[str] | None = None,
        default_ttl: int = R.MAX_TTL,
        refresh_grace: float | None = 0.0,
        bare_token_answers: bool = False,
    ) -> None:
        super().__init__(
            emulator, email=email, api_key=api_key, seed=seed, stream="oauth v2 tokens"
        )
        known = pec_host_scopes(emulator.host) if scopes is None else tuple(scopes)
        for scope in known:
            if not isinstance(scope, str) or R.SCOPE_FORMAT.fullmatch(scope) is None:
                raise ValueError(f"not a scope METHOD:host/endpoint: {scope!r}")
        if isinstance(default_ttl, bool) or not 1 <= default_ttl <= R.MAX_TTL:
            raise ValueError("default_ttl must be from 1 second to one year")
        if refresh_grace is not None and not refresh_grace >= 0:
            raise ValueError("refresh_grace must be >= 0 seconds, or None")
        self.scopes: tuple[str, ...] = tuple(dict.fromkeys(known))
        self.default_ttl = default_ttl
        self.refresh_grace = refresh_grace
        self.bare_token_answers = bare_token_answers
        #: every token issued, created or renewed, in order
        self.issued: list[IssuedTokenV2] = []
        self._by_value: dict[str, IssuedTokenV2] = {}
        #: tokens changed in place with HTTP Basic (``PATCH`` without a refresh token)
        self.updates = 0
        #: tokens deleted (``DELETE /tokens/{token}`` or :meth:`revoke`)
        self.revocations = 0
        #: refresh attempts refused (wrong, used, expired refresh tokens; forced refusals)
        self.refused_refreshes = 0
        self._forced_refusals = 0
        #: when the wallet was created (``createdAt`` of ``GET /wallet``): now, on the
        #: PEC emulator's clock
        self.wallet_created = emulator.now()

    # --- for tests ---------------------------------------------------------------------------

    @property
    def creations(self) -> int:
        """How many tokens ``POST /tokens`` created."""
        return sum(1 for t in self.issued if t.origin == "created")

    @property
    def renewals(self) -> int:
        """How many tokens a refresh token renewed."""
        return sum(1 for t in self.issued if t.origin == "renewed")

    @property
    def active(self) -> list[IssuedTokenV2]:
        """The tokens neither deleted nor renewed (expired ones included), in order."""
        return [t for t in self.issued if self._exists(t)]

    def record(self, token: str) -> IssuedTokenV2 | None:
        """The record of a token (or of a refresh token) this service issued."""
        found = self._by_value.get(token)
        if found is None:
            found = next((t for t in self.issued if t.refresh_token == token), None)
        return found

    def revoke(self, token: str) -> bool:
        """Delete ``token`` as ``DELETE /tokens/{token}`` does: the PEC emulator answers it
        401, its refresh token is refused. False if it is not an active token of ours."""
        found = self._by_value.get(token)
        if found is None or not self._exists(found):
            return False
        self._end(found, "deleted")
        self.revocations += 1
        return True

    def refuse_refreshes(self, times: int = 1) -> None:
        """The next ``times`` renewals with a refresh token are refused (401/130), whatever
        the refresh token: the provider under test must fall back to a new token."""
        if times < 1:
            raise ValueError("times must be >= 1")
        self._forced_refusals += times

    def fail_next(self, status: int = 503, times: int = 1) -> None:
        """The next ``times`` token creations answer ``status`` (nothing created): a rule
        ``Fault.status(status)`` on ``POST /tokens`` of ``faults``."""
        self.faults.next(times, Fault.status(status), method="POST", path="/tokens")

    def _log_path(self, path: str) -> str:
        return "/tokens/{token}" if path.startswith("/tokens/") else path

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[RunningOAuthV2]:
        """Serve over HTTP on ``host:port`` (0: a free port) while the context is open."""
        async with self._serving(host, port) as (url, bound_host, bound_port):
            yield RunningOAuthV2(url, bound_host, bound_port, self)

    # --- state ---------------------------------------------------------------------------------

    def _exists(self, record: IssuedTokenV2) -> bool:
        # A token the PEC emulator no longer knows (emu.revoke_token) is gone here too.
        return record.state == "active" and record.token in self.emulator.tokens

    def _end(self, record: IssuedTokenV2, state: R.TokenState) -> None:
        record.state = state
        self.emulator.revoke_token(record.token)

    def _issue(self, record: IssuedTokenV2) -> IssuedTokenV2:
        self.issued.append(record)
        self._by_value[record.token] = record
        self.emulator.add_token(record.token, record.scopes, expires=record.expire_at)
        return record

    def _token_answer(self, record: IssuedTokenV2, *, with_refresh: bool) -> Reply:
        detail = R.token_detail(record, with_refresh=with_refresh)
        return json_reply(200, detail if self.bare_token_answers else {"data": detail})

    # --- HTTP ----------------------------------------------------------------------------------

    def _route(self, incoming: Incoming) -> Reply:
        method = incoming.method
        segments = incoming.path[1:].split("/")
        key = "/".join(segments)
        if segments[0] == "tokens" and len(segments) == 2:
            key = "tokens/{token}"
        allow = _ALLOW.get(key)
        if allow is None:
            return R.NOT_FOUND.reply()
        if method not in allow.split(", "):
            return R.METHOD_NOT_ALLOWED.reply({**JSON_HEADERS, "Allow": allow})
        try:
            if key == "tokens/{token}" and method == "PATCH":
                return self._patch(unquote(segments[1]), incoming)
            if not self.basic_ok(incoming.authorization):
                return R.UNAUTHORIZED.reply(_CHALLENGE)
            if key == "tokens":
                if method == "POST":
                    return self._create(_body(incoming.body))
                return self._list(incoming.query)
            if key == "tokens/{token}":
                value = unquote(segments[1])
                return self._detail(value) if method == "GET" else self._delete(value)
            if key == "scopes":
                return json_reply(200, {"data": [R.user_scope(s) for s in self.scopes]})
            if key == "wallet":
                return self._wallet()
            return self._transactions(incoming.query)
        except Refusal as refusal:
            return refusal.reply()

    def _create(self, body: dict[str, Any]) -> Reply:
        if not isinstance(body.get("scopes"), list) or not body["scopes"]:
            return R.MISSING_SCOPES.reply()
        scopes = R.scopes_of(
            body["scopes"], self.scopes, bad_format=R.SCOPES_FORMAT, unknown=R.INVALID_SCOPES
        )
        ttl = R.ttl_of(body.get("ttl"), self.default_ttl)
        name = R.name_of(body, None)
        limits = R.limits_of(body, None)
        now = int(self.emulator.now())
        record = IssuedTokenV2(
            self.new_value(), self.new_value(), scopes, ttl, now, now + ttl, now, name, limits
        )
        return self._token_answer(self._issue(record), with_refresh=True)

    def _patch(self, value: str, incoming: Incoming) -> Reply:
        scheme, _, credential = incoming.authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            if not value:
                return R.UPDATE_ID_REQUIRED.reply()
            return self._renew(value, credential.strip(), incoming.body)
        if not self.basic_ok(incoming.authorization):
            return R.UNAUTHORIZED.reply(_CHALLENGE)
        if not value:
            return R.UPDATE_ID_REQUIRED.reply()
        found = self._by_value.get(value)
        if found is None or not self._exists(found):
            return R.UPDATE_NOT_FOUND.reply()
        return self._update(found, _body(incoming.body))

    def _renew(self, value: str, presented: str, raw: bytes) -> Reply:
        """A refresh token as Bearer: a new token and refresh token, the same scopes, the
        old token deleted (the specification's description of ``TokenUpdate``)."""
        found = self._by_value.get(value)
        refused = self._forced_refusals > 0
        if refused:
            self._forced_refusals -= 1
        elif found is None or not self._refreshable(found, presented):
            refused = True
        if refused or found is None:
            self.refused_refreshes += 1
            return R.REFRESH_REFUSED.reply()
        body = _body(raw)
        ttl = R.ttl_of(body.get("ttl"), found.ttl)
        name, limits = R.name_of(body, found.name), R.limits_of(body, found.limits)
        now = int(self.emulator.now())
        token, refresh = self.new_value(), self.new_value()
        renewed = IssuedTokenV2(
            token, refresh, found.scopes, ttl, now, now + ttl, now, name, limits, "renewed"
        )
        self._end(found, "renewed")
        return self._token_answer(self._issue(renewed), with_refresh=True)

    def _refreshable(self, record: IssuedTokenV2, presented: str) -> bool:
        if not hmac.compare_digest(record.refresh_token.encode(), presented.encode()):
            return False
        if not self._exists(record):
            return False
        grace = self.refresh_grace
        return grace is None or self.emulator.now() < record.expire_at + grace

    def _update(self, record: IssuedTokenV2, body: dict[str, Any]) -> Reply:
        """HTTP Basic: the token keeps its value and refresh token; what the body gives
        changes (a ttl: a new expiry from now)."""
        scopes = record.scopes
        if "scopes" in body:
            scopes = R.scopes_of(
                body["scopes"],
                self.scopes,
                bad_format=R.UPDATE_SCOPES_FORMAT,
                unknown=R.UPDATE_INVALID_SCOPES,
            )
            if not scopes:
                raise Refusal(R.UPDATE_SCOPES_FORMAT)
        name = R.name_of(body, record.name)
        limits = R.limits_of(body, record.limits)
        now = int(self.emulator.now())
        if body.get("ttl") is not None:
            record.ttl = R.ttl_of(body["ttl"], self.default_ttl)
            record.expire_at = now + record.ttl
        record.scopes, record.name, record.limits, record.updated_at = scopes, name, limits, now
        self.emulator.add_token(record.token, record.scopes, expires=record.expire_at)
        self.updates += 1
        return self._token_answer(record, with_refresh=True)

    def _detail(self, value: str) -> Reply:
        if R.TOKEN_FORMAT.fullmatch(value) is None:
            return R.BAD_TOKEN_FORMAT.reply()
        found = self._by_value.get(value)
        if found is None or not self._exists(found):
            return R.DETAIL_NOT_FOUND.reply()
        return self._token_answer(found, with_refresh=False)

    def _delete(self, value: str) -> Reply:
        if not value:
            return R.DELETE_ID_REQUIRED.reply()
        if not self.revoke(value):
            return R.DELETE_NOT_FOUND.reply()
        return json_reply(200, {"message": "Deleted", "data": None})

    def _list(self, query: Mapping[str, str]) -> Reply:
        skip, limit = _page(query)
        page = self.active[skip : skip + limit]
        return json_reply(200, {"data": [R.token_detail(t, with_refresh=False) for t in page]})

    def _wallet(self) -> Reply:
        emu = self.emulator
        # A test may set the clock back after building this service: the first charge is
        # never before the wallet's creation.
        created = min(self.wallet_created, emu.ledger[0].at) if emu.ledger else self.wallet_created
        updated = emu.ledger[-1].at if emu.ledger else created
        return json_reply(200, {"data": R.wallet(emu.wallet, created, updated)})

    def _transactions(self, query: Mapping[str, str]) -> Reply:
        skip, limit = _page(query)
        ledger = self.emulator.ledger
        newest_first = range(len(ledger) - 1, -1, -1)[skip : skip + limit]
        host = self.emulator.host
        return json_reply(200, {"data": [R.transaction(i, ledger[i], host) for i in newest_first]})


def _body(raw: bytes) -> dict[str, Any]:
    """A JSON object (an empty body is ``{}``); a :class:`Refusal` (400) otherwise."""
    if not raw.strip():
        return {}
    try:
        parsed = loads(raw, max_depth=MAX_DEPTH)
    except JsonError:
        raise Refusal(R.BAD_JSON) from None
    if not isinstance(parsed, dict):
        raise Refusal(R.BAD_JSON)
    return parsed


def _page(query: Mapping[str, str]) -> tuple[int, int]:
    """``skip`` (default 0) and ``limit`` (default and maximum 100) of a list."""
    values = {"skip": 0, "limit": 100}
    for name in values:
        if name in query:
            number = whole_number(query[name])
            if number is None or (name == "limit" and not 1 <= number <= 100):
                raise Refusal(R.QUERY_ERROR, detail=f"{name} must be " + _RANGES[name])
            values[name] = number
    return values["skip"], values["limit"]


_RANGES: Mapping[str, str] = {"skip": "a whole number", "limit": "from 1 to 100"}

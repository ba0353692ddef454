"""The admin surface: the emulator driven over HTTP under ``/_emulator/``, for tests of
services written in any language, and for the shell.

Faults, the lifecycle of mailboxes and comunica_pec requests, the wallet, the ledger, the
request log, the clock and a reset, in JSON (see "Driving the emulator over HTTP" in
``pecapi/testing/README.md``). Admin requests are answered before the API's machinery
sees them: never in the request log, never faulted or delayed, never counted by a rule.

It drives anything that has the parts of :class:`Administered` (the
:class:`~pecapi.testing.Emulator` does), so it never imports the facade that imports it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any, Protocol
from urllib.parse import unquote

from aiohttp import web

from pecapi.jsontext import whole_number
from pecapi.transport.urls import is_loopback

from .admin_json import (
    ADMIN_PREFIX,
    AdminError,
    Fields,
    add_rule,
    bad,
    charge_json,
    dumps,
    is_admin_path,
    parse_body,
    request_json,
    rule_json,
)
from .faults import FaultPlan, FaultRule
from .ledger import OPERATIONS, Charge, RequestRecord
from .records import Json

__all__ = ["ADMIN_PREFIX", "AdminSurface", "Administered", "admin_surface", "is_admin_path"]

# Admin bodies are small JSON objects; the API's own limit (64 MiB) is for documents.
_MAX_BODY = 1024 * 1024
_JSON = {"Content-Type": "application/json"}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pecapi-emulator-admin"'}


class Administered(Protocol):
    """What the admin surface needs of an emulator."""

    wallet: Decimal

    @property
    def environment(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def latency(self) -> float: ...
    @property
    def auto_process(self) -> bool: ...
    @property
    def faults(self) -> FaultPlan: ...
    @property
    def ledger(self) -> list[Charge]: ...
    @property
    def requests(self) -> list[RequestRecord]: ...
    @property
    def mailboxes(self) -> Mapping[str, Json]: ...
    @property
    def comunica_requests(self) -> Mapping[str, Json]: ...
    @property
    def late_pending(self) -> int: ...
    def complete_activation(self, mailbox_id: str) -> None: ...
    def reject_documents(self, mailbox_id: str) -> None: ...
    def advance_comunica(self, request_id: str) -> None: ...
    def process_all(self) -> int: ...
    def now(self) -> float: ...
    def set_time(self, ts: float) -> None: ...
    def advance_time(self, seconds: float) -> None: ...
    async def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Call:
    params: Mapping[str, str]
    query: Fields
    body: Fields

    def done(self) -> None:
        """Refuse unknown query parameters and body fields, before anything changes."""
        self.query.done()
        self.body.done()


Handler = Callable[["AdminSurface", _Call], Awaitable[tuple[int, dict[str, Any]]]]


def admin_surface(
    emu: Administered, host: str | None, admin_token: str | None, api_tokens: Collection[str]
) -> AdminSurface:
    """The admin surface of ``emu`` served on ``host`` (None: unknown, e.g. a bare app):
    ``admin_token`` if given; else, on a loopback host only, ``api_tokens``."""
    if admin_token is not None:
        return AdminSurface(emu, (admin_token,))
    # An API token travels to every service under test, often to other machines; the admin
    # surface resets and drains the account: reachable from elsewhere, it needs a secret of
    # its own.
    if host is None:
        return AdminSurface(emu, (), "the app was built with Emulator.app() and no admin_token")
    if not is_loopback(host):
        where = host or "every interface"
        reason = f"the emulator listens on {where}, not a loopback address, and was given"
        return AdminSurface(emu, (), f"{reason} no admin token ({_GIVE_ONE})")
    return AdminSurface(emu, api_tokens, f"no API token has every scope ({_GIVE_ONE})")


_GIVE_ONE = "give one with --admin-token or Emulator(admin_token=...)"


class AdminSurface:
    """Answers every request under :data:`ADMIN_PREFIX` for ``emu``.

    ``tokens``: the bearer tokens it accepts; none means it is off, and ``off_reason`` says
    why (every admin request then gets 403 with it).
    """

    def __init__(
        self, emu: Administered, tokens: Collection[str], off_reason: str = "it was turned off"
    ) -> None:
        self.emu = emu
        self._tokens = tuple(t.encode() for t in tokens)
        self._off_reason = off_reason

    async def handle(self, request: web.Request) -> web.Response:
        try:
            self._authorize(request.headers.get("Authorization", ""))
            status, answer = await self._dispatch(request)
        except AdminError as err:
            headers = {**_JSON, **err.headers}
            return web.Response(status=err.status, body=dumps(err.json()), headers=headers)
        return web.Response(status=status, body=dumps(answer), headers=_JSON)

    def _authorize(self, authorization: str) -> None:
        if not self._tokens:
            raise AdminError(403, "admin_off", f"the admin surface is off: {self._off_reason}")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AdminError(
                401,
                "unauthorized",
                "an admin token is required: Authorization: Bearer <token>",
                headers=_CHALLENGE,
            )
        given = token.strip().encode()
        # compare_digest: the time taken says nothing about how much of a guess was right
        if not any(hmac.compare_digest(given, t) for t in self._tokens):
            raise AdminError(401, "unauthorized", "invalid admin token", headers=_CHALLENGE)

    async def _dispatch(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        raw_path = request.rel_url.raw_path
        segs = [unquote(s) for s in raw_path[len(ADMIN_PREFIX) :].strip("/").split("/") if s]
        for template, methods in _TABLE.items():
            params = _match(template, segs)
            if params is None:
                continue
            handler = methods.get(request.method)
            if handler is None:
                allow = ", ".join(sorted(methods))
                raise AdminError(
                    405,
                    "method_not_allowed",
                    f"{request.method} is not allowed on {raw_path}: {allow}",
                    headers={"Allow": allow},
                )
            body = await _read(request)
            return await handler(self, _Call(params, Fields(request.query), Fields(body)))
        raise AdminError(404, "not_found", f"no admin endpoint {raw_path}")

    # --- the endpoints (each validates everything before it changes anything) --------------

    async def state(self, call: _Call) -> tuple[int, dict[str, Any]]:
        call.done()
        return 200, self._state()

    async def list_faults(self, call: _Call) -> tuple[int, dict[str, Any]]:
        call.done()
        plan = self.emu.faults
        return 200, {
            "rules": [rule_json(rule) for rule in plan.rules],
            "counts": dict(plan.counts),
        }

    async def add_fault(self, call: _Call) -> tuple[int, dict[str, Any]]:
        rule = add_rule(self.emu.faults, call.body, call.done)
        return 201, {"rule": rule_json(rule)}

    async def clear_faults(self, call: _Call) -> tuple[int, dict[str, Any]]:
        call.done()
        plan = self.emu.faults
        removed = len(plan.rules)
        plan.clear()
        return 200, {"removed": removed}

    async def get_rule(self, call: _Call) -> tuple[int, dict[str, Any]]:
        call.done()
        return 200, {"rule": rule_json(self._rule(call.params["id"]))}

    async def remove_rule(self, call: _Call) -> tuple[int, dict[str, Any]]:
        call.done()
        self.emu.faults.remove(self._rule(call.params["id"]).id)
        return 200, {"removed": 1}

    async def advance_mailbox(self, call: _Call) -> tuple[int, dict[str, Any]]:
        mailbox_id = call.params["id"]
        to = call.body.text("to", "evasa", choices=("evasa", "documenti_errati"))
        call.done()
        if mailbox_id not in self.emu.mailboxes:
            raise AdminError(404, "not_found", f"no mailbox has id {mailbox_id!r}", "id")
        try:
            if to == "evasa":
                self.emu.complete_activation(mailbox_id)
            else:
                self.emu.reject_documents(mailbox_id)
        except ValueError as exc:
            raise AdminError(409, "conflict", str(exc)) from None
        return 200, {"mailbox": self.emu.mailboxes[mailbox_id]}

    async def advance_comunica(self, call: _Call) -> tuple[int, dict[str, Any]]:
        request_id = call.params["id"]
        call.done()
        if request_id not in self.emu.comunica_requests:
            raise AdminError(
                404, "not_found", f"no comunica_pec request has id {request_id!r}", "id"
            )
        try:
            self.emu.advance_comunica(request_id)
        except ValueError as exc:
            raise AdminError(409, "conflict", str(exc)) from None
        return 200, {"comunica": self.emu.comunica_requests[request_id]}

    async def process_all(self, call: _Call) -> tuple[int, dict[str, Any]]:
        call.done()
        return 200, {"processed": self.emu.process_all()}

    async def get_wallet(self, call: _Call) -> tuple[int, dict[str, Any]]:
        call.done()
        return 200, {"balance": _eur(self.emu.wallet)}

    async def set_wallet(self, call: _Call) -> tuple[int, dict[str, Any]]:
        balance = call.body.money("balance")
        call.done()
        if balance is None:
            bad("balance", 'required: the new balance in EUR, e.g. "50.00"')
        if balance < 0:
            bad("balance", f"cannot be negative ({balance})")
        self.emu.wallet = balance
        return 200, {"balance": _eur(self.emu.wallet)}

    async def change_wallet(self, call: _Call) -> tuple[int, dict[str, Any]]:
        add = call.body.money("add")
        call.done()
        if add is None:
            bad("add", 'required: EUR to add, e.g. "10.00" (negative to take away)')
        if self.emu.wallet + add < 0:
            bad("add", f"would leave the wallet at {_eur(self.emu.wallet + add)}")
        self.emu.wallet = self.emu.wallet + add
        return 200, {"balance": _eur(self.emu.wallet)}

    async def ledger(self, call: _Call) -> tuple[int, dict[str, Any]]:
        operation = call.query.text("operation", choices=OPERATIONS)
        target_id = call.query.text("target_id")
        call.done()
        charges = [
            c
            for c in self.emu.ledger
            if (operation is None or c.operation == operation)
            and (target_id is None or c.target_id == target_id)
        ]
        return 200, {
            "charges": [charge_json(c) for c in charges],
            "total": _eur(sum((c.amount for c in charges), Decimal(0))),
        }

    async def requests(self, call: _Call) -> tuple[int, dict[str, Any]]:
        limit = _query_int(call.query, "limit", 100)
        method = (call.query.text("method") or "*").upper()
        path = call.query.text("path") or "*"
        call.done()
        matching = [
            r
            for r in self.emu.requests
            if (method == "*" or r.method == method) and fnmatchcase(r.path, path)
        ]
        return 200, {
            "requests": [request_json(r) for r in matching[-limit:]],
            "count": len(matching),
        }

    async def get_time(self, call: _Call) -> tuple[int, dict[str, Any]]:
        call.done()
        return 200, {"now": self.emu.now()}

    async def set_time(self, call: _Call) -> tuple[int, dict[str, Any]]:
        advance = call.body.number("advance", high=1e10)
        at = call.body.number("set", high=1e11)
        call.done()
        if (advance is None) == (at is None):
            bad("advance", 'give one of "advance" (seconds) or "set" (unix time)')
        if advance is not None:
            self.emu.advance_time(advance)
        elif at is not None:
            self.emu.set_time(at)
        return 200, {"now": self.emu.now()}

    async def reset(self, call: _Call) -> tuple[int, dict[str, Any]]:
        call.done()
        await self.emu.reset()
        return 200, self._state()

    # --- helpers ----------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        emu = self.emu
        return {
            "environment": emu.environment,
            "seed": emu.seed,
            "now": emu.now(),
            "balance": _eur(emu.wallet),
            "auto_process": emu.auto_process,
            "latency": emu.latency,
            "mailboxes": len(emu.mailboxes),
            "comunica": len(emu.comunica_requests),
            "charges": len(emu.ledger),
            "requests": len(emu.requests),
            "fault_rules": len(emu.faults.rules),
            "late_pending": emu.late_pending,
        }

    def _rule(self, text: str) -> FaultRule:
        for rule in self.emu.faults.rules:
            if str(rule.id) == text:
                return rule
        raise AdminError(404, "not_found", f"no fault rule has id {text!r}", "id")


def _query_int(query: Fields, key: str, default: int) -> int:
    text = query.text(key)
    if text is None:
        return default
    number = whole_number(text)
    if number is None or not 1 <= number <= 1_000_000:
        bad(key, f"a whole number from 1 to 1000000, not {text!r}")
    return number


def _eur(amount: Decimal) -> str:
    return f"{amount:.2f}"


async def _read(request: web.Request) -> dict[str, Any]:
    if (request.content_length or 0) > _MAX_BODY:
        raise AdminError(413, "too_large", f"an admin body is at most {_MAX_BODY} bytes", "body")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raw = b"\0" * (_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        raise AdminError(413, "too_large", f"an admin body is at most {_MAX_BODY} bytes", "body")
    return parse_body(raw)


def _match(template: tuple[str, ...], segs: list[str]) -> dict[str, str] | None:
    if len(template) != len(segs):
        return None
    params: dict[str, str] = {}
    for part, seg in zip(template, segs, strict=True):
        if part.startswith("{"):
            params[part[1:-1]] = seg
        elif part != seg:
            return None
    return params


_S = AdminSurface
#: path under the prefix (split) -> method -> handler
_TABLE: Mapping[tuple[str, ...], Mapping[str, Handler]] = {
    (): {"GET": _S.state},
    ("faults",): {"GET": _S.list_faults, "POST": _S.add_fault, "DELETE": _S.clear_faults},
    ("faults", "{id}"): {"GET": _S.get_rule, "DELETE": _S.remove_rule},
    ("mailboxes", "{id}", "advance"): {"POST": _S.advance_mailbox},
    ("comunica", "{id}", "advance"): {"POST": _S.advance_comunica},
    ("process-all",): {"POST": _S.process_all},
    ("wallet",): {"GET": _S.get_wallet, "PUT": _S.set_wallet, "POST": _S.change_wallet},
    ("ledger",): {"GET": _S.ledger},
    ("requests",): {"GET": _S.requests},
    ("time",): {"GET": _S.get_time, "POST": _S.set_time},
    ("reset",): {"POST": _S.reset},
}

"""The HTTP layer of the emulator: routing, authentication and scopes, the JSON envelope,
and the injection of the faults of the plan (at the TCP level for the dropped connections;
late commits run as background tasks of the emulator, see :mod:`pecapi.testing.late`).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from pecapi.models.wire import nested_deeper_than

from . import errors as E
from .errors import ApiError, PlainError
from .faults import Fault
from .late import Incoming, read_request
from .ledger import RequestRecord

if TYPE_CHECKING:
    from multidict import MultiMapping

    from .state import Emulator

__all__ = ["build_app", "serve_app"]

Reply = tuple[int, bytes, Mapping[str, str]]
Handler = Callable[["Emulator", list[str], "MultiMapping[str]", dict[str, Any]], Reply]

JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}
TEXT_HEADERS: Mapping[str, str] = {"Content-Type": "text/plain; charset=utf-8"}
MAX_BODY = 64 * 1024 * 1024
# Deeper bodies are refused: what is stored is encoded again recursively (answers,
# callbacks), where a body just under the parser's limit would fail after its commit.
MAX_DEPTH = 128

_dumps = json.JSONEncoder(ensure_ascii=False).encode


def envelope(data: Any, message: str = "", error: int | None = None) -> bytes:
    return _dumps(
        {"data": data, "success": error is None, "message": message, "error": error}
    ).encode()


def _ok(data: Any, message: str = "") -> Reply:
    return 200, envelope(data, message), JSON_HEADERS


def _fail(err: ApiError, headers: Mapping[str, str] = JSON_HEADERS) -> Reply:
    return err.status, envelope(None, err.message, err.code), headers


def _pdf(content: bytes, name: str) -> Reply:
    return (
        200,
        content,
        {"Content-Type": "application/pdf", "Content-Disposition": f'inline; filename="{name}"'},
    )


# --- handlers: (emulator, path segments, query, JSON body) -> reply ----------------------------


def _param(segs: list[str]) -> str:
    return segs[1] if len(segs) > 1 else ""


def h_domini(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    dominio = _param(segs)
    found = emu.api_check_domain(dominio)
    if found is None:
        return 204, b"", {}
    return _ok(found, f"{dominio} found!")


def h_verifica(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_check_pec(_param(segs)))


def h_list(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_list_mailboxes())


def h_register(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_register(b))


def h_get(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_get_mailbox(segs[1]))


def h_revoke(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_revoke(segs[1]))


def h_activate(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_activate(segs[1], b))


def h_modify(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_modify_space(segs[1], b))


def h_conserv(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_conservation(segs[1], b))


def h_transform(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_change_type(segs[1], b))


def h_renew(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_renew(segs[1], q.get("anni")))


def h_add_user(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_add_user(segs[1], b))


def h_com_list(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_list_comunica())


def h_com_new(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_create_comunica(b))


def h_com_get(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_get_comunica(segs[1]))


def h_com_up(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _ok(emu.api_upload_comunica(segs[1], b))


def h_form_act(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _pdf(emu.api_form_activation(segs[1]), f"modulo_attivazione_{segs[1]}.pdf")


def h_form_cons(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _pdf(emu.api_form_conservation(segs[1]), f"modulo_conservazione_{segs[1]}.pdf")


def h_procura(emu: Emulator, segs: list[str], q: MultiMapping[str], b: dict[str, Any]) -> Reply:
    return _pdf(emu.api_form_procura(segs[1]), f"procura_registro_imprese_{segs[1]}.pdf")


# (first segment, number of segments, third segment or "") -> method -> (handler, reads body)
ROUTES: dict[tuple[str, int, str], dict[str, tuple[Handler, bool]]] = {
    ("domini_pec", 1, ""): {"GET": (h_domini, False)},
    ("domini_pec", 2, ""): {"GET": (h_domini, False)},
    ("verifica_pec", 1, ""): {"GET": (h_verifica, False)},
    ("verifica_pec", 2, ""): {"GET": (h_verifica, False)},
    ("pec", 1, ""): {"GET": (h_list, False), "POST": (h_register, True)},
    ("pec", 2, ""): {"GET": (h_get, False), "DELETE": (h_revoke, False)},
    ("pec", 3, "attivazione"): {"PATCH": (h_activate, True)},
    ("pec", 3, "modifica"): {"PATCH": (h_modify, True)},
    ("pec", 3, "conservazione"): {"PATCH": (h_conserv, True)},
    ("pec", 3, "trasformazione"): {"PATCH": (h_transform, True)},
    ("pec", 3, "rinnovo"): {"GET": (h_renew, False)},
    ("pec", 3, "multiutenza"): {"POST": (h_add_user, True)},
    ("pec", 3, "modulo_attivazione"): {"GET": (h_form_act, False)},
    ("pec", 3, "modulo_conservazione"): {"GET": (h_form_cons, False)},
    ("comunica_pec", 1, ""): {"GET": (h_com_list, False), "POST": (h_com_new, True)},
    ("comunica_pec", 2, ""): {"GET": (h_com_get, False), "PATCH": (h_com_up, True)},
    ("comunica_pec", 3, "procura_registro_imprese"): {"GET": (h_procura, False)},
}
_ALLOW = {key: ", ".join(sorted(methods)) for key, methods in ROUTES.items()}


# --- faults ------------------------------------------------------------------------------------


def _status_response(fault: Fault) -> web.Response:
    code = fault.code
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Error"
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        if fault.retry_after == "http-date":
            headers["Retry-After"] = email.utils.formatdate(time.time() + 1, usegmt=True)
        else:
            headers["Retry-After"] = str(fault.retry_after)
    if fault.body == "json":
        message = "service temporarily unavailable" if code == 503 else phrase.lower()
        headers["Content-Type"] = "application/json"
        return web.Response(status=code, body=envelope(None, message, code), headers=headers)
    if fault.body == "html":
        title = f"{code} {phrase}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n"
        )
        headers["Content-Type"] = "text/html"
        return web.Response(status=code, body=page.encode(), headers=headers)
    return web.Response(status=code, headers=headers)


def _drop(request: web.Request) -> web.Response:
    """Close the connection now (no byte of an answer is sent). aiohttp then fails to write
    the returned response, and treats that as a premature client disconnection (no log)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)


async def _slow(request: web.Request, reply: Reply, fault: Fault) -> web.StreamResponse:
    status, body, headers = reply
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = len(body)
    try:
        await resp.prepare(request)
        size = max(1, -(-len(body) // fault.chunks))
        for i, offset in enumerate(range(0, len(body), size)):
            if i:
                await asyncio.sleep(fault.delay)
            await resp.write(body[offset : offset + size])
        await resp.write_eof()
    except ConnectionError:
        pass
    return resp


async def _truncated(request: web.Request, reply: Reply, fault: Fault) -> web.StreamResponse:
    status, body, headers = reply
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = len(body)
    cut = min(int(len(body) * fault.fraction), max(len(body) - 1, 0))
    try:
        await resp.prepare(request)
        if cut:
            await resp.write(body[:cut])
    except ConnectionError:
        pass
    transport = request.transport
    if transport is not None:
        transport.close()  # flushes what was written, then closes: the body is cut short
    return resp


_GATEWAY_TIMEOUT = Fault.status(504, body="html")


# --- the dispatcher ----------------------------------------------------------------------------


class _Dispatcher:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    async def handle(self, request: web.Request) -> web.StreamResponse:
        emu = self.emu
        received = asyncio.get_running_loop().time()
        method = request.method
        # The raw (still percent-encoded) path: an id containing "%2F" stays one segment,
        # as it does on the wire; fault globs and the request log see it the same way.
        path = request.rel_url.raw_path
        record = RequestRecord(method, path, None, None)
        emu.requests.append(record)
        # Read it all before any delay: processing never depends on the client still being
        # connected (a client may give up during a latency fault, or long before a late commit).
        incoming = await read_request(request, method, path)
        if emu.latency > 0:
            await asyncio.sleep(emu.latency)
        fault = emu.faults.pick(method, path)
        if fault is not None:
            record.fault = fault.kind
            if fault.kind == "latency":
                await asyncio.sleep(emu.faults.latency_of(fault))
                fault = None
            elif fault.kind == "status":
                record.status = fault.code
                return _status_response(fault)
            elif fault.kind == "drop_before":
                return _drop(request)
            elif fault.kind == "answer":
                record.status = fault.code
                canned = {"Content-Type": fault.content_type} if fault.content_type else {}
                return web.Response(status=fault.code, body=fault.payload, headers=canned)
            elif fault.kind == "late":
                return await self._late(request, incoming, record, fault, received)

        reply = self.process(incoming)
        record.status = reply[0]
        if fault is None:
            status, body, headers = reply
            if status == 204:
                return web.Response(status=204)
            return web.Response(status=status, body=body, headers=headers)
        kind = fault.kind
        if kind == "drop_after":
            record.status = None
            return _drop(request)
        if kind == "slow_body":
            return await _slow(request, reply, fault)
        if kind == "truncated_body":
            return await _truncated(request, reply, fault)
        # malformed_json
        body = reply[1]
        broken = body[: len(body) // 2] if len(body) > 2 else b'{"data": '
        record.status = 200
        return web.Response(status=200, body=broken, headers=JSON_HEADERS)

    async def _late(
        self,
        request: web.Request,
        incoming: Incoming,
        record: RequestRecord,
        fault: Fault,
        received: float,
    ) -> web.StreamResponse:
        """Answer now without processing; process and commit ``fault.delay`` seconds after
        the request was received, whatever the client does meanwhile."""

        def commit() -> None:
            try:
                reply = self.process(incoming)
            except Exception:
                record.status = 500
                raise
            record.status = reply[0]

        task = self.emu.late_commits.schedule(received + fault.delay, commit)
        if fault.reply == "504":
            record.status = 504
            return _status_response(_GATEWAY_TIMEOUT)
        if fault.reply == "hang":
            await asyncio.wait([task])  # (cancelling this handler does not cancel the task)
        return _drop(request)

    def process(self, incoming: Incoming) -> Reply:
        """Authenticate, route and run a request read in full; synchronous, so a commit is
        never interleaved with another request."""
        emu = self.emu
        method, path = incoming.method, incoming.path
        scheme, _, token = incoming.authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _fail(E.AUTH_MISSING.error(), _UNAUTHORIZED)
        if token not in emu.tokens:
            return _fail(E.AUTH_INVALID.error(), _UNAUTHORIZED)
        if emu.token_expired(token):
            return _fail(E.AUTH_EXPIRED.error(), _UNAUTHORIZED)

        segs = [unquote(seg) for seg in path.strip("/").split("/")]
        nsegs = len(segs)
        key = (segs[0], nsegs, segs[2] if nsegs == 3 else "")
        methods = ROUTES.get(key)
        if methods is None:
            return _fail(E.UNKNOWN_PATH.error())
        entry = methods.get(method)
        if entry is None:
            return _fail(E.BAD_METHOD.error(), {**JSON_HEADERS, "Allow": _ALLOW[key]})

        scopes = emu.tokens[token]
        if scopes is not None:
            scope = f"{method}:{emu.host}/{segs[0]}"
            if scope not in scopes and f"*:{emu.host}/{segs[0]}" not in scopes:
                return _fail(E.SCOPE_MISSING.error(scope=scope))

        handler, reads_body = entry
        body: dict[str, Any] = {}
        if reads_body:
            if incoming.too_large:
                return _fail(E.TOO_LARGE.error())
            raw = incoming.body
            if raw.strip():
                try:
                    parsed = json.loads(raw)
                except (ValueError, RecursionError):
                    # RecursionError: [[[[...]]]] deeper than the parser's stack is a bad
                    # body like any other, not a 500.
                    return _fail(E.BAD_JSON.error())
                if not isinstance(parsed, dict) or nested_deeper_than(parsed, MAX_DEPTH):
                    return _fail(E.BAD_JSON.error())
                body = parsed
        try:
            return handler(emu, segs, incoming.query, body)
        except ApiError as err:
            return _fail(err)
        except PlainError as err:
            return err.status, err.text.encode(), TEXT_HEADERS


_UNAUTHORIZED: Mapping[str, str] = {**JSON_HEADERS, "WWW-Authenticate": "Bearer"}


def build_app(emu: Emulator) -> web.Application:
    """An aiohttp application answering every path through the emulator."""
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("*", "/{tail:.*}", _Dispatcher(emu).handle)

    async def cancel_late_commits(_: web.Application) -> None:
        await emu.late_commits.aclose()  # before waiting for handlers: "hang" ones end now

    async def close_deliveries(_: web.Application) -> None:
        await emu.aclose()

    app.on_shutdown.append(cancel_late_commits)
    app.on_cleanup.append(close_deliveries)
    return app


@asynccontextmanager
async def serve_app(emu: Emulator, host: str, port: int) -> AsyncIterator[tuple[str, int]]:
    """Serve ``emu`` on ``host:port`` (0: any free port); yields the bound (host, port)."""
    runner = web.AppRunner(
        build_app(emu), access_log=None, handle_signals=False, shutdown_timeout=0.5
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        address = runner.addresses[0]
        yield str(address[0]), int(address[1])
    finally:
        await runner.cleanup()

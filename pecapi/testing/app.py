"""The HTTP layer of the emulator: authentication and scopes, routing through the route
table (:mod:`pecapi.testing.routes`), request bodies, the JSON envelope, and the injection of
the faults of the plan (at the TCP level for the dropped connections; late commits run as
background tasks of the emulator, see :mod:`pecapi.testing.late`). Paths under
``/_emulator`` go to the admin surface (:mod:`pecapi.testing.admin`) before any of that.

It serves anything that has the parts of :class:`Served` (the
:class:`~pecapi.testing.Emulator` does), so it never imports the facade that imports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import unquote

from aiohttp import web

from pecapi.jsontext import MAX_DEPTH, JsonError, loads

from . import errors as E
from .admin import AdminSurface, is_admin_path
from .errors import ApiError, PlainError
from .fault_http import answer_with_faults
from .faults import FaultPlan
from .late import Incoming, LateCommits, read_request
from .ledger import RequestRecord
from .replies import JSON_HEADERS, TEXT_HEADERS, Reply, envelope, fail
from .routes import Call, Resources, RouteTable

__all__ = ["MAX_BODY", "MAX_DEPTH", "Served", "build_app", "envelope", "serve_app"]

#: Request bodies over this size get 413 (read by build_app: a test may lower it).
MAX_BODY = 64 * 1024 * 1024
# Deeper bodies (MAX_DEPTH, from pecapi.jsontext) are refused: what is stored is encoded
# again recursively (answers, callbacks), where a body just under the parser's limit
# would fail after its commit.


#: The route of every path. Not ".*": "." stops at a line feed, and a path with "%0A" in
#: it would get aiohttp's own text/plain 404 instead of the API's envelope.
EVERY_PATH = r"/{tail:[\s\S]*}"


class Served(Protocol):
    """What the HTTP layer needs of an emulator."""

    @property
    def resources(self) -> Resources: ...
    @property
    def requests(self) -> list[RequestRecord]: ...
    @property
    def latency(self) -> float: ...
    @property
    def faults(self) -> FaultPlan: ...
    @property
    def late_commits(self) -> LateCommits: ...
    async def aclose(self) -> None: ...


# --- the dispatcher ----------------------------------------------------------------------------


class _Dispatcher:
    def __init__(self, emu: Served, admin: AdminSurface | None) -> None:
        self.emu = emu
        self.admin = admin
        self.routes = RouteTable()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        emu = self.emu
        received = asyncio.get_running_loop().time()
        method = request.method
        # The raw (still percent-encoded) path: an id containing "%2F" stays one segment,
        # as it does on the wire; fault globs and the request log see it the same way.
        path = request.rel_url.raw_path
        if self.admin is not None and is_admin_path(path):
            # before the log, the latency and the faults: driving the emulator must not
            # change what a test counts, nor be faulted by the rules it sets
            return await self.admin.handle(request)
        record = RequestRecord(method, path, None, None)
        emu.requests.append(record)
        # Read it all before any delay: processing never depends on the client still being
        # connected (a client may give up during a latency fault, or long before a late commit).
        incoming = await read_request(request, method, path)
        if emu.latency > 0:
            await asyncio.sleep(emu.latency)
        return await answer_with_faults(
            request,
            incoming,
            record,
            faults=emu.faults,
            late_commits=emu.late_commits,
            process=self.process,
            received=received,
        )

    def process(self, incoming: Incoming) -> Reply:
        """Authenticate, route and run a request read in full; synchronous, so a commit is
        never interleaved with another request."""
        resources = self.emu.resources
        method = incoming.method
        try:
            token = resources.tokens.authenticate(incoming.authorization)
        except ApiError as err:
            return fail(err, _UNAUTHORIZED)
        segs = [unquote(seg) for seg in incoming.path.strip("/").split("/")]
        found = self.routes.match(segs)
        if found is None:
            return fail(E.UNKNOWN_PATH.error())
        route = found.methods.get(method)
        if route is None:
            return fail(E.BAD_METHOD.error(), {**JSON_HEADERS, "Allow": found.allow})
        try:
            resources.tokens.authorize(token, method, route.segment)
        except ApiError as err:
            return fail(err)

        body: dict[str, Any] = {}
        if route.body:
            if incoming.too_large:
                return fail(E.TOO_LARGE.error())
            raw = incoming.body
            if raw.strip():
                try:
                    parsed = loads(raw, max_depth=MAX_DEPTH)
                except JsonError:  # too deep is a bad body like any other, not a 500
                    return fail(E.BAD_JSON.error())
                if not isinstance(parsed, dict):
                    return fail(E.BAD_JSON.error())
                body = parsed
        try:
            return route.handler(resources, Call(found.params, incoming.query, body))
        except ApiError as err:
            return fail(err)
        except PlainError as err:
            return err.status, err.text.encode(), TEXT_HEADERS


_UNAUTHORIZED: Mapping[str, str] = {**JSON_HEADERS, "WWW-Authenticate": "Bearer"}


def build_app(emu: Served, admin: AdminSurface | None = None) -> web.Application:
    """An aiohttp application answering every path through the emulator (those under
    ``/_emulator`` through ``admin``, if given)."""
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("*", EVERY_PATH, _Dispatcher(emu, admin).handle)

    async def cancel_late_commits(_: web.Application) -> None:
        await emu.late_commits.aclose()  # before waiting for handlers: "hang" ones end now

    async def close_deliveries(_: web.Application) -> None:
        await emu.aclose()

    app.on_shutdown.append(cancel_late_commits)
    app.on_cleanup.append(close_deliveries)
    return app


@asynccontextmanager
async def serve_app(
    emu: Served, host: str, port: int, admin: AdminSurface | None = None
) -> AsyncIterator[tuple[str, int]]:
    """Serve ``emu`` on ``host:port`` (0: any free port); yields the bound (host, port)."""
    runner = web.AppRunner(
        build_app(emu, admin), access_log=None, handle_signals=False, shutdown_timeout=0.5
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        address = runner.addresses[0]
        yield str(address[0]), int(address[1])
    finally:
        await runner.cleanup()

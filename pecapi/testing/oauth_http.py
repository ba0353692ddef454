"""What the token-service emulators (OAuth v1 and v2) share: the account's credentials
(HTTP Basic), a fault plan and a request log of their own, seeded token values, and the
HTTP layer that applies the faults before a request is processed.

A service answers every request through :meth:`TokenService.process`, synchronous like the
PEC emulator's dispatcher: a commit is never interleaved with another request, and a
``Fault.late`` commit can run after the client was answered.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from fnmatch import fnmatchcase
from typing import Any

from aiohttp import web

from pecapi.secret import Secret

from .account import seeded_random
from .app import EVERY_PATH
from .emulator import Emulator
from .fault_http import answer_with_faults
from .faults import FaultPlan
from .late import Incoming, LateCommits, read_request
from .ledger import RequestRecord
from .replies import JSON_HEADERS, Reply

__all__ = ["MAX_BODY", "TokenService", "failure", "json_reply"]

#: Request bodies over this size get 413: the token services read small JSON objects.
MAX_BODY = 1024 * 1024

_dumps = json.JSONEncoder(ensure_ascii=False).encode


def json_reply(
    status: int, payload: Mapping[str, Any], headers: Mapping[str, str] = JSON_HEADERS
) -> Reply:
    """A JSON answer."""
    return status, _dumps(payload).encode(), headers


def failure(
    status: int, code: int, message: str, headers: Mapping[str, str] = JSON_HEADERS
) -> Reply:
    """An error answer, in the envelope of the specifications' examples."""
    return json_reply(
        status, {"success": False, "message": message, "error": code, "data": None}, headers
    )


class TokenService:
    """A token service of one account (``email`` + ``api_key``) issuing tokens for
    ``emulator``: the parts common to :class:`~pecapi.testing.OAuthEmulator` (v1) and
    :class:`~pecapi.testing.OAuthV2Emulator`.

    ``faults`` is a :class:`~pecapi.testing.FaultPlan` of its own (path globs see the real
    path); ``request_log`` has a :class:`~pecapi.testing.RequestRecord` per request, with
    ``{token}`` in place of a token in its path (the log holds no secret).
    """

    def __init__(
        self, emulator: Emulator, *, email: str, api_key: str, seed: int, stream: str
    ) -> None:
        for name, value in (("email", email), ("api_key", api_key)):
            if not isinstance(value, str) or not value or value != value.strip():
                raise ValueError(f"{name} must be a non-empty string without surrounding spaces")
        self.emulator = emulator
        self.email = email
        self._api_key = Secret(api_key)
        self.faults = FaultPlan(seed)
        self.request_log: list[RequestRecord] = []
        #: the requests of ``Fault.late`` faults waiting to be processed
        self.late_commits = LateCommits()
        # A stream of its own: with one Random(seed), the first token of an emulator was
        # its first mailbox id (see seeded_random).
        self._rng = seeded_random(seed, stream)

    @property
    def api_key(self) -> str:
        """The API key the service accepts (kept out of ``repr``)."""
        return self._api_key.reveal()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} account={self.email!r} pec_host={self.emulator.host!r}>"

    def count(self, method: str = "*", path_glob: str = "*") -> int:
        """How many requests matched ``method`` ("*": any) and the fnmatch ``path_glob``
        (on the logged path, where a token reads ``{token}``)."""
        method = method.upper()
        return sum(
            1
            for r in self.request_log
            if (method == "*" or r.method == method) and fnmatchcase(r.path, path_glob)
        )

    # --- for the services ------------------------------------------------------------------

    def basic_ok(self, authorization: str) -> bool:
        """Whether an ``Authorization`` header is HTTP Basic with the account's credentials."""
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            # Compared as one expression: the decoded key is never a named local.
            return hmac.compare_digest(
                base64.b64decode(encoded.strip(), validate=True),
                f"{self.email}:{self._api_key.reveal()}".encode(),
            )
        except (binascii.Error, ValueError):
            return False

    def new_value(self) -> str:
        """A fresh 24-hex-digit value (a token or a refresh token), seeded."""
        return f"{self._rng.getrandbits(96):024x}"

    def process(self, incoming: Incoming) -> Reply:
        """Answer a request read in full: 413 for a body over :data:`MAX_BODY`, else the
        answer of the service's routes (``_route``)."""
        if incoming.too_large:
            return failure(413, 413, "request body too large")
        return self._route(incoming)

    def _route(self, incoming: Incoming) -> Reply:
        """The answer of the service's routes (the subclass's)."""
        raise NotImplementedError

    def _log_path(self, path: str) -> str:
        """``path`` as the request log keeps it (the subclass hides tokens)."""
        return path

    # --- HTTP -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = asyncio.get_running_loop().time()
        method = request.method
        path = request.rel_url.raw_path
        record = RequestRecord(method, self._log_path(path), None, None)
        self.request_log.append(record)
        incoming = await read_request(request, method, path)
        return await answer_with_faults(
            request,
            incoming,
            record,
            faults=self.faults,
            late_commits=self.late_commits,
            process=self.process,
            received=received,
        )

    def app(self) -> web.Application:
        """The aiohttp application of the service (every path answers JSON)."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", EVERY_PATH, self._handle)

        async def cancel_late_commits(_: web.Application) -> None:
            await self.late_commits.aclose()

        app.on_shutdown.append(cancel_late_commits)
        return app

    async def drain_late(self) -> None:
        """Wait until every late commit scheduled so far has been made."""
        await self.late_commits.drain()

    @asynccontextmanager
    async def _serving(self, host: str, port: int) -> AsyncIterator[tuple[str, str, int]]:
        """Serve on ``host:port`` (0: a free port); yields (url, bound host, bound port)."""
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
            yield f"http://{url_host}:{bound_port}", bound_host, bound_port
        finally:
            await runner.cleanup()

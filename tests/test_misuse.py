"""What a server that negotiates content, and a program that runs two event loops, get."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from pecapi import EventLoopError, PecClient, RetryPolicy
from pecapi.testing import DEFAULT_TOKEN, Emulator

from .conftest import PDF_BYTES, serve_app

BOX = "6489d7c8e4b0f1a2b3c4d5e6"


@asynccontextmanager
async def negotiating_server() -> AsyncIterator[tuple[str, list[str]]]:
    """Answers each path only in the content type the spec gives it, as a server that
    honours ``Accept`` does (406 otherwise); records every Accept it was sent."""
    seen: list[str] = []

    def offer(content_type: str, body: bytes) -> Any:
        async def handle(request: web.Request) -> web.Response:
            accept = request.headers.get("Accept", "*/*")
            seen.append(accept)
            types = {part.split(";")[0].strip() for part in accept.split(",")}
            if not types & {content_type, "*/*", content_type.split("/")[0] + "/*"}:
                return web.Response(status=406, text="Not Acceptable")
            return web.Response(body=body, content_type=content_type)

        return handle

    app = web.Application()
    app.router.add_get("/pec/{id}/modulo_attivazione", offer("application/pdf", PDF_BYTES))
    app.router.add_get("/pec/{id}/modulo_conservazione", offer("application/pdf", PDF_BYTES))
    app.router.add_get(
        "/comunica_pec/{id}/procura_registro_imprese", offer("application/pdf", PDF_BYTES)
    )
    envelope = b'{"data": [], "success": true, "message": "", "error": null}'
    app.router.add_get("/pec", offer("application/json", envelope))
    async with serve_app(app) as url:
        yield url, seen


async def test_each_endpoint_accepts_what_its_answers_are() -> None:
    async with negotiating_server() as (url, seen), PecClient(
        DEFAULT_TOKEN, sandbox=True, base_url=url, retry=RetryPolicy.never()
    ) as client:  # fmt: skip
        assert await client.mailboxes.activation_form(BOX) == PDF_BYTES
        assert await client.mailboxes.conservation_form(BOX) == PDF_BYTES
        assert await client.comunica_pec.power_of_attorney(BOX) == PDF_BYTES
        assert await client.mailboxes.list() == []
    assert [a.split(",")[0] for a in seen] == ["application/pdf"] * 3 + ["application/json"]
    assert all("text/plain" in a for a in seen[:3])  # the forms' errors are plain text


def test_a_client_kept_across_two_event_loops_says_what_to_do() -> None:
    emulator = Emulator()
    clients: list[PecClient] = []

    async def first() -> None:
        async with emulator.serve() as server:
            client = PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url)
            clients.append(client)
            await client.mailboxes.list()

    async def second() -> None:
        client = clients[0]
        with pytest.raises(EventLoopError, match=r"asyncio\.run\(\)") as info:
            await client.mailboxes.list()
        assert isinstance(info.value, RuntimeError)  # what code catching the old error expects
        await client.aclose()  # closing still works, and is quiet
        assert client.closed

    asyncio.run(first())
    asyncio.run(second())

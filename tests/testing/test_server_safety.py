"""The emulator as a server someone runs: callbacks stay on the machine unless allowed, a
non-loopback bind needs a token of one's own and prints a URL the client accepts, and a busy
port is one line on stderr.

No test sends traffic off the machine: the non-loopback callback URLs are refused before any
lookup or connection, and each of those tests passes an option the emulator did not have
before the policy existed, so that an older emulator fails at once instead of calling out.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from pecapi import Callback, PecClient
from pecapi.testing import DEFAULT_TOKEN, Emulator
from pecapi.testing.__main__ import emulator_from_args, parse_args
from pecapi.transport.urls import check_base_url
from tests.cli.conftest import subprocess_env
from tests.conftest import make_registration

EXTERNAL = ["http://example.com/cb", "http://10.255.255.1/cb"]
ENTRY_POINTS = [["-m", "pecapi.testing"], ["-m", "pecapi", "emulator"]]


@asynccontextmanager
async def receiver(host: str = "127.0.0.1") -> AsyncIterator[tuple[int, list[bytes]]]:
    """A callback receiver on loopback: its port and the bodies it got."""
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/cb", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        yield int(runner.addresses[0][1]), bodies
    finally:
        await runner.cleanup()


async def register_with_callbacks(emu: Emulator, urls: list[str]) -> None:
    async with emu.serve() as server:
        async with PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url) as client:
            for i, url in enumerate(urls):
                box = f"user{i}@testcert.legalmail.it"
                await client.mailboxes.register(make_registration(box, callback=Callback(url=url)))
        await emu.deliveries_settled()


# -- callbacks: loopback only by default -----------------------------------------------------


async def test_callbacks_to_other_hosts_are_refused_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu = Emulator(allow_external_callbacks=False)
    with caplog.at_level(logging.WARNING, logger="pecapi.testing"):
        await register_with_callbacks(emu, [*EXTERNAL, "http://example.com/other"])
    assert [d.url for d in emu.deliveries] == [*EXTERNAL, "http://example.com/other"]
    for delivery in emu.deliveries:
        assert (delivery.error, delivery.attempts, delivery.status) == ("refused", 0, None)
        assert not delivery.delivered
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2  # once per host
    assert "example.com" in refusals[0] and "--callback-host" in refusals[0]
    assert "10.255.255.1" in refusals[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_callbacks_to_loopback_are_delivered(host: str) -> None:
    async with receiver() as (port, bodies):
        emu = Emulator(callback_hosts=())
        await register_with_callbacks(emu, [f"http://{host}:{port}/cb"])
    (delivery,) = emu.deliveries
    assert (delivery.delivered, delivery.error, delivery.status) == (True, None, 200)
    assert len(bodies) == 1


def test_other_hosts_are_delivered_only_when_allowed() -> None:
    # judged without sending anything: allowing a host is what lets the request go out
    emu = Emulator(callback_hosts=["Example.COM", "[2001:db8::1]", "10.255.255.1"])
    assert emu.callbacks.allows("http://example.com/cb")
    assert emu.callbacks.allows("https://EXAMPLE.com:8443/cb")
    assert emu.callbacks.allows("http://[2001:db8:0::1]:8080/cb")
    assert emu.callbacks.allows("http://10.255.255.1/cb")
    assert emu.callbacks.allows("http://127.0.0.2:9/cb")  # loopback stays allowed
    assert not emu.callbacks.allows("http://www.example.com/cb")
    assert not emu.callbacks.allows("http://10.255.255.2/cb")
    assert not emu.callbacks.allows("not a url")
    anywhere = Emulator(allow_external_callbacks=True)
    assert all(anywhere.callbacks.allows(url) for url in EXTERNAL)
    assert not Emulator().callbacks.allows(EXTERNAL[0])


def test_command_line_callback_options() -> None:
    args = parse_args(["--callback-host", "example.com", "--callback-host", "10.255.255.1"])
    allowed = emulator_from_args(args).callbacks
    assert all(allowed.allows(url) for url in EXTERNAL)
    assert not allowed.allows("http://example.org/cb")
    assert not emulator_from_args(parse_args([])).callbacks.allows(EXTERNAL[0])
    anywhere = emulator_from_args(parse_args(["--allow-external-callbacks"])).callbacks
    assert anywhere.allows("http://example.org/cb")


# -- the server from the shell ---------------------------------------------------------------


async def run_to_exit(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=subprocess_env(),
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:  # still serving: the refusal did not happen
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "options", [["--host", "0.0.0.0"], ["--host", "::", "--token", DEFAULT_TOKEN]]
)
async def test_a_public_bind_needs_a_token_of_ones_own(
    entry: list[str], options: list[str]
) -> None:
    code, out, err = await run_to_exit(*entry, "--port", "0", *options)
    assert code == 2
    assert out == ""
    line = one_line(err)
    assert options[1] in line and "--token" in line


@pytest.mark.parametrize("entry", ENTRY_POINTS)
async def test_a_busy_port_is_one_line(entry: list[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = await run_to_exit(*entry, "--port", str(port))
    assert code == 1
    assert out == ""
    line = one_line(err)
    assert f"127.0.0.1:{port}" in line and "in use" in line


async def test_a_wildcard_bind_prints_a_url_the_client_accepts() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi.testing", "--host", "0.0.0.0", "--port", "0",
        "--token", "my-own-token",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=subprocess_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        check_base_url(url)  # plain http is accepted for loopback only
        assert url.startswith("http://127.0.0.1:")
        async with PecClient("my-own-token", sandbox=True, base_url=url) as client:
            assert await client.mailboxes.list() == []
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    err = stderr.decode()
    assert "Traceback" not in err
    assert "0.0.0.0" in err  # the interface really bound...
    assert "ssh -L" in err and "https" in err  # ...and how a client elsewhere gets there
    assert "my-own-token" not in err


async def test_the_server_refuses_callbacks_to_other_hosts_by_default() -> None:
    # --callback-host (an option older emulators reject) allows only an unrelated host
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi.testing", "--port", "0",
        "--callback-host", "callbacks.invalid",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=subprocess_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        async with PecClient(DEFAULT_TOKEN, sandbox=True, base_url=url) as client:
            callback = Callback(url="http://example.com/cb")
            await client.mailboxes.register(make_registration(callback=callback))
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    err = stderr.decode()
    assert proc.returncode == 0, err
    assert "callbacks to example.com refused" in err
    assert "Traceback" not in err

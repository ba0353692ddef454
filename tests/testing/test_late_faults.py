"""Fault.late: the write is committed some time after the client got a 504, a dropped
connection or nothing at all; checked with a raw aiohttp session over real loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault
from pecapi.testing import app as app_module
from pecapi.testing.faults import FAULT_KINDS
from pecapi.testing.samples import mailbox_body

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
DISCONNECTED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
ADDRESS = "late@testcert.legalmail.it"
AFTER = 0.3  # the late commits' delay: well after the client's reads, still fast
HANG_TIMEOUT = aiohttp.ClientTimeout(total=0.05)
REPLIES = ("504", "drop", "hang")


@asynccontextmanager
async def session(token: str = DEFAULT_TOKEN) -> AsyncIterator[aiohttp.ClientSession]:
    """A raw session that does not silently resend an idempotent request whose connection
    was dropped (see the README's keep-alive hazard): a dropped GET stays dropped."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        s._retry_connection = False
        yield s


@pytest.fixture(autouse=True)
def no_server_errors(caplog):
    """No fault may make aiohttp's server (or asyncio, for the late tasks) log an error."""
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.DEBUG, logger="asyncio")
    yield
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]


async def late_reply(
    s: aiohttp.ClientSession, reply: str, method: str, url: str, **kwargs: Any
) -> None:
    """Send a late-faulted request; check what the client sees for this kind of reply."""
    if reply == "504":
        async with s.request(method, url, **kwargs) as r:
            assert r.status == 504
            assert r.headers["Content-Type"].startswith("text/html")
            page = await r.read()
            assert b"<h1>504 Gateway Timeout</h1>" in page
            assert b"nginx" in page
    elif reply == "drop":
        with pytest.raises(DISCONNECTED):
            await s.request(method, url, **kwargs)
    else:  # hang: no answer before the client's timeout
        with pytest.raises(asyncio.TimeoutError):
            await s.request(method, url, timeout=HANG_TIMEOUT, **kwargs)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (polling, at most 5 s) until ``condition()`` holds."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


# --- the fault ----------------------------------------------------------------------------


def test_late_fault_construction():
    assert "late" in FAULT_KINDS
    fault = Fault.late(0.25)
    assert (fault.kind, fault.delay, fault.reply) == ("late", 0.25, "504")
    assert Fault.late(0, reply="hang").reply == "hang"
    with pytest.raises(ValueError, match="after"):
        Fault.late(-1)
    with pytest.raises(ValueError, match="reply"):
        Fault.late(1, reply="503")  # type: ignore[arg-type]


# --- paid writes: nothing now, committed and charged once later ----------------------------


@pytest.mark.parametrize("reply", REPLIES)
async def test_late_registration(emu, server, reply):
    emu.faults.once(Fault.late(AFTER, reply=reply), method="POST", path="/pec")
    async with session() as s:
        await late_reply(s, reply, "POST", server.url + "/pec", json=mailbox_body(ADDRESS))
        # the client reconciles at once: not registered yet, nothing charged
        async with s.get(f"{server.url}/verifica_pec/{ADDRESS}") as r:
            assert r.status == 200
            assert (await r.json())["data"] == {"available": True}
        assert emu.mailboxes == {}
        assert emu.ledger == []
        assert emu.late_pending == 1
        record = emu.requests[0]
        assert (record.fault, record.status) == ("late", 504 if reply == "504" else None)

        await emu.drain_late()
        assert emu.late_pending == 0
        async with s.get(f"{server.url}/verifica_pec/{ADDRESS}") as r:
            assert r.status == 406  # taken: the registration was committed
        (mailbox_id,) = emu.mailboxes
        assert emu.mailboxes[mailbox_id]["casella_pec"] == ADDRESS
    assert [c.target_id for c in emu.charges(operation="register")] == [mailbox_id]
    assert len(emu.ledger) == 1
    assert record.status == 200  # the status of the late processing
    assert emu.faults.counts["late"] == 1


@pytest.mark.parametrize("reply", REPLIES)
async def test_late_renewal(emu, server, reply):
    mailbox_id = emu.seed_mailbox(ADDRESS)  # evasa
    path = f"/pec/{mailbox_id}/rinnovo"
    emu.faults.once(Fault.late(AFTER, reply=reply), method="GET", path=path)
    async with session() as s:
        async with s.get(f"{server.url}/pec/{mailbox_id}") as r:
            before = (await r.json())["data"]
        await late_reply(s, reply, "GET", server.url + path)
        async with s.get(f"{server.url}/pec/{mailbox_id}") as r:
            assert (await r.json())["data"] == before  # not renewed yet
        assert emu.charges(operation="renewal") == []

        await emu.drain_late()
        async with s.get(f"{server.url}/pec/{mailbox_id}") as r:
            after = (await r.json())["data"]
    assert after["timestamp"]["scadenza"] > before["timestamp"]["scadenza"]
    assert after["data_scadenza"] != before["data_scadenza"]
    assert [c.target_id for c in emu.charges(operation="renewal")] == [mailbox_id]
    assert len(emu.ledger) == 1
    assert (emu.requests[1].fault, emu.requests[1].status) == ("late", 200)


# --- whatever the client does ----------------------------------------------------------------


async def test_hang_outwaited_sees_a_drop_after_the_commit(emu, server):
    emu.faults.once(Fault.late(0.05, reply="hang"), method="POST", path="/pec")
    async with session() as s:
        with pytest.raises(DISCONNECTED):  # no timeout: held open until the commit, closed
            await s.post(server.url + "/pec", json=mailbox_body(ADDRESS))
    assert emu.late_pending == 0
    assert [c.operation for c in emu.ledger] == ["register"]  # committed before the close
    assert (emu.requests[0].fault, emu.requests[0].status) == ("late", 200)


async def test_late_commit_after_client_disconnected(emu, server):
    emu.faults.once(Fault.late(AFTER, reply="hang"), method="POST", path="/pec")
    async with session() as s:
        attempt = asyncio.ensure_future(s.post(server.url + "/pec", json=mailbox_body(ADDRESS)))
        await until(lambda: emu.late_pending == 1)
        attempt.cancel()  # the client gives up, and closes its session (the connection)
        with pytest.raises(asyncio.CancelledError):
            await attempt
    assert emu.mailboxes == {}
    await emu.drain_late()
    assert len(emu.mailboxes) == 1
    assert [c.operation for c in emu.ledger] == ["register"]
    assert emu.requests[0].status == 200


async def test_late_commit_is_checked_then_and_a_retry_wins(emu, server):
    """After the 504 the client retries: the retry registers, the late original is then
    refused (address taken) and charges nothing — processed with the state of its time."""
    emu.faults.once(Fault.late(AFTER), method="POST", path="/pec")
    async with session() as s:
        await late_reply(s, "504", "POST", server.url + "/pec", json=mailbox_body(ADDRESS))
        async with s.post(server.url + "/pec", json=mailbox_body(ADDRESS)) as r:
            assert r.status == 200
        await emu.drain_late()
    assert [r.status for r in emu.requests] == [406, 200]
    assert [c.operation for c in emu.ledger] == ["register"]


async def test_late_commit_runs_the_authentication(emu, server):
    emu.faults.once(Fault.late(0.05), method="POST", path="/pec")
    async with session(token="nope") as s:
        await late_reply(s, "504", "POST", server.url + "/pec", json=mailbox_body(ADDRESS))
    await emu.drain_late()
    assert emu.requests[0].status == 401
    assert emu.mailboxes == {}
    assert emu.ledger == []


async def test_late_pending_counts_down(emu, server):
    emu.faults.once(Fault.late(0.05), method="POST", path="/pec")
    emu.faults.once(Fault.late(AFTER), method="POST", path="/pec")
    async with session() as s:
        for address in ("one@testcert.legalmail.it", "two@testcert.legalmail.it"):
            body = mailbox_body(address)
            await late_reply(s, "504", "POST", server.url + "/pec", json=body)
    assert emu.late_pending in (1, 2)
    await until(lambda: emu.late_pending < 2)
    assert emu.late_pending == 1
    assert len(emu.charges(operation="register")) == 1
    await emu.drain_late()
    assert emu.late_pending == 0
    assert len(emu.charges(operation="register")) == 2
    await emu.drain_late()  # nothing left: returns at once


# --- shutdown ----------------------------------------------------------------------------------


async def test_aclose_cancels_waiting_commits(emu, server):
    emu.faults.once(Fault.late(AFTER), method="POST", path="/pec")
    async with session() as s:
        await late_reply(s, "504", "POST", server.url + "/pec", json=mailbox_body(ADDRESS))
    assert emu.late_pending == 1
    await emu.aclose()
    assert emu.late_pending == 0
    await emu.drain_late()
    assert emu.mailboxes == {}
    assert emu.ledger == []
    assert emu.requests[0].status == 504  # never processed


async def test_server_stop_cancels_commits_and_hanging_requests():
    emu = Emulator(seed=2)
    emu.faults.once(Fault.late(AFTER, reply="hang"), method="POST", path="/pec")
    async with session() as s:
        async with emu.serve() as server:
            attempt = asyncio.ensure_future(s.post(server.url + "/pec", json=mailbox_body()))
            await until(lambda: emu.late_pending == 1)
        # the server stopped without waiting for the commit: cancelled, the client dropped
        with pytest.raises(DISCONNECTED):
            await attempt
    assert emu.late_pending == 0
    assert emu.mailboxes == {}
    assert emu.ledger == []


# --- the body is read first ---------------------------------------------------------------------


async def test_latency_fault_processed_after_client_gave_up(emu, server):
    emu.faults.once(Fault.latency(0.2), method="POST", path="/pec")
    async with session() as s:
        with pytest.raises(asyncio.TimeoutError):
            await s.post(server.url + "/pec", json=mailbox_body(ADDRESS), timeout=HANG_TIMEOUT)
    await until(lambda: emu.requests[0].status is not None)
    assert emu.requests[0].status == 200
    assert len(emu.mailboxes) == 1
    assert [c.operation for c in emu.ledger] == ["register"]


async def test_too_large_body(monkeypatch):
    monkeypatch.setattr(app_module, "MAX_BODY", 1024)
    emu = Emulator(seed=2)
    body = mailbox_body(ADDRESS, nome_richiedente="x" * 2048)
    emu.faults.once(Fault.late(0.05), method="POST", path="/pec")
    async with emu.serve() as server, session() as s:
        await late_reply(s, "504", "POST", server.url + "/pec", json=body)
        async with s.post(server.url + "/pec", json=body) as r:
            assert r.status == 413
            assert (await r.json())["error"] == 413
        await emu.drain_late()
        async with s.get(server.url + "/pec/x", data=b"y" * 2048) as r:
            assert r.status == 400  # a route without a body ignores it, as before
    assert [(r.fault, r.status) for r in emu.requests] == [("late", 413), (None, 413), (None, 400)]
    assert emu.ledger == []

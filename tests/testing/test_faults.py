"""The fault plan, checked with a raw aiohttp session over real loopback connections."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, FaultPlan
from pecapi.testing.samples import mailbox_body

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
DISCONNECTED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


@asynccontextmanager
async def session(*, retry: bool = False, limit: int = 0, created: list[int] | None = None):
    """A raw session. ``retry=False`` turns off aiohttp's silent resend of an idempotent request
    that failed on a reused keep-alive connection; ``created`` counts new connections."""
    trace = aiohttp.TraceConfig()

    async def on_create(*_: object) -> None:
        if created is not None:
            created.append(1)

    trace.on_connection_create_end.append(on_create)
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector, headers=AUTH, trace_configs=[trace]) as s:
        s._retry_connection = retry
        yield s


@pytest.fixture
async def served() -> AsyncIterator[tuple[Emulator, str]]:
    emu = Emulator(seed=3)
    async with emu.serve() as running:
        yield emu, running.url


@pytest.fixture(autouse=True)
def no_server_errors(caplog):
    """No fault may make aiohttp's server log an error (tracebacks, 'Error handling request')."""
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    yield
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]


# --- connection drops ---------------------------------------------------------------------


async def test_drop_before_commits_nothing(served):
    emu, url = served
    emu.faults.once(Fault.drop_before(), method="POST", path="/pec")
    async with session() as s:
        with pytest.raises(DISCONNECTED):
            await s.post(url + "/pec", json=mailbox_body())
    assert not emu.mailboxes
    assert emu.ledger == []
    assert (emu.requests[-1].status, emu.requests[-1].fault) == (None, "drop_before")
    assert emu.faults.counts["drop_before"] == 1


async def test_drop_after_commits_but_answers_nothing(served):
    emu, url = served
    emu.faults.once(Fault.drop_after(), method="POST", path="/pec")
    async with session() as s:
        with pytest.raises(DISCONNECTED):
            await s.post(url + "/pec", json=mailbox_body())
        assert len(emu.mailboxes) == 1
        assert [c.operation for c in emu.ledger] == ["register"]
        assert (emu.requests[-1].status, emu.requests[-1].fault) == (None, "drop_after")
        # the client cannot know; a retry of the same POST is refused (address taken)
        async with s.post(url + "/pec", json=mailbox_body()) as r:
            assert r.status == 406
            assert (await r.json())["error"] == 223
    assert len(emu.ledger) == 1


async def test_keep_alive_renewal_charged_once_per_processed_request(served):
    emu, url = served
    mailbox_id = emu.seed_mailbox("k@testcert.legalmail.it")
    created: list[int] = []
    # Two renewals over one kept-alive connection (limit=1); the second one is dropped after
    # being processed. With `_retry_connection = False` aiohttp reports the disconnection.
    async with session(retry=False, limit=1, created=created) as s:
        async with s.get(f"{url}/pec/{mailbox_id}/rinnovo") as r:
            assert r.status == 200
            await r.read()
        emu.faults.once(Fault.drop_after(), method="GET", path="/pec/*/rinnovo")
        with pytest.raises(DISCONNECTED):
            await s.get(f"{url}/pec/{mailbox_id}/rinnovo")
    assert len(created) == 1  # the second request really went over the kept-alive connection
    assert emu.count("GET", "/pec/*/rinnovo") == 2
    assert len(emu.charges("renewal", mailbox_id)) == 2  # both were processed, once each


async def test_default_aiohttp_resends_a_dropped_get_on_a_kept_alive_connection(served):
    # Documented hazard: with the default `_retry_connection = True`, aiohttp silently resends
    # an idempotent request (GET) that failed on a reused keep-alive connection. GET
    # /pec/{id}/rinnovo is not idempotent: the client sees two successes, three were charged.
    emu, url = served
    mailbox_id = emu.seed_mailbox("k@testcert.legalmail.it")
    created: list[int] = []
    async with session(retry=True, limit=1, created=created) as s:
        for i in range(2):
            if i == 1:
                emu.faults.once(Fault.drop_after(), path="/pec/*/rinnovo")
            async with s.get(f"{url}/pec/{mailbox_id}/rinnovo") as r:
                assert r.status == 200
                await r.read()
    assert len(created) == 2  # the resend opened a new connection
    assert emu.count("GET", "/pec/*/rinnovo") == 3
    assert len(emu.charges("renewal", mailbox_id)) == 3


# --- damaged bodies ------------------------------------------------------------------------


async def test_truncated_body(served):
    emu, url = served
    mailbox_id = emu.seed_mailbox("t@testcert.legalmail.it")
    emu.faults.once(Fault.truncated_body())
    async with session() as s:
        async with s.get(f"{url}/pec/{mailbox_id}/rinnovo") as r:
            assert r.status == 200
            announced = int(r.headers["Content-Length"])
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        assert announced > 100
        assert len(emu.ledger) == 1  # processed and committed
        async with s.get(f"{url}/pec/{mailbox_id}") as r:  # the session still works
            assert r.status == 200
    assert emu.requests[0].fault == "truncated_body"
    assert emu.requests[0].status == 200


async def test_malformed_json(served):
    emu, url = served
    emu.faults.once(Fault.malformed_json(), path="/pec")
    async with session() as s, s.post(url + "/pec", json=mailbox_body()) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        raw = await r.read()
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)
    assert len(emu.mailboxes) == 1
    assert len(emu.ledger) == 1


async def test_malformed_json_replaces_an_error_answer_with_200(served):
    emu, url = served
    emu.faults.once(Fault.malformed_json())
    async with session() as s, s.get(url + "/pec") as r:  # would be 404 (no mailbox)
        assert r.status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(await r.read())


async def test_slow_body(served):
    emu, url = served
    mailbox_id = emu.seed_mailbox("s@testcert.legalmail.it")
    emu.faults.once(Fault.slow_body(0.02, chunks=4))
    async with session() as s:
        start = time.monotonic()
        async with s.get(f"{url}/pec/{mailbox_id}") as r:
            headers_at = time.monotonic() - start
            body = await r.json()
        total = time.monotonic() - start
    assert body["data"]["id"] == mailbox_id
    assert total >= 0.06
    assert headers_at < total


async def test_slow_body_client_timeout(served):
    emu, url = served
    mailbox_id = emu.seed_mailbox("s@testcert.legalmail.it")
    emu.faults.once(Fault.slow_body(0.2, chunks=3))
    async with session() as s:
        timeout = aiohttp.ClientTimeout(sock_read=0.05)
        async with s.get(f"{url}/pec/{mailbox_id}", timeout=timeout) as r:
            with pytest.raises(asyncio.TimeoutError):
                await r.read()


# --- status answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 502, 503, 504])
async def test_status_html(served, code):
    emu, url = served
    emu.faults.once(Fault.status(code, body="html"), method="POST")
    async with session() as s, s.post(url + "/pec", json=mailbox_body()) as r:
        assert r.status == code
        assert r.content_type == "text/html"
        assert f"<h1>{code} ".encode() in await r.read()
    assert not emu.mailboxes
    assert emu.ledger == []
    assert (emu.requests[-1].status, emu.requests[-1].fault) == (code, "status")


async def test_status_json_and_empty(served):
    emu, url = served
    emu.faults.once(Fault.status(503))
    emu.faults.once(Fault.status(502, body="empty"))
    async with session() as s:
        async with s.get(url + "/pec") as r:
            assert r.status == 503
            assert await r.json() == {
                "data": None,
                "success": False,
                "message": "service temporarily unavailable",
                "error": 503,
            }
        async with s.get(url + "/pec") as r:
            assert r.status == 502
            assert await r.read() == b""


async def test_status_429_retry_after(served):
    emu, url = served
    emu.faults.once(Fault.status(429, retry_after=2))
    emu.faults.once(Fault.status(429, retry_after="http-date"))
    async with session() as s:
        async with s.get(url + "/pec") as r:
            assert (r.status, r.headers["Retry-After"]) == (429, "2")
        async with s.get(url + "/pec") as r:
            assert r.status == 429
            when = email.utils.parsedate_to_datetime(r.headers["Retry-After"])
            assert -1 <= when.timestamp() - time.time() <= 2
        async with s.get(url + "/pec") as r:
            assert r.status == 404  # the plan is exhausted
            assert "Retry-After" not in r.headers


# --- latency --------------------------------------------------------------------------------


async def test_latency_faults(served):
    emu, url = served
    emu.faults.once(Fault.latency(0.03))
    emu.faults.once(Fault.latency((0.01, 0.02)))
    async with session() as s:
        for minimum in (0.03, 0.01):
            start = time.monotonic()
            async with s.get(url + "/pec") as r:
                assert r.status == 404  # processed normally
            assert time.monotonic() - start >= minimum
    assert emu.faults.counts["latency"] == 2
    assert [r.fault for r in emu.requests] == ["latency", "latency"]


# --- the plan's rules -----------------------------------------------------------------------


async def test_next_and_filters(served):
    emu, url = served
    emu.faults.next(2, Fault.status(503), method="GET", path="/comunica_pec")
    async with session() as s:
        statuses = []
        for method, path in [
            ("GET", "/pec"),
            ("POST", "/comunica_pec"),
            ("GET", "/comunica_pec"),
            ("GET", "/comunica_pec"),
            ("GET", "/comunica_pec"),
        ]:
            async with s.request(method, url + path, json={}) as r:
                statuses.append(r.status)
    assert statuses == [404, 428, 503, 503, 404]
    assert emu.faults.pending == 0
    assert emu.count("GET", "/comunica_pec") == 3
    assert emu.count("*", "*") == 5


def test_rules_order_queued_before_rate():
    plan = FaultPlan(seed=1)
    plan.rate(1.0, Fault.status(500))
    plan.once(Fault.drop_after())
    assert plan.pick("GET", "/pec") == Fault.drop_after()
    assert plan.pick("GET", "/pec") == Fault.status(500)
    plan.clear()
    assert plan.pick("GET", "/pec") is None
    assert plan.counts == {"drop_after": 1, "status": 1}


def test_rate_is_deterministic():
    kinds = [Fault.status(503, body="html"), Fault.drop_after(), Fault.truncated_body()]

    def sequence(seed: int) -> list[str | None]:
        plan = FaultPlan(seed=seed)
        plan.rate(0.3, kinds, method="POST", path="/pec")
        out = []
        for i in range(200):
            fault = plan.pick("POST" if i % 3 else "GET", "/pec")
            out.append(None if fault is None else fault.kind)
        return out

    first = sequence(7)
    assert first == sequence(7)
    assert first != sequence(8)
    assert all(kind is None for i, kind in enumerate(first) if i % 3 == 0)  # GETs untouched
    faulted = [k for k in first if k is not None]
    assert 20 < len(faulted) < 70
    assert set(faulted) == {"status", "drop_after", "truncated_body"}
    # an explicit seed wins over the plan's
    a, b = FaultPlan(seed=1), FaultPlan(seed=2)
    a.rate(0.5, kinds, seed=7)
    b.rate(0.5, kinds, seed=7)
    assert [a.pick("GET", "/x") for _ in range(50)] == [b.pick("GET", "/x") for _ in range(50)]


async def test_rate_over_http_is_deterministic():
    async def run(seed: int) -> list[str | None]:
        emu = Emulator(seed=seed)
        emu.faults.rate(0.5, [Fault.status(503), Fault.status(502), Fault.latency(0)])
        async with emu.serve() as running, session() as s:
            for _ in range(30):
                async with s.get(running.url + "/pec") as r:
                    await r.read()
        return [r.fault for r in emu.requests]

    assert await run(11) == await run(11)


def test_fault_constructors_validate():
    with pytest.raises(ValueError, match="HTTP status"):
        Fault.status(99)
    with pytest.raises(ValueError, match="latency"):
        Fault.latency(-1)
    with pytest.raises(ValueError, match="range"):
        Fault.latency((0.2, 0.1))
    with pytest.raises(ValueError, match="fraction"):
        Fault.truncated_body(1.0)
    with pytest.raises(ValueError, match="probability"):
        FaultPlan().rate(1.5, Fault.drop_after())
    with pytest.raises(ValueError, match="n must"):
        FaultPlan().next(0, Fault.drop_after())
    with pytest.raises(AttributeError):
        Fault.drop_after().kind = "status"  # type: ignore[misc]

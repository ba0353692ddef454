"""Review fixes of the OAuth providers: a token in ``/tokens/{token}`` reaches no
traceback frame (the aiohttp response's repr names the URL) nor an error's ``body``;
``aclose()`` during a flight tells its waiters the provider closed; a renewal whose
answer was lost is not kept on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from pecapi import (
    BadRequestError,
    ClientClosedError,
    PecConnectionError,
    PecError,
    ResponseTooLargeError,
)
from pecapi.oauth_service import ONE_ATTEMPT, TokenService
from pecapi.oauth_v2_api import DELETE_TOKEN, HIDDEN, REFRESH_TOKEN, on_token
from pecapi.secret import Secret
from pecapi.testing import Fault
from pecapi.transport.auth import basic_auth, bearer_auth
from pecapi.transport.limits import TOKEN_ANSWER_LIMIT
from pecapi.transport.options import Timeout
from tests import test_oauth
from tests.leaks import secret_leaks
from tests.test_oauth_v2 import TTL, oauth_env
from tests.test_oauth_v2_secrets import secrets_of

TOO_LARGE = Fault.answer(200, b" " * (TOKEN_ANSWER_LIMIT + 1024))


def assert_no_response_in_frames(error: BaseException) -> None:
    """No frame of the traceback holds an aiohttp response (its repr names the URL)."""
    tb = error.__traceback__
    assert tb is not None
    while tb is not None:
        for name, value in tb.tb_frame.f_locals.items():
            kind = type(value).__name__
            assert kind != "ClientResponse", f"{tb.tb_frame.f_code.co_name} holds {name}"
        tb = tb.tb_next


# -- 1. the response is in no frame of the error ----------------------------------------------


@pytest.mark.parametrize(
    "fault", [Fault.truncated_body(0.5), TOO_LARGE], ids=["truncated", "over-the-limit"]
)
async def test_a_failed_renewal_read_keeps_no_response_in_its_frames(fault: Fault) -> None:
    async with oauth_env() as env, env.provider() as p:
        await p.get_token()
        held = p._current
        assert held is not None and held.refresh is not None
        env.oauth.faults.once(fault, method="PATCH", path="/tokens/*")
        expected = PecConnectionError if fault.kind == "truncated_body" else ResponseTooLargeError
        with pytest.raises(expected) as failed:
            await on_token(
                p._service,
                REFRESH_TOKEN,
                held.token,
                json={"ttl": TTL},
                auth=bearer_auth(held.refresh),
                retry=ONE_ATTEMPT,  # a resend would be refused: the renewal happened
            )
        assert env.oauth.count("PATCH", "/tokens/*") == 1
        assert_no_response_in_frames(failed.value)
        assert secret_leaks(failed.value, *secrets_of(env)) == []


async def test_a_renewal_cut_after_expiry_is_raised_without_the_token() -> None:
    async with oauth_env() as env, env.provider() as p:
        await p.get_token()
        env.emu.advance_time(TTL + 1)
        env.oauth.faults.once(Fault.truncated_body(0.5), method="PATCH", path="/tokens/*")
        with pytest.raises(PecConnectionError) as failed:
            await p.get_token()
        assert_no_response_in_frames(failed.value)
        assert secret_leaks(failed.value, *secrets_of(env)) == []


@pytest.mark.parametrize(
    "fault", [Fault.truncated_body(0.5), TOO_LARGE], ids=["truncated", "over-the-limit"]
)
async def test_a_failed_revocation_read_keeps_no_response_in_its_frames(fault: Fault) -> None:
    async with oauth_env() as env, env.provider() as p:
        await p.get_token()
        # Every attempt of the (retried) DELETE fails the same way.
        env.oauth.faults.next(10, fault, method="DELETE", path="/tokens/*")
        with pytest.raises(PecError) as failed:
            await p.revoke()
        assert isinstance(failed.value, (PecConnectionError, ResponseTooLargeError))
        assert_no_response_in_frames(failed.value)
        assert secret_leaks(failed.value, *secrets_of(env)) == []


# -- 2. an answer echoing the token ----------------------------------------------------------


@asynccontextmanager
async def echoing_service() -> AsyncIterator[URL]:
    """A service that answers ``DELETE /tokens/{token}`` as the real one refuses, but
    quotes the token in its message (and a header)."""

    async def refuse(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        body: dict[str, Any] = {
            "success": False,
            "message": f"token {token} not found",
            "error": 180,
            "data": None,
        }
        return web.json_response(body, status=400, headers={"X-Token": token})

    app = web.Application()
    app.router.add_delete("/tokens/{token}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield URL(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


async def test_an_answer_echoing_the_token_is_scrubbed_everywhere() -> None:
    canary = "c4n4ry70k3n0123456789abc"
    async with echoing_service() as url:
        service = TokenService(
            url, basic_auth("me@example.org", "k"), owner="test", timeout=Timeout(total=5)
        )
        try:
            with pytest.raises(BadRequestError) as failed:
                await on_token(service, DELETE_TOKEN, Secret(canary))
        finally:
            await service.aclose()
    error = failed.value
    assert error.body == {"success": False, "message": f"token {HIDDEN} not found", "error": 180}
    assert error.code == 180
    assert secret_leaks(error, canary) == []


# -- 3. aclose() during a flight ---------------------------------------------------------------


async def test_v2_waiters_of_a_flight_stopped_by_aclose_get_client_closed() -> None:
    async with oauth_env() as env:
        env.oauth.faults.once(Fault.latency(2.0), method="POST", path="/tokens")
        p = env.provider()
        waiters = [asyncio.ensure_future(p.get_token()) for _ in range(3)]
        await asyncio.sleep(0.1)  # in flight (sent or not: either way aclose stops it)
        await p.aclose()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, ClientClosedError) for r in results), results


async def test_v1_waiters_of_a_flight_stopped_by_aclose_get_client_closed() -> None:
    async with test_oauth.oauth_env() as env:
        env.oauth.faults.once(Fault.latency(2.0), method="POST", path="/token")
        p = env.provider()
        waiters = [asyncio.ensure_future(p.get_token()) for _ in range(3)]
        await asyncio.sleep(0.1)  # in flight (sent or not: either way aclose stops it)
        await p.aclose()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, ClientClosedError) for r in results), results


async def test_a_waiter_cancelled_itself_stays_cancelled_when_aclose_follows() -> None:
    async with oauth_env() as env:
        env.oauth.faults.once(Fault.latency(2.0), method="POST", path="/tokens")
        p = env.provider()
        waiter = asyncio.ensure_future(p.get_token())
        await asyncio.sleep(0.1)  # in flight (sent or not: either way aclose stops it)
        waiter.cancel()
        await p.aclose()
        with pytest.raises(asyncio.CancelledError):
            await waiter


# -- 4. a renewal whose answer was lost ------------------------------------------------------


async def test_a_renewal_whose_answer_was_lost_is_followed_by_a_new_token() -> None:
    async with oauth_env() as env, env.provider() as p, env.client(p) as client:
        first = await p.get_token()
        env.to_renewal()
        env.oauth.faults.once(Fault.drop_after(), method="PATCH", path="/tokens/*")
        with pytest.raises(PecConnectionError):
            await p.get_token()
        # The service renewed it: the old token is gone, and the provider does not keep it.
        assert env.oauth.renewals == 1
        assert p._current is None
        token = await p.get_token()
        assert token != first and env.oauth.creations == 2
        assert token not in (first, env.oauth.issued[1].token)
        await client.mailboxes.list()  # the PEC API takes the new token

"""Faults of the token services (a refused creation, a dropped connection, latency, a late
commit, a refused renewal), what tests count (counters, the request log), and that no
secret (API key, token, refresh token) reaches the emulators' logs, reprs or error answers."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from pecapi.testing import Emulator, Fault, OAuthEmulator
from tests.conftest import wait_until
from tests.testing.test_oauthv2_checker import EMAIL, KEY, basic, v1_env, v2_env

HOST = "test.pec.openapi.it"
LIST = f"GET:{HOST}/pec"
CREATE = {"scopes": [LIST]}


async def test_fail_next_refuses_creations_then_lets_them_through():
    async with v2_env() as env:
        env.oauth.fail_next(503, times=2)
        for _ in range(2):
            resp = await env.api.call("POST", "/tokens", CREATE, conform=False)
            assert (resp.status, resp.json["error"]) == (503, 503)
        assert env.oauth.creations == 0 and env.emu.tokens == {}
        await env.api.ok("POST", "/tokens", CREATE)
        assert env.oauth.creations == 1
        log = env.oauth.request_log
        assert [(r.status, r.fault) for r in log] == [(503, "status")] * 2 + [(200, None)]
        assert env.oauth.faults.counts["status"] == 2


async def test_a_connection_dropped_before_creating_creates_nothing():
    async with v2_env() as env:
        env.oauth.faults.once(Fault.drop_before(), method="POST", path="/tokens")
        with pytest.raises(aiohttp.ClientError):
            await env.api.call("POST", "/tokens", CREATE, conform=False)
        assert env.oauth.creations == 0
        record = env.oauth.request_log[-1]
        assert (record.status, record.fault) == (None, "drop_before")


async def test_a_connection_dropped_after_creating_leaves_a_token_the_client_never_saw():
    async with v2_env() as env:
        env.oauth.faults.once(Fault.drop_after(), method="POST", path="/tokens")
        with pytest.raises(aiohttp.ClientError):
            await env.api.call("POST", "/tokens", CREATE, conform=False)
        [orphan] = env.oauth.issued
        assert (await env.pec(orphan.token))[0] == 200
        listed = (await env.api.ok("GET", "/tokens"))["data"]
        assert [t["token"] for t in listed] == [orphan.token]  # the client can find it


async def test_latency_holds_a_creation_in_flight():
    """A latency fault: the request is read and logged at once, processed after the delay
    (what a provider's concurrent callers must wait for rather than create again)."""
    async with v2_env() as env:
        env.oauth.faults.once(Fault.latency(1.0), method="POST", path="/tokens")
        pending = asyncio.ensure_future(env.api.ok("POST", "/tokens", CREATE))
        await wait_until(lambda: env.oauth.count("POST", "/tokens") == 1)
        assert env.oauth.creations == 0  # in flight: read, not processed yet
        created = (await pending)["data"]
        assert [t.token for t in env.oauth.issued] == [created["token"]]
        assert env.oauth.request_log[0].fault == "latency"


async def test_concurrent_creations_each_get_a_token():
    async with v2_env() as env:
        env.oauth.faults.rate(1.0, Fault.latency((0.0, 0.05)), method="POST", path="/tokens")
        answers = await asyncio.gather(*(env.api.ok("POST", "/tokens", CREATE) for _ in range(5)))
        tokens = {a["data"]["token"] for a in answers}
        assert len(tokens) == 5 == env.oauth.creations
        assert tokens == {t.token for t in env.oauth.issued}


async def test_a_late_creation_is_made_after_the_504():
    async with v2_env() as env:
        env.oauth.faults.once(Fault.late(1.0, reply="504"), method="POST", path="/tokens")
        resp = await env.api.call("POST", "/tokens", CREATE, conform=False)
        assert resp.status == 504
        assert env.oauth.creations == 0  # answered at once, created a second later
        await env.oauth.drain_late()
        assert env.oauth.creations == 1
        assert env.oauth.request_log[-1].status == 200


async def test_a_failed_renewal_keeps_the_token_and_its_refresh_token():
    async with v2_env() as env:
        api = env.api
        a = (await api.ok("POST", "/tokens", CREATE))["data"]
        path, auth = f"/tokens/{a['token']}", f"Bearer {a['refreshToken']}"
        env.oauth.faults.once(Fault.status(502, body="html"), method="PATCH", path="/tokens/*")
        resp = await api.call("PATCH", path, auth=auth, conform=False)
        assert resp.status == 502 and resp.json is None
        assert (await env.pec(a["token"]))[0] == 200
        await api.ok("PATCH", path, auth=auth)
        assert (env.oauth.renewals, env.oauth.refused_refreshes) == (1, 0)
        assert env.oauth.count("PATCH", "/tokens/*") == 2
        assert env.oauth.count("PATCH", "/tokens/{token}") == 2  # the logged path


async def test_counters_tell_creations_renewals_updates_and_revocations_apart():
    async with v2_env() as env:
        api, oauth = env.api, env.oauth
        a = (await api.ok("POST", "/tokens", CREATE))["data"]
        b = (await api.ok("POST", "/tokens", CREATE))["data"]
        renewed = (
            await api.ok("PATCH", f"/tokens/{a['token']}", auth=f"Bearer {a['refreshToken']}")
        )["data"]
        await api.ok("PATCH", f"/tokens/{b['token']}", {"name": "b"})
        await api.ok("DELETE", f"/tokens/{b['token']}")
        oauth.refuse_refreshes()
        auth = f"Bearer {renewed['refreshToken']}"
        await api.fails("PATCH", f"/tokens/{renewed['token']}", status=401, code=130, auth=auth)
        counts = (
            oauth.creations,
            oauth.renewals,
            oauth.updates,
            oauth.revocations,
            oauth.refused_refreshes,
        )
        assert counts == (2, 1, 1, 1, 1)
        assert oauth.count("POST", "/tokens") == 2
        assert oauth.count("*", "/tokens/*") == 4
        assert oauth.record(renewed["refreshToken"]) is oauth.record(renewed["token"])
        assert oauth.record("nope") is None


async def test_v1_and_v2_issue_different_tokens_for_the_same_pec_emulator():
    emu = Emulator(tokens={})
    async with v2_env(emu) as two, v1_env(emu) as one:
        t2 = (await two.api.ok("POST", "/tokens", CREATE))["data"]["token"]
        t1 = (await one.api.ok("POST", "/token", CREATE))["token"]
        assert t1 != t2 and {t1, t2} <= set(emu.tokens)
        await one.api.ok("DELETE", f"/token/{t1}")
        assert (await two.pec(t2))[0] == 200


async def test_secrets_never_reach_logs_reprs_or_error_answers(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    wrong_key = "canary-wrong-key-91b2"
    seen: list[str] = []
    async with v2_env() as env:
        api, oauth = env.api, env.oauth
        errors: list[bytes] = []
        secrets = [KEY, wrong_key]
        a = (await api.ok("POST", "/tokens", CREATE))["data"]
        b = (await api.ok("PATCH", f"/tokens/{a['token']}", auth=f"Bearer {a['refreshToken']}"))[
            "data"
        ]
        secrets += [a["token"], a["refreshToken"], b["token"], b["refreshToken"]]
        errors.append(
            (
                await api.call("PATCH", f"/tokens/{a['token']}", auth=f"Bearer {a['refreshToken']}")
            ).raw
        )
        errors.append((await api.call("GET", "/tokens", auth=basic(EMAIL, wrong_key))).raw)
        errors.append((await api.call("POST", "/tokens", {"scopes": [wrong_key]})).raw)
        errors.append((await api.call("GET", f"/tokens/{a['refreshToken']}")).raw)
        errors.append((await api.call("DELETE", f"/tokens/{a['token']}")).raw)
        # (a POST: aiohttp resends an idempotent request whose kept-alive connection drops)
        oauth.faults.once(Fault.drop_after(), method="POST")
        with pytest.raises(aiohttp.ClientError):
            await api.call("POST", "/tokens", CREATE, conform=False)
        secrets += [oauth.issued[-1].token, oauth.issued[-1].refresh_token]
        oauth.fail_next(401)
        errors.append((await api.call("POST", "/tokens", CREATE, conform=False)).raw)
        reprs = [repr(oauth), str(oauth), repr(env.running), repr(oauth.issued)]
        reprs += [repr(oauth.request_log), repr(oauth.faults.rules), repr(env.emu.requests)]
        seen = [text for text in reprs if any(s in text for s in secrets)]
        seen += [e.decode() for e in errors if any(s.encode() in e for s in secrets)]
    v1 = OAuthEmulator(Emulator(), api_key=KEY)
    async with v1_env() as env:
        token = (await env.api.ok("POST", "/token", CREATE))["token"]
        await env.api.ok("DELETE", f"/token/{token}")
        seen += [
            text
            for text in (
                repr(v1),
                repr(env.running),
                repr(env.oauth.created),
                repr(env.oauth.request_log),
            )
            if KEY in text or token in text
        ]
    assert seen == []
    for secret in [*secrets, token]:
        assert secret not in caplog.text

"""The OAuth v2 emulator's tokens over loopback: creation with exactly the scopes asked,
renewal with the refresh token, update, deletion, listing, scopes, and every error. Each
answer is checked against ``oauthv2.openapi.json`` as it is read (test_oauthv2_checker)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pecapi.testing import Emulator, IssuedTokenV2, OAuthV2Emulator
from pecapi.testing import oauth_v2_records as R
from pecapi.testing.samples import mailbox_body
from tests.testing.test_oauthv2_checker import EMAIL, KEY, V2, Env, basic, v2_env

HOST = "test.pec.openapi.it"
LIST = f"GET:{HOST}/pec"
REGISTER = f"POST:{HOST}/pec"
YEAR = 365 * 24 * 3600


async def _create(env: Env, scopes: list[str], **fields: Any) -> dict[str, Any]:
    answer = await env.api.ok("POST", "/tokens", {"scopes": scopes, **fields})
    data: dict[str, Any] = answer["data"]
    return data


async def test_a_token_has_exactly_the_scopes_asked_and_its_expiry():
    emu = Emulator(tokens={})
    emu.set_time(1_700_000_000)
    async with v2_env(emu) as env:
        limits = {"totalRequests": 10, "walletAmount": 2.5, "ip": ["127.0.0.1"]}
        data = await _create(env, [LIST, LIST], ttl=3600, name="ci", limits=limits)
        assert data["scopes"] == [LIST]  # exactly, not expanded (a duplicate dropped)
        assert (data["name"], data["limits"]) == ("ci", limits)
        assert data["createdAt"] == data["updatedAt"] == "2023-11-14T22:13:20Z"
        assert data["expireAt"] == "2023-11-14T23:13:20Z"
        token, refresh = data["token"], data["refreshToken"]
        assert re.fullmatch("[0-9a-f]{24}", token) and re.fullmatch("[0-9a-f]{24}", refresh)
        assert token != refresh
        assert emu.tokens[token] == frozenset([LIST])
        assert emu.token_expiry[token] == 1_700_003_600
        # the PEC emulator honours the scopes and the expiry
        assert (await env.pec(token))[0] == 200
        assert (await env.pec(token, "POST", "/pec", mailbox_body()))[0] == 403
        assert (await env.pec(refresh))[0] == 401  # a refresh token is no access token
        emu.advance_time(3600)
        assert await env.pec(token) == (401, "Token expired")

        record = env.oauth.issued[0]
        assert isinstance(record, IssuedTokenV2)
        assert (record.token, record.scopes, record.ttl, record.origin) == (
            token,
            (LIST,),
            3600,
            "created",
        )
        assert env.oauth.creations == 1


@pytest.mark.parametrize(
    ("ttl", "lifetime"),
    [(None, YEAR), (0, YEAR), (-5, YEAR), (1, 1), (YEAR, YEAR), (YEAR + 1, YEAR)],
)
async def test_ttl_none_or_not_positive_is_the_default_and_over_a_year_is_a_year(
    ttl: int | None, lifetime: int
):
    emu = Emulator(tokens={})
    emu.set_time(1000)
    async with v2_env(emu) as env:
        fields = {} if ttl is None else {"ttl": ttl}
        token = (await _create(env, [LIST], **fields))["token"]
        assert emu.token_expiry[token] == 1000 + lifetime
    async with v2_env(emu, default_ttl=60) as env:
        token = (await _create(env, [LIST], ttl=0))["token"]
        assert emu.token_expiry[token] == 1060


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, 70),
        ({"scopes": []}, 70),
        ({"scopes": LIST}, 70),
        ({"scopes": None}, 70),
        ({"scopes": ["pec"]}, 80),
        ({"scopes": [f"GET {HOST}/pec"]}, 80),
        ({"scopes": [7]}, 80),
        ({"scopes": [LIST, "get:x"]}, 80),
        ({"scopes": ["GET:pec.openapi.it/pec"]}, 90),  # production, on a sandbox account
        ({"scopes": [f"*:{HOST}/*"]}, 90),  # wildcards are not scopes of v2
        ({"scopes": [f"GET:{HOST}/unknown"]}, 90),
        ({"scopes": [LIST], "ttl": "3600"}, 85),
        ({"scopes": [LIST], "ttl": 3600.5}, 85),
        ({"scopes": [LIST], "ttl": True}, 85),
        ({"scopes": [LIST], "name": 5}, 85),
        ({"scopes": [LIST], "limits": {"totalRequests": "10"}}, 85),
        ({"scopes": [LIST], "limits": {"nope": 1}}, 85),
        ({"scopes": [LIST], "limits": {"ip": [1]}}, 85),
        ({"scopes": [LIST], "limits": []}, 85),
    ],
)
async def test_creation_refusals_create_nothing(body: dict[str, Any], code: int):
    async with v2_env() as env:
        await env.api.fails("POST", "/tokens", body, status=422, code=code)
        assert env.oauth.issued == [] and env.emu.tokens == {}


async def test_credentials_and_bodies_are_checked_before_anything_is_created():
    async with v2_env() as env:
        api = env.api
        resp = await api.fails(
            "POST", "/tokens", {"scopes": [LIST]}, status=401, code=140, auth=None
        )
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
        for wrong in (
            basic(EMAIL, KEY + "x"),
            basic(EMAIL.upper(), KEY),
            f"Bearer {KEY}",
            "Basic %%",
        ):
            await api.fails("POST", "/tokens", {"scopes": [LIST]}, status=401, code=140, auth=wrong)
        for raw in (b"[1]", b"{", b'"x"', b"[" * 200 + b"]" * 200):
            await api.fails("POST", "/tokens", status=400, code=400, data=raw)
        await api.fails("POST", "/tokens", status=413, code=413, data=b" " * (1024 * 1024 + 1))
        assert env.oauth.issued == [] and env.emu.tokens == {}


async def test_the_refresh_token_renews_a_token_once():
    emu = Emulator(tokens={})
    emu.set_time(10_000)
    async with v2_env(emu) as env:
        first = await _create(env, [LIST, REGISTER], ttl=600, name="svc")
        emu.advance_time(500)
        path = f"/tokens/{first['token']}"
        renewed = (await env.api.ok("PATCH", path, auth=f"Bearer {first['refreshToken']}"))["data"]
        # a new token and refresh token, the same scopes and name, a new expiry; the old
        # token deleted (the spec's description of TokenUpdate)
        assert renewed["token"] not in (first["token"], first["refreshToken"])
        assert renewed["refreshToken"] not in (first["token"], first["refreshToken"])
        assert (renewed["scopes"], renewed["name"]) == ([LIST, REGISTER], "svc")
        assert emu.token_expiry[renewed["token"]] == 10_500 + 600
        assert await env.pec(first["token"]) == (401, "Invalid token")
        assert (await env.pec(renewed["token"]))[0] == 200
        # the old refresh token was used up; the new one works, with a ttl of its own
        await env.api.fails(
            "PATCH", path, status=401, code=130, auth=f"Bearer {first['refreshToken']}"
        )
        again = (
            await env.api.ok(
                "PATCH",
                f"/tokens/{renewed['token']}",
                {"ttl": 60},
                auth=f"Bearer {renewed['refreshToken']}",
            )
        )["data"]
        assert emu.token_expiry[again["token"]] == 10_560
        oauth = env.oauth
        assert [t.origin for t in oauth.issued] == ["created", "renewed", "renewed"]
        assert [t.state for t in oauth.issued] == ["renewed", "renewed", "active"]
        assert (oauth.creations, oauth.renewals, oauth.refused_refreshes) == (1, 2, 1)
        assert [t.token for t in oauth.active] == [again["token"]]


async def test_a_refresh_is_refused_for_a_wrong_used_deleted_or_expired_refresh_token():
    emu = Emulator(tokens={})
    emu.set_time(10_000)
    async with v2_env(emu) as env:
        api = env.api
        a = await _create(env, [LIST], ttl=100)
        b = await _create(env, [LIST], ttl=100)

        async def refused(token: str, refresh: str) -> None:
            await api.fails(
                "PATCH", f"/tokens/{token}", status=401, code=130, auth=f"Bearer {refresh}"
            )

        await refused(a["token"], b["refreshToken"])  # another token's refresh token
        await refused(a["token"], a["token"])  # the access token itself
        await refused(a["token"], "0" * 24)
        await refused("f" * 24, a["refreshToken"])  # no such token
        await api.ok("DELETE", f"/tokens/{b['token']}")
        await refused(b["token"], b["refreshToken"])  # deleted
        emu.advance_time(100)
        await refused(a["token"], a["refreshToken"])  # expired, no grace by default
        assert env.oauth.refused_refreshes == 6
        assert env.oauth.renewals == 0
        assert emu.tokens.get(a["token"]) is not None  # a refusal changes nothing
        await api.fails(
            "PATCH", "/tokens/", status=400, code=150, auth=f"Bearer {a['refreshToken']}"
        )


async def test_refresh_grace_lets_an_expired_token_be_renewed():
    emu = Emulator(tokens={})
    emu.set_time(0)
    async with v2_env(emu, refresh_grace=50) as env:
        a = await _create(env, [LIST], ttl=100)
        emu.advance_time(149)
        auth = f"Bearer {a['refreshToken']}"
        renewed = (await env.api.ok("PATCH", f"/tokens/{a['token']}", auth=auth))["data"]
        emu.advance_time(150)
        auth = f"Bearer {renewed['refreshToken']}"
        await env.api.fails("PATCH", f"/tokens/{renewed['token']}", status=401, code=130, auth=auth)
    async with v2_env(emu, refresh_grace=None) as env:
        a = await _create(env, [LIST], ttl=100)
        emu.advance_time(10 * YEAR)
        await env.api.ok("PATCH", f"/tokens/{a['token']}", auth=f"Bearer {a['refreshToken']}")


async def test_forced_refusals_refuse_valid_refresh_tokens_then_stop():
    async with v2_env() as env:
        a = await _create(env, [LIST])
        env.oauth.refuse_refreshes(2)
        auth = f"Bearer {a['refreshToken']}"
        for _ in range(2):
            await env.api.fails("PATCH", f"/tokens/{a['token']}", status=401, code=130, auth=auth)
        assert (await env.pec(a["token"]))[0] == 200  # still valid: only the renewal failed
        await env.api.ok("PATCH", f"/tokens/{a['token']}", auth=auth)
        assert (env.oauth.refused_refreshes, env.oauth.renewals) == (2, 1)
        with pytest.raises(ValueError, match="times"):
            env.oauth.refuse_refreshes(0)


async def test_basic_patch_updates_a_token_in_place():
    emu = Emulator(tokens={})
    emu.set_time(5000)
    async with v2_env(emu) as env:
        api = env.api
        a = await _create(env, [LIST], ttl=100)
        path = f"/tokens/{a['token']}"
        emu.advance_time(10)
        data = (await api.ok("PATCH", path, {"scopes": [REGISTER], "ttl": 50, "name": "n"}))["data"]
        assert (data["token"], data["refreshToken"]) == (a["token"], a["refreshToken"])
        assert (data["scopes"], data["name"]) == ([REGISTER], "n")
        assert data["updatedAt"] != data["createdAt"]
        assert emu.tokens[a["token"]] == frozenset([REGISTER])
        assert emu.token_expiry[a["token"]] == 5060
        assert (await env.pec(a["token"]))[0] == 403
        await api.ok("PATCH", path, {})  # nothing to change
        assert emu.token_expiry[a["token"]] == 5060
        emu.advance_time(100)  # expired: an update with a ttl brings it back
        await api.ok("PATCH", path, {"ttl": 100})
        assert (await env.pec(a["token"], "POST", "/pec", {}))[0] != 401
        assert env.oauth.updates == 3

        await api.fails("PATCH", path, {"scopes": ["x"]}, status=422, code=100)
        await api.fails("PATCH", path, {"scopes": []}, status=422, code=100)
        await api.fails("PATCH", path, {"scopes": ["GET:pec.openapi.it/pec"]}, status=422, code=110)
        await api.fails("PATCH", path, {"ttl": "1"}, status=422, code=85)
        await api.fails("PATCH", path, status=400, code=400, data=b"[]")
        await api.fails("PATCH", "/tokens/" + "e" * 24, {}, status=404, code=160)
        await api.fails("PATCH", "/tokens/", {}, status=400, code=150)
        await api.fails("PATCH", path, {}, status=401, code=140, auth=None)
        await api.fails("PATCH", path, {}, status=401, code=140, auth=basic(EMAIL, "no"))
        assert env.oauth.updates == 3


async def test_delete_revokes_a_token_and_its_refresh_token():
    async with v2_env() as env:
        api = env.api
        a = await _create(env, [LIST])
        assert await api.ok("DELETE", f"/tokens/{a['token']}") == {
            "message": "Deleted",
            "data": None,
        }
        assert await env.pec(a["token"]) == (401, "Invalid token")
        await api.fails("DELETE", f"/tokens/{a['token']}", status=404, code=180)
        await api.fails("DELETE", "/tokens/", status=400, code=170)
        await api.fails("DELETE", f"/tokens/{a['token']}", status=401, code=140, auth=None)
        await api.fails("GET", f"/tokens/{a['token']}", status=404, code=120)
        assert env.oauth.revocations == 1
        # the token service forgets a token the PEC emulator revoked, and the other way round
        b = await _create(env, [LIST])
        env.emu.revoke_token(b["token"])
        await api.fails("DELETE", f"/tokens/{b['token']}", status=404, code=180)
        c = await _create(env, [LIST])
        assert env.oauth.revoke(c["token"]) and not env.oauth.revoke(c["token"])
        assert c["token"] not in env.emu.tokens
        assert env.oauth.revocations == 2
        assert [t.state for t in env.oauth.issued] == ["deleted", "active", "deleted"]


async def test_listing_and_details_never_show_a_refresh_token():
    emu = Emulator(tokens={})
    emu.set_time(0)
    async with v2_env(emu) as env:
        api = env.api
        made = [await _create(env, [LIST], ttl=10 + i) for i in range(5)]
        await api.ok("DELETE", f"/tokens/{made[1]['token']}")
        emu.advance_time(12)  # made[0] and made[2] expired: still listed
        listed = (await api.ok("GET", "/tokens"))["data"]
        assert [t["token"] for t in listed] == [m["token"] for i, m in enumerate(made) if i != 1]
        assert all("refreshToken" not in t for t in listed)
        page = (await api.ok("GET", "/tokens?skip=1&limit=2"))["data"]
        assert [t["token"] for t in page] == [made[2]["token"], made[3]["token"]]
        assert (await api.ok("GET", "/tokens?skip=9"))["data"] == []
        for query in ("limit=0", "limit=101", "limit=x", "skip=-1", "skip=1.5", "limit="):
            await api.fails("GET", f"/tokens?{query}", status=400, code=190)
        detail = (await api.ok("GET", f"/tokens/{made[4]['token']}"))["data"]
        assert detail["token"] == made[4]["token"]
        assert "refreshToken" not in detail
        await api.fails("GET", "/tokens/not-a-token", status=422, code=60)
        await api.fails("GET", "/tokens/" + "a" * 24, status=404, code=120)
        await api.fails("GET", "/tokens", status=401, code=140, auth=None)
        await api.fails("GET", f"/tokens/{made[4]['token']}", status=401, code=140, auth=None)


async def test_scopes_lists_what_the_account_may_ask_for():
    async with v2_env() as env:
        scopes = (await env.api.ok("GET", "/scopes"))["data"]
        assert [s["scope"] for s in scopes] == list(env.oauth.scopes)
        assert {f"{s['method']}:{s['domain']}/{s['endpoint']}" for s in scopes} == set(
            env.oauth.scopes
        )
        assert len({s["id"] for s in scopes}) == len(scopes)
        assert all(s["enabled"] is True and s["domain"] == HOST for s in scopes)
        await env.api.fails("GET", "/scopes", status=401, code=140, auth=None)
    extra = "GET:company.openapi.com/IT-start"
    async with v2_env(scopes=[LIST, extra]) as env:
        assert [s["scope"] for s in (await env.api.ok("GET", "/scopes"))["data"]] == [LIST, extra]
        await _create(env, [extra])
        await env.api.fails("POST", "/tokens", {"scopes": [REGISTER]}, status=422, code=90)


async def test_bare_token_answers_follow_the_schema_instead():
    async with v2_env(bare_token_answers=True) as env:
        created = await env.api.ok("POST", "/tokens", {"scopes": [LIST]})
        assert set(created) >= {"token", "refreshToken", "expireAt", "scopes"}
        auth = f"Bearer {created['refreshToken']}"
        renewed = await env.api.ok("PATCH", f"/tokens/{created['token']}", auth=auth)
        detail = await env.api.ok("GET", f"/tokens/{renewed['token']}")
        assert detail["token"] == renewed["token"]
        listed = await env.api.ok("GET", "/tokens")
        assert [t["token"] for t in listed["data"]] == [renewed["token"]]


async def test_every_answer_is_json_and_other_paths_and_methods_are_refused():
    async with v2_env() as env:
        api = env.api
        for method, path, status, allow in (
            ("GET", "/", 404, None),
            ("GET", "/token", 404, None),  # v1's path
            ("GET", "/tokens/a/b", 404, None),
            ("GET", "/stats", 404, None),  # documented, not emulated
            ("GET", "/%0A", 404, None),
            ("PUT", "/tokens", 405, "GET, POST"),
            ("POST", "/tokens/" + "a" * 24, 405, "GET, PATCH, DELETE"),
            ("DELETE", "/wallet", 405, "GET"),
            ("POST", "/scopes", 405, "GET"),
        ):
            resp = await api.fails(method, path, status=status, code=status, auth=None)
            assert resp.headers.get("Allow") == allow, (method, path)


async def test_the_journey_answers_every_declared_error_of_every_emulated_operation():
    """Every (operation, error) the emulator declares is answered somewhere in these
    tests' kind of requests, and every emulated operation answers 200."""
    async with v2_env() as env:
        api = env.api
        a = await _create(env, [LIST])
        await api.ok("GET", "/tokens")
        await api.ok("GET", f"/tokens/{a['token']}")
        await api.ok("GET", "/scopes")
        await api.ok("GET", "/wallet")
        await api.ok("GET", "/wallet/transactions")
        b = await api.ok("PATCH", f"/tokens/{a['token']}", auth=f"Bearer {a['refreshToken']}")
        await api.ok("PATCH", f"/tokens/{b['data']['token']}", {"name": "x"})
        await api.ok("DELETE", f"/tokens/{b['data']['token']}")
        for operation in R.EMULATED:
            method, template = operation.split(" ", 1)
            path = template.replace("{token}", "f" * 24)
            await api.call(method, path, {"scopes": [LIST]} if method != "GET" else None, auth=None)
        await api.call("POST", "/tokens", {})
        await api.call("POST", "/tokens", {"scopes": ["x"]})
        await api.call("POST", "/tokens", {"scopes": ["GET:x/y"]})
        await api.call("POST", "/tokens", {"scopes": [LIST], "ttl": "x"})
        await api.call("POST", "/tokens", data=b"[]")
        await api.call("POST", "/tokens", data=b" " * (1024 * 1024 + 1))
        await api.call("PATCH", "/tokens/" + "f" * 24, {}, auth="Bearer " + "f" * 24)
        await api.call("PATCH", "/tokens/", {})
        await api.call("PATCH", "/tokens/" + "f" * 24, {})
        c = await _create(env, [LIST])
        for body in ({"scopes": ["x"]}, {"scopes": ["GET:x/y"]}, {"ttl": "x"}):
            await api.call("PATCH", f"/tokens/{c['token']}", body)
        await api.call("PATCH", f"/tokens/{c['token']}", data=b"[]")
        await api.call("PATCH", f"/tokens/{c['token']}", data=b" " * (1024 * 1024 + 1))
        await api.call("GET", "/tokens/x")
        await api.call("GET", "/tokens/" + "f" * 24)
        await api.call("DELETE", "/tokens/")
        await api.call("DELETE", "/tokens/" + "f" * 24)
        await api.call("GET", "/tokens?limit=0")
        await api.call("GET", "/wallet/transactions?limit=0")
        seen = set(api.seen)
    for operation in R.EMULATED:
        assert (operation, 200, None) in seen, operation
    for error in R.ERRORS_V2:
        for operation in error.operations:
            assert (operation, error.status, error.code) in seen, (operation, error)
    assert {op for op, _status, _code in seen} <= set(V2.operations)


def test_bad_options_are_refused_when_built():
    emu = Emulator()
    for options, match in (
        ({"scopes": ["pec"]}, "scope"),
        ({"default_ttl": 0}, "default_ttl"),
        ({"default_ttl": YEAR + 1}, "default_ttl"),
        ({"refresh_grace": -1}, "refresh_grace"),
        ({"refresh_grace": float("nan")}, "refresh_grace"),
        ({"email": ""}, "email"),
        ({"api_key": " k"}, "api_key"),
    ):
        with pytest.raises(ValueError, match=match):
            OAuthV2Emulator(emu, **options)

"""The OAuth emulator and token expiry in the PEC emulator, with a bare aiohttp client."""

from __future__ import annotations

import base64

import aiohttp
import yarl

from pecapi.testing import DEFAULT_TOKEN, Emulator, OAuthEmulator
from pecapi.testing.samples import mailbox_body
from tests.testing.test_oauthv2_checker import EMAIL, v1_env

HOST = "test.pec.openapi.it"


def _basic(email: str, key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{key}".encode()).decode()}


async def test_token_expiry_in_the_pec_emulator() -> None:
    emu = Emulator(tokens={DEFAULT_TOKEN: None, "short": None}, token_expiry={"short": 1000.0})
    emu.set_time(999)
    async with emu.serve() as server, aiohttp.ClientSession() as s:

        async def status(token: str) -> tuple[int, str]:
            headers = {"Authorization": f"Bearer {token}"}
            async with s.get(
                f"{server.url}/verifica_pec/a@testcert.legalmail.it", headers=headers
            ) as r:
                return r.status, (await r.json())["message"]

        assert (await status("short"))[0] == 200
        emu.advance_time(1)
        assert await status("short") == (401, "Token expired")
        assert (await status(DEFAULT_TOKEN))[0] == 200  # no expiry: never expires
        emu.add_token("new", [f"GET:{HOST}/verifica_pec"], expires=2000)
        assert (await status("new"))[0] == 200
        assert emu.revoke_token("new")
        assert not emu.revoke_token("new")
        assert await status("new") == (401, "Invalid token")


async def test_the_oauth_emulator_issues_lists_and_revokes_tokens() -> None:
    # Every answer is checked against oauth.openapi.json as it is read (TokenApi).
    emu = Emulator(tokens={})
    emu.set_time(5000)
    async with v1_env(emu) as env:
        api, oauth = env.api, env.oauth
        resp = await api.fails(
            "POST", "/token", {"scopes": [f"*:{HOST}/*"]}, status=401, code=401, auth=None
        )
        assert resp.headers["WWW-Authenticate"] == "Basic"
        wrong = _basic(EMAIL, "bad")["Authorization"]
        await api.fails("POST", "/token", {"scopes": ["x"]}, status=401, code=401, auth=wrong)
        await api.fails("POST", "/token", {"ttl": 60}, status=406, code=110)
        # a production scope
        await api.fails(
            "POST", "/token", {"scopes": ["GET:pec.openapi.it/pec"]}, status=406, code=120
        )
        await api.fails("POST", "/token", {"scopes": ["*:*/*"], "ttl": 0}, status=406, code=130)
        await api.fails("POST", "/token", status=400, code=400, data=b"[]")
        assert oauth.creations == 0
        assert (await api.call("GET", "/token")).status == 204  # none yet

        body = await api.ok("POST", "/token", {"scopes": [f"*:{HOST}/*"], "ttl": 60})
        assert body["success"] is True
        assert "error" not in body  # the schema's integer; the example's null is not one
        assert body["expire"] == 5060
        assert sorted(body["scopes"]) == sorted(oauth.pec_scopes)  # wildcards expanded
        token = body["token"]
        assert emu.tokens[token] == frozenset(oauth.pec_scopes)
        assert emu.token_expiry[token] == 5060
        body = await api.ok("POST", "/token", {"scopes": [f"GET:{HOST}/pec"]})
        assert body["scopes"] == [f"GET:{HOST}/pec"]  # ttl: one year
        assert oauth.created[1].expire == 5000 + 365 * 24 * 3600

        listed = await api.ok("GET", "/token")
        assert [t["token"] for t in listed["data"]] == [t.token for t in oauth.created]
        assert await api.ok("DELETE", f"/token/{token}") == {
            "message": "1 deleted token",
            "success": True,
        }
        await api.fails("DELETE", f"/token/{token}", status=404, code=150)
        assert await env.pec(token) == (401, "Invalid token")
        emu.advance_time(365 * 24 * 3600)
        assert (await api.call("GET", "/token")).status == 204  # every token expired or revoked
        # the request log hides the tokens of paths; fail_next is a fault rule
        assert oauth.count("DELETE", "/token/*") == 2
        assert {r.path for r in oauth.request_log} == {"/token", "/token/{token}"}
        assert oauth.requests == oauth.count("POST", "/token") == 8
        oauth.fail_next(503)
        resp = await api.call("POST", "/token", {"scopes": [f"GET:{HOST}/pec"]}, conform=False)
        assert (resp.status, resp.json["error"], oauth.creations) == (503, 503, 2)
        assert oauth.request_log[-1].fault == "status"
        assert (await api.call("POST", "/token", {"scopes": [f"GET:{HOST}/pec"]})).status == 200


async def test_tokens_and_ids_come_from_separate_seeded_streams() -> None:
    # Both used random.Random(seed): with the default seed, the first token was the first
    # mailbox id, so a test mixing them up could pass.
    emu = Emulator()
    oauth = OAuthEmulator(emu)
    auth = _basic(oauth.email, oauth.api_key)
    async with emu.serve() as pec, oauth.serve() as server, aiohttp.ClientSession() as s:
        async with s.post(
            f"{server.url}/token", json={"scopes": [f"*:{HOST}/*"]}, headers=auth
        ) as r:
            token = (await r.json())["token"]
        async with s.post(
            f"{pec.url}/pec", json=mailbox_body(), headers={"Authorization": f"Bearer {token}"}
        ) as r:
            mailbox_id = (await r.json())["data"]["id"]
    assert token != mailbox_id
    # still seeded: the same seed gives the same token and ids again
    again = Emulator()
    assert again.seed_mailbox("x@testcert.legalmail.it") == Emulator().seed_mailbox(
        "x@testcert.legalmail.it"
    )


async def test_every_oauth_answer_is_json() -> None:
    emu = Emulator()
    oauth = OAuthEmulator(emu)
    async with oauth.serve() as server, aiohttp.ClientSession() as s:
        for method, path, status in (
            ("GET", "/%0A", 404),
            ("GET", "/token/%0A/x", 404),
            ("PUT", "/token", 405),
            ("PATCH", "/token/abc", 405),
        ):
            url = yarl.URL(server.url + path, encoded=True)
            async with s.request(method, url) as r:
                assert r.status == status, (method, path)
                assert r.content_type == "application/json"
                body = await r.json()
                assert (body["error"], body["success"]) == (status, False)
                if status == 405:
                    assert r.headers["Allow"]

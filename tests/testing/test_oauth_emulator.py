"""The OAuth emulator and token expiry in the PEC emulator, with a bare aiohttp client."""

from __future__ import annotations

import base64

import aiohttp
import yarl

from pecapi.testing import DEFAULT_TOKEN, Emulator, OAuthEmulator
from pecapi.testing.samples import mailbox_body

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
    emu = Emulator(tokens={})
    emu.set_time(5000)
    oauth = OAuthEmulator(emu, email="me@example.org", api_key="k")
    auth = _basic("me@example.org", "k")
    async with emu.serve() as pec, oauth.serve() as server, aiohttp.ClientSession() as s:
        url = f"{server.url}/token"
        async with s.post(url, json={"scopes": ["*:test.pec.openapi.it/*"]}) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == "Basic"
        async with s.post(
            url, json={"scopes": ["x"]}, headers=_basic("me@example.org", "bad")
        ) as r:
            assert r.status == 401
        async with s.post(url, json={"ttl": 60}, headers=auth) as r:
            assert (r.status, (await r.json())["error"]) == (406, 110)
        async with s.post(url, json={"scopes": ["GET:pec.openapi.it/pec"]}, headers=auth) as r:
            assert (r.status, (await r.json())["error"]) == (406, 120)  # production scope
        async with s.post(url, json={"scopes": ["*:*/*"], "ttl": 0}, headers=auth) as r:
            assert (r.status, (await r.json())["error"]) == (406, 130)
        assert oauth.creations == 0

        async with s.post(url, json={"scopes": [f"*:{HOST}/*"], "ttl": 60}, headers=auth) as r:
            assert r.status == 200
            body = await r.json()
        assert body["success"] is True
        assert body["expire"] == 5060
        assert sorted(body["scopes"]) == sorted(oauth.pec_scopes)  # wildcards expanded
        token = body["token"]
        assert emu.tokens[token] == frozenset(oauth.pec_scopes)
        assert emu.token_expiry[token] == 5060
        async with s.post(url, json={"scopes": [f"GET:{HOST}/pec"]}, headers=auth) as r:
            assert (await r.json())["scopes"] == [f"GET:{HOST}/pec"]  # ttl: one year
        assert oauth.created[1].expire == 5000 + 365 * 24 * 3600

        async with s.get(url, headers=auth) as r:
            assert [t["token"] for t in (await r.json())["data"]] == [
                t.token for t in oauth.created
            ]
        async with s.delete(f"{url}/{token}", headers=auth) as r:
            assert r.status == 200
        async with s.delete(f"{url}/{token}", headers=auth) as r:
            assert (r.status, (await r.json())["error"]) == (404, 150)
        headers = {"Authorization": f"Bearer {token}"}
        async with s.get(f"{pec.url}/pec", headers=headers) as r:
            assert r.status == 401
        emu.advance_time(365 * 24 * 3600)
        async with s.get(url, headers=auth) as r:
            assert r.status == 204  # every token expired or revoked


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

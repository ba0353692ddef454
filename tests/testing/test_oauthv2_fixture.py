"""The pytest plugin's ``pec_oauthv2_server``: a v2 token service for ``pec_emulator``."""

from __future__ import annotations

import base64

import aiohttp

from pecapi.testing import Emulator, RunningEmulator, RunningOAuthV2


async def test_the_fixture_issues_tokens_the_pec_emulator_accepts(
    pec_emulator: Emulator, pec_server: RunningEmulator, pec_oauthv2_server: RunningOAuthV2
) -> None:
    oauth = pec_oauthv2_server.oauth
    assert oauth.emulator is pec_emulator
    pair = b"mail@domain.com:pecapi-emulator-api-key"
    basic = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    scope = "GET:test.pec.openapi.it/pec"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{pec_oauthv2_server.url}/tokens", json={"scopes": [scope]}, headers=basic
        ) as created:
            assert created.status == 200
            token = (await created.json())["data"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(f"{pec_server.url}/pec", headers=headers) as listed:
            assert listed.status in (200, 404)  # an empty account may answer 404 (spec)
        async with session.post(f"{pec_server.url}/pec", json={}, headers=headers) as denied:
            assert denied.status == 403  # POST was not among the scopes asked
    assert oauth.creations == 1

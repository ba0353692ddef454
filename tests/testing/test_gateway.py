"""Authentication, scopes, routing, bad bodies; /domini_pec and /verifica_pec."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from pecapi.testing import Emulator
from pecapi.testing.samples import mailbox_body


async def test_missing_token_is_401(api):
    resp = await api.fails("GET", "/pec", status=401, code=401, token=None)
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert api.emu.requests[-1].status == 401


async def test_unknown_token_is_401(api):
    await api.fails("GET", "/pec", status=401, code=401, message="Invalid token", token="nope")


async def test_non_bearer_scheme_is_401(api):
    async with api.session.get(
        api.server.url + "/pec", headers={"Authorization": "Basic dXNlcjpwdw=="}
    ) as r:
        assert r.status == 401
        assert (await r.json())["error"] == 401


async def test_scopes_restrict_method_and_segment():
    emu = Emulator(
        tokens={
            "reader": {"GET:test.pec.openapi.it/pec"},
            "any": {"*:test.pec.openapi.it/pec"},
            "prod": {"GET:pec.openapi.it/pec"},
        }
    )
    emu.seed_mailbox("a@testcert.legalmail.it")
    async with emu.serve() as server, aiohttp.ClientSession() as s:
        url = server.url

        async def status(method: str, path: str, token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            async with s.request(method, url + path, headers=headers, json={}) as r:
                body = await r.json()
                if r.status == 403:
                    assert body["error"] == 403
                    assert "scope" in body["message"]
                return r.status

        assert await status("GET", "/pec", "reader") == 200
        assert await status("POST", "/pec", "reader") == 403
        assert await status("GET", "/verifica_pec/x@testcert.legalmail.it", "reader") == 403
        assert await status("POST", "/pec", "any") == 428  # past the gateway: body checks
        assert await status("GET", "/comunica_pec", "any") == 403
        assert await status("GET", "/pec", "prod") == 403  # production host, sandbox emulator
    assert emu.ledger == []


async def test_production_scope_host():
    emu = Emulator(environment="production", tokens={"t": {"GET:pec.openapi.it/pec"}})
    headers = {"Authorization": "Bearer t"}
    async with (
        emu.serve() as server,
        aiohttp.ClientSession() as s,
        s.get(server.url + "/pec", headers=headers) as r,
    ):
        assert r.status == 404  # authorised; no mailbox yet
        assert (await r.json())["error"] == 200


async def test_unknown_path_is_404_envelope(api):
    await api.fails("GET", "/nothing/here", status=404, code=404)
    await api.fails("GET", "/pec/0123456789abcdef01234567/unknown", status=404, code=404)
    await api.fails("GET", "/", status=404, code=404)


async def test_wrong_method_is_405_with_allow(api):
    resp = await api.fails("PUT", "/pec", status=405, code=405)
    assert resp.headers["Allow"] == "GET, POST"
    resp = await api.fails("POST", "/pec/0123456789abcdef01234567", status=405, code=405)
    assert resp.headers["Allow"] == "DELETE, GET"


@pytest.mark.parametrize(
    ("path", "status", "code", "message"),
    [
        ("/pec/%0A", 400, 201, "Wrong id"),
        ("/pec/%0A/rinnovo", 400, 201, "Wrong id"),
        ("/pec/a%0Ab", 400, 201, "Wrong id"),
        ("/verifica_pec/%0A", 406, 208, "invalid casella_pec"),
        ("/domini_pec/%0A", 406, 401, "domain not valid"),
        ("/comunica_pec/%0A", 400, 333, "Wrong id"),
        ("/%0A", 404, 404, "resource not found"),
        ("/pec/%0A/%0A", 404, 404, "resource not found"),
    ],
)
async def test_a_line_feed_in_the_path_gets_the_json_envelope(api, path, status, code, message):
    # The router of aiohttp does not match "\n" with ".": these paths got its text/plain
    # "404: Not Found", past the emulator (not logged either).
    await api.fails("GET", path, status=status, code=code, message=message)
    assert api.emu.requests[-1].path == path
    await api.fails("GET", path, status=401, code=401, token=None)
    resp = await api.fails("PUT", "/pec/%0A", status=405, code=405)
    assert resp.headers["Allow"] == "DELETE, GET"


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b"null", b"3"])
@pytest.mark.parametrize("path", ["/pec", "/comunica_pec", "/pec/{id}/modifica"])
async def test_a_body_that_is_no_json_object_is_400(api, raw, path):
    # The same answer wherever a body is read, documented 400 or not (see the README).
    method = "PATCH" if path.endswith("modifica") else "POST"
    path = path.format(id=api.emu.seed_mailbox("a@testcert.legalmail.it"))
    resp = await api.call(method, path, data=raw)
    assert (resp.status, resp.json["error"], resp.json["success"]) == (400, 400, False)
    assert resp.json["message"] == "invalid JSON body: a JSON object is required"
    assert api.emu.ledger == []


async def test_empty_body_counts_as_empty_object(api):
    await api.fails("POST", "/pec", status=428, code=221, message="casella_pec required")


async def test_latency_setting_delays_every_request():
    emu = Emulator(latency=0.02)
    async with emu.serve() as server, aiohttp.ClientSession() as s:
        loop_time = asyncio.get_running_loop().time
        start = loop_time()
        async with s.get(server.url + "/pec") as r:
            assert r.status == 401
        assert loop_time() - start >= 0.02


# --- /domini_pec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dominio",
    ["legalmail.it", "pec.it", "domiciliodigitale.com", "pecmassiva.com", "TESTCERT.legalmail.it"],
)
async def test_certified_domain_found(api, dominio):
    resp = await api.call("GET", f"/domini_pec/{dominio}")
    assert resp.status == 200
    assert resp.json == {"data": [], "success": True, "message": f"{dominio} found!"}


async def test_uncertified_domain_is_204(api):
    resp = await api.call("GET", "/domini_pec/example.com")
    assert resp.status == 204
    assert resp.raw == b""


async def test_own_and_extra_certified_domains():
    emu = Emulator(own_domains=["mine.it"], certified_domains=["other.eu"])
    async with emu.serve() as server, aiohttp.ClientSession() as s:
        headers = {"Authorization": "Bearer pecapi-emulator-token"}
        for dominio in ("mine.it", "other.eu"):
            async with s.get(f"{server.url}/domini_pec/{dominio}", headers=headers) as r:
                assert r.status == 200


@pytest.mark.parametrize("dominio", ["nodot", "bad_domain.it", "-x.it", "a..it"])
async def test_malformed_domain_is_406(api, dominio):
    await api.fails(
        "GET", f"/domini_pec/{dominio}", status=406, code=401, message="domain not valid"
    )


async def test_missing_domain_is_428(api):
    await api.fails("GET", "/domini_pec", status=428, code=400, message="domain required")


async def test_paid_domain_check():
    from decimal import Decimal

    from pecapi.testing import PriceList

    emu = Emulator(prices=PriceList(verifica_dominio=Decimal("0.10")), credit=Decimal("0.15"))
    async with emu.serve() as server, aiohttp.ClientSession() as s:
        headers = {"Authorization": "Bearer pecapi-emulator-token"}
        async with s.get(server.url + "/domini_pec/pec.it", headers=headers) as r:
            assert r.status == 200
        async with s.get(server.url + "/domini_pec/pec.it", headers=headers) as r:
            assert r.status == 402
            body = await r.json()
            assert body["error"] == 403
            assert body["message"] == "Insufficient Credit in Wallet: 0.05"
    assert [c.operation for c in emu.ledger] == ["verifica_dominio"]


# --- /verifica_pec -------------------------------------------------------------------------------


async def test_available_address(api):
    resp = await api.call("GET", "/verifica_pec/prova_pec@legalmail.it")
    assert resp.json == {"data": {"available": True}, "success": True, "message": ""}


async def test_taken_address_is_406_209(api):
    await api.ok("POST", "/pec", mailbox_body("taken@testcert.legalmail.it"))
    await api.fails(
        "GET",
        "/verifica_pec/Taken@testcert.legalmail.it",
        status=406,
        code=209,
        message="casella_pec not available",
    )


async def test_revoked_address_is_available_again(api):
    mailbox_id = api.emu.seed_mailbox("old@testcert.legalmail.it", stato="revocata")
    assert api.emu.mailboxes[mailbox_id]["stato"] == "revocata"
    assert (await api.ok("GET", "/verifica_pec/old@testcert.legalmail.it")) == {"available": True}


@pytest.mark.parametrize("pec", ["no-at-sign", "a@b", "@legalmail.it", "a b@legalmail.it"])
async def test_invalid_address_is_406_208(api, pec):
    await api.fails(
        "GET", f"/verifica_pec/{pec}", status=406, code=208, message="invalid casella_pec"
    )


async def test_missing_address_is_428_207(api):
    await api.fails("GET", "/verifica_pec/", status=428, code=207, message="casella_pec required")

"""The wallet through the token services: v2 ``GET /wallet`` and ``GET /wallet/transactions``,
v1 ``GET /credit``, all reading the PEC emulator's wallet and ledger (the balance paid
operations debit). Each answer is checked against its specification as it is read."""

from __future__ import annotations

from decimal import Decimal

from pecapi.testing import Emulator
from pecapi.testing.samples import mailbox_body
from tests.testing.test_oauthv2_checker import Env, v1_env, v2_env

HOST = "test.pec.openapi.it"


async def _pay(env: Env, token: str, address: str) -> str:
    """Register a mailbox with ``token`` (a charged operation); its id."""
    headers = {"Authorization": f"Bearer {token}"}
    async with env.session.post(
        f"{env.pec_url}/pec", json=mailbox_body(address), headers=headers
    ) as r:
        assert r.status == 200, await r.text()
        mailbox_id: str = (await r.json())["data"]["id"]
        return mailbox_id


async def test_the_wallet_is_the_pec_emulators_and_transactions_are_its_charges():
    emu = Emulator(tokens={}, credit="100")
    emu.set_time(1_736_935_200)  # 2025-01-15T10:00:00Z
    async with v2_env(emu) as env:
        api = env.api
        wallet = (await api.ok("GET", "/wallet"))["data"]
        assert wallet == {
            "credit": 100.0,
            "createdAt": "2025-01-15T10:00:00+00:00",
            "updatedAt": "2025-01-15T10:00:00+00:00",
        }
        assert await api.ok("GET", "/wallet/transactions") == {"data": []}

        created = await api.ok("POST", "/tokens", {"scopes": [f"POST:{HOST}/pec"]})
        token = created["data"]["token"]
        emu.advance_time(60)
        first = await _pay(env, token, "anna@testcert.legalmail.it")
        emu.advance_time(60)
        second = await _pay(env, token, "ugo@testcert.legalmail.it")
        charges = emu.charges("register")
        assert [c.target_id for c in charges] == [first, second]

        wallet = (await api.ok("GET", "/wallet"))["data"]
        assert Decimal(str(wallet["credit"])) == emu.wallet == 100 - sum(c.amount for c in charges)
        assert wallet["updatedAt"] == "2025-01-15T10:02:00+00:00"  # the last charge
        assert wallet["createdAt"] == "2025-01-15T10:00:00+00:00"

        listed = (await api.ok("GET", "/wallet/transactions"))["data"]
        assert [t["amount"] for t in listed] == [-float(c.amount) for c in reversed(charges)]
        assert [t["createdAt"] for t in listed] == [
            "2025-01-15T10:02:00+00:00",
            "2025-01-15T10:01:00+00:00",
        ]
        assert all(t["description"] == f"API usage - {HOST} (register)" for t in listed)
        assert len({t["id"] for t in listed}) == 2 and all(
            t["id"].startswith("txn_") for t in listed
        )
        again = (await api.ok("GET", "/wallet/transactions"))["data"]
        assert again == listed  # ids are stable
        page = (await api.ok("GET", "/wallet/transactions?skip=1&limit=1"))["data"]
        assert page == listed[1:]
        for query in ("limit=101", "skip=x", "limit=0"):
            await api.fails("GET", f"/wallet/transactions?{query}", status=400, code=190)

        emu.wallet = Decimal("0.5")  # a test setting the wallet: read as it is
        assert (await api.ok("GET", "/wallet"))["data"]["credit"] == 0.5
        await api.fails("GET", "/wallet", status=401, code=140, auth=None)
        await api.fails("GET", "/wallet/transactions", status=401, code=140, auth=None)


async def test_v1_credit_reads_the_same_wallet():
    emu = Emulator(tokens={}, credit="42.50")
    async with v1_env(emu) as env:
        api = env.api
        answer = await api.ok("GET", "/credit")
        assert answer == {"data": {"credit": 42.5}, "success": True, "message": ""}
        created = await api.ok("POST", "/token", {"scopes": [f"POST:{HOST}/pec"]})
        await _pay(env, created["token"], "anna@testcert.legalmail.it")
        credit = (await api.ok("GET", "/credit"))["data"]["credit"]
        assert Decimal(str(credit)) == emu.wallet < Decimal("42.50")
        await api.fails("GET", "/credit", status=401, code=401, auth=None)
        resp = await api.fails("POST", "/credit", status=405, code=405)
        assert resp.headers["Allow"] == "GET"
        await api.fails("GET", "/credit/x", status=404, code=404)


async def test_a_wallet_is_never_created_after_its_first_charge():
    emu = Emulator(tokens={})  # real time when the token service is built...
    async with v2_env(emu) as env:
        emu.set_time(1_736_935_200)  # ...then the test sets the clock back
        created = await env.api.ok("POST", "/tokens", {"scopes": [f"POST:{HOST}/pec"]})
        await _pay(env, created["data"]["token"], "anna@testcert.legalmail.it")
        wallet = (await env.api.ok("GET", "/wallet"))["data"]
        assert wallet["createdAt"] == wallet["updatedAt"] == "2025-01-15T10:00:00+00:00"

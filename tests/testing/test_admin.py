"""The admin surface (/_emulator/...) over real loopback HTTP, and FaultPlan.nth in-process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pecapi import PecClient
from pecapi.testing import DEFAULT_TOKEN, TRANSIENT_FAULTS, Emulator, Fault, FaultPlan, samples
from tests.conftest import FAST_RETRY

ADMIN = "/_emulator"
BOX = "box@testcert.legalmail.it"


@dataclass
class Answer:
    status: int
    json: Any
    headers: Any


class Admin:
    """Raw HTTP to one running emulator: the admin surface and the API."""

    def __init__(self, session: aiohttp.ClientSession, url: str, emu: Emulator) -> None:
        self.session = session
        self.url = url
        self.emu = emu

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = DEFAULT_TOKEN,
        data: bytes | io.BytesIO | None = None,
    ) -> Answer:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        kwargs: dict[str, Any] = {"headers": headers}
        if data is not None:
            kwargs["data"] = data
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.url + path, **kwargs) as r:
            parsed = await r.json(content_type=None) if r.content_type.endswith("json") else None
            return Answer(r.status, parsed, r.headers)

    async def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        answer = await self.call(method, ADMIN + path, body)
        assert answer.status == status, answer.json
        assert answer.headers["Content-Type"] == "application/json"
        return answer.json

    async def refused(self, method: str, path: str, body: Any, field: str) -> str:
        """A 400 naming ``field``; nothing changed."""
        rules, wallet = len(self.emu.faults.rules), self.emu.wallet
        answer = await self.call(method, ADMIN + path, body)
        assert answer.status == 400, answer.json
        assert answer.json["error"] == "bad_request"
        assert answer.json["field"] == field, answer.json
        assert answer.json["message"].startswith(f"{field}: ")
        assert (len(self.emu.faults.rules), self.emu.wallet) == (rules, wallet)
        return str(answer.json["message"])

    async def api(self, method: str, path: str, body: Any = None) -> int:
        return (await self.call(method, path, body)).status


@pytest.fixture
async def admin() -> AsyncIterator[Admin]:
    emu = Emulator(seed=1)
    async with emu.serve() as running, aiohttp.ClientSession() as session:
        yield Admin(session, running.url, emu)


# --- auth, paths, errors ---------------------------------------------------------------------


async def test_state(admin: Admin) -> None:
    admin.emu.seed_mailbox(BOX)
    for path in ("", "/"):
        state = await admin.ok("GET", path)
        assert state["environment"] == "sandbox"
        assert state["seed"] == 1
        assert state["balance"] == "1000.00"
        assert state["mailboxes"] == 1
        assert state["requests"] == 0
        assert abs(state["now"] - time.time()) < 60


@pytest.mark.parametrize(
    ("token", "message"),
    [(None, "an admin token is required"), ("wrong", "invalid admin token")],
)
async def test_refused_without_the_admin_token(admin: Admin, token: str | None, message: str):
    for method, path in [("GET", ADMIN), ("POST", f"{ADMIN}/reset"), ("GET", f"{ADMIN}/nope")]:
        answer = await admin.call(method, path, token=token)
        assert answer.status == 401
        assert answer.json["error"] == "unauthorized"
        assert answer.json["message"].startswith(message)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert admin.emu.requests == []


async def test_an_admin_token_of_its_own() -> None:
    emu = Emulator(admin_token="adm1n")
    async with emu.serve() as running, aiohttp.ClientSession() as session:
        admin = Admin(session, running.url, emu)
        answer = await admin.call("GET", f"{ADMIN}/wallet")  # the API's token
        assert answer.status == 401
        assert (await admin.call("GET", f"{ADMIN}/wallet", token="adm1n")).json == {
            "balance": "1000.00"
        }
        # and the admin token is no API token
        assert (await admin.call("GET", "/pec", token="adm1n")).status == 401


async def test_a_token_with_some_scopes_is_no_admin_token() -> None:
    emu = Emulator(tokens={"all": None, "reader": {"GET:test.pec.openapi.it/pec"}})
    async with emu.serve() as running, aiohttp.ClientSession() as session:
        admin = Admin(session, running.url, emu)
        assert (await admin.call("GET", ADMIN, token="reader")).status == 401
        assert (await admin.call("GET", ADMIN, token="all")).status == 200


async def test_off_on_a_public_interface_without_an_admin_token() -> None:
    emu = Emulator()
    async with emu.serve("0.0.0.0") as running, aiohttp.ClientSession() as session:
        admin = Admin(session, f"http://127.0.0.1:{running.port}", emu)
        answer = await admin.call("GET", f"{ADMIN}/wallet")
        assert answer.status == 403
        assert answer.json["error"] == "admin_off"
        assert "0.0.0.0" in answer.json["message"]
        assert "admin_token" in answer.json["message"]
    emu = Emulator(admin_token="adm1n")
    async with emu.serve("0.0.0.0") as running, aiohttp.ClientSession() as session:
        admin = Admin(session, f"http://127.0.0.1:{running.port}", emu)
        assert (await admin.call("GET", f"{ADMIN}/wallet", token="adm1n")).status == 200


async def test_off_in_a_bare_app_without_an_admin_token() -> None:
    for emu, token, status in [
        (Emulator(), DEFAULT_TOKEN, 403),
        (Emulator(admin_token="a"), "a", 200),
    ]:
        runner = web.AppRunner(emu.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            async with aiohttp.ClientSession() as session:
                admin = Admin(session, f"http://127.0.0.1:{port}", emu)
                assert (await admin.call("GET", ADMIN, token=token)).status == status
        finally:
            await runner.cleanup()


def test_bad_admin_tokens_and_fault_rates() -> None:
    for token in ("", "a b", " a"):
        with pytest.raises(ValueError, match="admin_token"):
            Emulator(admin_token=token)
    for rate in (-0.1, 1.5):
        with pytest.raises(ValueError, match="fault_rate"):
            Emulator(fault_rate=rate)


async def test_unknown_paths_and_methods(admin: Admin) -> None:
    for path in ("/nope", "/faults/1/2", "/mailboxes/x", "/wallet/x"):
        answer = await admin.call("GET", ADMIN + path)
        assert answer.status == 404, path
        assert answer.json["error"] == "not_found"
        assert path in answer.json["message"]
    answer = await admin.call("DELETE", f"{ADMIN}/wallet")
    assert answer.status == 405
    assert answer.headers["Allow"] == "GET, POST, PUT"
    assert answer.json["error"] == "method_not_allowed"
    # a path that merely starts like the prefix is the API's (its envelope)
    answer = await admin.call("GET", "/_emulatorx")
    assert answer.status == 404
    assert answer.json["success"] is False
    assert admin.emu.count("GET", "/_emulatorx") == 1


async def test_bodies_that_are_not_json_objects(admin: Admin) -> None:
    for data in (b"{", b"[1]", b'"x"', b'{"balance": NaN}'):
        answer = await admin.call("PUT", f"{ADMIN}/wallet", data=data)
        assert answer.status == 400, data
        assert answer.json["field"] == "body"
    answer = await admin.call("PUT", f"{ADMIN}/wallet", data=io.BytesIO(b" " * (1024 * 1024 + 1)))
    assert answer.status == 413
    assert admin.emu.wallet == 1000


async def test_admin_requests_are_not_logged_delayed_or_faulted(admin: Admin) -> None:
    emu = admin.emu
    emu.latency = 2.0
    await admin.ok("POST", "/faults", {"fault": {"kind": "drop_before"}, "rate": 1.0}, 201)
    await admin.ok("POST", "/faults", {"fault": {"kind": "status", "status": 500}}, 201)
    started = time.monotonic()
    for _ in range(3):
        await admin.ok("GET", "/faults")
        await admin.ok("GET", "/requests")
    assert time.monotonic() - started < 1.5  # six calls, none waited the 2 s latency
    assert emu.requests == []
    rules = (await admin.ok("GET", "/faults"))["rules"]
    assert rules[0]["times"] == 1  # the once rule was not consumed by admin calls
    assert (await admin.ok("GET", "/faults"))["counts"] == {}


# --- faults --------------------------------------------------------------------------------

FAULTS = [
    {"kind": "latency", "seconds": 0.5},
    {"kind": "latency", "seconds": [0.1, 0.2]},
    {"kind": "status", "status": 503, "body": "html", "retry_after": 2},
    {"kind": "status", "status": 429, "body": "empty", "retry_after": "http-date"},
    {"kind": "drop_before"},
    {"kind": "drop_after"},
    {"kind": "slow_body", "delay": 0.1, "chunks": 3},
    {"kind": "truncated_body", "fraction": 0.25},
    {"kind": "malformed_json"},
    {"kind": "answer", "status": 418, "body": '{"x": 1}', "content_type": "application/json"},
    {"kind": "late", "after": 0.5, "reply": "hang"},
]


async def test_every_kind_of_fault_round_trips(admin: Admin) -> None:
    for i, fault in enumerate(FAULTS, start=1):
        rule = (await admin.ok("POST", "/faults", {"fault": fault, "path": "/pec"}, 201))["rule"]
        assert rule == {
            "id": i, "faults": [fault], "method": None, "path": "/pec", "nth": 1, "times": 1
        }  # fmt: skip
    listed = (await admin.ok("GET", "/faults"))["rules"]
    assert [r["faults"][0] for r in listed] == FAULTS
    assert [r.faults[0].kind for r in admin.emu.faults.rules] == [f["kind"] for f in FAULTS]


async def test_defaults_of_fault_parameters(admin: Admin) -> None:
    body = {"fault": {"kind": "status", "status": 503}, "method": "get"}
    rule = (await admin.ok("POST", "/faults", body, 201))["rule"]
    assert rule["faults"] == [{"kind": "status", "status": 503, "body": "json"}]
    assert rule["method"] == "GET"
    rule = (await admin.ok("POST", "/faults", {"fault": {"kind": "late", "after": 1}}, 201))["rule"]
    assert rule["faults"] == [{"kind": "late", "after": 1.0, "reply": "504"}]
    assert admin.emu.faults.rules[0].faults[0] == Fault.status(503)


BAD_RULES: list[tuple[Any, str]] = [
    ({}, "fault"),
    ({"fault": {"kind": "status", "status": 503}, "faults": []}, "fault"),
    ({"fault": "status"}, "fault"),
    ({"fault": {}}, "fault.kind"),
    ({"fault": {"kind": "nope"}}, "fault.kind"),
    ({"fault": {"kind": "status"}}, "fault.status"),
    ({"fault": {"kind": "status", "status": 99}}, "fault.status"),
    ({"fault": {"kind": "status", "status": 503.5}}, "fault.status"),
    ({"fault": {"kind": "status", "status": 503, "bodyy": "html"}}, "fault.bodyy"),
    ({"fault": {"kind": "status", "status": 503, "body": "xml"}}, "fault.body"),
    ({"fault": {"kind": "status", "status": 503, "retry_after": True}}, "fault.retry_after"),
    ({"fault": {"kind": "latency"}}, "fault.seconds"),
    ({"fault": {"kind": "latency", "seconds": -1}}, "fault.seconds"),
    ({"fault": {"kind": "latency", "seconds": [1]}}, "fault.seconds"),
    ({"fault": {"kind": "latency", "seconds": [2, 1]}}, "fault.seconds[1]"),
    ({"fault": {"kind": "slow_body", "delay": 0.1, "chunks": 0}}, "fault.chunks"),
    ({"fault": {"kind": "truncated_body", "fraction": 1}}, "fault.fraction"),
    ({"fault": {"kind": "late", "after": 1, "reply": "500"}}, "fault.reply"),
    ({"fault": {"kind": "drop_after"}, "nth": 0}, "nth"),
    ({"fault": {"kind": "drop_after"}, "nth": "2"}, "nth"),
    ({"fault": {"kind": "drop_after"}, "times": True}, "times"),
    ({"fault": {"kind": "drop_after"}, "rate": 1.5}, "rate"),
    ({"fault": {"kind": "drop_after"}, "rate": 0.5, "nth": 2}, "nth"),
    ({"fault": {"kind": "drop_after"}, "seed": 3}, "seed"),
    ({"faults": [{"kind": "drop_after"}]}, "faults"),
    ({"faults": [], "rate": 0.5}, "faults"),
    ({"faults": [{"kind": "drop_after"}, {"kind": "x"}], "rate": 0.5}, "faults[1].kind"),
    ({"fault": {"kind": "drop_after"}, "method": "GE T"}, "method"),
    ({"fault": {"kind": "drop_after"}, "path": "pec"}, "path"),
    ({"fault": {"kind": "drop_after"}, "path": "/_emulator/*"}, "path"),
    ({"fault": {"kind": "drop_after"}, "nht": 3}, "nht"),
]


@pytest.mark.parametrize(("body", "field"), BAD_RULES)
async def test_a_bad_rule_is_refused_naming_the_field(admin: Admin, body: Any, field: str):
    await admin.refused("POST", "/faults", body, field)


async def test_nth_faults_exactly_the_nth_matching_request(admin: Admin) -> None:
    path = "/domini_pec/legalmail.it"
    body = {"fault": {"kind": "status", "status": 503}, "nth": 3, "path": "/domini_pec/*"}
    rule_id = (await admin.ok("POST", "/faults", body, 201))["rule"]["id"]
    assert await admin.api("GET", path) == 200
    assert await admin.api("GET", "/pec") == 404  # not matching: not counted
    listed = await admin.ok("GET", f"/faults/{rule_id}")
    assert listed["rule"]["nth"] == 2  # one matching request seen
    assert [await admin.api("GET", path) for _ in range(4)] == [200, 503, 200, 200]
    assert [r.fault for r in admin.emu.requests] == [None, None, None, "status", None, None]
    assert (await admin.ok("GET", "/faults"))["rules"] == []


async def test_nth_with_times_and_other_rules(admin: Admin) -> None:
    path = "/domini_pec/legalmail.it"
    await admin.ok("POST", "/faults", {"fault": {"kind": "status", "status": 503}, "nth": 2,
                                      "times": 2}, 201)  # fmt: skip
    await admin.ok("POST", "/faults", {"fault": {"kind": "status", "status": 502}}, 201)
    # the 502 rule takes the first request (the nth rule counts it); the second and third
    # are the nth rule's
    assert [await admin.api("GET", path) for _ in range(4)] == [502, 503, 503, 200]


async def test_two_rules_due_on_one_request() -> None:
    plan = FaultPlan()
    plan.nth(2, Fault.status(503))
    plan.nth(2, Fault.status(502))
    picked = [plan.pick("GET", "/pec") for _ in range(4)]
    assert [f.code if f else None for f in picked] == [None, 503, 502, None]


def test_fault_plan_nth_in_process() -> None:
    plan = FaultPlan()
    rule = plan.nth(3, Fault.drop_after(), method="post", path="/pec")
    assert (rule.skip, rule.remaining, rule.method) == (2, 1, "POST")
    assert plan.pick("GET", "/pec") is None  # another method: not counted
    assert plan.pick("POST", "/pec") is None
    assert plan.pick("POST", "/pec/x") is None  # another path: not counted
    assert plan.pick("POST", "/pec") is None
    assert plan.pick("POST", "/pec") == Fault.drop_after()
    assert plan.pick("POST", "/pec") is None
    assert plan.rules == ()
    with pytest.raises(ValueError, match="n must"):
        plan.nth(0, Fault.drop_after())
    with pytest.raises(ValueError, match="times"):
        plan.nth(1, Fault.drop_after(), times=0)


def test_fault_plan_rules_remove_and_reset() -> None:
    plan = FaultPlan(seed=5)
    first = plan.once(Fault.drop_before())
    rate = plan.rate(0.5, [Fault.status(503), Fault.drop_after()])
    assert [r.id for r in plan.rules] == [first.id, rate.id] == [1, 2]
    draws = [plan.pick("GET", "/x") for _ in range(20)]
    assert plan.remove(first.id) is False  # spent by the first request
    assert plan.remove(rate.id) is True
    assert plan.rules == ()
    plan.reset()
    assert plan.counts == {}
    plan.once(Fault.drop_before())
    plan.rate(0.5, [Fault.status(503), Fault.drop_after()])
    assert [plan.pick("GET", "/x") for _ in range(20)] == draws  # the same draws again


async def test_rate_rules_over_http(admin: Admin) -> None:
    body = {
        "faults": [{"kind": "status", "status": 503}, {"kind": "status", "status": 502}],
        "rate": 1.0,
        "seed": 7,
        "method": "GET",
    }
    rule = (await admin.ok("POST", "/faults", body, 201))["rule"]
    assert (rule["rate"], rule["seed"], len(rule["faults"])) == (1.0, 7, 2)
    assert "nth" not in rule
    statuses = [await admin.api("GET", "/pec") for _ in range(6)]
    assert set(statuses) == {502, 503}
    assert await admin.api("POST", "/pec", {}) != 503  # another method
    assert sum((await admin.ok("GET", "/faults"))["counts"].values()) == 6


async def test_deleting_rules(admin: Admin) -> None:
    for _ in range(3):
        await admin.ok("POST", "/faults", {"fault": {"kind": "drop_before"}}, 201)
    assert (await admin.ok("DELETE", "/faults/2")) == {"removed": 1}
    assert [r.id for r in admin.emu.faults.rules] == [1, 3]
    for path in ("/faults/2", "/faults/x"):
        answer = await admin.call("DELETE", ADMIN + path)
        assert (answer.status, answer.json["field"]) == (404, "id")
    assert (await admin.ok("DELETE", "/faults")) == {"removed": 2}
    assert admin.emu.faults.rules == ()
    assert await admin.api("GET", "/pec") == 404  # no fault left


async def test_the_client_retries_a_fault_set_over_http(admin: Admin) -> None:
    box_id = admin.emu.seed_mailbox(BOX)
    await admin.ok("POST", "/faults", {"fault": {"kind": "status", "status": 503},
                                      "method": "GET", "path": "/pec/*"}, 201)  # fmt: skip
    body = {"fault": {"kind": "drop_after"}, "method": "POST", "path": "/pec"}
    await admin.ok("POST", "/faults", body, 201)
    async with PecClient(DEFAULT_TOKEN, sandbox=True, base_url=admin.url, retry=FAST_RETRY) as c:
        mailbox = await c.mailboxes.get(box_id)
        assert mailbox.casella_pec == BOX
        registered = await c.mailboxes.register(samples.registration("new@testcert.legalmail.it"))
    assert registered.casella_pec == "new@testcert.legalmail.it"
    log = (await admin.ok("GET", "/requests?path=/pec/*"))["requests"]
    assert [(r["status"], r["fault"]) for r in log[:2]] == [(503, "status"), (200, None)]
    posts = (await admin.ok("GET", "/requests?method=POST"))["requests"]
    assert posts == [{"method": "POST", "path": "/pec", "status": None, "fault": "drop_after"}]
    charges = (await admin.ok("GET", "/ledger?operation=register"))["charges"]
    assert len(charges) == 1  # committed once, found by the client, not sent again


async def test_fault_rate_faults_every_api_request_with_a_transient_fault() -> None:
    emu = Emulator(fault_rate=1.0, seed=2)
    async with emu.serve() as running, aiohttp.ClientSession() as session:
        admin = Admin(session, running.url, emu)
        for _ in range(12):
            with contextlib.suppress(aiohttp.ClientError):  # the dropped connections
                await admin.api("GET", "/domini_pec/legalmail.it")
        assert all(r.fault is not None for r in emu.requests)
        assert {r.fault for r in emu.requests} <= {f.kind for f in TRANSIENT_FAULTS}
        rules = (await admin.ok("GET", "/faults"))["rules"]
        assert [r["rate"] for r in rules] == [1.0]
        assert {f["kind"] for f in rules[0]["faults"]} == {"status", "drop_before", "drop_after"}


# --- the lifecycle ---------------------------------------------------------------------------


async def test_advancing_mailboxes(admin: Admin) -> None:
    emu = admin.emu
    first = emu.seed_mailbox(BOX, stato="in_evasione")
    second = emu.seed_mailbox("two@testcert.legalmail.it", stato="in_evasione")
    answer = await admin.ok("POST", f"/mailboxes/{first}/advance")
    assert answer["mailbox"]["stato"] == "evasa"
    assert answer["mailbox"]["id"] == first
    assert emu.mailboxes[first]["data_attivazione"]
    answer = await admin.ok("POST", f"/mailboxes/{second}/advance", {"to": "documenti_errati"})
    assert emu.mailboxes[second]["stato"] == answer["mailbox"]["stato"] == "documenti_errati"
    conflict = await admin.call("POST", f"{ADMIN}/mailboxes/{first}/advance")
    assert conflict.status == 409
    assert "evasa" in conflict.json["message"]
    missing = await admin.call("POST", f"{ADMIN}/mailboxes/ffff/advance")
    assert (missing.status, missing.json["field"]) == (404, "id")
    await admin.refused("POST", f"/mailboxes/{first}/advance", {"to": "revocata"}, "to")
    assert emu.mailboxes[first]["stato"] == "evasa"


async def test_advancing_comunica_and_processing_all(admin: Admin) -> None:
    emu = admin.emu
    request_id = emu.seed_comunica("a@pec.com")
    answer = await admin.ok("POST", f"/comunica/{request_id}/advance")
    assert answer["comunica"]["stato"] == "in_attesa_di_documenti"
    conflict = await admin.call("POST", f"{ADMIN}/comunica/{request_id}/advance")
    assert conflict.status == 409
    missing = await admin.call("POST", f"{ADMIN}/comunica/nope/advance")
    assert (missing.status, missing.json["field"]) == (404, "id")
    emu.seed_mailbox(BOX, stato="in_evasione")
    emu.seed_comunica("b@pec.com", stato="documenti_caricati")
    assert await admin.ok("POST", "/process-all") == {"processed": 2}
    assert await admin.ok("POST", "/process-all") == {"processed": 0}
    assert {m["stato"] for m in emu.mailboxes.values()} == {"evasa"}
    await admin.refused("POST", "/process-all", {"all": True}, "all")


# --- money, logs, time -------------------------------------------------------------------------


async def test_the_wallet(admin: Admin) -> None:
    box_id = admin.emu.seed_mailbox(BOX)
    assert await admin.ok("GET", "/wallet") == {"balance": "1000.00"}
    assert await admin.ok("PUT", "/wallet", {"balance": "10.5"}) == {"balance": "10.50"}
    assert await admin.ok("POST", "/wallet", {"add": 2.25}) == {"balance": "12.75"}
    assert await admin.ok("POST", "/wallet", {"add": "-4.75"}) == {"balance": "8.00"}
    await admin.refused("POST", "/wallet", {"add": "-8.01"}, "add")
    for bad in ("abc", "1.234", True, None, "NaN", [1]):
        await admin.refused("PUT", "/wallet", {"balance": bad}, "balance")
    await admin.refused("PUT", "/wallet", {"balance": -1}, "balance")
    await admin.refused("PUT", "/wallet", {"add": 1}, "add")
    await admin.refused("POST", "/wallet", {}, "add")
    assert admin.emu.wallet == 8
    # drained: the API refuses the renewal for want of credit
    await admin.ok("PUT", "/wallet", {"balance": 0})
    assert await admin.api("GET", f"/pec/{box_id}/rinnovo") == 402
    await admin.ok("PUT", "/wallet", {"balance": 100})
    assert await admin.api("GET", f"/pec/{box_id}/rinnovo") == 200
    assert admin.emu.wallet == 92


async def test_the_ledger(admin: Admin) -> None:
    box_id = admin.emu.seed_mailbox(BOX)
    assert await admin.api("GET", f"/pec/{box_id}/rinnovo") == 200
    assert await admin.api("GET", f"/pec/{box_id}/rinnovo?anni=2") == 200
    ledger = await admin.ok("GET", "/ledger")
    assert [(c["operation"], c["amount"], c["target_id"]) for c in ledger["charges"]] == [
        ("renewal", "8.00", box_id),
        ("renewal", "16.00", box_id),
    ]
    assert ledger["total"] == "24.00"
    assert await admin.ok("GET", "/ledger?operation=register") == {"charges": [], "total": "0.00"}
    assert len((await admin.ok("GET", f"/ledger?target_id={box_id}"))["charges"]) == 2
    message = await admin.refused("GET", "/ledger?operation=renew", None, "operation")
    assert "renewal" in message
    await admin.refused("GET", "/ledger?operatio=renewal", None, "operatio")


async def test_the_request_log(admin: Admin) -> None:
    for _ in range(3):
        await admin.api("GET", "/pec")
    await admin.api("GET", "/domini_pec/legalmail.it")
    log = await admin.ok("GET", "/requests?limit=2")
    assert log["count"] == 4
    assert [r["path"] for r in log["requests"]] == ["/pec", "/domini_pec/legalmail.it"]
    assert log["requests"][1] == {
        "method": "GET", "path": "/domini_pec/legalmail.it", "status": 200, "fault": None
    }  # fmt: skip
    assert (await admin.ok("GET", "/requests?path=/domini_pec/*"))["count"] == 1
    assert (await admin.ok("GET", "/requests?method=post"))["count"] == 0
    for limit in ("0", "x", "-1", "%C2%B2", "9" * 5000):
        await admin.refused("GET", f"/requests?limit={limit}", None, "limit")


async def test_the_clock(admin: Admin) -> None:
    before = (await admin.ok("GET", "/time"))["now"]
    moved = (await admin.ok("POST", "/time", {"advance": 86400}))["now"]
    assert 86400 <= moved - before < 86400 + 30
    assert (await admin.ok("GET", "/time"))["now"] == moved  # fixed from then on
    assert (await admin.ok("POST", "/time", {"set": 1700000000}))["now"] == 1700000000
    assert admin.emu.now() == 1700000000
    await admin.refused("POST", "/time", {}, "advance")
    await admin.refused("POST", "/time", {"advance": 1, "set": 2}, "advance")
    await admin.refused("POST", "/time", {"advance": -5}, "advance")
    await admin.refused("POST", "/time", {"set": "soon"}, "set")


# --- reset ------------------------------------------------------------------------------------


async def test_reset_restores_the_initial_state(admin: Admin) -> None:
    emu = admin.emu
    body = samples.mailbox_body(BOX)
    first_id = (await admin.call("POST", "/pec", body)).json["data"]["id"]
    emu.add_token("extra")
    emu.latency = 0.01
    await admin.ok("PUT", "/wallet", {"balance": 3})
    await admin.ok("POST", "/time", {"set": 1700000000})
    await admin.ok("POST", "/faults", {"fault": {"kind": "drop_before"}, "nth": 5}, 201)
    emu.faults.counts["status"] += 1
    state = await admin.ok("POST", "/reset")
    assert state["balance"] == "1000.00"
    assert (state["mailboxes"], state["charges"], state["requests"], state["fault_rules"]) == (
        0, 0, 0, 0
    )  # fmt: skip
    assert emu.ledger == [] and emu.requests == [] and emu.documents == {}
    assert emu.faults.counts == {}
    assert emu.latency == 0.0
    assert abs(emu.now() - time.time()) < 60  # real time again
    # the same seed: the same ids again; and the tokens are kept
    assert (await admin.call("POST", "/pec", body)).json["data"]["id"] == first_id
    assert (await admin.call("GET", "/pec", token="extra")).status == 200
    assert len(emu.charges("register")) == 1


async def test_reset_cancels_late_commits_and_keeps_the_fault_rate() -> None:
    emu = Emulator(fault_rate=0.5)
    box_id = emu.seed_mailbox(BOX)
    async with emu.serve() as running, aiohttp.ClientSession() as session:
        admin = Admin(session, running.url, emu)
        emu.faults.clear()
        await admin.ok("POST", "/faults", {"fault": {"kind": "late", "after": 0.3}}, 201)
        assert await admin.api("GET", f"/pec/{box_id}/rinnovo") == 504
        assert emu.late_pending == 1
        assert (await admin.ok("POST", "/reset"))["late_pending"] == 0
        emu.seed_mailbox(BOX, id=box_id)  # were the commit still waiting, it would renew it
        await asyncio.sleep(0.5)
        assert emu.ledger == []
        rules = (await admin.ok("GET", "/faults"))["rules"]
        assert [r["rate"] for r in rules] == [0.5]

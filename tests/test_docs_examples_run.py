"""The code examples of the documentation site, run against the emulator.

The examples and their claims are ``tests/test_docs_examples.py``'s (which type-checks
them); here each runs with real values for the names its prelude declares, and is judged
by what it did to the emulator's state. A whole program runs as it is, in a thread of its
own (it calls ``asyncio.run``), with ``pecapi.client.SANDBOX_URL`` (and
``pecapi.oauth.OAUTH_SANDBOX_URL``) pointed at the emulator; the programs of ``examples/``
are run by ``tests/test_examples.py``.

A test decorated with ``@runs(name)`` runs an example and checks its effects; an example
without one is run by ``test_a_claimed_example_runs`` with the values of ``VALUES`` (a
client on the emulator, a seeded mailbox...), and only checked to complete.
"""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import logging
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from aiohttp import ClientSession, web
from yarl import URL

import pecapi
import pecapi.client
import pecapi.oauth
import pecapi.oauth_v2
from pecapi import MailboxState, PecClient, RetryPolicy
from pecapi.callbacks import CallbackEvent
from pecapi.testing import (
    DEFAULT_TOKEN,
    Emulator,
    Fault,
    OAuthEmulator,
    OAuthV2Emulator,
    RunningEmulator,
    make_pdf,
    samples,
)
from tests.conftest import no_sleep, serve_app, wait_until
from tests.doc_blocks import LOCALS, ROOT, Example, run_module
from tests.test_docs_examples import (
    ADDRESS,
    EXAMPLES,
    INDEX,
    RUN_BY_TEST_EXAMPLES,
    block_of,
    module_of,
)

UNKNOWN_ID = "0123456789abcdef01234567"  # well formed, on no account


def iso(api_date: str) -> dt.date:
    """A date as the API writes it (``dd/mm/yyyy``), as pecapi reads it."""
    return dt.datetime.strptime(api_date, "%d/%m/%Y").date()


def run(name: str, **values: Any) -> dict[str, Any]:
    """Execute the example's module with ``values`` as its declared names; its namespace."""
    return run_module(module_of(name), f"docs_{name}", values)


async def run_wrapped(
    name: str, *, placeholders: dict[str, str] | None = None, **values: Any
) -> dict[str, Any]:
    """Run a wrapped (top-level ``await``) example in the running loop; its locals.
    ``placeholders``: lines of the block that stand for the reader's code (``...``, ``#
    ... after topping up``), each replaced by code doing what it says."""
    assert EXAMPLES[name].wrap
    code = module_of(name)
    for line, replacement in (placeholders or {}).items():
        old, new = f"\n    {line}\n", f"\n    {replacement}\n"
        assert code.source.count(old) == 1, line
        code = attrs.evolve(code, source=code.source.replace(old, new))
    namespace = run_module(code, f"docs_{name}", values)
    await namespace["example"]()
    seen: dict[str, Any] = namespace[LOCALS]
    return seen


async def run_program(
    name: str, pec_server: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run a whole program (it calls ``asyncio.run``) in a thread of its own, as it is,
    against ``pec_server`` taken for the sandbox."""
    monkeypatch.setattr(pecapi.client, "SANDBOX_URL", pec_server.url)
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", DEFAULT_TOKEN)
    await asyncio.to_thread(run, name)


RUNS: dict[str, str] = {}  # example -> the test that runs it
_Test = TypeVar("_Test", bound=Callable[..., Any])


def runs(*names: str) -> Callable[[_Test], _Test]:
    """Marks a test as the one running these examples (and checking their effects)."""

    def mark(test: _Test) -> _Test:
        for name in names:
            assert name in EXAMPLES, name
            RUNS[name] = test.__name__
        return test

    return mark


def test_every_example_is_run_by_a_test() -> None:
    """The programs of examples/ by tests/test_examples.py; the others here."""
    runner = (ROOT / "tests" / "test_examples.py").read_text(encoding="utf-8")
    for name in RUN_BY_TEST_EXAMPLES:
        assert Path(EXAMPLES[name].source).name in runner, name
    assert set(RUNS).isdisjoint(RUN_BY_TEST_EXAMPLES)


# -- run: docs/index.md, docs/guides/client.md ---------------------------------------------


@runs("index")
async def test_the_home_page_example_lists_the_mailboxes(
    pec_server: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emulator = pec_server.emulator
    ids = [emulator.seed_mailbox(f"user{n}@testcert.legalmail.it") for n in range(2)]
    await run_program("index", pec_server, monkeypatch)
    boxes = [emulator.mailboxes[box_id] for box_id in ids]
    expected = [f"{b['casella_pec']} evasa {iso(b['data_scadenza'])}" for b in boxes]
    assert sorted(capsys.readouterr().out.splitlines()) == expected


@runs("client")
async def test_the_client_guide_example_registers_and_activates(
    pec_server: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "form-signed.pdf").write_bytes(make_pdf("signed form"))
    (tmp_path / "id-card.pdf").write_bytes(make_pdf("identity card"))
    emulator = pec_server.emulator
    await run_program("client", pec_server, monkeypatch)
    [box] = emulator.mailboxes.values()
    assert (box["casella_pec"], box["tipo_casella"], box["stato"]) == (
        ADDRESS,
        "BRONZE",
        "in_evasione",
    )
    assert (tmp_path / "form.pdf").read_bytes().startswith(b"%PDF")
    assert [c.operation for c in emulator.ledger] == ["register"]
    assert len(emulator.documents) == 2
    # The address is taken now: run again, the example registers nothing.
    await run_program("client", pec_server, monkeypatch)
    assert len(emulator.mailboxes) == 1


@runs("with_options")
async def test_the_options_example_renews_then_reads(client: PecClient, emulator: Emulator) -> None:
    box_id = emulator.seed_mailbox(ADDRESS)
    seen = await run_wrapped("with_options", client=client, box_id=box_id)
    assert len(emulator.charges("renewal", box_id)) == 1
    assert seen["box"].data_scadenza == iso(emulator.mailboxes[box_id]["data_scadenza"])
    assert seen["patient"].mailboxes is not client.mailboxes  # a copy, other defaults


# -- run: docs/guides/errors.md, retries.md ------------------------------------------------


@runs("error_classes")
async def test_the_error_example_tells_the_errors_apart(
    client: PecClient, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("docs_example")
    box_id = emulator.seed_mailbox(ADDRESS)
    seen = await run_wrapped("error_classes", client=client, box_id=box_id, log=log)
    assert seen["box"].id == box_id
    seen = await run_wrapped("error_classes", client=client, box_id=UNKNOWN_ID, log=log)
    assert seen["box"] is None  # a 404: not on this account
    assert not caplog.records
    refused = pytest.raises(pecapi.BadRequestError)  # a malformed id: logged, raised
    with caplog.at_level(logging.WARNING, logger="docs_example"), refused:
        await run_wrapped("error_classes", client=client, box_id="nope", log=log)
    [record] = caplog.records
    assert record.getMessage() == "PEC API refused: HTTP 400, code 201: Wrong id"


@runs("outcome_unknown")
async def test_the_settling_example_settles_a_renewal_that_happened(
    client: PecClient, emulator: Emulator
) -> None:
    """The renewal's answer is lost (a 504) and the API commits it 0.3 s later; the call
    gives up first (deadline), the example reconciles it: renewed once, never resent."""
    box_id = emulator.seed_mailbox(ADDRESS)
    await run_wrapped("outcome_unknown", client=client, box_id=box_id)  # no fault
    assert len(emulator.charges("renewal", box_id)) == 1
    hasty = client.with_options(retry=RetryPolicy(deadline=0.1, settle=2, max_attempts=1))
    emulator.faults.once(Fault.late(0.3), method="GET", path="/pec/*/rinnovo")
    seen = await run_wrapped("outcome_unknown", client=hasty, box_id=box_id)
    assert len(emulator.charges("renewal", box_id)) == 2
    assert emulator.count("GET", "/pec/*/rinnovo") == 2
    assert seen["box"].data_scadenza == iso(emulator.mailboxes[box_id]["data_scadenza"])
    assert not hasty.pending_outcomes()


@runs("outcome_unknown")
async def test_the_settling_example_resends_a_renewal_that_never_happened(
    client: PecClient, emulator: Emulator
) -> None:
    """A 503 to the renewal, which the API did not process: once the window has passed
    with no change, ``reconcile`` says None and the example sends it again."""
    box_id = emulator.seed_mailbox(ADDRESS)
    emulator.faults.once(Fault.status(503), method="GET", path="/pec/*/rinnovo")
    hasty = client.with_options(retry=RetryPolicy(deadline=0.1, settle=0.3, max_attempts=1))
    seen = await run_wrapped("outcome_unknown", client=hasty, box_id=box_id)
    assert seen["settled"] is seen["box"]  # set in the except branch only
    assert seen["box"].data_scadenza == iso(emulator.mailboxes[box_id]["data_scadenza"])
    assert len(emulator.charges("renewal", box_id)) == 1  # the resend, only
    assert emulator.count("GET", "/pec/*/rinnovo") == 2


@attrs.define
class Metrics:
    names: list[str] = attrs.Factory(list)

    def increment(self, name: str) -> None:
        self.names.append(name)


@runs("on_attempt")
async def test_the_retry_hook_example_counts_the_retries(
    client: PecClient, emulator: Emulator
) -> None:
    metrics = Metrics()
    policy: RetryPolicy = run("on_attempt", metrics=metrics)["policy"]
    emulator.seed_mailbox(ADDRESS)
    emulator.faults.next(2, Fault.status(503), method="GET", path="/pec")
    retrying = client.with_options(retry=attrs.evolve(policy, sleep=no_sleep))
    assert len(await retrying.mailboxes.list()) == 1
    assert metrics.names == ["pec.retry.ServerError", "pec.retry.ServerError"]


# -- run: docs/guides/batches.md -----------------------------------------------------------


@runs("map")
async def test_the_map_example_renews_each_mailbox(
    client: PecClient, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    box_ids = [emulator.seed_mailbox(f"user{n}@testcert.legalmail.it") for n in range(3)]
    await run_wrapped("map", client=client, box_ids=[*box_ids, UNKNOWN_ID])
    assert [len(emulator.charges("renewal", box_id)) for box_id in box_ids] == [1, 1, 1]
    lines = sorted(capsys.readouterr().out.splitlines())
    expiry = {box_id: emulator.mailboxes[box_id]["data_scadenza"] for box_id in box_ids}
    renewed = [line for line in lines if " renewed until " in line]
    assert renewed == sorted(f"{box_id} renewed until {iso(d)}" for box_id, d in expiry.items())
    [failed] = [line for line in lines if " renewed until " not in line]
    assert failed.startswith(f"{UNKNOWN_ID} failed: HTTP 404"), failed


@runs("collect")
async def test_the_collect_example_reads_every_mailbox_in_order(
    client: PecClient, emulator: Emulator
) -> None:
    box_ids = [emulator.seed_mailbox(f"user{n}@testcert.legalmail.it") for n in range(3)]
    seen = await run_wrapped("collect", client=client, box_ids=[box_ids[0], "nope", *box_ids[1:]])
    assert [box.id for box in seen["boxes"]] == box_ids
    assert list(seen["failed"]) == ["nope"]
    assert isinstance(seen["failed"]["nope"], pecapi.BadRequestError)


@runs("progress")
async def test_the_progress_example_shows_the_counts(
    client: PecClient, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    box_ids = [emulator.seed_mailbox(f"user{n}@testcert.legalmail.it") for n in range(3)]
    rows = [{"id": box_id} for box_id in [*box_ids, UNKNOWN_ID]]
    await run_wrapped("progress", client=client, rows=rows)
    assert [len(emulator.charges("renewal", box_id)) for box_id in box_ids] == [1, 1, 1]
    before, *shown = capsys.readouterr().out.split("\r")
    assert before == ""
    counts = [re.fullmatch(r"(\d)/4 done, ([01]) failed", line) for line in shown]
    assert [int(m[1]) for m in counts if m] == [1, 2, 3, 4], shown
    assert shown[-1] == "4/4 done, 1 failed"


@runs("wallet_empty")
async def test_the_wallet_example_stops_then_sends_the_rest(
    pec_server: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Credit for two registrations, 30 to make, 20 at a time: a 402 stops the batch, and
    what was never sent is sent once the wallet is topped up (the block's comment)."""
    emulator = pec_server.emulator
    emulator.wallet = Decimal("16.00")  # two BRONZE registrations
    registrations = [samples.registration(f"user{n}@testcert.legalmail.it") for n in range(30)]

    def top_up() -> None:
        emulator.wallet = Decimal("1000")

    async with PecClient(DEFAULT_TOKEN, sandbox=True, base_url=pec_server.url) as client:
        seen = await run_wrapped(
            "wallet_empty",
            placeholders={"# ... after topping up the wallet:": "top_up()"},
            client=client,
            registrations=registrations,
            top_up=top_up,
        )
    batch, results, again = seen["batch"], seen["results"], seen["again"]
    assert isinstance(batch.stopped_by, pecapi.InsufficientCreditError)
    skipped = [r for r in results if isinstance(r, pecapi.BatchSkipped)]
    refused = [r for r in results if isinstance(r.error, pecapi.InsufficientCreditError)]
    assert skipped and refused
    assert len(skipped) + len(refused) + 2 == 30
    printed = capsys.readouterr().out
    assert printed == f"wallet empty: {len(skipped)} not sent, {len(refused)} failed\n"
    assert len(again) == 28 and all(r.ok for r in again)
    assert len(emulator.charges("register")) == 30
    assert len(emulator.mailboxes) == 30


@runs("register_many")
async def test_the_register_many_example_registers(
    client: PecClient, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = "taken@testcert.legalmail.it"
    emulator.seed_mailbox(taken)
    addresses = [f"user{n}@testcert.legalmail.it" for n in range(3)] + [taken]
    registrations = [samples.registration(address) for address in addresses]
    await run_wrapped("register_many", client=client, registrations=registrations)
    lines = sorted(capsys.readouterr().out.splitlines())
    ids = {box["casella_pec"]: box["id"] for box in emulator.mailboxes.values()}
    registered = [line for line in lines if not line.startswith(taken)]
    assert registered == [f"{a} {ids[a]}" for a in addresses[:3]]
    [failed] = [line for line in lines if line.startswith(taken)]
    assert failed.startswith(f"{taken} HTTP 406"), failed
    assert len(emulator.charges("register")) == 3


def _people_csv(folder: Path, addresses: list[str]) -> None:
    """A CSV of registrations with the API's field names, and the documents it names."""
    (folder / "form-signed.pdf").write_bytes(make_pdf("signed form"))
    (folder / "id-card.pdf").write_bytes(make_pdf("identity card"))
    rows = []
    for address in addresses:
        body = {k: v for k, v in samples.mailbox_body(address).items() if k != "callback"}
        rows.append({**body, "documenti": "form-signed.pdf;id-card.pdf"})
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(row[name] for name in header) for row in rows]
    (folder / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@runs("provision")
async def test_the_provisioning_example_provisions_and_resumes(
    client: PecClient,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    addresses = [f"user{n}@testcert.legalmail.it" for n in range(3)]
    _people_csv(tmp_path, addresses)
    await run_wrapped("provision", client=client)
    ids = {box["casella_pec"]: box["id"] for box in emulator.mailboxes.values()}
    printed = sorted(capsys.readouterr().out.splitlines())
    assert printed == [f"{a} activated {ids[a]}" for a in addresses]
    assert {box["stato"] for box in emulator.mailboxes.values()} == {"in_evasione"}
    # two lines a mailbox: registered (awaiting_activation), then activated
    assert len((tmp_path / "people.jsonl").read_text().splitlines()) == 6
    await run_wrapped("provision", client=client)  # again, with the same journal
    printed = sorted(capsys.readouterr().out.splitlines())
    assert printed == [f"{a} skipped {ids[a]}" for a in addresses]
    assert len(emulator.charges("register")) == 3


# -- run: docs/guides/callbacks.md ---------------------------------------------------------


@runs("callback_handler")
async def test_the_callback_example_receives_the_emulators_callback(
    client: PecClient, emulator: Emulator
) -> None:
    marked: list[tuple[Any, ...]] = []

    async def mark(*args: Any, **kwargs: Any) -> None:
        marked.append((*args, kwargs))

    namespace = run("callback_handler", mark=mark)
    async with serve_app(namespace["app"], inflate=False) as url:
        callback = pecapi.Callback(url=f"{url}/pec-callback", data={"order": 42})
        box = await client.mailboxes.register(samples.registration(ADDRESS, callback=callback))
        await wait_until(lambda: bool(marked))
    assert marked == [(box.id, MailboxState.REGISTRATA, {"order": 42})]


@runs("signed_callback")
async def test_the_signed_callback_example_registers_and_verifies(
    client: PecClient, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEC_CALLBACK_KEY", "k" * 32)
    app = web.Application()
    events: list[CallbackEvent] = []

    async def on_event(event: CallbackEvent) -> None:
        events.append(event)

    body = samples.mailbox_body(ADDRESS)
    applicant = {k: v for k, v in body.items() if k not in ("casella_pec", "callback")}
    values: dict[str, Any] = {
        "address": ADDRESS,
        "applicant": applicant,
        "app": app,
        "on_event": on_event,
    }
    await run_wrapped("signed_callback", client=client, **values)
    [box] = emulator.mailboxes.values()
    signed = URL(box["callback"]["url"])
    assert (signed.host, signed.path, box["callback"]["data"]) == (
        "me.example",
        "/pec-callback",
        {"order": 42},
    )
    async with serve_app(app, inflate=False) as url, ClientSession() as session:
        target = URL(url).with_path(signed.path).with_query(signed.query)
        async with session.post(target.with_query({}), json=box) as unsigned:
            assert unsigned.status == 403
        async with session.post(target, json=box) as delivered:
            assert delivered.status == 200
    [event] = events
    assert (event.id, event.data) == (box["id"], {"order": 42})


# -- run: docs/guides/tokens.md ------------------------------------------------------------


@runs("static_token")
async def test_the_static_token_example_reads_the_variable(
    pec_server: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pecapi.client, "SANDBOX_URL", pec_server.url)
    monkeypatch.delenv("OPENAPI_SANDBOX_TOKEN", raising=False)
    with pytest.raises(pecapi.ConfigurationError, match="OPENAPI_SANDBOX_TOKEN"):
        await run_wrapped("static_token", token=DEFAULT_TOKEN)
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", DEFAULT_TOKEN)
    seen = await run_wrapped("static_token", token=DEFAULT_TOKEN)
    with pytest.raises(pecapi.ClientClosedError):  # the second one, closed by its block
        await seen["client"].mailboxes.list()


@runs("oauth_provider")
async def test_the_oauth_example_renews_with_a_token_of_its_scopes(
    pec_server: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = pec_server.emulator
    oauth = OAuthV2Emulator(emulator, email="me@example.org", api_key="docs-api-key")
    monkeypatch.setenv("OPENAPI_EMAIL", "me@example.org")
    monkeypatch.setenv("OPENAPI_SANDBOX_API_KEY", "docs-api-key")
    box_id = emulator.seed_mailbox(ADDRESS)
    async with oauth.serve() as running:
        monkeypatch.setattr(pecapi.oauth_v2, "OAUTH_V2_SANDBOX_URL", running.url)
        monkeypatch.setattr(pecapi.client, "SANDBOX_URL", pec_server.url)
        await run_wrapped("oauth_provider", box_id=box_id)
    assert len(emulator.charges("renewal", box_id)) == 1
    [issued] = oauth.issued  # one token, with the scopes the example asks for
    assert set(issued.scopes) == {"GET:test.pec.openapi.it/pec"}


@runs("wallet")
async def test_the_wallet_example_reads_the_v2_wallet(
    pec_server: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = pec_server.emulator
    emulator.wallet = Decimal("125.5")
    oauth = OAuthV2Emulator(emulator, email="me@example.org", api_key="docs-api-key")
    async with oauth.serve() as running:
        provider = pecapi.OAuthV2TokenProvider(
            "me@example.org",
            "docs-api-key",
            scopes=pecapi.all_pec_scopes(sandbox=True),
            sandbox=True,
            base_url=running.url,
        )
        async with provider, PecClient(provider, sandbox=True, base_url=pec_server.url) as c:
            seen = await run_wrapped("wallet", client=c, provider=provider)
    assert seen["wallet"].credit == Decimal("125.5")
    assert capsys.readouterr().out == "125.5\n"
    assert oauth.count("GET", "/wallet") == oauth.count("GET", "/wallet/transactions") == 1


@runs("estimate")
async def test_the_estimate_example_prices_the_csv_against_the_wallet(
    pec_server: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    _people_csv(tmp_path, [f"user{n}@testcert.legalmail.it" for n in range(3)])  # BRONZE
    (tmp_path / "prices.json").write_text('{"register": {"BRONZE": "8.00"}}', encoding="utf-8")
    emulator = pec_server.emulator
    emulator.wallet = Decimal("20")
    oauth = OAuthV2Emulator(emulator, email="me@example.org", api_key="docs-api-key")
    async with oauth.serve() as running:
        provider = pecapi.OAuthV2TokenProvider(
            "me@example.org",
            "docs-api-key",
            scopes=pecapi.all_pec_scopes(sandbox=True),
            sandbox=True,
            base_url=running.url,
        )
        async with provider, PecClient(provider, sandbox=True, base_url=pec_server.url) as c:
            seen = await run_wrapped("estimate", client=c)
    cost = seen["cost"]
    assert (cost.total, cost.enough, cost.shortfall) == (Decimal("24.00"), False, Decimal("4.00"))
    assert capsys.readouterr().out.split()[0] == "24.00"
    assert emulator.ledger == []  # an estimate charges nothing


# -- run: docs/guides/testing.md and pecapi/testing/README.md ------------------------------


@runs("conftest", "emulator_conftest")
def test_the_conftest_line_names_the_fixtures_plugin(pytestconfig: pytest.Config) -> None:
    """The plugin the line names is the one pytest loaded (the fixtures the other
    examples take come from it)."""
    for name in ("conftest", "emulator_conftest"):
        [plugin] = run(name)["pytest_plugins"]
        loaded = pytestconfig.pluginmanager.get_plugin(plugin)
        assert loaded is not None, plugin
        assert {"pec_server", "pec_emulator", "pec_oauth_server"} <= set(vars(loaded))


@runs("client_tests")
async def test_the_client_test_examples_pass() -> None:
    """Each test function of the example, given the fixtures' values (a fresh emulator
    each, as pytest would)."""
    namespace = run("client_tests")
    for test_name in ("test_renewal_is_charged_once_when_the_answer_is_lost", "test_registration"):
        emulator = Emulator()
        async with emulator.serve() as server:
            await namespace[test_name](server, emulator)
        assert len(emulator.ledger) == 1, test_name
    assert emulator.ledger[0].operation == "register"


@runs("emulator_serve")
async def test_the_emulator_serve_example_passes() -> None:
    await run("emulator_serve")["test_register"]()


@runs("emulator_fixtures")
async def test_the_emulator_fixtures_example_passes(pec_server: RunningEmulator) -> None:
    emulator = pec_server.emulator
    await run("emulator_fixtures")["test_renewal"](pec_server, emulator)
    [charge] = emulator.ledger
    assert charge.operation == "renewal"


@runs("ledger")
async def test_the_ledger_example_holds_after_a_registration_and_a_renewal(
    client: PecClient, emulator: Emulator
) -> None:
    box = await client.mailboxes.register(samples.registration(ADDRESS))  # BRONZE
    await client.mailboxes.activate(box.id, make_pdf("documents"))
    emulator.complete_activation(box.id)
    await client.mailboxes.renew(box.id)
    await run_wrapped("ledger", emu=emulator, mailbox_id=box.id)
    assert emulator.wallet == Decimal("1000") - 2 * Decimal("8.00")


@runs("fault_plan")
async def test_the_fault_plan_example_builds_its_rules(emulator: Emulator) -> None:
    seen = await run_wrapped("fault_plan", emu=emulator)
    assert seen["plan"] is emulator.faults
    assert not emulator.faults.rules  # plan.clear(), its last call
    assert not emulator.requests


@runs("late_commit")
async def test_the_late_commit_example_behaves_as_its_comment_says(
    client: PecClient, emulator: Emulator
) -> None:
    """The block stands for a test whose ``...`` is the client's renewal: it runs with
    that renewal in the place of the ``...``, checking what the comment says of it."""
    box_id = emulator.seed_mailbox(ADDRESS)
    expiry = emulator.mailboxes[box_id]["data_scadenza"]
    once = client.with_options(retry=RetryPolicy.never())

    async def renew() -> None:
        with pytest.raises(pecapi.OutcomeUnknownError) as seen:  # never settles
            await once.mailboxes.renew(box_id)
        assert isinstance(seen.value.cause, pecapi.ServerError)
        assert seen.value.cause.status == 504
        box = await client.mailboxes.get(box_id)
        assert box.data_scadenza == iso(expiry)  # the old expiry
        assert not emulator.charges("renewal", box_id)  # no charge yet

    comment = "# the client sees a 504; a GET /pec/{id} right after shows the old expiry, no charge"
    await run_wrapped(
        "late_commit",
        placeholders={f"...  {comment}": f"await renew()  {comment}"},
        emu=emulator,
        mailbox_id=box_id,
        renew=renew,
    )
    assert emulator.mailboxes[box_id]["data_scadenza"] != expiry
    assert not emulator.late_pending


@runs("emulator_clock")
async def test_the_clock_example_renews_the_token_on_the_emulators_clock(
    emulator: Emulator,
) -> None:
    oauth = OAuthEmulator(emulator)
    async with oauth.serve() as running_oauth:
        seen = await run_wrapped(
            "emulator_clock", emu=emulator, oauth=oauth, running_oauth=running_oauth
        )
        async with seen["provider"] as provider:
            first = await provider.get_token()
            assert await provider.get_token() == first
            emulator.advance_time(2 * 86400)  # past the token's life (a day)
            second = await provider.get_token()
    assert second != first
    assert [issued.token for issued in oauth.created] == [first, second]


# -- run: a block claimed and not yet given a test of its own ------------------------------


def _seed(emulator: Emulator, count: int) -> list[str]:
    return [emulator.seed_mailbox(f"user{n}@testcert.legalmail.it") for n in range(count)]


# Values for the names a prelude may declare: a new example whose names are all here runs
# without a test of its own (one that checks its effects is better: see ``runs``).
VALUES: dict[str, Callable[[PecClient, Emulator], Any]] = {
    "client": lambda client, emulator: client,
    "emu": lambda client, emulator: emulator,
    "emulator": lambda client, emulator: emulator,
    "address": lambda client, emulator: ADDRESS,
    "box_id": lambda client, emulator: _seed(emulator, 1)[0],
    "mailbox_id": lambda client, emulator: _seed(emulator, 1)[0],
    "box_ids": lambda client, emulator: _seed(emulator, 3),
    "registrations": lambda client, emulator: [
        samples.registration(f"new{n}@testcert.legalmail.it") for n in range(3)
    ],
}


def declared(example: Example) -> list[str]:
    """The names the prelude declares without a value (``client: pecapi.PecClient``)."""
    return [
        node.target.id
        for node in ast.parse(example.prelude).body
        if isinstance(node, ast.AnnAssign)
        and node.value is None
        and isinstance(node.target, ast.Name)
    ]


def values_for(name: str, client: PecClient, emulator: Emulator) -> dict[str, Any]:
    example = EXAMPLES[name]
    missing = [n for n in declared(example) if n not in VALUES]
    assert not missing, (
        f"{name}: no value for {missing}: add them to VALUES, or run the example in a test "
        f"decorated @runs({name!r})"
    )
    return {n: VALUES[n](client, emulator) for n in declared(example)}


async def run_with_values(
    name: str, pec_server: RunningEmulator, client: PecClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = values_for(name, client, pec_server.emulator)
    if EXAMPLES[name].wrap:
        await run_wrapped(name, **values)
    elif "asyncio.run(" in block_of(name).code:
        await run_program(name, pec_server, monkeypatch)
    else:
        run(name, **values)


_UNRUN = sorted(set(EXAMPLES) - set(RUNS) - RUN_BY_TEST_EXAMPLES)


@pytest.mark.parametrize(
    "name",
    _UNRUN or [pytest.param("", marks=pytest.mark.skip(reason="every example has its test"))],
)
async def test_a_claimed_example_runs(
    name: str, pec_server: RunningEmulator, client: PecClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await run_with_values(name, pec_server, client, monkeypatch)


@pytest.mark.parametrize("name", ["index", "with_options", "fault_plan", "map"])
async def test_the_values_run_an_example(
    name: str, pec_server: RunningEmulator, client: PecClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What runs a new example: a whole program, a wrapped fragment, a plain one."""
    await run_with_values(name, pec_server, client, monkeypatch)
    if name != "fault_plan":
        assert pec_server.emulator.requests


def test_a_name_without_a_value_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    prelude = "import pecapi\n\nclient: pecapi.PecClient\nwidget: pecapi.Mailbox\n"
    monkeypatch.setitem(EXAMPLES, "new", Example(source=INDEX, marker="x", prelude=prelude))
    assert declared(EXAMPLES["new"]) == ["client", "widget"]
    with pytest.raises(AssertionError, match=r"new: no value for \['widget'\]"):
        values_for("new", PecClient(DEFAULT_TOKEN, sandbox=True), Emulator())

"""The provisioning journal against the emulator: torn lines, a journal that cannot be
written, the account winning over a stale journal, and registrations whose outcome is
unknown (``pending``)."""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from pathlib import Path

import pytest

from pecapi import (
    AuthenticationError,
    ConfigurationError,
    OutcomeUnknownError,
    PecClient,
    RetryPolicy,
    TransportError,
    ValidationError,
)
from pecapi.cli import main
from pecapi.cli.exits import ExitCode
from pecapi.provision import (
    STATUSES,
    Journal,
    ProvisionOutcome,
    ProvisionRequest,
    provision,
)
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, RunningEmulator
from pecapi.transport.retry import Attempt
from tests.conftest import PDF_BYTES, FakeTime, make_registration, wait_until


def _address(i: int) -> str:
    return f"journal{i:03d}@testcert.legalmail.it"


def _request(i: int, documents: bool = True) -> ProvisionRequest:
    return ProvisionRequest(
        registration=make_registration(_address(i)),
        documents=[PDF_BYTES] if documents else None,
        line=i + 2,
    )


async def _run(
    client: PecClient, requests: list[ProvisionRequest], journal: Path
) -> dict[str, ProvisionOutcome]:
    outcomes: dict[str, ProvisionOutcome] = {}
    async with provision(client, requests, journal=journal, concurrency=1) as run:
        async for result in run:
            assert result.value is not None, result.error
            outcomes[result.value.key] = result.value
    return outcomes


def _lines(journal: Path) -> list[str]:
    return journal.read_bytes().decode("utf-8", "replace").split("\n")


def _record(key: str, status: str, mailbox_id: str | None = None) -> str:
    line = {
        "key": key,
        "line": 2,
        "status": status,
        "complete": STATUSES[status],
        "mailbox_id": mailbox_id,
        "steps": [],
        "error": None,
        "at": "2024-01-01T00:00:00+00:00",
    }
    return json.dumps(line)


# -- (a) a torn last line ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fragment",
    [
        b'{"key": "journal009@testcert.legalmail.it", "sta',
        # cut inside a two-byte character: the journal must still be readable
        '{"key": "journal009@testcert.legalmail.it", "error": "Niccolò'.encode()[:-1],
    ],
    ids=["ascii", "inside-a-utf8-character"],
)
async def test_a_torn_last_line_does_not_swallow_the_next_record(
    client: PecClient, emulator: Emulator, tmp_path: Path, fragment: bytes
) -> None:
    journal = tmp_path / "run.jsonl"
    first = await _run(client, [_request(0)], journal)
    assert first[_address(0)].status == "activated"
    with journal.open("ab") as fh:  # a crash in the middle of writing the next line
        fh.write(fragment)

    outcomes = await _run(client, [_request(0), _request(1), _request(2)], journal)
    assert outcomes[_address(0)].status == "skipped"
    assert outcomes[_address(1)].status == outcomes[_address(2)].status == "activated"

    records = Journal(journal).load()
    assert records[_address(1)]["status"] == records[_address(2)]["status"] == "activated"
    lines = _lines(journal)
    assert lines[-1] == ""  # the file ends with a newline
    # the first run's two lines (registered, activated), then the fragment, alone
    assert lines[2].encode() == fragment or "\ufffd" in lines[2]
    # each registered (awaiting_activation), then activated
    after = [(json.loads(text)["key"], json.loads(text)["status"]) for text in lines[3:-1]]
    assert after == [
        (address, status)
        for address in (_address(1), _address(2))
        for status in ("awaiting_activation", "activated")
    ]

    # a third run does nothing again: one registration per address in all
    again = await _run(client, [_request(1), _request(2)], journal)
    assert {o.status for o in again.values()} == {"skipped"}
    charged = [c.target_id for c in emulator.charges(operation="register")]
    assert len(charged) == len(set(charged)) == 3


async def test_a_clean_journal_gets_no_blank_lines(client: PecClient, tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    await _run(client, [_request(0)], journal)
    await _run(client, [_request(0), _request(1)], journal)
    lines = _lines(journal)
    assert lines[-1] == "" and all(lines[:-1])
    assert len(lines) == 5  # two per request: registered, then activated


# -- (b) a journal that cannot be written ------------------------------------------------


@pytest.fixture(params=["a-directory", "parent-is-a-file"])
def unwritable(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "a-directory":
        path = tmp_path / "journal.d"
        path.mkdir()
        return path
    (tmp_path / "plain").write_text("not a folder")
    return tmp_path / "plain" / "sub" / "run.jsonl"


async def test_an_unwritable_journal_fails_before_anything_is_sent(
    client: PecClient, emulator: Emulator, unwritable: Path
) -> None:
    async def consume() -> None:
        async with provision(client, [_request(0), _request(1)], journal=unwritable) as run:
            async for _ in run:
                pytest.fail("no outcome without a journal")

    with pytest.raises(ConfigurationError) as info:
        await consume()
    assert str(unwritable) in str(info.value)
    assert emulator.requests == []
    assert emulator.ledger == []
    gc.collect()  # a leaked file would be a ResourceWarning, an error here


async def test_an_unwritable_journal_fails_collect_too(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    batch = provision(client, [_request(0)], journal=tmp_path)
    with pytest.raises(ConfigurationError):
        await batch.collect()
    assert emulator.requests == []


async def test_the_journal_is_closed_when_the_iteration_ends(
    client: PecClient, tmp_path: Path
) -> None:
    # no ``async with``: the journal must not stay open (a ResourceWarning) all the same
    batch = provision(client, [_request(0)], journal=tmp_path / "run.jsonl")
    statuses = [r.value.status async for r in batch if r.value is not None]
    assert statuses == ["activated"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del batch
        gc.collect()
    assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_the_cli_reports_an_unwritable_journal_as_configuration(
    pec_server: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", DEFAULT_TOKEN)
    (tmp_path / "form.pdf").write_bytes(PDF_BYTES)
    source = tmp_path / "people.csv"
    source.write_text(
        "casella_pec,tipo_casella,tipo_cliente,nome_richiedente,cognome_richiedente,email,"
        "telefono,codice_fiscale_richiedente,data_nascita_richiedente,sesso_richiedente,"
        "nazione_nascita_richiedente,indirizzo_titolare,comune_titolare,cap_titolare,"
        "nazione_titolare,provincia_titolare,documenti\n"
        f"{_address(0)},bronze,PV,Mario,Rossi,m@d.it,0548,RSSMRA82D11H501X,"
        "11/04/1982,M,IT,via Verdi 20,Roma,00042,IT,RM,form.pdf\n",
        encoding="utf-8",
    )
    argv = ["--sandbox", "--base-url", pec_server.url, "provision", str(source)]
    code = await asyncio.to_thread(main, [*argv, "--journal", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == ExitCode.CONFIGURATION
    assert "nothing sent" in err and str(tmp_path) in err
    assert pec_server.emulator.requests == []


# -- (c) the account wins over a stale journal -------------------------------------------


async def test_an_activation_whose_answer_was_lost_is_not_sent_again(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    emulator.faults.once(Fault.drop_after(), path="/pec/*/attivazione")
    raw = client.with_options(retry=RetryPolicy.never())
    first = (await _run(raw, [_request(0)], journal))[_address(0)]
    assert first.status == "awaiting_activation"  # the emulator processed it all the same
    assert first.mailbox_id is not None
    assert emulator.mailboxes[first.mailbox_id]["stato"] == "in_evasione"
    assert emulator.count("PATCH", "/pec/*/attivazione") == 1

    second = (await _run(client, [_request(0)], journal))[_address(0)]
    assert second.status == "activated"
    assert second.complete
    assert second.mailbox_id == first.mailbox_id
    assert second.steps == ("found on the account: in_evasione",)
    assert emulator.count("PATCH", "/pec/*/attivazione") == 1  # never sent twice
    assert Journal(journal).load()[_address(0)]["complete"] is True


async def test_a_mailbox_found_registered_is_still_activated(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    # the account says registrata: the journal's awaiting_activation is right, resume it
    box = emulator.seed_mailbox(_address(0), stato="registrata")
    journal = tmp_path / "run.jsonl"
    journal.write_text(_record(_address(0), "awaiting_activation", box) + "\n")
    outcome = (await _run(client, [_request(0)], journal))[_address(0)]
    assert outcome.status == "activated"
    assert outcome.steps == ("found on the account: registrata", "activate: ok")
    assert emulator.count("POST", "/pec") == 0


async def test_a_journal_mailbox_the_account_does_not_list_is_not_trusted(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    stale = "0123456789abcdef01234567"
    journal.write_text(_record(_address(0), "awaiting_activation", stale) + "\n")
    outcome = (await _run(client, [_request(0)], journal))[_address(0)]
    assert outcome.status == "activated"
    assert outcome.mailbox_id != stale
    assert outcome.steps == (
        f"journal: mailbox {stale} not on the account",
        "check: available",
        "register: ok",
        "activate: ok",
    )
    assert len(emulator.charges(operation="register")) == 1


async def test_a_fresh_address_found_activated_on_the_account_is_existing(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    # no journal record: nothing disagrees, the mailbox is someone's earlier work
    emulator.seed_mailbox(_address(0), stato="evasa")
    outcome = (await _run(client, [_request(0)], tmp_path / "run.jsonl"))[_address(0)]
    assert outcome.status == "existing"
    assert emulator.requests[-1].method == "GET"  # only the listing
    assert emulator.count("PATCH", "/pec/*/attivazione") == 0


# -- (d) a registration whose outcome is unknown -----------------------------------------


def _outcome_unknown_policy(emulator: Emulator) -> RetryPolicy:
    """A policy under which a registration whose answer is lost cannot be reconciled:
    from its first reconciliation on, every read fails (the client raises
    OutcomeUnknownError)."""

    def break_reads(attempt: Attempt) -> None:
        if attempt.operation == "mailboxes.register" and attempt.reconcile:
            emulator.faults.rate(1.0, Fault.status(503), method="GET")

    fake = FakeTime()
    return RetryPolicy(max_attempts=3, sleep=fake.sleep, clock=fake.clock, on_attempt=break_reads)


@pytest.mark.parametrize(
    ("fault", "processed"),
    [(Fault.drop_after(), True), (Fault.drop_before(), False)],
    ids=["processed", "not-processed"],
)
async def test_an_unknown_registration_is_pending_then_settled_from_the_account(
    client: PecClient, emulator: Emulator, tmp_path: Path, fault: Fault, processed: bool
) -> None:
    journal = tmp_path / "run.jsonl"
    emulator.faults.once(fault, method="POST", path="/pec")
    unsure = client.with_options(retry=_outcome_unknown_policy(emulator))
    first = (await _run(unsure, [_request(0)], journal))[_address(0)]
    emulator.faults.clear()
    assert first.status == "pending"
    assert not first.complete
    assert isinstance(first.error, OutcomeUnknownError)
    assert first.steps == ("check: available", "register: outcome unknown")
    record = Journal(journal).load()[_address(0)]
    assert (record["status"], record["complete"]) == ("pending", False)
    assert record["error"]["type"] == "OutcomeUnknownError"
    assert len(emulator.mailboxes) == (1 if processed else 0)

    second = (await _run(client, [_request(0)], journal))[_address(0)]
    assert second.status == "activated"
    if processed:  # taken over from the account, never registered again
        assert second.steps == ("found on the account: registrata", "activate: ok")
        assert emulator.count("POST", "/pec") == 1
    else:  # the account does not list it: registered again
        assert second.steps == ("check: available", "register: ok", "activate: ok")
    assert len(emulator.mailboxes) == 1
    assert len(emulator.charges(operation="register")) == 1


async def test_a_pending_registration_without_documents_found_is_registered(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    box = emulator.seed_mailbox(_address(0), stato="registrata")
    journal = tmp_path / "run.jsonl"
    journal.write_text(_record(_address(0), "pending") + "\n")
    outcome = (await _run(client, [_request(0, documents=False)], journal))[_address(0)]
    assert (outcome.status, outcome.mailbox_id) == ("registered", box)
    assert outcome.complete
    assert emulator.count("POST", "/pec") == 0


async def test_an_unknown_registration_is_settled_within_the_run(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    """The deadline ends before the settle window (OutcomeUnknownError): the run records
    ``pending`` at once, then settles it before moving on; the late commit is found."""
    journal = tmp_path / "run.jsonl"
    emulator.faults.once(Fault.late(0.4), method="POST", path="/pec")
    policy = RetryPolicy(settle=1.0, deadline=0.2, backoff=0.01)
    outcome = (await _run(client.with_options(retry=policy), [_request(0)], journal))[_address(0)]
    assert outcome.status == "activated"
    assert "register: outcome unknown" in outcome.steps and "settled: registered" in outcome.steps
    statuses = [json.loads(line)["status"] for line in _lines(journal) if line]
    # pending written before settling, awaiting_activation before activating
    assert statuses == ["pending", "awaiting_activation", "activated"]
    assert emulator.count("POST", "/pec") == 1
    assert len(emulator.charges(operation="register")) == 1


async def test_a_registration_cancelled_in_flight_is_settled_by_the_next_run(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Ctrl-C while the registration is in flight: the journal says ``pending``; a rerun
    started at once waits out the settle window before it lists the account, so the
    registration the API commits late is taken over, not sent again."""
    journal = tmp_path / "run.jsonl"
    emulator.faults.once(Fault.late(0.4, reply="hang"), method="POST", path="/pec")
    settling = client.with_options(retry=RetryPolicy(settle=1.0, backoff=0.01))
    first = asyncio.create_task(_run(settling, [_request(0, documents=False)], journal))
    await wait_until(lambda: emulator.count("POST", "/pec") == 1)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert Journal(journal).load()[_address(0)]["status"] == "pending"
    assert emulator.mailboxes == {}  # not committed yet
    second = (await _run(settling, [_request(0, documents=False)], journal))[_address(0)]
    assert second.status == "registered"
    assert second.steps == ("found on the account: registrata",)
    assert emulator.count("POST", "/pec") == 1
    assert len(emulator.charges(operation="register")) == 1


# -- (e) an address of the other environment ---------------------------------------------


def _sent_for(emulator: Emulator, local_part: str) -> list[str]:
    return [f"{r.method} {r.path}" for r in emulator.requests if f"/{local_part}@" in r.path]


async def test_an_address_of_the_other_environment_is_invalid_and_never_sent(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    """A sandbox client, a production address: ``invalid`` before any request for it (no
    ``GET /verifica_pec``, which would answer it is free), in every run (``invalid`` is
    not complete, so a rerun reads it again, and again sends nothing)."""
    journal = tmp_path / "run.jsonl"
    wrong = [
        ProvisionRequest(make_registration("anna@legalmail.it"), line=2),
        ProvisionRequest(make_registration("bruno@pecmassiva.com", tipo_casella="PECMASSIVA")),
        # the sandbox's own domain, but not for this type
        ProvisionRequest(
            make_registration("carla@testcert.legalmail.it", tipo_casella="DOMICILIODIGITALE")
        ),
    ]
    for run in range(2):
        outcomes = await _run(client, [*wrong, _request(0)], journal)
        assert outcomes[_address(0)].status == ("activated" if run == 0 else "skipped")
        for name in ("anna", "bruno", "carla"):
            outcome = next(o for k, o in outcomes.items() if k.startswith(f"{name}@"))
            assert (outcome.status, outcome.complete, outcome.steps) == ("invalid", False, ())
            assert isinstance(outcome.error, ValidationError)
            assert outcome.error.field == "casella_pec"
            assert "in the sandbox a " in outcome.error.message
            assert _sent_for(emulator, name) == []
        assert outcomes["anna@legalmail.it"].line == 2
        assert "must be @testcert.legalmail.it, not @legalmail.it" in str(
            outcomes["anna@legalmail.it"].error
        )
    records = Journal(journal).load()
    assert records["anna@legalmail.it"]["status"] == "invalid"
    assert records["anna@legalmail.it"]["error"]["field"] == "casella_pec"
    assert emulator.count("GET", "/verifica_pec/*") == 1  # the good request's, once
    assert [c.operation for c in emulator.ledger] == ["register"]  # the good request only


async def test_in_production_a_sandbox_address_is_invalid_and_never_sent(tmp_path: Path) -> None:
    emulator = Emulator(environment="production")
    good = ProvisionRequest(make_registration("anna@legalmail.it"), documents=[PDF_BYTES])
    requests = [
        ProvisionRequest(make_registration("bruno@testcert.legalmail.it")),
        # a provider's domain of another mailbox type
        ProvisionRequest(make_registration("carla@legalmail.it", tipo_casella="DOMICILIODIGITALE")),
        good,
    ]
    async with (
        emulator.serve() as server,
        PecClient(DEFAULT_TOKEN, base_url=server.url, retry=RetryPolicy(max_attempts=1)) as client,
    ):
        assert client.sandbox is False
        outcomes = await _run(client, requests, tmp_path / "run.jsonl")
    assert outcomes["anna@legalmail.it"].status == "activated"
    bruno, carla = outcomes["bruno@testcert.legalmail.it"], outcomes["carla@legalmail.it"]
    assert bruno.status == carla.status == "invalid"
    assert str(bruno.error) == (
        "casella_pec: @testcert.legalmail.it is a sandbox domain; this client talks to production"
    )
    assert "a DOMICILIODIGITALE mailbox must be @domiciliodigitale.com" in str(carla.error)
    assert _sent_for(emulator, "bruno") == _sent_for(emulator, "carla") == []
    assert emulator.count("GET", "/verifica_pec/*") == 1


async def test_a_wrong_address_twice_is_invalid_twice(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    """Checked before the duplicate check: the same wrong address twice is ``invalid``
    twice (there is nothing to register twice)."""
    wrong = ProvisionRequest(make_registration("anna@legalmail.it"))
    outcomes: list[ProvisionOutcome] = []
    async with provision(client, [wrong, wrong], journal=tmp_path / "j.jsonl") as run:
        async for result in run:
            assert result.value is not None, result.error
            outcomes.append(result.value)
    assert [o.status for o in outcomes] == ["invalid", "invalid"]
    assert _sent_for(emulator, "anna") == []


# -- (f) the run's own failures and ends -------------------------------------------------


async def _outcomes(
    client: PecClient, requests: list[ProvisionRequest], journal: Path
) -> list[str]:
    seen: list[str] = []
    async with provision(client, requests, journal=journal, concurrency=3) as run:
        async for result in run:
            seen.append(result.value.status if result.value else repr(result.error))
    return seen


async def test_a_refused_token_fails_the_run_once_before_any_request(
    pec_server: RunningEmulator, emulator: Emulator, tmp_path: Path
) -> None:
    """The startup listing answered 401: one AuthenticationError from the ``async for``,
    not one ``error`` per request, and nothing else sent."""
    journal = tmp_path / "run.jsonl"
    async with PecClient("not-the-token", sandbox=True, base_url=pec_server.url) as wrong:
        with pytest.raises(AuthenticationError):
            await _outcomes(wrong, [_request(i) for i in range(5)], journal)
    assert [(r.method, r.path, r.status) for r in emulator.requests] == [("GET", "/pec", 401)]
    assert Journal(journal).load() == {}


async def test_a_lost_connection_at_startup_fails_the_run_once(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.faults.once(Fault.drop_before(), method="GET", path="/pec")
    never = client.with_options(retry=RetryPolicy.never())
    with pytest.raises(TransportError):
        await _outcomes(never, [_request(i) for i in range(5)], tmp_path / "run.jsonl")
    assert [(r.method, r.path) for r in emulator.requests] == [("GET", "/pec")]


async def test_a_cancellation_during_the_activation_leaves_the_registration_journaled(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    """A second Ctrl-C while the activation is in flight: the registration (paid) is in
    the journal already, ``awaiting_activation`` with its mailbox; the next run activates
    that mailbox, never registers the address again."""
    journal = tmp_path / "run.jsonl"
    emulator.faults.once(Fault.latency(30), method="PATCH", path="/pec/*/attivazione")
    first = asyncio.create_task(_run(client, [_request(0)], journal))
    await wait_until(lambda: emulator.count("PATCH", "/pec/*/attivazione") == 1)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    [box] = emulator.mailboxes
    record = Journal(journal).load()[_address(0)]
    assert (record["status"], record["complete"], record["mailbox_id"]) == (
        "awaiting_activation",
        False,
        box,
    )
    assert record["steps"] == ["check: available", "register: ok"]

    again = (await _run(client, [_request(0)], journal))[_address(0)]
    assert (again.status, again.mailbox_id) == ("activated", box)
    assert again.steps == ("found on the account: registrata", "activate: ok")
    assert emulator.count("POST", "/pec") == 1
    assert len(emulator.charges(operation="register")) == 1
    assert Journal(journal).load()[_address(0)]["status"] == "activated"

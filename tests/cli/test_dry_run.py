"""``pecapi provision FILE.csv --dry-run``: the estimate, against the OAuth emulators'
wallet, with nothing sent but the wallet's read (the emulators' request logs and the
charge ledger say so), and no secret printed."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pecapi.cli.exits import ExitCode
from pecapi.testing import Emulator, OAuthEmulator, OAuthV2Emulator, RunningEmulator
from pecapi.testing.oauth import RunningOAuth
from pecapi.testing.oauth_v2 import RunningOAuthV2
from tests.cli.conftest import Result, Run, subprocess_env
from tests.cli.test_csv_input import _write
from tests.cli.test_provision import _row

EMAIL = "owner@example.org"
KEY = "CANARY-api-key-6d1f0e"  # the API key: must never be printed
TOKEN = "CANARY-static-token-93ab"  # a static token in the environment: never printed
SECRETS = (KEY, TOKEN)
PRICES = {"register": {"BRONZE": "8.00", "GOLD": "25.00"}}

# line 2 anna (bronze, documents), 3 done in the journal, 4 awaiting activation in the
# journal, 5 pending in the journal, 6 a bad type, 7 a production domain in the sandbox,
# 8 anna again, 9 gold without documents, 10 bruno (bronze, documents)
ROWS = [
    _row("anna"),
    _row("done"),
    _row("halfway"),
    _row("lost"),
    _row("bad", tipo="platinum"),
    _row("anna").replace("anna@testcert.legalmail.it", "prod@legalmail.it"),
    _row("anna"),
    _row("gina", tipo="gold", documents=""),
    _row("bruno"),
]
JOURNAL = [
    {"key": "done@testcert.legalmail.it", "status": "activated", "complete": True,
     "mailbox_id": "a" * 24},
    {"key": "halfway@testcert.legalmail.it", "status": "awaiting_activation",
     "complete": False, "mailbox_id": "b" * 24},
    {"key": "lost@testcert.legalmail.it", "status": "pending", "complete": False},
]  # fmt: skip


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The account's OAuth credentials and a static token, all canaries."""
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", TOKEN)
    monkeypatch.setenv("OPENAPI_EMAIL", EMAIL)
    monkeypatch.setenv("OPENAPI_SANDBOX_API_KEY", KEY)
    for name in ("OPENAPI_API_KEY", "OPENAPI_OAUTH_VERSION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def v2(pec_emulator: Emulator) -> AsyncIterator[RunningOAuthV2]:
    async with OAuthV2Emulator(pec_emulator, email=EMAIL, api_key=KEY).serve() as running:
        yield running


@pytest.fixture
async def v1(pec_emulator: Emulator) -> AsyncIterator[RunningOAuth]:
    async with OAuthEmulator(pec_emulator, email=EMAIL, api_key=KEY).serve() as running:
        yield running


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = _write(tmp_path, ROWS)
    journal = path.with_suffix(".journal.jsonl")
    journal.write_text("".join(json.dumps(r) + "\n" for r in JOURNAL), encoding="utf-8")
    (tmp_path / "prices.json").write_text(json.dumps(PRICES), encoding="utf-8")
    return path


def _no_secret(*results: Result) -> None:
    for result in results:
        for secret in SECRETS:
            assert secret not in result.out and secret not in result.err


def _nothing_paid(emulator: Emulator) -> None:
    assert emulator.requests == []  # not one PEC API request: no check, no registration
    assert emulator.ledger == [] and emulator.mailboxes == {}


async def test_estimate_against_the_v2_wallet(
    api: Run, pec_emulator: Emulator, v2: RunningOAuthV2, source: Path
) -> None:
    journal = source.with_suffix(".journal.jsonl")
    before = journal.read_bytes()
    prices = str(source.parent / "prices.json")
    flags = ("provision", str(source), "--dry-run", "--prices", prices, "--oauth-url", v2.url)
    result = await api("--json", *flags)
    assert result.code == ExitCode.OK, result.err
    assert result.err == ""
    [line] = result.out.splitlines()
    estimate = json.loads(line)
    assert estimate["event"] == "estimate"
    # to register: anna, lost, gina, bruno; to activate: anna, halfway, lost, bruno
    assert estimate["rows"] == {
        "total": 9, "register": 4, "activate": 4, "done": 1, "awaiting_activation": 1,
        "pending": 1, "invalid": 2, "duplicate": 1,
    }  # fmt: skip
    assert estimate["operations"] == [
        {"operation": "register", "mailbox_type": "BRONZE", "quantity": 3, "paid": True,
         "unit_price": "8.00", "subtotal": "24.00"},
        {"operation": "register", "mailbox_type": "GOLD", "quantity": 1, "paid": True,
         "unit_price": "25.00", "subtotal": "25.00"},
        {"operation": "activate", "mailbox_type": "BRONZE", "quantity": 4, "paid": False,
         "unit_price": "0", "subtotal": "0"},
    ]  # fmt: skip
    assert (estimate["total"], estimate["per_operation"]) == ("49.00", {"register": "49.00"})
    assert estimate["wallet"] == {"credit": "1000.0", "service": "v2", "reason": None,
                                  "error": None}  # fmt: skip
    assert (estimate["enough"], estimate["shortfall"], estimate["exit_code"]) == (True, "0", 0)
    assert [(p["line"], p["status"], p["error"]["field"]) for p in estimate["problems"]] == [
        (6, "invalid", "tipo_casella"),
        (7, "invalid", "casella_pec"),
        (8, "duplicate", "casella_pec"),
    ]
    assert (estimate["journal"], estimate["journal_found"]) == (str(journal), True)

    people = await api(*flags)
    assert people.code == ExitCode.OK, people.err
    text = " ".join(people.out.split())
    assert "dry run of" in text and "nothing registered" in text
    assert "9 rows: 4 to register, 4 to activate (free), 1 done in the journal" in text
    assert "register BRONZE 3 8.00 24.00" in text
    assert "total: 49.00 EUR (register 49.00)" in text
    assert "wallet: 1000.00 EUR (OAuth v2): enough, 951.00 EUR left after" in text
    assert "1 pending registration(s) counted" in text
    assert "line 8: anna@testcert.legalmail.it: duplicate" in people.err

    _nothing_paid(pec_emulator)
    oauth = v2.oauth
    assert [(r.method, r.path) for r in oauth.request_log] == [("GET", "/wallet")] * 2
    assert oauth.creations == 0 and oauth.issued == []  # the wallet needs no token
    assert journal.read_bytes() == before  # read, not written
    _no_secret(result, people)


async def test_the_wallet_cannot_pay_v1(
    api: Run,
    pec_emulator: Emulator,
    v1: RunningOAuth,
    source: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAPI_OAUTH_VERSION", "1")
    pec_emulator.wallet = Decimal("30.00")
    flags = ("provision", str(source), "--dry-run", "--prices", str(source.parent / "prices.json"),
             "--oauth-url", v1.url)  # fmt: skip
    result = await api("--json", *flags)
    assert result.code == ExitCode.FAILURE == 1
    estimate = json.loads(result.out)
    assert estimate["wallet"]["credit"] == "30.0" and estimate["wallet"]["service"] == "v1"
    assert (estimate["enough"], estimate["shortfall"], estimate["exit_code"]) == (False, "19.00", 1)
    people = await api(*flags)
    assert people.code == ExitCode.FAILURE
    assert "wallet: 30.00 EUR (OAuth v1): NOT enough, 19.00 EUR short" in people.out
    assert "top up the wallet by at least 19.00 EUR first" in people.out
    _nothing_paid(pec_emulator)
    assert [(r.method, r.path) for r in v1.oauth.request_log] == [("GET", "/credit")] * 2
    _no_secret(result, people)


async def test_without_prices_or_credentials_it_counts(
    api: Run, pec_emulator: Emulator, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAPI_SANDBOX_API_KEY")
    result = await api("--json", "provision", str(source), "--dry-run")
    assert result.code == ExitCode.OK, result.err
    estimate = json.loads(result.out)
    assert estimate["total"] is None and estimate["per_operation"] is None
    assert [(o["operation"], o["mailbox_type"], o["quantity"], o["unit_price"])
            for o in estimate["operations"]] == [
        ("register", "BRONZE", 3, None), ("register", "GOLD", 1, None),
        ("activate", "BRONZE", 4, "0"),
    ]  # fmt: skip
    wallet = estimate["wallet"]
    assert wallet["credit"] is None and wallet["error"] is None
    assert wallet["reason"].startswith("needs OAuth credentials: set OPENAPI_SANDBOX_API_KEY")
    assert (estimate["enough"], estimate["shortfall"]) == (None, None)

    people = await api("provision", str(source), "--dry-run")
    assert people.code == ExitCode.OK
    assert "total: unknown (needs prices: --prices" in people.out
    assert "wallet: unknown (needs OAuth credentials: set OPENAPI_SANDBOX_API_KEY" in people.out
    assert " ".join(people.out.split()).count("register BRONZE 3 ?") == 1
    _nothing_paid(pec_emulator)
    _no_secret(result, people)


async def test_no_journal_and_nothing_to_pay(
    api: Run, pec_emulator: Emulator, v2: RunningOAuthV2, tmp_path: Path
) -> None:
    # no price list needed when nothing is paid: the total is 0, and the credit enough
    source = _write(tmp_path, [_row("bad", tipo="platinum")])
    result = await api("--json", "provision", str(source), "--dry-run", "--oauth-url", v2.url)
    assert result.code == ExitCode.OK, result.err
    estimate = json.loads(result.out)
    assert (estimate["total"], estimate["enough"], estimate["journal_found"]) == ("0", True, False)
    assert not source.with_suffix(".journal.jsonl").exists()  # a dry run creates none
    _nothing_paid(pec_emulator)


async def test_refused_credentials(
    api: Run, pec_emulator: Emulator, v2: RunningOAuthV2, source: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    wrong = "CANARY-wrong-key-0c55"
    monkeypatch.setenv("OPENAPI_SANDBOX_API_KEY", wrong)
    flags = ("provision", str(source), "--dry-run", "--oauth-url", v2.url)
    result = await api("--json", *flags)
    assert result.code == ExitCode.CONFIGURATION
    estimate = json.loads(result.out)  # the estimate all the same, with why
    assert estimate["wallet"]["credit"] is None and estimate["exit_code"] == 6
    assert estimate["wallet"]["error"]["status"] == 401
    assert "OPENAPI_OAUTH_VERSION=1" in estimate["wallet"]["reason"]
    error = json.loads(result.err.splitlines()[-1])
    assert (error["event"], error["exit_code"], error["status"]) == ("error", 6, 401)
    people = await api(*flags)
    assert people.code == ExitCode.CONFIGURATION
    assert "wallet: unknown (could not read it: API error: HTTP 401" in people.out
    assert people.err.splitlines()[-1].startswith("pecapi: could not read the wallet: ")
    for found in (result, people):
        assert wrong not in found.out + found.err
    _no_secret(result, people)
    _nothing_paid(pec_emulator)


async def test_a_price_the_list_lacks_stops_before_anything_is_sent(
    api: Run, pec_emulator: Emulator, v2: RunningOAuthV2, source: Path
) -> None:
    prices = source.parent / "bronze.csv"
    prices.write_text("operation,mailbox_type,price\nregister,BRONZE,8\n", encoding="utf-8")
    flags = ("--dry-run", "--prices", str(prices), "--oauth-url", v2.url)
    result = await api("provision", str(source), *flags)
    assert result.code == ExitCode.CONFIGURATION
    assert result.out == ""
    assert "no price for register of a GOLD mailbox" in result.err
    assert v2.oauth.request_log == []
    _nothing_paid(pec_emulator)


async def test_options_that_go_with_dry_run(api: Run, pec_emulator: Emulator, source: Path) -> None:
    for flags in (("--prices", "p.json"), ("--oauth-url", "http://127.0.0.1:1")):
        result = await api("provision", str(source), *flags)
        assert result.code == ExitCode.USAGE
        assert "goes with --dry-run" in result.err
    _nothing_paid(pec_emulator)


async def test_as_a_process(
    pec_emulator: Emulator, pec_server: RunningEmulator, v2: RunningOAuthV2, source: Path
) -> None:
    # the installed command, as a script runs it; the emulators answer from this loop
    env = subprocess_env() | {
        "OPENAPI_EMAIL": EMAIL, "OPENAPI_SANDBOX_API_KEY": KEY, "OPENAPI_SANDBOX_TOKEN": TOKEN,
    }  # fmt: skip
    env.pop("OPENAPI_OAUTH_VERSION", None)
    pec_emulator.wallet = Decimal("40.00")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi", "--sandbox", "--base-url", pec_server.url, "--json",
        "provision", str(source), "--dry-run", "--prices", str(source.parent / "prices.json"),
        "--oauth-url", v2.url,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    result = Result(process.returncode or 0, out.decode(), err.decode())
    assert result.code == ExitCode.FAILURE, result.err
    estimate: dict[str, Any] = json.loads(result.out)
    assert (estimate["total"], estimate["shortfall"]) == ("49.00", "9.00")
    _nothing_paid(pec_emulator)
    assert [r.path for r in v2.oauth.request_log] == ["/wallet"]
    _no_secret(result)

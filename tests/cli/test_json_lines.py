"""One JSON-lines schema for ``--json``: every line ``demo`` and ``provision`` stream, and
the error object of any command, validate against it (the schema of docs/guides/cli.md,
written out here independently of the code that writes the lines)."""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pecapi import PecClient, to_json
from pecapi.cli import ExitCode
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, RunningEmulator

from .conftest import Result, Run, subprocess_env
from .test_csv_input import _write
from .test_provision import _row

# Every object lists every field it may have (additionalProperties: false): a field the
# documented schema does not name (a leaked secret, a debugging leftover) fails.
ERROR_FIELDS: dict[str, Any] = {
    "type": {"type": "string", "minLength": 1},
    "message": {"type": "string", "minLength": 1, "pattern": "^[^\n]*$"},
    "field": {"type": "string"},
    "status": {"type": "integer"},
    "code": {"type": ["integer", "null"]},
    "request_sent": {"type": "boolean"},
    "method": {"type": "string"},
    "url": {"type": "string"},
    "path": {"type": "string"},
}
ERROR_DETAILS: dict[str, Any] = {
    "type": "object",
    "required": ["type", "message"],
    "additionalProperties": False,
    "properties": ERROR_FIELDS,
}
OUTCOME: dict[str, Any] = {
    "type": "object",
    "required": ["event", "key", "status", "complete", "error"],
    "additionalProperties": False,
    "properties": {
        "event": {"const": "outcome"},
        "key": {"type": "string"},
        "status": {"type": "string", "minLength": 1},  # open-ended: no enum
        "complete": {"type": "boolean"},
        "error": {"anyOf": [{"type": "null"}, ERROR_DETAILS]},
        "line": {"type": ["integer", "null"]},
        "mailbox_id": {"type": ["string", "null"]},
        "steps": {"type": "array", "items": {"type": "string"}},
        "index": {"type": "integer"},
        "stato": {"type": ["string", "null"]},
    },
}
SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": [
        "event",
        "total",
        "statuses",
        "complete",
        "incomplete",
        "remaining",
        "interrupted",
        "exit_code",
    ],
    "additionalProperties": False,
    "properties": {
        "event": {"const": "summary"},
        "total": {"type": "integer", "minimum": 0},
        "statuses": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
        "complete": {"type": "integer", "minimum": 0},
        "incomplete": {"type": "integer", "minimum": 0},
        "remaining": {"type": "integer", "minimum": 0},
        "interrupted": {"enum": [None, "SIGINT", "SIGTERM"]},
        "exit_code": {"type": "integer"},
        "journal": {"type": "string"},  # provision
        "resume": {"type": ["string", "null"]},
        "charges": {  # demo: the emulator's ledger and counters
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["count", "amount"],
                "additionalProperties": False,
                "properties": {
                    "count": {"type": "integer", "minimum": 0},
                    "amount": {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$"},
                },
            },
        },
        "total_charged": {"type": "string"},
        "wallet_before": {"type": "string"},
        "wallet_after": {"type": "string"},
        "requests": {"type": "integer", "minimum": 0},
        "mailboxes_on_account": {"type": "integer", "minimum": 0},
        "seconds": {"type": "number", "minimum": 0},
    },
}
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["event", "type", "message", "exit_code"],
    "additionalProperties": False,
    "properties": {
        "event": {"const": "error"},
        **ERROR_FIELDS,
        "exit_code": {"type": "integer", "minimum": 1},
        "usage": {"type": "string"},
    },
}
LOG: dict[str, Any] = {
    "type": "object",
    "required": ["event", "level", "logger", "message"],
    "additionalProperties": False,
    "properties": {
        "event": {"const": "log"},
        "level": {"enum": ["debug", "info", "warning", "error", "critical"]},
        "logger": {"type": "string", "minLength": 1},
        "message": {"type": "string", "pattern": "^[^\n]*$"},
        "exception": ERROR_DETAILS,
    },
}
AMOUNT: dict[str, Any] = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
ESTIMATE: dict[str, Any] = {
    "type": "object",
    "required": [
        "event", "file", "rows", "journal", "journal_found", "operations", "currency",
        "prices", "total", "per_operation", "wallet", "enough", "shortfall", "problems",
        "exit_code",
    ],
    "additionalProperties": False,
    "properties": {
        "event": {"const": "estimate"},
        "file": {"type": "string"},
        "rows": {
            "type": "object",
            "required": ["total", "register", "activate", "done", "awaiting_activation",
                         "pending", "invalid", "duplicate"],
            "additionalProperties": COUNT,
        },
        "journal": {"type": "string"},
        "journal_found": {"type": "boolean"},
        "operations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["operation", "mailbox_type", "quantity", "paid", "unit_price",
                             "subtotal"],
                "properties": {
                    "operation": {"type": "string", "pattern": "^[a-z_]+$"},
                    "mailbox_type": {"type": "string", "pattern": "^[A-Z_]+$"},
                    "quantity": {"type": "integer", "minimum": 1},
                    "paid": {"type": "boolean"},
                    "unit_price": {"anyOf": [{"type": "null"}, AMOUNT]},
                    "subtotal": {"anyOf": [{"type": "null"}, AMOUNT]},
                },
            },
        },
        "currency": {"const": "EUR"},
        "prices": {"type": ["string", "null"]},
        "total": {"anyOf": [{"type": "null"}, AMOUNT]},
        "per_operation": {
            "anyOf": [{"type": "null"}, {"type": "object", "additionalProperties": AMOUNT}]
        },
        "wallet": {
            "type": "object",
            "required": ["credit", "service", "reason", "error"],
            "properties": {
                "credit": {"anyOf": [{"type": "null"}, AMOUNT]},
                "service": {"enum": [None, "v1", "v2"]},
                "reason": {"type": ["string", "null"]},
                "error": {"anyOf": [{"type": "null"}, ERROR_DETAILS]},
            },
        },
        "enough": {"type": ["boolean", "null"]},
        "shortfall": {"anyOf": [{"type": "null"}, AMOUNT]},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "line", "status", "error"],
                "properties": {
                    "key": {"type": "string"},
                    "line": {"type": ["integer", "null"]},
                    "status": {"type": "string", "minLength": 1},
                    "error": ERROR_DETAILS,
                },
            },
        },
        "exit_code": {"type": "integer"},
    },
}  # fmt: skip
LINE: dict[str, Any] = {"oneOf": [OUTCOME, SUMMARY, ESTIMATE, ERROR, LOG]}
VALIDATOR = jsonschema.Draft202012Validator(LINE)


def validate(line: str) -> dict[str, Any]:
    event = json.loads(line)
    VALIDATOR.validate(event)
    return event  # type: ignore[no-any-return]


def stream(result: Result) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The outcomes and the summary of a streamed run, every line validated; checks the
    summary's arithmetic and that it is the last line."""
    events = [validate(line) for line in result.out.splitlines()]
    *outcomes, summary = events
    assert summary["event"] == "summary"
    assert all(e["event"] == "outcome" for e in outcomes)
    assert summary["exit_code"] == result.code
    assert sum(summary["statuses"].values()) == len(outcomes)
    assert summary["complete"] == sum(e["complete"] for e in outcomes)
    assert summary["complete"] + summary["incomplete"] + summary["remaining"] == summary["total"]
    return outcomes, summary


def test_the_schema_refuses_the_old_shapes() -> None:
    old = [
        {"event": "mailbox", "index": 0, "casella_pec": "a@b.it", "outcome": "done"},  # demo
        {"key": "a@b.it", "line": 2, "status": "activated", "complete": True, "error": None},
        {"event": "summary", "statuses": {"activated": 1}, "journal": "x"},  # no counts
        {"event": "error", "message": "pecapi: boom"},  # no type, no exit_code
    ]
    for event in old:
        with pytest.raises(jsonschema.ValidationError):
            VALIDATOR.validate(event)


async def test_demo_stream(run_cli: Run) -> None:
    result = await run_cli("demo", "--count", "6", "--concurrency", "3", "--json")
    assert result.code == ExitCode.OK, result.err
    assert result.err == ""
    outcomes, summary = stream(result)
    assert sorted(e["index"] for e in outcomes) == list(range(6))
    assert {(e["status"], e["complete"], e["stato"]) for e in outcomes} == {("done", True, "evasa")}
    assert all(e["key"].endswith("@testcert.legalmail.it") and e["mailbox_id"] for e in outcomes)
    assert summary["statuses"] == {"done": 6}
    assert (summary["total"], summary["remaining"], summary["interrupted"]) == (6, 0, None)
    assert summary["charges"]["register"] == {"count": 6, "amount": "48.00"}


async def test_provision_stream(
    api: Run, pec_emulator: Emulator, pec_server: RunningEmulator, tmp_path: Path
) -> None:
    pec_emulator.seed_mailbox("old@testcert.legalmail.it", stato="evasa")
    rows = [
        _row("anna"),
        _row("old"),
        _row("bad", tipo="platinum"),
        _row("anna"),
        _row("carla"),
    ]
    source = _write(tmp_path, rows)
    pec_emulator.faults.once(Fault.status(400), method="POST", path="/pec")
    result = await api("--json", "--retries", "0", "provision", str(source), "--concurrency", "1")
    assert result.code == ExitCode.FAILURE
    assert result.err == ""
    outcomes, summary = stream(result)
    by_line = {e["line"]: e for e in outcomes}
    assert {n: e["status"] for n, e in by_line.items()} == {
        2: "failed",
        3: "existing",
        4: "invalid",
        5: "duplicate",
        6: "activated",
    }  # fmt: skip  (the fault met the first registration: anna's)
    failed = by_line[2]["error"]
    assert (failed["status"], failed["method"]) == (400, "POST")
    assert by_line[4]["error"]["field"] == "tipo_casella"
    assert by_line[3]["mailbox_id"] and by_line[3]["error"] is None
    assert summary["statuses"] == {
        "failed": 1, "existing": 1, "invalid": 1, "duplicate": 1, "activated": 1,
    }  # fmt: skip
    assert summary["resume"] == (
        f"pecapi --sandbox --base-url {pec_server.url} --json --retries 0 provision {source}"
        " --concurrency 1"
    )  # the same command line: the journal makes it a resumption
    assert summary["journal"] == str(source.with_suffix(".journal.jsonl"))


async def test_provision_stream_when_the_wallet_runs_dry(
    api: Run, pec_emulator: Emulator, tmp_path: Path
) -> None:
    # statuses the command does not know (here whatever the library makes of a 402)
    # are streamed and counted like the others
    pec_emulator.wallet = Decimal("10.00")  # one BRONZE registration (8.00), not two
    source = _write(tmp_path, [_row(f"user{i}") for i in range(4)])
    result = await api("--json", "provision", str(source), "--concurrency", "1")
    assert result.code == ExitCode.FAILURE
    _, summary = stream(result)
    assert summary["complete"] == 1 and summary["incomplete"] == 3
    assert len(pec_emulator.mailboxes) == 1


async def test_provision_dry_run_estimate(
    api: Run, pec_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAPI_EMAIL", "OPENAPI_SANDBOX_API_KEY"):
        monkeypatch.delenv(name, raising=False)  # the wallet unknown: nothing sent at all
    source = _write(tmp_path, [_row("anna"), _row("bad", tipo="platinum"), _row("anna")])
    prices = tmp_path / "prices.json"
    prices.write_text('{"register": {"BRONZE": "8.00"}}', encoding="utf-8")
    for extra in ((), ("--prices", str(prices))):
        result = await api("--json", "provision", str(source), "--dry-run", *extra)
        assert result.code == ExitCode.OK, result.err
        assert result.err == ""
        [line] = result.out.splitlines()  # one object, alone
        estimate = validate(line)
        assert estimate["event"] == "estimate" and estimate["exit_code"] == result.code
        assert estimate["rows"]["total"] == 3 and len(estimate["problems"]) == 2
        assert estimate["total"] == (None if not extra else "8.00")
    with pytest.raises(jsonschema.ValidationError):  # amounts are exact decimal strings
        VALIDATOR.validate({**estimate, "total": 8.0})
    assert pec_emulator.requests == []


async def test_errors_of_every_kind(
    api: Run, run_cli: Run, pec_emulator: Emulator, tmp_path: Path, closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    refused = f"http://127.0.0.1:{closed_port}"
    cases: list[tuple[Result, ExitCode, str | None]] = [
        (await api("--json", "mailboxes", "get", "0" * 24), ExitCode.API_ERROR, "NotFoundError"),
        (await run_cli("--json", "--sandbox", "--base-url", refused, "--retries", "0",
                       "mailboxes", "list"), ExitCode.TRANSPORT_ERROR, None),
        (await api("--json", "mailboxes", "change-type", "a" * 24, "PLATINUM"),
         ExitCode.INVALID_INPUT, "ValidationError"),
        (await api("--json", "provision", str(tmp_path / "none.csv")),
         ExitCode.INVALID_INPUT, "InputFileError"),
        (await api("--json", "mailboxes", "nope"), ExitCode.USAGE, "UsageError"),
        (await run_cli("--json", "--sandbox", "--base-url", "http://example.org", "mailboxes",
                       "list"),
         ExitCode.CONFIGURATION, "ConfigurationError"),
    ]  # fmt: skip
    for result, code, kind in cases:
        assert result.code == code, result.err
        assert result.out == ""
        [line] = result.err.splitlines()
        error = validate(line)
        assert (error["event"], error["exit_code"]) == ("error", code)
        assert kind is None or error["type"] == kind
    transport = json.loads(cases[1][0].err)
    assert transport["request_sent"] is False and "nothing was sent" in transport["message"]
    assert json.loads(cases[3][0].err)["path"] == str(tmp_path / "none.csv")
    monkeypatch.delenv("OPENAPI_TOKEN", raising=False)
    no_token = await run_cli("--json", "mailboxes", "list")
    assert no_token.code == ExitCode.CONFIGURATION
    assert "OPENAPI_TOKEN" in validate(no_token.err)["message"]
    assert pec_emulator.count("GET", "/pec") == 0


async def test_a_model_is_printed_as_pecapi_to_json(
    api: Run, pec_emulator: Emulator, pec_server: RunningEmulator
) -> None:
    # one converter: the command's JSON of a model is the library's pecapi.to_json
    box_id = pec_emulator.seed_mailbox("a@testcert.legalmail.it", stato="evasa")
    async with PecClient(DEFAULT_TOKEN, sandbox=True, base_url=pec_server.url) as client:
        box = await client.mailboxes.get(box_id)
        listed = await client.mailboxes.list()
        domain = await client.domains.check("legalmail.it")
    got = await api("--json", "mailboxes", "get", box_id)
    assert got.json() == to_json(box)
    assert None not in got.json().values()  # unset fields are left out, as to_json does
    assert (await api("--json", "mailboxes", "list")).json() == [to_json(m) for m in listed]
    assert (await api("--json", "domains", "check", "legalmail.it")).json() == to_json(domain)


def test_the_schema_refuses_a_field_it_does_not_name() -> None:
    # e.g. a secret leaking into a line: every object lists all of its fields
    valid = [
        {"event": "outcome", "key": "a@b.it", "status": "activated", "complete": True,
         "error": None, "line": 2, "mailbox_id": "x", "steps": []},
        {"event": "summary", "total": 1, "statuses": {"activated": 1}, "complete": 1,
         "incomplete": 0, "remaining": 0, "interrupted": None, "exit_code": 0},
        {"event": "error", "type": "ConfigurationError", "message": "no token",
         "exit_code": 6},
        {"event": "log", "level": "warning", "logger": "pecapi", "message": "careful"},
    ]  # fmt: skip
    for event in valid:
        VALIDATOR.validate(event)
        with pytest.raises(jsonschema.ValidationError):
            VALIDATOR.validate({**event, "token": "canary"})
    failed = {**valid[0], "error": {"type": "X", "message": "m", "token": "canary"}}
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(failed)


async def test_provision_out_of_credit_writes_only_json_on_stderr(tmp_path: Path) -> None:
    # A real process: there the library's warning ("the wallet cannot pay...") would
    # reach stderr as text through Python's last-resort handler (under pytest, in-process,
    # pytest's own logging handlers hide that).
    source = _write(tmp_path, [_row(f"user{i}") for i in range(4)])
    emulator = Emulator(credit=Decimal("10.00"))  # one BRONZE registration (8.00), not two
    async with emulator.serve() as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pecapi", "--sandbox", "--base-url", server.url, "--json",
            "provision", str(source), "--concurrency", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**subprocess_env(), "OPENAPI_SANDBOX_TOKEN": DEFAULT_TOKEN},
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ExitCode.FAILURE, err.decode()
    logs = [validate(line) for line in err.decode().splitlines()]
    assert logs and all(e["event"] == "log" for e in logs)
    [warning] = [e for e in logs if "wallet cannot pay" in e["message"]]
    assert (warning["level"], warning["logger"]) == ("warning", "pecapi")
    _, summary = stream(Result(proc.returncode, out.decode(), err.decode()))
    assert summary["statuses"] == {"activated": 1, "no_credit": 3}
    assert len(emulator.charges("register")) == 1


async def test_verbose_json_reports_retries_as_log_events(api: Run, pec_emulator: Emulator) -> None:
    pec_emulator.faults.once(Fault.status(503, body="html"))
    result = await api("--json", "-v", "mailboxes", "list")
    assert result.code == ExitCode.OK, result.err
    assert result.json() == []
    [retry] = [validate(line) for line in result.err.splitlines()]
    assert (retry["event"], retry["level"], retry["logger"]) == ("log", "info", "pecapi")
    assert retry["message"].startswith("retrying mailboxes.list after attempt 1")
    pec_emulator.faults.once(Fault.status(503, body="html"))
    quiet = await api("--json", "mailboxes", "list")  # without -v: the retry is not told
    assert (quiet.code, quiet.err) == (ExitCode.OK, "")

"""Failures: usage (2), API (3), transport (4), invalid input (5), configuration (6)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from pecapi.cli import ExitCode
from pecapi.testing import Emulator, Fault

from .conftest import Result, Run
from .test_commands import BOX, REGISTER_FLAGS


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pecapi: ")
    return lines[0]


def json_error(result: Result) -> dict[str, Any]:
    """The JSON error object of a command run with --json: alone on stderr, nothing on
    stdout, its exit_code the process's (its schema: tests/cli/test_json_lines.py)."""
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    error = json.loads(lines[0])
    assert error["event"] == "error"
    assert error["exit_code"] == result.code
    return cast("dict[str, Any]", error)


# -- usage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["mailboxes"],
        ["mailboxes", "frobnicate"],
        ["mailboxes", "get"],
        ["mailboxes", "renew", "x", "--anni", "two"],
        ["mailboxes", "activate", "x"],  # --document is required
        ["mailboxes", "activation-form", "x"],  # -o is required
        ["mailboxes", "list", "--no-such-flag"],
        ["mailboxes", "list", "--retries", "-1"],
        ["demo", "--count", "0"],
        ["--timeout", "abc", "mailboxes", "list"],  # not a number
        ["--timeout", "0", "mailboxes", "list"],  # out of range: the same code
        ["--timeout", "-1", "mailboxes", "list"],
        ["mailboxes", "list", "--timeout", "nan"],
        ["mailboxes", "list", "--timeout", "1e400"],
        ["provision", "x.csv", "--delimiter", ":"],
    ],
)
async def test_bad_arguments_are_usage_errors(
    api: Run, emulator: Emulator, argv: list[str]
) -> None:
    result = await api(*argv)
    assert result.code == ExitCode.USAGE == 2
    assert result.out == ""
    assert "usage: pecapi" in result.err
    error = json_error(await api(*argv, "--json"))
    assert error["type"] == "UsageError"
    assert error["exit_code"] == ExitCode.USAGE
    assert error["message"] in result.err and error["usage"].startswith("usage: pecapi")
    assert emulator.requests == []


async def test_help_lists_every_group_and_exit_codes(run_cli: Run) -> None:
    result = await run_cli("--help")
    assert result.code == 0
    for word in ("domains", "mailboxes", "comunica-pec", "demo", "emulator", "exit codes"):
        assert word in result.out
    sub = await run_cli("mailboxes", "renew", "--help")
    assert sub.code == 0
    assert "GET /pec/{id}/rinnovo" in sub.out and "paid" in sub.out


# -- invalid input: nothing is sent ------------------------------------------------------


def flags_with(name: str, value: str) -> list[str]:
    flags = list(REGISTER_FLAGS)
    flags[flags.index(name) + 1] = value
    return flags


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["mailboxes", "register", *flags_with("--tipo-casella", "PLATINUM")], "tipo_casella"),
        (["mailboxes", "register", *flags_with("--data-nascita-richiedente", "1982-04-11")],
         "data_nascita_richiedente"),
        (["mailboxes", "register", *flags_with("--casella-pec", "mario@legalmail.it")],
         "casella_pec"),  # a production domain in the sandbox
        (["mailboxes", "register", *REGISTER_FLAGS[2:]], "casella_pec"),  # missing
        (["mailboxes", "register", *REGISTER_FLAGS, "--callback-method", "GET",
          "--callback-url", "https://example.org"], "callback.method"),
        (["mailboxes", "register", *REGISTER_FLAGS, "--callback-data", "[1]",
          "--callback-url", "https://example.org"], "callback.data"),
        (["mailboxes", "change-type", "a" * 24, "PLATINUM"], "tipo_casella"),
        (["mailboxes", "change-space", "a" * 24, "--spazio-disco", "1000"], "spazio_disco"),
        (["mailboxes", "change-space", "a" * 24], "spazio_disco"),
        (["mailboxes", "renew", "a" * 24, "--anni", "0"], "anni"),
        (["mailboxes", "available", "not-an-address"], "pec"),
        (["mailboxes", "add-user", "a" * 24, "--nome", "A", "--cognome", "B",
          "--descrizione", "C", "--email-gestione-password", "nope"], "email_gestione_password"),
        (["comunica-pec", "create", "--nome", "Mario"], "casella_pec"),
    ],
)  # fmt: skip
async def test_invalid_values_name_the_field_and_send_nothing(
    api: Run, emulator: Emulator, argv: list[str], field: str
) -> None:
    result = await api(*argv)
    assert result.code == ExitCode.INVALID_INPUT == 5
    assert result.out == ""
    line = one_line(result.err)
    assert "invalid input, nothing sent" in line
    assert f" {field}" in line
    as_json = await api(*argv, "--json")
    error = json_error(as_json)
    assert error["exit_code"] == ExitCode.INVALID_INPUT
    assert error["type"] == "ValidationError"
    assert error["field"] == field
    assert error["message"] == line.removeprefix("pecapi: ")
    assert emulator.requests == []


async def test_bad_documents_are_refused_before_sending(
    api: Run, emulator: Emulator, files
) -> None:
    box_id = emulator.seed_mailbox(BOX, stato="registrata")
    not_pdf = await api("mailboxes", "activate", box_id, "--document", str(files / "notes.txt"))
    missing = await api("mailboxes", "activate", box_id, "--document", str(files / "gone.pdf"))
    pdf_as_p7m = await api(
        "comunica-pec", "upload-documents", "b" * 24, "--document", str(files / "form.pdf")
    )
    for result in (not_pdf, missing, pdf_as_p7m):
        assert result.code == ExitCode.INVALID_INPUT
        assert "documenti" in one_line(result.err)
    assert "notes.txt" in not_pdf.err and "gone.pdf" in missing.err
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("not json", "from_json"),
        ("[1, 2]", "from_json"),
        (json.dumps({"casella_pec": BOX, "colore": "blu"}), "colore"),
        (json.dumps({"casella_pec": BOX, "callback": {"url": "https://x.org", "oops": 1}}),
         "callback.oops"),
    ],
)  # fmt: skip
async def test_bad_from_json_files(
    api: Run, emulator: Emulator, tmp_path, content: str, field: str
) -> None:
    path = tmp_path / "body.json"
    path.write_text(content)
    result = await api("mailboxes", "register", "--from-json", str(path))
    assert result.code == ExitCode.INVALID_INPUT
    assert f" {field}" in one_line(result.err)
    assert emulator.requests == []


async def test_from_json_file_that_does_not_exist(api: Run, tmp_path) -> None:
    result = await api("comunica-pec", "create", "--from-json", str(tmp_path / "nope.json"))
    assert result.code == ExitCode.INVALID_INPUT
    assert "nope.json" in one_line(result.err)


# -- API errors --------------------------------------------------------------------------


async def test_unknown_id_is_one_line_with_status_and_code(api: Run, emulator: Emulator) -> None:
    result = await api("mailboxes", "get", "0" * 24)
    assert result.code == ExitCode.API_ERROR == 3
    assert result.out == ""
    line = one_line(result.err)
    assert "HTTP 404" in line and "code 202" in line and "no pec found" in line
    error = json_error(await api("mailboxes", "get", "0" * 24, "--json"))
    assert (error["type"], error["status"], error["code"]) == ("NotFoundError", 404, 202)
    assert error["method"] == "GET" and error["url"].endswith("/pec/" + "0" * 24)
    assert error["exit_code"] == ExitCode.API_ERROR
    assert emulator.count("GET", "/pec/*") == 2


async def test_form_error_and_refused_operation(api: Run, emulator: Emulator, tmp_path) -> None:
    box_id = emulator.seed_mailbox(BOX, stato="evasa")  # no activation form once active
    form = await api("mailboxes", "activation-form", box_id, "-o", str(tmp_path / "f.pdf"))
    assert form.code == ExitCode.API_ERROR
    assert "HTTP 406" in one_line(form.err)
    assert not (tmp_path / "f.pdf").exists()
    emulator.wallet = 0
    renew = await api("mailboxes", "renew", box_id)
    assert renew.code == ExitCode.API_ERROR
    assert "HTTP 402" in one_line(renew.err) and "Insufficient Credit" in renew.err


async def test_wrong_token_is_an_api_error(api: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", "not-the-emulators")
    result = await api("mailboxes", "list")
    assert result.code == ExitCode.API_ERROR
    assert "HTTP 401" in one_line(result.err)


async def test_server_error_is_retried_then_reported(api: Run, emulator: Emulator) -> None:
    emulator.faults.once(Fault.status(503, body="html"))
    retried = await api("-v", "mailboxes", "list")  # --json -v: test_json_lines.py
    assert retried.code == 0
    assert "(none)" in retried.out
    assert emulator.count("GET", "/pec") == 2
    assert "pecapi: retrying mailboxes.list after attempt 1" in retried.err
    emulator.faults.once(Fault.status(503, body="html"))
    once = await api("--retries", "0", "mailboxes", "list")
    assert once.code == ExitCode.API_ERROR
    assert "HTTP 503" in one_line(once.err)
    assert emulator.count("GET", "/pec") == 3


# -- transport errors --------------------------------------------------------------------


async def test_connection_refused(run_cli: Run, closed_port: int) -> None:
    result = await run_cli(
        "--sandbox", "--base-url", f"http://127.0.0.1:{closed_port}", "mailboxes", "list"
    )
    assert result.code == ExitCode.TRANSPORT_ERROR == 4
    assert result.out == ""
    line = one_line(result.err)
    assert "transport error" in line and "nothing was sent" in line


async def test_dropped_paid_request_is_reconciled_not_resent(api: Run, emulator: Emulator) -> None:
    box_id = emulator.seed_mailbox(BOX)
    emulator.faults.once(Fault.drop_after(), path="/pec/*/rinnovo")
    result = await api("mailboxes", "renew", box_id, "--json")
    assert result.code == 0, result.err
    assert result.json()["id"] == box_id
    assert len(emulator.charges("renewal", box_id)) == 1  # found done, not sent again
    assert emulator.count("GET", "/pec/*/rinnovo") == 1


async def test_dropped_paid_request_without_retries_warns_it_may_have_been_processed(
    api: Run, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox(BOX)
    emulator.faults.once(Fault.drop_after(), path="/pec/*/rinnovo")
    result = await api("--retries", "0", "mailboxes", "renew", box_id)
    assert result.code == ExitCode.TRANSPORT_ERROR
    assert "may have been processed" in one_line(result.err)
    assert len(emulator.charges("renewal", box_id)) == 1  # it was: the user must check


async def test_timeout(api: Run, emulator: Emulator) -> None:
    emulator.faults.once(Fault.latency(2.0))
    result = await api("--timeout", "0.2", "--retries", "0", "mailboxes", "list")
    assert result.code == ExitCode.TRANSPORT_ERROR
    assert "transport error" in one_line(result.err)


# -- configuration -----------------------------------------------------------------------


async def test_no_token(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAPI_SANDBOX_TOKEN")
    sandbox = await run_cli("--sandbox", "mailboxes", "list")
    production = await run_cli("mailboxes", "list")
    assert sandbox.code == production.code == ExitCode.CONFIGURATION == 6
    assert "OPENAPI_SANDBOX_TOKEN" in one_line(sandbox.err)
    assert "OPENAPI_TOKEN" in one_line(production.err)


async def test_plain_http_to_a_remote_host_is_refused(run_cli: Run) -> None:
    result = await run_cli("--sandbox", "--base-url", "http://pec.example.org", "mailboxes", "list")
    assert result.code == ExitCode.CONFIGURATION
    assert "plain http" in one_line(result.err)


async def test_unreadable_token_file(run_cli: Run, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path in (tmp_path / "missing", empty):
        result = await run_cli("--sandbox", "--token-file", str(path), "mailboxes", "list")
        assert result.code == ExitCode.CONFIGURATION
        assert str(path) in one_line(result.err)

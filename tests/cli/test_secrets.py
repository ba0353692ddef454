"""The token is never printed: not on success, not in errors, not from a token file."""

from __future__ import annotations

import json
import logging

import pytest

from pecapi.cli import ExitCode
from pecapi.testing import Emulator, Fault

from .conftest import Run

CANARY = "canary-7f3a9c1e-do-not-print"


@pytest.fixture
def pec_emulator() -> Emulator:  # overrides the plugin's: accepts only the canary
    return Emulator(tokens={CANARY: None})


async def test_canary_token_never_printed(
    api: Run, run_cli: Run, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path,
    closed_port: int, pec_server,
) -> None:  # fmt: skip
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", CANARY)
    box_id = emulator.seed_mailbox("a@testcert.legalmail.it")
    token_file = tmp_path / "token"
    token_file.write_text(CANARY + "\n")
    results = [
        await api("mailboxes", "list"),
        await api("mailboxes", "get", box_id, "--json"),
        await api("mailboxes", "get", "0" * 24),  # 404
        await api("mailboxes", "change-type", box_id, "PLATINUM"),  # invalid input
        await run_cli("--sandbox", "--base-url", f"http://127.0.0.1:{closed_port}",
                      "--retries", "0", "mailboxes", "list"),  # transport
        await run_cli("--sandbox", "--base-url", "http://example.org", "mailboxes", "list"),
        await run_cli("--sandbox", "--base-url", pec_server.url, "--token-file",
                      str(token_file), "mailboxes", "list", "--json"),
        await run_cli("--help"),
    ]  # fmt: skip
    assert [r.code for r in results] == [0, 0, 3, 5, 4, 6, 0, 0]
    assert results[-2].json()[0]["id"] == box_id  # the token file's token was used
    for result in results:
        assert CANARY not in result.out
        assert CANARY not in result.err
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", CANARY + "-wrong")  # a 401 does not echo it
    refused = await api("mailboxes", "list")
    assert refused.code == ExitCode.API_ERROR
    assert "canary" not in refused.out + refused.err


async def test_token_with_whitespace_is_refused_without_echo(run_cli: Run, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{CANARY} {CANARY}\n")
    result = await run_cli("--sandbox", "--token-file", str(token_file), "mailboxes", "list")
    assert result.code == ExitCode.CONFIGURATION
    assert CANARY not in result.out + result.err


async def test_verbose_runs_through_faults_never_print_the_token(
    api: Run, emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", CANARY)
    box_id = emulator.seed_mailbox("a@testcert.legalmail.it")
    faults = [Fault.drop_after(), Fault.truncated_body(), Fault.status(503), Fault.latency(2)]
    results = []
    for fault in faults:
        emulator.faults.next(2, fault)
        argv = ("--verbose", "--retries", "1", "--timeout", "0.3", "mailboxes", "get", box_id)
        results.append(await api(*argv))
        emulator.faults.clear()
    assert all(r.code != 0 for r in results)
    assert any("attempt" in r.err for r in results)  # verbose did say what happened
    for result in results:
        assert CANARY not in result.out + result.err
    assert not any(CANARY in r.getMessage() + repr(r.args) for r in caplog.records)


async def test_canary_never_in_json_errors(
    api: Run, run_cli: Run, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path,
    closed_port: int, pec_server,
) -> None:  # fmt: skip
    """The --json error objects (type, message, url, usage...) carry no token either."""
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", CANARY)
    box_id = emulator.seed_mailbox("a@testcert.legalmail.it")
    token_file = tmp_path / "token"
    token_file.write_text(f"{CANARY} {CANARY}\n")  # refused: whitespace inside
    results = [
        await api("--json", "mailboxes", "get", "0" * 24),  # 404
        await api("--json", "mailboxes", "change-type", box_id, "PLATINUM"),  # invalid input
    ]
    emulator.faults.once(Fault.status(503))
    results += [
        await api("--json", "--retries", "0", "mailboxes", "list"),  # 503
        await run_cli("--json", "--sandbox", "--base-url", f"http://127.0.0.1:{closed_port}",
                      "--retries", "0", "mailboxes", "list"),  # transport
        await run_cli("--json", "--sandbox", "--base-url", "http://example.org",
                      "mailboxes", "list"),  # configuration
        await run_cli("--json", "--sandbox", "--base-url", pec_server.url, "--token-file",
                      str(token_file), "mailboxes", "list"),  # configuration, from the file
        await run_cli("--json", "--sandbox", "--base-url", pec_server.url, "--token-file",
                      str(token_file), "mailboxes", "frobnicate"),  # usage
    ]  # fmt: skip
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", CANARY + "-wrong")
    results.append(await api("--json", "mailboxes", "list"))  # 401
    assert [r.code for r in results] == [3, 5, 3, 4, 6, 6, 2, 3]
    for result in results:
        error = json.loads(result.err)
        assert error["event"] == "error" and error["exit_code"] == result.code
        assert result.out == ""
        assert "canary" not in result.err
    assert json.loads(results[-1].err)["status"] == 401

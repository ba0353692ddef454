"""``pecapi demo``, ``pecapi emulator`` and the entry points, run as a user would."""

from __future__ import annotations

import asyncio
import json
import re
import sys

import aiohttp

from pecapi.cli import ExitCode, main
from pecapi.testing import DEFAULT_TOKEN, RunningEmulator

from .conftest import ESC, subprocess_env


def test_demo_summary_without_a_terminal(capsys) -> None:
    code = main(["demo", "--count", "12", "--concurrency", "5"])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    assert ESC not in out and "\r" not in out  # no live display when not a terminal
    assert "provisioning 12 sandbox mailboxes" in out
    assert "12/12 mailboxes (0 failed)" in out
    assert re.search(r"provisioned 12 of 12 mailboxes in \d+\.\d\d s", out)
    assert re.search(r"register\s+12\s+96\.00", out)  # 12 BRONZE registrations at 8.00
    assert re.search(r"renewal\s+12\s+96\.00", out)
    assert re.search(r"total\s+24\s+192\.00", out)
    assert "wallet: 1200.00 -> 1008.00 EUR" in out
    assert err == ""


def test_demo_json_lines(capsys) -> None:
    code = main(["demo", "--count", "7", "--concurrency", "3", "--json"])
    out, _ = capsys.readouterr()
    assert code == ExitCode.OK
    events = [json.loads(line) for line in out.splitlines()]
    mailboxes = [e for e in events if e["event"] == "outcome"]
    [summary] = [e for e in events if e["event"] == "summary"]
    assert events[-1] is summary
    assert len(mailboxes) == len(events) - 1  # the schema: tests/cli/test_json_lines.py
    assert sorted(e["index"] for e in mailboxes) == list(range(7))
    assert {e["status"] for e in mailboxes} == {"done"}
    assert all(e["stato"] == "evasa" and e["mailbox_id"] for e in mailboxes)
    assert summary["complete"] == summary["total"] == summary["mailboxes_on_account"] == 7
    assert summary["charges"]["register"] == {"count": 7, "amount": "56.00"}
    assert summary["charges"]["renewal"]["count"] == 7
    assert summary["requests"] >= 7 * 5 + 1  # 5 calls per mailbox, then the list


async def run_module(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=subprocess_env(),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_python_m_pecapi_against_the_emulator(pec_server: RunningEmulator) -> None:
    box_id = pec_server.emulator.seed_mailbox("a@testcert.legalmail.it")
    env_token = {"OPENAPI_SANDBOX_TOKEN": DEFAULT_TOKEN}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi", "--sandbox", "--base-url", pec_server.url,
        "mailboxes", "list",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**subprocess_env(), **env_token},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert box_id in out.decode() and ESC not in out.decode()


async def test_python_m_pecapi_demo_alias() -> None:
    code, out, err = await run_module("-m", "pecapi.demo", "--count", "3")
    assert code == 0, err
    assert "provisioned 3 of 3 mailboxes" in out
    code, _, err = await run_module("-m", "pecapi.demo", "--count", "nope")
    assert code == ExitCode.USAGE
    assert "usage: pecapi demo" in err


async def test_emulator_subcommand_serves_until_terminated() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi", "emulator", "--port", "0", "--token", "t0k",
        "--credit", "42", "--production",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=subprocess_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        async with (
            aiohttp.ClientSession(headers={"Authorization": "Bearer t0k"}) as session,
            session.get(url + "/verifica_pec/a@legalmail.it") as response,
        ):
            assert response.status == 200
            assert (await response.json())["data"] == {"available": True}
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "production emulator" in err.decode()
    assert "Traceback" not in err.decode()


def test_demo_progress_bar_on_a_terminal(capsys, monkeypatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stdout as a terminal
    code = main(["demo", "--count", "5", "--concurrency", "2"])
    out, _ = capsys.readouterr()
    assert code == ExitCode.OK
    assert ESC in out  # the live display was drawn
    assert "5/5" in out  # the bar's M/N column at the end
    assert "provisioned 5 of 5 mailboxes" in out

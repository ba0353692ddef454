"""`python -m pecapi.testing` and the pytest plugin, each run in a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import textwrap

import aiohttp
import pytest

from pecapi.testing import DEFAULT_TOKEN, Emulator
from pecapi.testing.__main__ import emulator_from_args, parse_args


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # run as the user would: the package as installed / on PYTHONPATH, not the cwd
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    return env


async def test_module_entry_point_serves_until_terminated(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pecapi.testing",
        "--port",
        "0",
        "--token",
        "cli-token",
        "--credit",
        "50",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
        url = line.decode().strip()
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as s:
            headers = {"Authorization": "Bearer cli-token"}
            async with s.get(url + "/domini_pec/legalmail.it", headers=headers) as r:
                assert r.status == 200
                assert (await r.json())["message"] == "legalmail.it found!"
            async with s.get(url + "/pec", headers={"Authorization": "Bearer other"}) as r:
                assert r.status == 401
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr


def test_parse_args():
    args = parse_args(["--production", "--credit", "12.5", "--auto-process", "--latency", "0.05"])
    assert args.production
    assert args.auto_process
    assert str(args.credit) == "12.5"
    assert args.latency == 0.05
    assert args.port == 8080
    assert args.host == "127.0.0.1"
    assert args.token == DEFAULT_TOKEN


PLUGIN_TEST = """
    import aiohttp
    import pytest

    from pecapi.testing import DEFAULT_TOKEN, Emulator, RunningEmulator


    def test_emulator(pec_emulator):
        assert isinstance(pec_emulator, Emulator)
        assert pec_emulator.environment == "sandbox"


    @pytest.mark.asyncio
    async def test_server(pec_server):
        assert isinstance(pec_server, RunningEmulator)
        pec_server.emulator.seed_mailbox("a@testcert.legalmail.it")
        async with aiohttp.ClientSession() as s:
            headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
            async with s.get(pec_server.url + "/pec", headers=headers) as r:
                assert r.status == 200
        assert pec_server.emulator.count("GET", "/pec") == 1
"""


async def test_pytest_plugin_in_a_user_project(tmp_path):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["pecapi.testing.pytest_plugin"]\n')
    (tmp_path / "test_user.py").write_text(textwrap.dedent(PLUGIN_TEST))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-W",
        "error",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env=_env(),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, out.decode()
    assert b"2 passed" in out


async def test_plugin_fixtures_here(pec_emulator, pec_server):
    assert pec_server.emulator is pec_emulator
    assert isinstance(pec_emulator, Emulator)
    async with (
        aiohttp.ClientSession() as s,
        s.get(pec_server.url + "/verifica_pec/a@testcert.legalmail.it") as r,
    ):
        assert r.status == 401


def _help_of(argv: list[str], capsys) -> str:
    from pecapi.cli.app import build_parser

    parse = build_parser().parse_args if argv else parse_args
    with pytest.raises(SystemExit) as exit_:
        parse([*argv, "--help"])
    assert exit_.value.code == 0
    return str(capsys.readouterr().out)


def _entries(text: str) -> dict[str, str]:
    """option -> its help, from argparse's output (an entry starts "  --option")."""
    entries: dict[str, str] = {}
    option = ""
    for line in text.splitlines():
        found = re.match(r"  (--[\w-]+)", line)
        if found:
            option = found.group(1)
        if option:
            entries[option] = entries.get(option, "") + " " + " ".join(line.split())
    return entries


@pytest.mark.parametrize("argv", [[], ["emulator"]], ids=["python -m pecapi.testing", "pecapi"])
def test_help_shows_every_default(argv: list[str], capsys) -> None:
    raw = _help_of(argv, capsys)
    text = " ".join(raw.split())  # argparse wraps lines
    for expected in (
        "--host HOST interface to listen on (default: 127.0.0.1)",
        "--port PORT port, 0 for any free one (default: 8080)",
        f"(default: the public test token {DEFAULT_TOKEN},",
        "--admin-token TOKEN bearer token of the admin surface under /_emulator/ (default: "
        "the --token on a loopback --host; on any other host the admin surface is off",
        "--credit EUR wallet at start and after a reset (default: 1000)",
        "--latency SECONDS seconds added to every request (default: 0.0)",
        "--fault-rate P probability from 0 to 1",
        "a 503 JSON answer, an nginx 502 page",
        "seeded by --seed (default: 0.0, none)",
        "--auto-process complete activations and comunica_pec steps at once (default: off",
        "--seed SEED seed of ids, codes and faults (default: 0)",
        "(repeatable; default: only to loopback)",
        "off the machine (default: off)",
        "(default: off, sandbox)",
        "--oauth-v2-port PORT also serve the OAuth v2 token service",
        "--oauth-email EMAIL HTTP Basic user name of the OAuth v2 token service (default: "
        "mail@domain.com)",
        "(default: the public pecapi-emulator-api-key, which is refused with a non-loopback",
    ):
        assert expected in text, expected
    # every option says its default, those added later too
    entries = _entries(raw)
    assert {"--host", "--fault-rate", "--admin-token", "--allow-external-callbacks"} <= set(entries)
    for option, described in entries.items():
        assert option == "--help" or "(default" in described or "; default" in described, option


def test_parse_admin_options() -> None:
    args = parse_args(["--fault-rate", "0.25", "--admin-token", "adm"])
    emu = emulator_from_args(args)
    assert emu.admin_token == "adm"
    assert [rule.probability for rule in emu.faults.rules] == [0.25]
    assert parse_args([]).fault_rate == 0.0
    assert emulator_from_args(parse_args([])).faults.rules == ()
    for bad in ("1.5", "-0.1", "nan", "x"):
        with pytest.raises(SystemExit) as exit_:
            parse_args(["--fault-rate", bad])
        assert exit_.value.code == 2


async def test_admin_surface_from_the_command_line(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi.testing", "--port", "0", "--token", "api-t",
        "--admin-token", "adm-t", "--credit", "50",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode().strip()
        async with aiohttp.ClientSession() as s:
            wallet = f"{url}/_emulator/wallet"
            async with s.get(wallet, headers={"Authorization": "Bearer adm-t"}) as r:
                assert (r.status, await r.json()) == (200, {"balance": "50.00"})
            async with s.get(wallet, headers={"Authorization": "Bearer api-t"}) as r:
                assert r.status == 401
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, stderr.decode()
    assert f"admin surface at {url}/_emulator/ (the token given with --admin-token)" in (
        stderr.decode()
    )


async def test_a_public_host_turns_the_admin_surface_off_without_its_token(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi.testing", "--port", "0", "--host", "0.0.0.0",
        "--token", "api-t",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode().strip()
        async with (
            aiohttp.ClientSession(headers={"Authorization": "Bearer api-t"}) as s,
            s.get(f"{url}/_emulator/wallet") as r,
        ):
            assert r.status == 403
            assert (await r.json())["error"] == "admin_off"
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, stderr.decode()
    assert "admin surface off" in stderr.decode()


async def test_the_public_token_is_no_admin_token_on_a_public_host(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi.testing", "--port", "0", "--host", "0.0.0.0",
        "--token", "api-t", "--admin-token", DEFAULT_TOKEN,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=_env(),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 2
    assert out == b""
    assert b"--admin-token" in err and b"Traceback" not in err

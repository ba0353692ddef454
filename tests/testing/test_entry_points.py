"""`python -m pecapi.testing` and the pytest plugin, each run in a subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap

import aiohttp

from pecapi.testing import DEFAULT_TOKEN, Emulator
from pecapi.testing.__main__ import parse_args


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

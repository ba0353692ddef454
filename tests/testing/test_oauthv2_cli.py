"""`python -m pecapi.testing --oauth-v2-port`: the OAuth v2 token service of the same
emulator, served from the command line (a subprocess, over loopback HTTP)."""

from __future__ import annotations

import asyncio
import base64
import os
import sys

import aiohttp
import pytest

from pecapi.testing.__main__ import DEFAULT_OAUTH_API_KEY, DEFAULT_OAUTH_EMAIL, parse_args

SCOPE = "GET:test.pec.openapi.it/domini_pec"


def _basic(email: str, key: str) -> dict[str, str]:
    pair = base64.b64encode(f"{email}:{key}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # run as the user would: the package as installed / on PYTHONPATH, not the cwd
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    return env


async def _start(tmp_path, *argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi.testing", "--port", "0", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=_env(),
    )  # fmt: skip


async def _stop(proc: asyncio.subprocess.Process) -> str:
    if proc.returncode is None:
        proc.terminate()
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    return stderr.decode()


async def test_a_token_of_the_v2_service_works_on_the_pec_url(tmp_path):
    proc = await _start(
        tmp_path, "--token", "static-t", "--credit", "50", "--oauth-v2-port", "0",
        "--oauth-email", "me@example.org", "--oauth-api-key", "canary-key-3f9a",
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        pec = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode().strip()
        oauth = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode().strip()
        assert pec.startswith("http://127.0.0.1:") and oauth.startswith("http://127.0.0.1:")
        assert pec != oauth
        basic = _basic("me@example.org", "canary-key-3f9a")
        async with aiohttp.ClientSession() as s:
            async with s.post(oauth + "/tokens", json={"scopes": [SCOPE]}, headers=basic) as r:
                assert r.status == 200
                token = (await r.json())["data"]["token"]
            bearer = {"Authorization": f"Bearer {token}"}
            async with s.get(pec + "/domini_pec/legalmail.it", headers=bearer) as r:
                assert r.status == 200
                assert (await r.json())["message"] == "legalmail.it found!"
            # only the scope asked for
            async with s.get(pec + "/pec", headers=bearer) as r:
                assert r.status == 403
            # the wallet of the token service is the PEC emulator's (--credit)
            async with s.get(oauth + "/wallet", headers=basic) as r:
                assert (await r.json())["data"]["credit"] == 50.0
            wrong = _basic("me@example.org", DEFAULT_OAUTH_API_KEY)
            async with s.get(oauth + "/wallet", headers=wrong) as r:
                assert r.status == 401
            # the static token still works next to the issued ones
            static = {"Authorization": "Bearer static-t"}
            async with s.get(pec + "/domini_pec/legalmail.it", headers=static) as r:
                assert r.status == 200
            # a deleted token is refused by the PEC side at once
            async with s.delete(f"{oauth}/tokens/{token}", headers=basic) as r:
                assert r.status == 200
            async with s.get(pec + "/domini_pec/legalmail.it", headers=bearer) as r:
                assert r.status == 401
    finally:
        stderr = await _stop(proc)
    assert f"OAuth v2 token service at {oauth} (HTTP Basic: 'me@example.org'" in stderr
    assert "canary-key-3f9a" not in stderr  # a key of the user's own is not printed


async def test_without_the_option_one_line_and_no_token_service(tmp_path):
    proc = await _start(tmp_path, "--token", "static-t")
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), timeout=20)
    finally:
        proc.terminate()
        out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, err.decode()
    assert out == b"" and b"OAuth" not in err


def test_defaults_of_the_oauth_options() -> None:
    args = parse_args([])
    assert args.oauth_v2_port is None
    assert (args.oauth_email, args.oauth_api_key) == (DEFAULT_OAUTH_EMAIL, DEFAULT_OAUTH_API_KEY)
    assert parse_args(["--oauth-v2-port", "0"]).oauth_v2_port == 0
    for bad in ("-1", "65536", "x"):
        with pytest.raises(SystemExit) as exit_:
            parse_args(["--oauth-v2-port", bad])
        assert exit_.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--oauth-email", "a:b"], b"--oauth-email must be"),
        (["--oauth-api-key", " k"], b"--oauth-api-key must be"),
        (["--host", "0.0.0.0", "--token", "t"], b"give an --oauth-api-key of your own"),
    ],
    ids=["colon in the e-mail", "spaces around the key", "public key on a public host"],
)
async def test_refused_oauth_options(tmp_path, argv: list[str], message: bytes) -> None:
    proc = await _start(tmp_path, "--oauth-v2-port", "0", *argv)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 2
    assert out == b""
    assert message in err and b"Traceback" not in err


async def test_a_busy_oauth_port_is_exit_1(tmp_path) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        proc = await _start(tmp_path, "--oauth-v2-port", str(port))
        out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    finally:
        server.close()
        await server.wait_closed()
    assert proc.returncode == 1
    assert out == b""  # no URL printed for a server that is not running
    assert f"cannot listen on 127.0.0.1:{port}".encode() in err and b"Traceback" not in err

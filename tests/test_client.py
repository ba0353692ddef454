"""The session wrapper: configuration, lifecycle, secrets and path encoding."""

from __future__ import annotations

import ast
import gc
import logging
import traceback
import warnings
from pathlib import Path

import aiohttp
import pytest

from pecapi import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    NotFoundError,
    PecClient,
    StaticToken,
)
from pecapi.testing import DEFAULT_TOKEN, Emulator, RunningEmulator

CANARY = "canary-7f3a9c1e-SECRET-token"


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAPI_TOKEN", "prod-token")
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", "sandbox-token")
    assert str(PecClient().base_url) == "https://pec.openapi.it"
    assert str(PecClient(sandbox=True).base_url) == "https://test.pec.openapi.it"


def test_missing_token_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAPI_TOKEN", raising=False)
    monkeypatch.delenv("OPENAPI_SANDBOX_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAPI_TOKEN"):
        PecClient()
    with pytest.raises(ConfigurationError, match="OPENAPI_SANDBOX_TOKEN"):
        PecClient(sandbox=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://pec.openapi.it",
        "http://10.0.0.1:8080",
        "ftp://127.0.0.1",
        "https://user:pw@pec.openapi.it",
        "https://pec.openapi.it/?x=1",
        "not a url",
    ],
)
def test_bad_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        PecClient("t", base_url=url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:80"])
def test_plain_http_is_allowed_on_loopback(url: str) -> None:
    assert PecClient("t", base_url=url).base_url.scheme == "http"


@pytest.mark.parametrize("token", ["", "  ", "a b", "line\nbreak"])
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(ConfigurationError):
        PecClient(token)


async def test_use_after_close(pec_server: RunningEmulator) -> None:
    client = PecClient(DEFAULT_TOKEN, base_url=pec_server.url)
    assert await client.mailboxes.list() == []
    await client.aclose()
    await client.aclose()  # idempotent
    assert client.closed
    with pytest.raises(ClientClosedError):
        await client.mailboxes.list()


async def test_no_session_until_first_call_and_none_left_open(pec_server: RunningEmulator) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = PecClient(DEFAULT_TOKEN, base_url=pec_server.url)
        assert client._pipeline._session is None
        async with client:
            await client.mailboxes.list()
            session = client._pipeline._session
            assert session is not None
            connector = session.connector
            assert connector is not None
        assert session.closed
        assert connector.closed
        del client, session, connector
        gc.collect()


async def test_a_given_session_is_not_closed(pec_server: RunningEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with PecClient(DEFAULT_TOKEN, base_url=pec_server.url, session=session) as client:
            assert await client.mailboxes.list() == []
        assert not session.closed
        # pecapi turned off aiohttp's silent re-send of GETs on this session too
        assert session._retry_connection is False


async def test_the_token_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    emulator = Emulator(tokens={CANARY: None})
    caplog.set_level(logging.DEBUG)
    async with emulator.serve() as server:
        client = PecClient(CANARY, base_url=server.url)
        async with client:
            assert await client.mailboxes.list() == []
            try:
                await client.mailboxes.get("0123456789abcdef01234567")
            except NotFoundError as exc:
                formatted = "".join(traceback.format_exception(exc))
                texts = [formatted, repr(exc), str(exc), repr(exc.headers), repr(exc.body)]
            else:
                pytest.fail("expected NotFoundError")
        async with PecClient(CANARY + "x", base_url=server.url) as wrong:
            with pytest.raises(AuthenticationError) as denied:
                await wrong.mailboxes.list()
        texts += ["".join(traceback.format_exception(denied.value)), repr(client), str(client)]
        auth = client._pipeline.auth  # the pipeline's Authorization, and its provider
        texts += [repr(auth), repr(getattr(auth, "provider", None))]
        texts.append(repr(StaticToken(CANARY)))
    texts += [record.getMessage() for record in caplog.records]
    texts.append(caplog.text)
    assert caplog.records, "the debug log should have recorded the requests"
    for text in texts:
        assert CANARY not in text


@pytest.mark.parametrize("evil", ["../x", "a/b", "x?y", "x#y", "%2e%2e", "a b", "ä", "x;y"])
async def test_path_parameters_cannot_escape(
    client: PecClient, emulator: Emulator, evil: str
) -> None:
    # The renewal endpoint itself answers "Wrong id" (400/201): the id reached it as one
    # path segment, whatever it contained, and no other route or query was hit.
    with pytest.raises(BadRequestError) as info:
        await client.mailboxes.renew(evil)
    assert (info.value.status, info.value.code) == (400, 201)
    assert info.value.url.endswith("/rinnovo?anni=1")
    assert emulator.count("GET", "/pec/*/rinnovo") == 1
    assert emulator.charges(operation="renewal") == []


@pytest.mark.parametrize("bad", ["", " ", ".", ".."])
async def test_unusable_ids_are_refused_before_sending(
    client: PecClient, emulator: Emulator, bad: str
) -> None:
    from pecapi import ValidationError

    with pytest.raises(ValidationError) as info:
        await client.mailboxes.get(bad)
    assert info.value.field == "id"
    assert emulator.requests == []


def test_resources_never_import_the_client() -> None:
    """Resources get a Requester from the client: no import of pecapi.client (nor of the
    package, which imports it), not even for type checking."""
    import pecapi.resources

    folder = Path(pecapi.resources.__file__).parent
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                assert module != "pecapi" and not module.startswith("pecapi.client"), path.name

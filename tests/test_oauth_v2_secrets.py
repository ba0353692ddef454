"""Canaries: the API key, the tokens and the refresh tokens of OAuth v2 never show in a
repr, a log record, an exception (its chain, attributes, and its traceback's frame
locals). ``PATCH`` and ``DELETE /tokens/{token}`` carry a token in their path."""

from __future__ import annotations

import base64
import logging
import traceback

import pytest

from pecapi import (
    AuthenticationError,
    BadRequestError,
    PecClient,
    PecConnectionError,
    RetryPolicy,
    ServerError,
    TokenError,
    all_pec_scopes,
)
from pecapi.testing import Fault
from tests.leaks import secret_leaks
from tests.test_oauth_v2 import EMAIL, KEY, TTL, Env, oauth_env

BASIC = base64.b64encode(f"{EMAIL}:{KEY}".encode()).decode()


def secrets_of(env: Env) -> list[str]:
    """Every secret the service handed out, and the account's."""
    found = [KEY, BASIC]
    for issued in env.oauth.issued:
        found += [issued.token, issued.refresh_token]
    return found


def assert_hidden(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret shows in {text[:200]!r}"


async def test_reprs_and_logs_never_show_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with oauth_env() as env:
        async with env.provider() as p, env.client(p) as client:
            await client.mailboxes.list()  # created
            env.to_renewal()
            await client.mailboxes.list()  # renewed (PATCH /tokens/<token>)
            env.oauth.refuse_refreshes(1)
            env.to_renewal()
            await client.mailboxes.list()  # refused, created
            env.oauth.revoke(await p.get_token())
            await client.mailboxes.list()  # 401, rejected, created, retried
            await client.account.wallet()
            await p.wallet_transactions()
            texts += [repr(p), str(p), repr(client), repr(client.account)]
            texts += [repr(p._current), repr(p._owned)]
            assert await p.revoke() >= 1  # DELETE /tokens/<token>
        assert env.oauth.renewals == 1 and env.oauth.creations == 3
    texts += [record.getMessage() for record in caplog.records]
    texts.append(caplog.text)
    messages = [r.getMessage() for r in caplog.records]
    assert any("PATCH" in m for m in messages)  # the requests are logged...
    assert any("DELETE" in m for m in messages)
    assert_hidden(texts, secrets_of(env))  # ...without their token


async def test_a_failed_renewal_hides_the_token_in_its_url() -> None:
    async with oauth_env() as env, env.provider() as p:
        await p.get_token()
        env.emu.advance_time(TTL + 1)  # expired: a failed renewal is raised
        env.oauth.faults.once(Fault.status(503), method="PATCH", path="/tokens/*")
        with pytest.raises(ServerError) as failed:
            await p.get_token()
        error = failed.value
        assert "/tokens/<redacted>" in error.url and "/tokens/<redacted>" in str(error)
        env.oauth.faults.once(Fault.drop_before(), method="PATCH", path="/tokens/*")
        with pytest.raises(PecConnectionError) as dropped:
            await p.get_token()
        secrets = secrets_of(env)
        assert secret_leaks(error, *secrets) == []
        assert secret_leaks(dropped.value, *secrets) == []
        text = "".join(traceback.format_exception(dropped.value))
        assert_hidden([text, repr(dropped.value)], secrets)


async def test_a_failed_revocation_hides_the_token() -> None:
    async with oauth_env() as env, env.provider() as p:
        await p.get_token()
        env.oauth.faults.once(Fault.status(400, body="html"), method="DELETE", path="/tokens/*")
        with pytest.raises(BadRequestError) as failed:
            await p.revoke()
        assert secret_leaks(failed.value, *secrets_of(env)) == []


async def test_a_token_error_of_a_pec_call_hides_every_secret() -> None:
    async with oauth_env() as env:
        async with env.provider() as p:
            await p.get_token()
            env.emu.advance_time(TTL + 1)
            env.oauth.faults.once(Fault.drop_before(), method="PATCH", path="/tokens/*")
            client = PecClient(p, sandbox=True, base_url=env.pec_url, retry=RetryPolicy.never())
            async with client:
                with pytest.raises(TokenError) as failed:
                    await client.mailboxes.list()
        assert failed.value.retryable
        assert isinstance(failed.value.cause, PecConnectionError)
        assert secret_leaks(failed.value, *secrets_of(env)) == []


async def test_errors_of_creation_hide_the_key() -> None:
    async with oauth_env() as env:
        async with env.provider() as p:
            env.oauth.fail_next(500)
            with pytest.raises(ServerError) as failed:
                await p.get_token()
        async with env.provider(api_key=KEY + "-wrong") as wrong:
            with pytest.raises(AuthenticationError) as denied:
                await wrong.get_token()
        for error in (failed.value, denied.value):
            assert secret_leaks(error, KEY, BASIC) == []


def test_a_bad_configuration_hides_the_key() -> None:
    from pecapi import ConfigurationError, OAuthV2TokenProvider, oauth_provider

    for make in (OAuthV2TokenProvider, oauth_provider):
        with pytest.raises(ConfigurationError) as failed:
            make(EMAIL, KEY, scopes=[], sandbox=True)
        assert secret_leaks(failed.value, KEY) == []
        with pytest.raises(ConfigurationError) as failed:
            make(EMAIL, KEY, scopes=all_pec_scopes(sandbox=True), sandbox=True, ttl=1)
        assert secret_leaks(failed.value, KEY) == []

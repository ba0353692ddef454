"""One OAuth token per account and scope set for the whole fleet."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis.asyncio as aioredis

from pecapi import PecClient, PecError
from pecapi.fleet import CoordinationError, RedisCoordination
from pecapi.oauth import OAuthTokenProvider, pec_scopes
from pecapi.testing import Emulator, OAuthEmulator
from pecapi.testing.redis_server import RedisServer
from tests.leaks import chain, secret_leaks

from .helpers import in_processes
from .procs import lists_with_oauth

EMAIL = "fleet@example.org"
KEY = "fleet-api-key"
SCOPES = pec_scopes("mailboxes.list", sandbox=True)


def provider(oauth_url: str) -> OAuthTokenProvider:
    return OAuthTokenProvider(EMAIL, KEY, scopes=SCOPES, sandbox=True, base_url=oauth_url)


async def test_processes_share_one_token(redis_url: str) -> None:
    emulator = Emulator(tokens={})
    oauth = OAuthEmulator(emulator, email=EMAIL, api_key=KEY)
    async with emulator.serve() as pec, oauth.serve() as auth:
        done = await in_processes(
            [(lists_with_oauth, (pec.url, auth.url, redis_url, EMAIL, KEY, SCOPES))] * 3
        )
    assert done == [5, 5, 5]
    assert oauth.creations == 1  # each process alone makes its own: 3


class Replica:
    """A client as one replica of a service has it: its own provider and coordination."""

    def __init__(self, pec_url: str, oauth_url: str, redis_url: str) -> None:
        self.provider = provider(oauth_url)
        self.fleet = RedisCoordination(redis_url, namespace="pecapi-test")
        self.client = PecClient(
            self.provider, sandbox=True, base_url=pec_url, coordination=self.fleet
        )

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.provider.aclose()


async def test_a_refused_token_is_replaced_once_for_everyone(redis_url: str) -> None:
    emulator = Emulator(tokens={})
    oauth = OAuthEmulator(emulator, email=EMAIL, api_key=KEY)
    async with emulator.serve() as pec, oauth.serve() as auth:
        replicas = [Replica(pec.url, auth.url, redis_url) for _ in range(3)]
        try:
            await asyncio.gather(*(r.client.mailboxes.list() for r in replicas))
            assert oauth.creations == 1
            oauth.revoke(oauth.created[0].token)  # every replica's next request gets a 401
            await asyncio.gather(*(r.client.mailboxes.list() for r in replicas for _ in range(4)))
            assert oauth.creations == 2  # replaced once, picked up by the others
        finally:
            for replica in replicas:
                await replica.aclose()


async def test_one_process_renews_the_token_before_it_expires(redis_url: str) -> None:
    emulator = Emulator(tokens={})
    oauth = OAuthEmulator(emulator, email=EMAIL, api_key=KEY)
    async with emulator.serve() as pec, oauth.serve() as auth:
        first = Replica(pec.url, auth.url, redis_url)
        try:
            await first.client.mailboxes.list()
        finally:
            await first.aclose()
        assert oauth.creations == 1
        # The shared token reaches its renewal time (still valid for a while).
        store = aioredis.from_url(redis_url, decode_responses=True)
        try:
            (key,) = [k async for k in store.scan_iter("pecapi-test:token:*") if "mint" not in k]
            await store.hset(key, "refresh_at", repr(time.time() - 1))
        finally:
            await store.aclose()
        replicas = [Replica(pec.url, auth.url, redis_url) for _ in range(4)]
        try:
            await asyncio.gather(*(r.client.mailboxes.list() for r in replicas))
        finally:
            for replica in replicas:
                await replica.aclose()
    assert oauth.creations == 2  # one renewal for the four


async def test_the_token_is_kept_out_of_logs_and_key_names(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator = Emulator(tokens={})
    oauth = OAuthEmulator(emulator, email=EMAIL, api_key=KEY)
    async with emulator.serve() as pec, oauth.serve() as auth:
        replica = Replica(pec.url, auth.url, redis_url)
        try:
            await replica.client.mailboxes.list()
            oauth.revoke(oauth.created[0].token)
            await replica.client.mailboxes.list()
            fleet_token = replica.client._pipeline.auth
            shown = repr(fleet_token) + repr(replica.fleet)
        finally:
            await replica.aclose()
    tokens = [issued.token for issued in oauth.created]
    assert len(tokens) == 2
    store = aioredis.from_url(redis_url, decode_responses=True)
    try:
        keys = [k async for k in store.scan_iter("*")]
    finally:
        await store.aclose()
    assert keys and all(EMAIL not in k and KEY not in k for k in keys)
    for token in tokens:
        assert token not in caplog.text
        assert token not in shown
        assert all(token not in k for k in keys)


async def test_a_token_redis_refuses_to_store_leaks_nothing(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # redis-py quotes a pipeline's failed command, the token in it, in its error message.
    del redis_server  # only its binary: this test changes a Redis of its own
    caplog.set_level(logging.DEBUG)
    emulator = Emulator(tokens={})
    oauth = OAuthEmulator(emulator, email=EMAIL, api_key=KEY)
    with RedisServer() as server:
        admin = aioredis.from_url(server.url)
        await admin.acl_setuser("default", enabled=True, nopass=True, commands=["-hset"])
        async with emulator.serve() as pec, oauth.serve() as auth:
            replica = Replica(pec.url, auth.url, server.url)
            try:
                with pytest.raises(PecError) as info:
                    await replica.client.mailboxes.list()
            finally:
                await replica.aclose()
                await admin.aclose()
    (token,) = [issued.token for issued in oauth.created]
    assert [e for e in chain(info.value) if isinstance(e, CoordinationError)]
    assert secret_leaks(info.value, token) == []
    assert token not in caplog.text

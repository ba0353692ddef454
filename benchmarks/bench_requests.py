"""Benchmarks 1 and 2: one ``GET /pec/{id}``, by pecapi and by its peers.

Every client fetches the same mailbox from the same emulator process and parses the
JSON; pecapi also decodes it into a ``Mailbox``. For each client and concurrency:

- CPU time per request of *this* process (``time.process_time``: every thread, not the
  server, which runs in its own process);
- throughput (requests per second of wall time);
- garbage collections (generation 0) per request (``gc.callbacks``).

``benchmarks/bench_icount.py`` runs the same clients under valgrind to count
instructions instead of CPU time.

Clients:

- ``pecapi``: ``await client.mailboxes.get(id)`` -> ``Mailbox``;
- ``pecapi-raw``: the same call asking for the raw answer without decoding it (the
  escape hatch; which call is :data:`RAW_CALLS` [``--raw-call``], by default
  :data:`DEFAULT_RAW_CALL`);
- ``aiohttp``: a raw ``aiohttp.ClientSession`` GET, status check and ``json.loads``;
- ``httpx``: ``httpx.AsyncClient`` GET, status check and ``json.loads``;
- ``sdk``: the official ``openapi_python_sdk.client.Client.request("GET", url)``
  (synchronous, httpx-based) -- sequentially at concurrency 1, and from a
  ``ThreadPoolExecutor`` of ``concurrency`` threads (``executor.map``) otherwise, sharing
  one ``Client`` as its users would.

The async clients run ``concurrency`` worker coroutines that pull from a shared counter
(no task per request). Each run starts with a warm-up (connections opened, lazy imports
done) that is not timed. Runs are interleaved (every client, in a shuffled order, then
the next repetition) and the medians are reported.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import attrs

import pecapi
from benchmarks.common import (
    Gen0Counter,
    Measure,
    ServerInfo,
    client_limits,
    emulator_server,
    installed,
    median,
    skip,
)
from benchmarks.raw_calls import DEFAULT_RAW_CALL, RAW_CALLS, raw_json_wrapper

__all__ = ["CLIENTS", "DEFAULT_RAW_CALL", "RAW_CALLS", "RequestsConfig", "measure_once", "run"]

CLIENTS = ("pecapi", "pecapi-raw", "aiohttp", "httpx", "sdk")
PEERS = ("httpx", "sdk")
#: The targets of CPU (and instructions) per request against raw aiohttp + json.loads.
TARGET_DECODED = 1.3
TARGET_RAW = 1.15
#: gen0 collections per request, against raw aiohttp's.
TARGET_GEN0 = 2.0


@attrs.frozen
class RequestsConfig:
    concurrencies: tuple[int, ...] = (1, 100)
    #: requests per timed run, by concurrency
    requests: tuple[tuple[int, int], ...] = ((1, 1500), (100, 4000))
    repeats: int = 5
    warmup: int = 200
    clients: tuple[str, ...] = CLIENTS
    raw_call: str = DEFAULT_RAW_CALL

    def count(self, concurrency: int) -> int:
        counts = dict(self.requests)
        if concurrency in counts:
            return counts[concurrency]
        # A concurrency not listed: the count of the nearest one listed.
        return counts[min(counts, key=lambda c: abs(c - concurrency))]


@attrs.frozen
class Sample:
    cpu: float
    wall: float
    n: int
    gen0: int = 0  #: generation-0 collections during the timed requests
    collections: int = 0  #: collections of any generation


async def _drive(one: Callable[[], Awaitable[Any]], n: int, concurrency: int) -> None:
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))


async def _timed(
    one: Callable[[], Awaitable[Any]], n: int, concurrency: int, warmup: int
) -> Sample:
    await _drive(one, max(warmup, concurrency), concurrency)
    with Gen0Counter() as gen:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await _drive(one, n, concurrency)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return Sample(cpu, wall, n, gen.count, gen.all)


async def run_pecapi(server: ServerInfo, n: int, concurrency: int, warmup: int) -> Sample:
    async with pecapi.PecClient(
        server.token, sandbox=True, base_url=server.url, **client_limits(concurrency)
    ) as client:
        mailbox_id = server.mailbox

        async def one() -> pecapi.Mailbox:
            return await client.mailboxes.get(mailbox_id)

        box = await one()
        assert isinstance(box, pecapi.Mailbox) and box.id == mailbox_id, box
        return await _timed(one, n, concurrency, warmup)


async def run_pecapi_raw(
    server: ServerInfo, n: int, concurrency: int, warmup: int, raw_call: str = DEFAULT_RAW_CALL
) -> Sample:
    async with pecapi.PecClient(
        server.token, sandbox=True, base_url=server.url, **client_limits(concurrency)
    ) as client:
        one = RAW_CALLS[raw_call](client, server.mailbox)
        await one()
        return await _timed(one, n, concurrency, warmup)


async def run_aiohttp(server: ServerInfo, n: int, concurrency: int, warmup: int) -> Sample:
    url = f"{server.url}/pec/{server.mailbox}"
    headers = {"Authorization": f"Bearer {server.token}"}
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> Any:
            async with session.get(url, headers=headers) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
            return json.loads(body)

        return await _timed(one, n, concurrency, warmup)


async def run_httpx(server: ServerInfo, n: int, concurrency: int, warmup: int) -> Sample:
    import httpx

    url = f"{server.url}/pec/{server.mailbox}"
    headers = {"Authorization": f"Bearer {server.token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one() -> Any:
            response = await client.get(url, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}")
            return json.loads(response.content)

        return await _timed(one, n, concurrency, warmup)


def run_sdk(server: ServerInfo, n: int, concurrency: int, warmup: int) -> Sample:
    from openapi_python_sdk.client import Client

    url = f"{server.url}/pec/{server.mailbox}"
    sdk = Client(token=server.token)
    try:

        def one(_: int = 0) -> dict[str, Any]:
            reply: dict[str, Any] = sdk.request(method="GET", url=url)
            if reply.get("success") is not True:
                raise RuntimeError(f"unexpected reply {reply!r:.200}")
            return reply

        if concurrency <= 1:
            for i in range(warmup):
                one(i)
            with Gen0Counter() as gen:
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for i in range(n):
                    one(i)
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            return Sample(cpu, wall, n, gen.count, gen.all)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for _ in pool.map(one, range(max(warmup, concurrency * 2))):
                pass
            with Gen0Counter() as gen:
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for _ in pool.map(one, range(n)):
                    pass
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            return Sample(cpu, wall, n, gen.count, gen.all)
    finally:
        sdk.client.close()


def measure_once(
    client: str,
    server: ServerInfo,
    n: int,
    concurrency: int,
    warmup: int,
    raw_call: str = DEFAULT_RAW_CALL,
) -> Sample:
    if client == "sdk":
        return run_sdk(server, n, concurrency, warmup)
    if client == "pecapi-raw":
        return asyncio.run(run_pecapi_raw(server, n, concurrency, warmup, raw_call))
    runner = {"pecapi": run_pecapi, "aiohttp": run_aiohttp, "httpx": run_httpx}[client]
    return asyncio.run(runner(server, n, concurrency, warmup))


#: The peers' modules: a peer not installed is left out of the run (said in the output),
#: so that pecapi's own overhead can be measured without the ``bench`` extra.
PEER_MODULES = {"httpx": "httpx", "sdk": "openapi_python_sdk"}
PEER_PACKAGES = {"httpx": "httpx", "sdk": "openapi-python-sdk"}


def available(
    clients: tuple[str, ...], log: Callable[[str], None], raw_call: str = DEFAULT_RAW_CALL
) -> tuple[str, ...]:
    """The clients that can run here; the others are recorded as skipped."""
    found = []
    for client in clients:
        if client == "pecapi-raw" and raw_call == "with_raw_json" and not raw_json_wrapper():
            skip("pecapi-raw", "this pecapi has no with_raw_json (--raw-call)", log)
            continue
        module = PEER_MODULES.get(client)
        if module is None or installed(module):
            found.append(client)
        else:
            skip(
                f"requests: {client}",
                f"{PEER_PACKAGES[client]} is not installed (see benchmarks/README.md, "
                '"Installing")',
                log,
            )
    return tuple(found)


def run(config: RequestsConfig, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    if config.raw_call not in RAW_CALLS:
        raise ValueError(f"unknown raw call {config.raw_call!r}: one of {sorted(RAW_CALLS)}")
    config = attrs.evolve(config, clients=available(config.clients, log, config.raw_call))
    samples: dict[str, dict[int, list[Sample]]] = {
        c: {k: [] for k in config.concurrencies} for c in config.clients
    }
    rng = random.Random(7)
    with emulator_server() as server:
        for rep in range(config.repeats):
            for concurrency in config.concurrencies:
                order = list(config.clients)
                rng.shuffle(order)
                for client in order:
                    s = measure_once(
                        client,
                        server,
                        config.count(concurrency),
                        concurrency,
                        config.warmup,
                        config.raw_call,
                    )
                    samples[client][concurrency].append(s)
                    log(
                        f"  requests rep {rep + 1}/{config.repeats} c={concurrency:<3} "
                        f"{client:<10} {s.cpu / s.n * 1e6:7.1f} us CPU/req "
                        f"{s.n / s.wall:7.0f} req/s {s.gen0 / s.n:.4f} gen0/req"
                    )

    summary: dict[str, dict[str, dict[str, float]]] = {}
    for client, by_c in samples.items():
        summary[client] = {}
        for concurrency, runs in by_c.items():
            summary[client][str(concurrency)] = {
                "cpu_us_per_request": median([s.cpu / s.n * 1e6 for s in runs]),
                "requests_per_s": median([s.n / s.wall for s in runs]),
                "gen0_per_request": median([s.gen0 / s.n for s in runs]),
            }

    def cpu(client: str, c: int) -> float:
        return summary[client][str(c)]["cpu_us_per_request"]

    def rps(client: str, c: int) -> float:
        return summary[client][str(c)]["requests_per_s"]

    measures: list[Measure] = []
    if "aiohttp" in config.clients:
        for c in config.concurrencies:
            for client, label, target in (
                ("pecapi", "decoded", TARGET_DECODED),
                ("pecapi-raw", f"raw answer ({config.raw_call})", TARGET_RAW),
            ):
                if client not in config.clients:
                    continue
                measures.append(
                    Measure(
                        bench="overhead",
                        what=f"CPU per GET /pec/{{id}}, {label}, concurrency {c}",
                        unit="us",
                        pecapi=cpu(client, c),
                        baseline=cpu("aiohttp", c),
                        baseline_name="raw aiohttp + json.loads",
                        target=target,
                        note="median of interleaved runs",
                    )
                )
    peers = [p for p in PEERS if p in config.clients]
    for c in config.concurrencies:
        for peer in peers:
            measures.append(
                Measure(
                    bench="peers",
                    what=f"throughput vs {peer}, concurrency {c}",
                    unit="req/s",
                    pecapi=rps("pecapi", c),
                    baseline=rps(peer, c),
                    baseline_name=_peer_label(peer, c),
                    note="higher is better",
                )
            )
        if peers and c == max(config.concurrencies):
            best = max(peers, key=lambda p: rps(p, c))
            measures.append(
                Measure(
                    bench="peers",
                    what=f"throughput vs best peer, concurrency {c}",
                    unit="req/s",
                    pecapi=rps("pecapi", c),
                    baseline=rps(best, c),
                    baseline_name=_peer_label(best, c),
                    target=2.0,
                    target_kind="min",
                    note="higher is better",
                )
            )
    if "aiohttp" in config.clients:
        c = max(config.concurrencies)
        measures.append(
            Measure(
                bench="peers",
                what=f"throughput vs raw aiohttp, concurrency {c}",
                unit="req/s",
                pecapi=rps("pecapi", c),
                baseline=rps("aiohttp", c),
                baseline_name="raw aiohttp + json.loads",
                note="higher is better; server-bound",
            )
        )
    raw = {
        client: {str(c): [attrs.asdict(s) for s in runs] for c, runs in by_c.items()}
        for client, by_c in samples.items()
    }
    return measures, {"summary": summary, "samples": raw, "config": attrs.asdict(config)}


def _peer_label(peer: str, concurrency: int) -> str:
    if peer == "sdk":
        how = "sequential" if concurrency <= 1 else f"{concurrency} threads"
        return f"openapi-python-sdk ({how})"
    return "httpx.AsyncClient + json.loads"

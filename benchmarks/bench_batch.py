"""Benchmark 3: batch provisioning, N registrations against an emulator with latency.

``python -m benchmarks.bench_batch --url U --token T --items N --concurrency C`` (the
child process; the orchestrator starts a fresh emulator per run) registers N mailboxes
through one ``PecClient`` with at most C requests in flight, then prints one JSON line:
wall time, successes, failures, and ``VmHWM`` (peak RSS) before and after.

The registrations come from a generator consumed lazily, and the results are counted,
not kept: the client's memory must not grow with N.

pecapi runs ``client.mailboxes.register_many`` (the batch API); the raw aiohttp
baseline runs the same bounded-concurrency loop by hand (:func:`bounded`), on the same
machine, interleaved with pecapi's runs. Beside them: the latency-bound ideal
(items x latency / concurrency, which assumes free CPU) and the CPU the emulator's own
process spent per item (``/proc/<pid>/stat``, read before and after each run): with a
client and a server on the same 2 cores, the server's CPU is what keeps both from the
ideal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import aiohttp
import attrs

import pecapi
from benchmarks.common import (
    Measure,
    client_limits,
    emulator_server,
    median,
    memory_kb,
    process_cpu_s,
    run_child,
)
from pecapi.models.converter import unstructure
from pecapi.testing import samples

__all__ = ["BatchConfig", "bounded", "provision", "registrations", "run"]

ItemT = TypeVar("ItemT")
R = TypeVar("R")


@attrs.define
class BatchStats:
    ok: int = 0
    failed: int = 0
    first_error: str | None = None


def registrations(n: int, prefix: str = "bench") -> Iterator[pecapi.MailboxRegistration]:
    """N distinct sandbox registrations, built one at a time as they are consumed."""
    for i in range(n):
        yield samples.registration(f"{prefix}.{i}@testcert.legalmail.it")


async def bounded(
    call: Callable[[ItemT], Awaitable[R]], items: Iterable[ItemT], concurrency: int
) -> AsyncIterator[R | BaseException]:
    """``call`` each item with at most ``concurrency`` calls in flight; yield outcomes
    (the result or the exception) as they complete. ``items`` is consumed lazily: a task
    is created only when a slot is free, so there are never more than ``concurrency``
    tasks alive."""
    slots = asyncio.Semaphore(concurrency)
    done: asyncio.Queue[R | BaseException] = asyncio.Queue()
    running: set[asyncio.Task[None]] = set()
    outstanding = 0  # items started whose outcome has not been yielded yet

    async def one(item: ItemT) -> None:
        try:
            outcome: R | BaseException = await call(item)
        except Exception as exc:
            outcome = exc
        finally:
            slots.release()
        done.put_nowait(outcome)

    try:
        for item in items:
            await slots.acquire()
            task = asyncio.create_task(one(item))
            running.add(task)
            task.add_done_callback(running.discard)
            outstanding += 1
            while not done.empty():
                outstanding -= 1
                yield done.get_nowait()
        while outstanding:
            outstanding -= 1
            yield await done.get()
    finally:
        for task in running:
            task.cancel()


def provision(
    client: pecapi.PecClient,
    items: Iterable[pecapi.MailboxRegistration],
    concurrency: int,
) -> AsyncIterator[pecapi.Mailbox | BaseException]:
    return _outcomes(client.mailboxes.register_many(items, concurrency=concurrency))


async def _outcomes(
    batch: pecapi.Batch[pecapi.MailboxRegistration, pecapi.Mailbox],
) -> AsyncIterator[pecapi.Mailbox | BaseException]:
    async with batch:
        async for result in batch:
            yield result.value if result.value is not None else (result.error or Exception())


def raw_bodies(n: int, prefix: str = "raw") -> Iterator[dict[str, Any]]:
    """The same registrations as plain JSON objects (for the raw aiohttp baseline)."""
    for registration in registrations(n, prefix):
        yield unstructure(registration)


def _count(stats: BatchStats, outcome: object) -> None:
    if isinstance(outcome, BaseException):
        stats.failed += 1
        if stats.first_error is None:
            stats.first_error = f"{type(outcome).__name__}: {outcome}"
    else:
        stats.ok += 1


async def _run_pecapi(
    url: str, token: str, items: int, concurrency: int, stats: BatchStats
) -> tuple[dict[str, int], float, dict[str, int]]:
    async with pecapi.PecClient(
        token, sandbox=True, base_url=url, **client_limits(concurrency)
    ) as client:
        # warm-up: session, connection, lazy imports (not timed, not counted)
        await client.mailboxes.is_available("warm.up@testcert.legalmail.it")
        before = memory_kb()
        started = time.perf_counter()
        async for outcome in provision(client, registrations(items), concurrency):
            _count(stats, outcome)
        wall = time.perf_counter() - started
        after = memory_kb()
    return before, wall, after


async def _run_raw(
    url: str, token: str, items: int, concurrency: int, stats: BatchStats
) -> tuple[dict[str, int], float, dict[str, int]]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"{url}/verifica_pec/warm.up@testcert.legalmail.it") as r:
            await r.read()

        async def register(body: dict[str, Any]) -> Any:
            data = json.dumps(body, separators=(",", ":")).encode()
            async with session.post(f"{url}/pec", data=data, headers=headers) as response:
                payload = json.loads(await response.read())
            if response.status != 200 or payload.get("success") is not True:
                raise RuntimeError(f"HTTP {response.status}: {payload!r:.200}")
            return payload["data"]

        before = memory_kb()
        started = time.perf_counter()
        async for outcome in bounded(register, raw_bodies(items), concurrency):
            _count(stats, outcome)
        wall = time.perf_counter() - started
        after = memory_kb()
    return before, wall, after


async def child_main(
    url: str, token: str, items: int, concurrency: int, impl: str = "pecapi"
) -> dict[str, Any]:
    stats = BatchStats()
    run_impl = _run_pecapi if impl == "pecapi" else _run_raw
    cpu0 = time.process_time()
    before, wall, after = await run_impl(url, token, items, concurrency, stats)
    return {
        "impl": impl,
        "cpu": time.process_time() - cpu0,
        "items": items,
        "concurrency": concurrency,
        "wall": wall,
        "ok": stats.ok,
        "failed": stats.failed,
        "first_error": stats.first_error,
        "hwm_before_kb": before["VmHWM"],
        "hwm_after_kb": after["VmHWM"],
        "rss_before_kb": before["VmRSS"],
    }


@attrs.frozen
class BatchConfig:
    latency: float = 0.05
    concurrency: int = 200
    items: int = 10_000
    repeats: int = 3
    #: the item counts compared for peak memory (the first is ``items``)
    memory_items: tuple[int, int] = (10_000, 100_000)
    #: also count instructions per registration under valgrind (``--icount``): the two
    #: batch sizes whose difference is counted
    icount: bool = False
    icount_sizes: tuple[int, int] = (200, 1200)


def _one_run(config: BatchConfig, items: int, impl: str = "pecapi") -> dict[str, Any]:
    # 8 EUR per BRONZE registration: give the wallet room for every item, and more.
    credit = str(10 * items + 1000)
    with emulator_server(latency=config.latency, credit=credit) as server:
        server_cpu0 = process_cpu_s(server.pid)
        result: dict[str, Any] = run_child(
            "bench_batch",
            [
                "--url",
                server.url,
                "--token",
                server.token,
                "--items",
                str(items),
                "--concurrency",
                str(config.concurrency),
                "--impl",
                impl,
            ],
        )
        server_cpu1 = process_cpu_s(server.pid)
    result["server_cpu"] = (
        None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0
    )
    if result["failed"]:
        raise RuntimeError(f"{result['failed']} registrations failed: {result['first_error']}")
    return result


def run(config: BatchConfig, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    runs: list[dict[str, Any]] = []
    raw_runs: list[dict[str, Any]] = []
    for rep in range(config.repeats):
        for impl in ("pecapi", "raw") if rep % 2 == 0 else ("raw", "pecapi"):
            r = _one_run(config, config.items, impl)
            (runs if impl == "pecapi" else raw_runs).append(r)
            log(
                f"  batch rep {rep + 1}/{config.repeats} {impl:<6} {config.items} items: "
                f"{r['wall']:.2f} s, client CPU {r['cpu'] / r['items'] * 1e6:.0f} us/item, "
                f"server CPU {_per_item_us(r):.0f} us/item, "
                f"peak RSS +{(r['hwm_after_kb'] - r['hwm_before_kb']) / 1024:.1f} MB"
            )
    small_items, big_items = config.memory_items
    small = [r for r in runs if r["items"] == small_items] or [_one_run(config, small_items)]
    big = _one_run(config, big_items)
    log(
        f"  batch {big_items} items: {big['wall']:.2f} s, "
        f"peak RSS +{(big['hwm_after_kb'] - big['hwm_before_kb']) / 1024:.1f} MB"
    )
    ideal = config.items * config.latency / config.concurrency
    wall = median([r["wall"] for r in runs])
    raw_wall = median([r["wall"] for r in raw_runs])
    small_peak = median([r["hwm_after_kb"] / 1024 for r in small])
    big_peak = big["hwm_after_kb"] / 1024
    server_us = median([_per_item_us(r) for r in runs])
    raw_server_us = median([_per_item_us(r) for r in raw_runs])
    log(
        f"  batch: pecapi {wall:.2f} s, raw aiohttp {raw_wall:.2f} s "
        f"({wall / raw_wall:.2f}x), ideal {ideal:.2f} s; server CPU per item "
        f"{server_us:.0f} us (pecapi runs), {raw_server_us:.0f} us (raw runs)"
    )
    measures = [
        Measure(
            bench="batch",
            what=(
                f"{config.items} registrations, {config.latency * 1000:.0f} ms latency, "
                f"concurrency {config.concurrency}, vs raw aiohttp (same loop, same machine)"
            ),
            unit="s",
            pecapi=wall,
            baseline=raw_wall,
            baseline_name="raw aiohttp POST + json.loads",
            target=1.05,
        ),
        Measure(
            bench="batch",
            what=f"the same {config.items} registrations vs the latency-bound ideal",
            unit="s",
            pecapi=wall,
            baseline=ideal,
            baseline_name="ideal: requests x latency / concurrency",
            note=f"raw aiohttp: {raw_wall / ideal:.2f}x the ideal; the ideal assumes free CPU",
        ),
        Measure(
            bench="batch",
            what="client CPU per registration",
            unit="us",
            pecapi=median([r["cpu"] / r["items"] * 1e6 for r in runs]),
            baseline=median([r["cpu"] / r["items"] * 1e6 for r in raw_runs]),
            baseline_name="raw aiohttp POST + json.loads",
        ),
        Measure(
            bench="batch",
            what="server (emulator process) CPU per registration",
            unit="us",
            pecapi=server_us,
            baseline=raw_server_us,
            baseline_name="the same server, raw aiohttp's runs",
            note=f"{server_us * config.items / 1e6:.2f} s of server CPU per run",
        ),
        Measure(
            bench="batch",
            what=f"peak RSS, {big_items} vs {small_items} registrations",
            unit="MB",
            pecapi=big_peak,
            baseline=small_peak,
            baseline_name=f"peak RSS with {small_items} items",
            target=1.10,
            note="flat: ratio of the client's peak RSS (VmHWM)",
        ),
    ]
    counted: dict[str, float] = {}
    if config.icount:
        counted = instructions_per_item(config, log)
        if counted:
            measures.append(
                Measure(
                    bench="batch",
                    what="instructions per registration (valgrind, same loop, same latency)",
                    unit="k instr",
                    pecapi=counted["pecapi"] / 1000,
                    baseline=counted["raw"] / 1000,
                    baseline_name="raw aiohttp POST + json.loads",
                    note="deterministic: what the wall time of a CPU-bound batch follows",
                )
            )
    return measures, {
        "instructions_per_item": counted,
        "runs": runs,
        "raw_runs": raw_runs,
        "memory_runs": {"small": small, "big": big},
        "ideal_s": ideal,
        "config": attrs.asdict(config),
    }


def instructions_per_item(config: BatchConfig, log: Callable[[str], None]) -> dict[str, float]:
    """Instructions per registration of pecapi's batch and of raw aiohttp's loop: each
    child runs under valgrind (``bench_icount``'s way) with the two ``icount_sizes`` on a
    fresh emulator each; the difference of the totals over the difference of the sizes
    leaves interpreter start, imports and warm-up out. {} when valgrind is missing."""
    import shutil

    from benchmarks.bench_icount import VALGRIND, instructions_of
    from benchmarks.common import REPO_ROOT, child_env, skip

    if shutil.which("valgrind") is None:
        skip("batch instructions", "valgrind is not installed", log)
        return {}
    env = child_env()
    env["PYTHONHASHSEED"] = "0"
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a recompile would land in one count only
    small, big = config.icount_sizes
    counted: dict[str, float] = {}
    for impl in ("pecapi", "raw"):
        totals: list[int] = []
        for items in (1, small, big):  # 1: natively, to write the bytecode first
            with emulator_server(latency=config.latency, credit=str(10 * items + 1000)) as server:
                child = [
                    sys.executable, "-m", "benchmarks.bench_batch", "--url", server.url,
                    "--token", server.token, "--items", str(items),
                    "--concurrency", str(config.concurrency), "--impl", impl,
                ]  # fmt: skip
                command = child if items == 1 else [*VALGRIND, *child]
                done = subprocess.run(
                    command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
                )
                if done.returncode != 0:
                    raise RuntimeError(f"batch icount {impl} failed:\n{done.stderr[-3000:]}")
                if items != 1:
                    totals.append(instructions_of(done.stderr))
        counted[impl] = (totals[1] - totals[0]) / (big - small)
        log(f"  batch icount {impl:<6}: {counted[impl] / 1000:.0f} k instructions per item")
    return counted


def _per_item_us(result: dict[str, Any]) -> float:
    """The server's CPU per item of one run, in µs (NaN where ``/proc`` is missing)."""
    if result.get("server_cpu") is None:
        return float("nan")
    return float(result["server_cpu"]) / result["items"] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_batch")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--impl", choices=("pecapi", "raw"), default="pecapi")
    args = parser.parse_args()
    result = asyncio.run(child_main(args.url, args.token, args.items, args.concurrency, args.impl))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Benchmark 1, counted: instructions per ``GET /pec/{id}`` under valgrind.

CPU time on a shared 2-core machine is noisy (the same code measures 1.9x-3.0x raw
aiohttp from one run to the next); an instruction count is not. Each client of
``bench_requests`` (``pecapi``, ``pecapi-raw``, ``aiohttp``) runs in a child process
under ``valgrind --tool=cachegrind --cache-sim=no`` with ``PYTHONHASHSEED=0``, twice: with
N1 and with N2 timed requests after the same warm-up. The difference of the two totals,
divided by N2 - N1, is the cost of one request: interpreter start, imports, session and
warm-up cancel out. The server (``python -m benchmarks.server``) runs in its own process,
not under valgrind, and is never counted.

Each child also counts the garbage collector's generation-0 collections during its
timed requests (``gc.callbacks``), reported per request.

``python -m benchmarks.bench_icount --url U --token T --mailbox ID --client NAME --n N
--concurrency C --warmup W [--raw-call NAME]`` is the child: it prints one JSON line (its
``Sample``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from benchmarks.bench_requests import (
    DEFAULT_RAW_CALL,
    TARGET_DECODED,
    TARGET_GEN0,
    TARGET_RAW,
    available,
    measure_once,
)
from benchmarks.common import (
    CHILD_TIMEOUT,
    REPO_ROOT,
    Measure,
    ServerInfo,
    child_env,
    emulator_server,
    median,
    skip,
)

__all__ = ["CLIENTS", "VALGRIND", "IcountConfig", "instructions_of", "run", "side_by_side"]

CLIENTS = ("pecapi", "pecapi-raw", "aiohttp")
VALGRIND = (
    "valgrind",
    "--tool=cachegrind",
    "--cache-sim=no",
    "--cachegrind-out-file=/dev/null",
)
_IREFS = re.compile(r"I\s+refs:\s+([\d,]+)")


@attrs.frozen
class IcountConfig:
    concurrencies: tuple[int, ...] = (1, 100)
    #: the two numbers of timed requests whose difference is counted
    sizes: tuple[int, int] = (200, 1200)
    warmup: int = 100
    clients: tuple[str, ...] = CLIENTS
    #: how many times each pair of runs is repeated (the counts agree within ~0.1 %)
    repeats: int = 1
    raw_call: str = DEFAULT_RAW_CALL


def _child_args(
    server: ServerInfo, client: str, n: int, concurrency: int, warmup: int, raw_call: str
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks.bench_icount",
        "--url",
        server.url,
        "--token",
        server.token,
        "--mailbox",
        server.mailbox,
        "--client",
        client,
        "--n",
        str(n),
        "--concurrency",
        str(concurrency),
        "--warmup",
        str(warmup),
        "--raw-call",
        raw_call,
    ]


def _count(server: ServerInfo, client: str, n: int, concurrency: int, config: IcountConfig) -> Any:
    """Run one child under valgrind: (instructions, its Sample as a dict)."""
    env = child_env()
    env["PYTHONHASHSEED"] = "0"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # The same child, natively and briefly, first: it writes the bytecode of every module
    # the run imports. Compiling a module that changed since (while pecapi is being
    # edited) costs tens of millions of instructions, which would land in one run of the
    # pair and not the other; with the .pyc files current, two runs agree within ~0.01 %.
    native = subprocess.run(
        _child_args(server, client, 1, concurrency, 1, config.raw_call),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if native.returncode != 0:
        raise RuntimeError(f"icount child {client} failed natively:\n{native.stderr[-3000:]}")
    done = subprocess.run(
        [
            *VALGRIND,
            *_child_args(server, client, n, concurrency, config.warmup, config.raw_call),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0 or not _IREFS.search(done.stderr):
        raise RuntimeError(
            f"icount child {client} n={n} failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return instructions_of(done.stderr), json.loads(lines[-1])


def instructions_of(valgrind_stderr: str) -> int:
    """The total ``I refs`` cachegrind printed when the process ended."""
    found = _IREFS.findall(valgrind_stderr)
    if not found:
        raise RuntimeError(f"no instruction count in valgrind's output: {valgrind_stderr[-500:]}")
    return int(found[-1].replace(",", ""))


def run(config: IcountConfig, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    if shutil.which("valgrind") is None:
        skip("icount", "valgrind is not installed (apt-get install valgrind)", log)
        return [], {"skipped": "valgrind is not installed"}
    config = attrs.evolve(config, clients=available(config.clients, log, config.raw_call))
    n1, n2 = config.sizes
    results: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in config.clients}
    with emulator_server() as server:
        for concurrency in config.concurrencies:
            for client in config.clients:
                per_request: list[float] = []
                runs: list[dict[str, Any]] = []
                try:
                    for _ in range(config.repeats):
                        i1, s1 = _count(server, client, n1, concurrency, config)
                        i2, s2 = _count(server, client, n2, concurrency, config)
                        per_request.append((i2 - i1) / (n2 - n1))
                        runs.append(
                            {"sizes": [n1, n2], "instructions": [i1, i2], "samples": [s1, s2]}
                        )
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    # One client failing (pecapi broken mid-edit, a timeout) leaves the
                    # others' counts standing.
                    last = str(exc).strip().splitlines()[-1:] or ["?"]
                    skip(f"icount: {client} c={concurrency}", f"failed: {last[0]}", log)
                    continue
                gen0 = sum(s["gen0"] for r in runs for s in r["samples"]) / (
                    (n1 + n2) * config.repeats
                )
                results[client][str(concurrency)] = {
                    "instructions_per_request": median(per_request),
                    "instructions_per_request_all": per_request,
                    "gen0_per_request": gen0,
                    "runs": runs,
                }
                log(
                    f"  icount c={concurrency:<3} {client:<10} "
                    f"{median(per_request) / 1000:8.1f} k instructions/req "
                    f"{gen0:.4f} gen0/req"
                )
    return _measures(results, config), {"results": results, "config": attrs.asdict(config)}


def _measures(results: Mapping[str, Mapping[str, Any]], config: IcountConfig) -> list[Measure]:
    if "aiohttp" not in results:
        return []
    measures: list[Measure] = []
    for concurrency in config.concurrencies:
        c = str(concurrency)
        base = results["aiohttp"].get(c)
        if base is None:
            continue
        for client, label, target in (
            ("pecapi", "decoded", TARGET_DECODED),
            ("pecapi-raw", f"raw answer ({config.raw_call})", TARGET_RAW),
        ):
            mine = results.get(client, {}).get(c)
            if mine is None:
                continue
            measures.append(
                Measure(
                    bench="icount",
                    what=f"instructions per GET /pec/{{id}}, {label}, concurrency {concurrency}",
                    unit="k instr",
                    pecapi=mine["instructions_per_request"] / 1000,
                    baseline=base["instructions_per_request"] / 1000,
                    baseline_name="raw aiohttp + json.loads",
                    target=target,
                    note="valgrind, N2 - N1 requests",
                )
            )
            measures.append(
                Measure(
                    bench="icount",
                    what=f"gen0 collections per 1000 GETs, {label}, concurrency {concurrency}",
                    unit="",
                    pecapi=mine["gen0_per_request"] * 1000,
                    baseline=base["gen0_per_request"] * 1000,
                    baseline_name="raw aiohttp + json.loads",
                    target=TARGET_GEN0,
                )
            )
    return measures


def side_by_side(icount: Mapping[str, Any] | None, requests: Mapping[str, Any] | None) -> str:
    """Instructions and CPU time per request of every client, side by side, each with
    its ratio to raw aiohttp + json.loads and its gen0 collections (Markdown)."""
    counted: Mapping[str, Any] = (icount or {}).get("results", {})
    timed: Mapping[str, Any] = (requests or {}).get("summary", {})
    clients = [c for c in ("pecapi", "pecapi-raw", "aiohttp") if c in counted or c in timed]
    concurrencies = sorted({int(c) for by_c in (*counted.values(), *timed.values()) for c in by_c})
    if not clients or not concurrencies:
        return ""
    goals = {"pecapi": f"≤ {TARGET_DECODED:g}x", "pecapi-raw": f"≤ {TARGET_RAW:g}x"}
    lines = [
        "| client | c | k instr/req | vs aiohttp | CPU us/req (median) | vs aiohttp "
        "| gen0/1000 req (icount) | vs aiohttp | gen0/1000 req (CPU runs) | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def cell(table: Mapping[str, Any], client: str, c: int, key: str) -> float | None:
        value = table.get(client, {}).get(str(c), {}).get(key)
        return None if value is None else float(value)

    for c in concurrencies:
        for client in clients:
            row = [client, str(c)]
            for table, key, scale, fmt in (
                (counted, "instructions_per_request", 1e-3, "{:,.0f}"),
                (timed, "cpu_us_per_request", 1.0, "{:.1f}"),
                (counted, "gen0_per_request", 1e3, "{:.1f}"),
            ):
                mine = cell(table, client, c, key)
                base = cell(table, "aiohttp", c, key)
                row.append("—" if mine is None else fmt.format(mine * scale))
                row.append(_ratio(mine, base))
            gen0_cpu = cell(timed, client, c, "gen0_per_request")
            row.append("—" if gen0_cpu is None else f"{gen0_cpu * 1e3:.1f}")
            row.append("baseline" if client == "aiohttp" else f"{goals[client]}; gen0 ≤ 2x")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _ratio(mine: float | None, base: float | None) -> str:
    if mine is None or base is None:
        return "—"
    if base == 0:
        return "∞ (base 0)" if mine else "—"
    return f"{mine / base:.2f}x"


def child(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_icount")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--mailbox", required=True)
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--raw-call", default=DEFAULT_RAW_CALL)
    args = parser.parse_args(argv)
    server = ServerInfo(url=args.url, token=args.token, mailbox=args.mailbox, registrata=(), pid=0)
    sample = measure_once(args.client, server, args.n, args.concurrency, args.warmup, args.raw_call)
    print(json.dumps(attrs.asdict(sample)))


if __name__ == "__main__":
    child()

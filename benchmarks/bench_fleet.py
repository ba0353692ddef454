"""Provisioning over a fleet: 1 vs 4 ``pecapi worker`` processes on one queued job of
registrations, against the emulator (its own process) at 50 ms latency, a private
``redis-server`` for the queue and the journal.

Measured from the submitter's side: rows per second from submitting the job to its last
outcome (``ProvisionQueue.follow``), the workers already running. The ideal beside it:
4 workers do 4x the rows of one when each is bound by the API's latency, not by the
machine. Then the 4 workers again with ``--rate-limit`` (the fleet's account-wide
limit, shared in Redis): the peak of the account's request rate over 1-second windows,
counted on the server's side (each row sends 2 requests: the availability check and the
registration; the registrations' times come from the emulator's ledger), against the
limit. ``python -m benchmarks.bench_fleet [--quick]`` runs it alone.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Measure, ServerInfo, child_env, emulator_server

__all__ = ["FleetConfig", "run"]

HEADER = (
    "casella_pec,tipo_casella,tipo_cliente,nome_richiedente,cognome_richiedente,email,"
    "telefono,codice_fiscale_richiedente,data_nascita_richiedente,sesso_richiedente,"
    "nazione_nascita_richiedente,indirizzo_titolare,comune_titolare,cap_titolare,"
    "nazione_titolare,provincia_titolare"
)
REQUESTS_PER_ROW = 2  # GET /verifica_pec/{pec}, POST /pec


@attrs.frozen
class FleetConfig:
    rows: int = 20_000
    latency: float = 0.05
    #: rows at a time per worker: low enough that one worker is bound by the latency
    concurrency: int = 10
    workers: tuple[int, ...] = (1, 4)
    chunk: int = 100
    #: the account-wide limit of the last run (requests/s); None: 35 % of what 4 did
    #: without one (the fleet's limiter costs CPU of its own: the limit must bind)
    rate_limit: float | None = None


def _csv(folder: Path, rows: int, prefix: str) -> Path:
    path = folder / f"{prefix}.csv"
    lines = [HEADER]
    lines.extend(
        f"{prefix}{i:06d}@testcert.legalmail.it,bronze,PV,Mario,Rossi,m@d.it,0548,"
        "RSSMRA82D11H501X,11/04/1982,M,IT,via Verdi 20,Roma,00042,IT,RM"
        for i in range(rows)
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _start_workers(
    count: int, server: ServerInfo, redis_url: str, options: Sequence[str]
) -> list[subprocess.Popen[bytes]]:
    env = child_env()
    env["OPENAPI_SANDBOX_TOKEN"] = server.token
    command = [sys.executable, "-m", "pecapi", "--sandbox", "--base-url", server.url, "--json",
               "worker", "--queue", redis_url, *options]  # fmt: skip
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line or json.loads(line).get("state") != "started":
            raise RuntimeError("a pecapi worker did not start")
    return procs


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _registration_times(server: ServerInfo) -> list[float]:
    request = urllib.request.Request(
        f"{server.url}/_emulator/ledger?operation=register",
        headers={"Authorization": f"Bearer {server.token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        charges = json.loads(answer.read())["charges"]
    return sorted(float(c["at"]) for c in charges)


def _peak_rate(times: Sequence[float], window: float) -> float:
    """The most events in any ``window``-second window (sliding over the events), per
    second."""
    peak, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak / window


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def _submit_and_follow(redis_url: str, source: Path) -> float:
    from pecapi.cli.csvinput import read_csv
    from pecapi.fleet.queue import CsvSource, ProvisionQueue, default_journal_name

    table = read_csv(source, str(source), None)
    csv_source = CsvSource(
        table.source.header, table.source.delimiter, source.name, str(source.parent)
    )
    async with ProvisionQueue(redis_url) as queue:
        started = time.perf_counter()
        job = await queue.submit(
            csv_source, table.rows, journal=default_journal_name(source), chunk=100
        )
        statuses: Counter[str] = Counter()
        async for record in queue.follow(job.id, block=0.2):
            statuses[str(record.get("status"))] += 1
        elapsed = time.perf_counter() - started
    if statuses != {"registered": len(table.rows)}:
        raise RuntimeError(f"the job did not register every row: {dict(statuses)}")
    return elapsed


def _one(
    config: FleetConfig, workers: int, log: Callable[[str], None], rate: float | None = None
) -> dict[str, Any]:
    from pecapi.testing.redis_server import RedisServer

    options = ["--concurrency", str(config.concurrency), "--items", "3", "--lease", "30"]
    if rate is not None:
        options += ["--rate-limit", f"{rate:g}"]
    credit = str(config.rows * 10 + 1000)
    with (
        tempfile.TemporaryDirectory(prefix="pecapi-bench-fleet-") as folder,
        emulator_server(latency=config.latency, credit=credit) as server,
        RedisServer() as redis,
    ):
        source = _csv(Path(folder), config.rows, f"w{workers}")
        procs = _start_workers(workers, server, redis.url, options)
        cpu_before = [_cpu_s(p.pid) for p in procs], _cpu_s(server.pid)
        try:
            elapsed = asyncio.run(_submit_and_follow(redis.url, source))
            cpu_workers = sum(_cpu_s(p.pid) for p in procs) - sum(cpu_before[0])
            cpu_server = _cpu_s(server.pid) - cpu_before[1]
        finally:
            _stop_workers(procs)
        times = _registration_times(server)
    result = {
        "workers": workers,
        "rows": config.rows,
        "seconds": elapsed,
        "rows_per_s": config.rows / elapsed,
        "peak_requests_per_s": _peak_rate(times, 1.0) * REQUESTS_PER_ROW,
        "peak_requests_per_s_5s": _peak_rate(times, 5.0) * REQUESTS_PER_ROW,
        "mean_requests_per_s": len(times) * REQUESTS_PER_ROW / elapsed,
        "rate_limit": rate,
        # where the time went: CPU of the workers (all) and of the emulator, per 1000 rows
        "worker_cpu_ms_per_row": 1000 * cpu_workers / config.rows,
        "server_cpu_ms_per_row": 1000 * cpu_server / config.rows,
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0],  # other processes of the machine, during the run
    }
    log(
        f"  {workers} worker(s){' at ' + format(rate, 'g') + ' req/s' if rate else ''}: "
        f"{result['rows_per_s']:.0f} rows/s, peak {result['peak_requests_per_s']:.0f} req/s "
        f"(1 s), {result['peak_requests_per_s_5s']:.0f} (5 s); CPU per row: workers "
        f"{result['worker_cpu_ms_per_row']:.1f} ms, emulator "
        f"{result['server_cpu_ms_per_row']:.1f} ms"
    )
    return result


def run(quick: bool, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    """The benchmark runner's entry (benchmarks/run.py): quick is 1,000 rows (about a minute)."""
    config = FleetConfig(rows=1_000) if quick else FleetConfig()
    return run_config(config, log)


def run_config(config: FleetConfig, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    runs = [_one(config, n, log) for n in config.workers]
    one, many = runs[0], runs[-1]
    ideal_ratio = many["workers"] / one["workers"]
    # Latency-bound, one worker does concurrency / (requests per row x latency) rows/s.
    bound = config.concurrency / (REQUESTS_PER_ROW * config.latency)
    rate = config.rate_limit or math.floor(0.35 * many["peak_requests_per_s_5s"])
    limited = _one(config, many["workers"], log, rate=rate)
    measures = [
        Measure(
            bench="fleet",
            what=f"{one['workers']} worker: rows/s ({config.rows:,} registrations, "
            f"{config.latency * 1000:.0f} ms latency, {config.concurrency} rows at a time)",
            unit="rows/s",
            pecapi=one["rows_per_s"],
            baseline=bound,
            baseline_name="latency bound",
            target=0.7,
            target_kind="min",
        ),
        Measure(
            bench="fleet",
            what=f"{many['workers']} workers vs 1: throughput ratio",
            unit="x",
            pecapi=many["rows_per_s"] / one["rows_per_s"],
            baseline=ideal_ratio,
            baseline_name="ideal",
            target=0.75,
            target_kind="min",
            note=f"{many['rows_per_s']:.0f} vs {one['rows_per_s']:.0f} rows/s; CPU per row "
            f"{many['worker_cpu_ms_per_row'] + many['server_cpu_ms_per_row']:.1f} ms (workers "
            f"and emulator) on {many['cpus']} CPUs, load {many['load']:.1f}",
        ),
        Measure(
            bench="fleet",
            what=f"{many['workers']} workers at --rate-limit {rate:g}: peak requests/s over "
            "5-s windows (server side; the limit's burst is 1 s of it)",
            unit="req/s",
            pecapi=limited["peak_requests_per_s_5s"],
            baseline=float(rate) * 1.2,
            baseline_name="limit + burst over 5 s",
            target=1.0,
            target_kind="max",
            note=f"{limited['rows_per_s']:.0f} rows/s",
        ),
    ]
    return measures, {"config": attrs.asdict(config), "runs": [*runs, limited]}


def main(argv: Sequence[str] | None = None) -> int:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    measures, details = run(quick, log)
    for m in measures:
        print(f"{m.what}: {m.pecapi:.2f} {m.unit} (vs {m.baseline:.2f} {m.baseline_name})")
    print(json.dumps(details, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

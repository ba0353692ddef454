"""Run the benchmark suite: ``python -m benchmarks`` or ``python benchmarks/run.py``.

Prints a results table and writes ``benchmarks/results/latest.json`` (git-ignored).
``--quick`` runs small sizes (a smoke run, under a minute); ``--only NAME`` (repeatable)
picks benchmarks; ``--icount`` also counts instructions per request under valgrind
(``bench_icount``) and prints them beside the CPU times; ``--profile`` also writes
pyinstrument profiles of pecapi's side of the request and decode benchmarks to
``benchmarks/results/profile-*.txt``.

Whatever is not installed (a peer, pydantic, pyinstrument, valgrind) is skipped, and
the run says so under the table and in ``latest.json`` (``skipped``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import attrs

import pecapi

# The others are imported by their runner: one whose optional library is missing (its
# ModuleNotFoundError) is skipped, and the rest still run.
from benchmarks import bench_icount, bench_requests
from benchmarks.common import (
    RESULTS_DIR,
    Measure,
    client_limits,
    emulator_server,
    installed,
    skip,
    skipped,
)

__all__ = ["main"]

Runner = Callable[[argparse.Namespace, Callable[[str], None]], tuple[list[Measure], Any]]


def _requests(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    if args.quick:
        config = bench_requests.RequestsConfig(
            requests=((1, 300), (100, 1000)), repeats=2, warmup=100
        )
    else:
        config = bench_requests.RequestsConfig()
    config = attrs.evolve(config, raw_call=args.raw_call)
    if args.concurrency:
        config = attrs.evolve(config, concurrencies=tuple(args.concurrency))
    return bench_requests.run(config, log)


def _icount(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    config = bench_icount.IcountConfig(raw_call=args.raw_call)
    if args.quick:
        config = attrs.evolve(config, sizes=(50, 250), warmup=50)
    if args.concurrency:
        config = attrs.evolve(config, concurrencies=tuple(args.concurrency))
    return bench_icount.run(config, log)


def _batch(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    from benchmarks import bench_batch

    quick = args.quick
    if quick:
        config = bench_batch.BatchConfig(
            items=1000, repeats=1, memory_items=(1000, 4000), icount=args.icount
        )
    else:
        config = bench_batch.BatchConfig(icount=args.icount)
    return bench_batch.run(config, log)


def _uploads(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    from benchmarks import bench_uploads

    if args.quick:
        config = bench_uploads.UploadConfig(size=16 * 1024 * 1024, repeats=1)
    else:
        config = bench_uploads.UploadConfig()
    return bench_uploads.run(config, log)


def _imports(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    from benchmarks import bench_imports

    config = bench_imports.ImportsConfig(repeats=5 if args.quick else 21, icount=args.icount)
    return bench_imports.run(config, log)


def _decode(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    from benchmarks import bench_decode

    if args.quick:
        config = bench_decode.DecodeConfig(items=2000, repeats=3)
    else:
        config = bench_decode.DecodeConfig()
    return bench_decode.run(config, log)


def _fleet(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    from benchmarks import bench_fleet
    from pecapi.testing.redis_server import find_redis_server

    if find_redis_server() is None:
        skip("fleet", "redis-server is not installed (apt-get install redis-server)", log)
        return [], None
    return bench_fleet.run(args.quick, log)


BENCHMARKS: dict[str, Runner] = {
    "requests": _requests,  # 1 (overhead) and 2 (peers): measured together, interleaved
    "icount": _icount,  # 1 again, in instructions (valgrind): only with --icount or --only
    "batch": _batch,
    "uploads": _uploads,
    "imports": _imports,
    "decode": _decode,
    "fleet": _fleet,  # 1 vs 4 `pecapi worker` processes: only with --only fleet (minutes)
}
ALIASES = {"overhead": "requests", "peers": "requests"}
#: Run only when asked for (``--icount``, ``--only icount``, ``--only fleet``): minutes each.
ON_REQUEST = ("icount", "fleet")


def format_table(measures: Sequence[Measure]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| benchmark | measure | pecapi | baseline | ratio | target | met |",
        "|---|---|---:|---|---:|---:|:---:|",
    ]
    for m in measures:
        target = "" if m.target is None else ("≥ " if m.target_kind == "min" else "≤ ")
        target += "" if m.target is None else f"{m.target:g}x"
        met = {None: "", True: "yes", False: "**no**"}[m.met]
        baseline = f"{_num(m.baseline)} {m.unit} ({m.baseline_name})"
        what = m.what + (f" — {m.note}" if m.note else "")
        lines.append(
            f"| {m.bench} | {what} | {_num(m.pecapi)} {m.unit} | {baseline} | "
            f"{_ratio(m.ratio)} | {target} | {met} |"
        )
    return "\n".join(lines)


def _ratio(value: float) -> str:
    if value == float("inf"):
        return "∞ (baseline 0)"
    return f"{value:.3f}x" if value < 0.1 else f"{value:.2f}x"


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def profile(log: Callable[[str], None]) -> list[Path]:
    """pyinstrument profiles of pecapi's side of the request and decode benchmarks."""
    if not installed("pyinstrument"):
        skip("--profile", "pyinstrument is not installed (pip install 'pyinstrument>=4.6')", log)
        return []
    from pyinstrument import Profiler

    from benchmarks import bench_batch, bench_decode

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(name: str, profiler: Profiler) -> None:
        path = RESULTS_DIR / f"profile-{name}.txt"
        path.write_text(profiler.output_text(unicode=False, color=False), encoding="utf-8")
        written.append(path)
        log(f"  profile written to {path}")

    with emulator_server() as server:
        for concurrency in (1, 100):
            profiler = Profiler(interval=0.0005, async_mode="disabled")
            profiler.start()
            asyncio.run(bench_requests.run_pecapi(server, 3000, concurrency, 200))
            profiler.stop()
            save(f"get-c{concurrency}", profiler)
    with emulator_server(credit="100000") as server:

        async def register(n: int) -> None:
            async with pecapi.PecClient(
                server.token, sandbox=True, base_url=server.url, **client_limits(100)
            ) as client:
                items = bench_batch.registrations(n, prefix="profile")
                async for outcome in bench_batch.bounded(client.mailboxes.register, items, 100):
                    if isinstance(outcome, BaseException):
                        raise outcome

        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        asyncio.run(register(3000))
        profiler.stop()
        save("register-c100", profiler)
    from pecapi.models.mailbox import MailboxSummary
    from pecapi.resources.mailboxes import LIST
    from pecapi.transport.endpoint import Reply

    body = bench_decode.list_body(10_000)
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    for _ in range(3):
        data = json.loads(body)["data"]
        boxes = LIST.decode(Reply(status=200, data=data, message=None, code=None, params={}))
        assert isinstance(boxes[0], MailboxSummary)
    profiler.stop()
    save("decode-list", profiler)
    return written


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="pecapi against raw aiohttp, httpx and the official SDK, on the emulator.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run, < 60 s)")
    parser.add_argument(
        "--only",
        action="append",
        choices=[*BENCHMARKS, *ALIASES],
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join([*BENCHMARKS, *ALIASES])}",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also write pyinstrument profiles of pecapi"
    )
    parser.add_argument(
        "--icount",
        action="store_true",
        help="also count instructions per request under valgrind (minutes), beside the CPU times",
    )
    parser.add_argument(
        "--raw-call",
        choices=sorted(bench_requests.RAW_CALLS),
        default=bench_requests.DEFAULT_RAW_CALL,
        help="how the pecapi-raw client asks for the undecoded answer "
        f"(default {bench_requests.DEFAULT_RAW_CALL})",
    )
    parser.add_argument(
        "--concurrency",
        type=_concurrencies,
        help="the concurrencies of requests and icount, comma-separated (default 1,100)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "latest.json",
        help="JSON results (default benchmarks/results/latest.json)",
    )
    return parser.parse_args(argv)


def _concurrencies(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("positive integers, comma-separated: 1,50")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = {ALIASES.get(name, name) for name in args.only or ()}
    if not args.only:
        wanted = {name for name in BENCHMARKS if name not in ON_REQUEST}
    if args.icount:
        wanted.add("icount")
    names = [name for name in BENCHMARKS if name in wanted]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    measures: list[Measure] = []
    details: dict[str, Any] = {}
    for name in names:
        log(f"== {name}")
        bench_started = time.perf_counter()
        try:
            found, detail = BENCHMARKS[name](args, log)
        except ModuleNotFoundError as exc:
            # An optional library a benchmark needs (pydantic for decode, ...) is missing.
            skip(name, f"{exc.name} is not installed ({exc})", log)
            continue
        measures.extend(found)
        details[name] = detail
        log(f"   ({time.perf_counter() - bench_started:.1f} s)")
    profiles = [str(p) for p in profile(log)] if args.profile else []
    elapsed = time.perf_counter() - started

    command = "python -m benchmarks" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    table = format_table(measures)
    print(table)
    per_request = bench_icount.side_by_side(details.get("icount"), details.get("requests"))
    if per_request and "icount" in details:
        print("\nPer request, instructions (valgrind) beside CPU time (medians):\n")
        print(per_request)
    left_out = skipped()
    if left_out:
        print("\nSkipped:")
        for item in left_out:
            print(f"- {item.what}: {item.reason}")
    print(f"\n{command}: {elapsed:.0f} s", flush=True)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": command,
        "quick": args.quick,
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": elapsed,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": _cpu_count(),
        },
        "versions": _versions(),
        "measures": [m.as_dict() for m in measures],
        "details": details,
        "profiles": profiles,
        "table": table,
        "per_request_table": per_request,
        "skipped": [item.as_dict() for item in left_out],
    }
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    log(f"results written to {args.output}")
    return 0


def _cpu_count() -> int | None:
    import os

    return os.cpu_count()


def _versions() -> dict[str, str]:
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in (
        "pecapi",
        "aiohttp",
        "attrs",
        "cattrs",
        "orjson",
        "httpx",
        "openapi-python-sdk",
        "pydantic",
        "pyinstrument",
    ):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    found["valgrind"] = _valgrind_version()
    return found


def _valgrind_version() -> str:
    if shutil.which("valgrind") is None:
        return "not installed"
    done = subprocess.run(
        ["valgrind", "--version"], capture_output=True, text=True, check=False, timeout=30
    )
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    raise SystemExit(main())

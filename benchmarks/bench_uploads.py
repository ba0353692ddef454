"""Benchmark 4: uploading a large PDF (``PATCH /pec/{id}/attivazione``), peak memory.

``python -m benchmarks.bench_uploads --impl pecapi|naive --url U --token T --id ID
--warm ID --file PATH`` (the child process) opens its HTTP session, makes one warm-up
GET (connection, lazy imports), reads ``VmHWM``, uploads the file, and reads ``VmHWM``
again: the growth of the peak resident set is what the upload cost in memory.

- ``pecapi``: ``await client.mailboxes.activate(id, path)`` (streamed from disk);
- ``naive``: read the file, ``base64``, ``json.dumps``, ``aiohttp`` PATCH of the bytes.

The emulator (which decodes the whole upload) runs in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import attrs

import pecapi
from benchmarks.common import Measure, emulator_server, median, memory_kb, run_child

__all__ = ["UploadConfig", "make_pdf_file", "run"]

IMPLS = ("pecapi", "naive")


def make_pdf_file(path: Path, size: int) -> None:
    """A file of ``size`` bytes that passes as a PDF: ``%PDF-`` then random bytes."""
    header = b"%PDF-1.7\n"
    chunk = 1024 * 1024
    with path.open("wb") as out:
        out.write(header)
        left = size - len(header)
        while left > 0:
            n = min(chunk, left)
            out.write(os.urandom(n))
            left -= n


async def upload_pecapi(url: str, token: str, box: str, warm: str, path: Path) -> dict[str, Any]:
    async with pecapi.PecClient(token, sandbox=True, base_url=url) as client:
        await client.mailboxes.get(warm)
        before = memory_kb()
        started = time.perf_counter()
        result = await client.mailboxes.activate(box, path)
        wall = time.perf_counter() - started
        after = memory_kb()
        stato = str(result.stato.value) if result.stato is not None else None
    return {"before": before, "after": after, "wall": wall, "stato": stato}


async def upload_naive(url: str, token: str, box: str, warm: str, path: Path) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/pec/{warm}", headers=headers) as response:
            json.loads(await response.read())
        before = memory_kb()
        started = time.perf_counter()
        data = await asyncio.to_thread(path.read_bytes)
        body = json.dumps({"documenti": [base64.b64encode(data).decode("ascii")]})
        async with session.patch(
            f"{url}/pec/{box}/attivazione",
            data=body.encode("utf-8"),
            headers={**headers, "Content-Type": "application/json"},
        ) as response:
            reply = json.loads(await response.read())
        wall = time.perf_counter() - started
        after = memory_kb()
    stato = reply["data"]["stato"] if reply.get("success") else f"error {reply!r:.200}"
    return {"before": before, "after": after, "wall": wall, "stato": stato}


@attrs.frozen
class UploadConfig:
    size: int = 100 * 1024 * 1024
    repeats: int = 3


def run(config: UploadConfig, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    growth: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pecapi-bench-") as tmp:
        pdf = Path(tmp) / "scan.pdf"
        make_pdf_file(pdf, config.size)
        with emulator_server(registrata=config.repeats * len(IMPLS)) as server:
            boxes = iter(server.registrata)
            for rep in range(config.repeats):
                order = IMPLS if rep % 2 == 0 else tuple(reversed(IMPLS))
                for impl in order:
                    r = run_child(
                        "bench_uploads",
                        [
                            "--impl",
                            impl,
                            "--url",
                            server.url,
                            "--token",
                            server.token,
                            "--id",
                            next(boxes),
                            "--warm",
                            server.mailbox,
                            "--file",
                            str(pdf),
                        ],
                    )
                    if r["stato"] != "in_evasione":
                        raise RuntimeError(f"{impl} upload failed: {r['stato']}")
                    grown = (r["after"]["VmHWM"] - r["before"]["VmHWM"]) * 1024
                    growth[impl].append(grown)
                    runs.append({"impl": impl, **r})
                    log(
                        f"  uploads rep {rep + 1}/{config.repeats} {impl:<6} "
                        f"peak RSS +{grown / 2**20:7.1f} MB in {r['wall']:.2f} s"
                    )
    size_mb = config.size / 2**20
    pecapi_mb = median(growth["pecapi"]) / 2**20
    naive_mb = median(growth["naive"]) / 2**20
    measures = [
        Measure(
            bench="uploads",
            what=f"peak RSS growth, activate() with a {size_mb:.0f} MB PDF",
            unit="MB",
            pecapi=pecapi_mb,
            baseline=size_mb,
            baseline_name="the file size",
            target=0.25,
        ),
        Measure(
            bench="uploads",
            what="peak RSS growth vs the naive upload",
            unit="MB",
            pecapi=pecapi_mb,
            baseline=naive_mb,
            baseline_name="read + base64 + json.dumps + aiohttp",
        ),
    ]
    return measures, {"runs": runs, "size": config.size}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_uploads")
    parser.add_argument("--impl", choices=IMPLS, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--warm", required=True)
    parser.add_argument("--file", type=Path, required=True)
    args = parser.parse_args()
    upload = upload_pecapi if args.impl == "pecapi" else upload_naive
    result = asyncio.run(upload(args.url, args.token, args.id, args.warm, args.file))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

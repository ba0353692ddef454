"""Bounded memory under a gzip bomb and an endless body, read as the high-water mark of
the resident set of a child process that makes the call (no timing is measured).

The bomb's bound needs an inflation in bounded steps: aiohttp's own from 3.14, pecapi's
(``Pipeline.inflate``) on older ones, which inflate a network read in one go."""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import zlib
from pathlib import Path

import pytest
from aiohttp import web

from pecapi import ResponseLimits
from tests.test_limits import Handler, KiB, MiB, serve

CHILD = r"""
import asyncio, json, resource, sys
from pecapi import PecClient, ResponseDecodeError, ResponseTooLargeError

def peak():
    # The high-water mark of this process's resident set. Linux: VmHWM, since
    # ru_maxrss survives exec and starts at the parent's (pytest's) peak.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage if sys.platform == "darwin" else usage * 1024

async def main():
    async with PecClient("t0ken", base_url=sys.argv[1]) as client:
        before = peak()
        try:
            await client.mailboxes.list()
            outcome = "read"
        except ResponseTooLargeError as exc:
            outcome = f"too large: {exc.limit}"
        except ResponseDecodeError:
            outcome = "parsed, not a listing"
        print(json.dumps({"before": before, "after": peak(), "outcome": outcome}))

asyncio.run(main())
"""


def gzip_bomb() -> bytes:
    """1 GiB of zeros as a 1 MB gzip body: a first MiB, then the same MiB repeated as
    identical blocks (each after a full flush, so it needs nothing before it)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    first = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    # The last (empty) block, then the trailer: CRC-32 of the 1 GiB, which is
    # zlib.crc32(bytes(1 << 30)) written out (it takes a while to compute), and its size.
    trailer = b"\x03\x00" + struct.pack("<II", 0x5B64C2B0, 1 << 30)
    return first + block * 1023 + trailer


async def bomb(request: web.Request) -> web.StreamResponse:
    return web.Response(body=gzip_bomb(), headers={"Content-Encoding": "gzip"})


async def endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_type = "application/json"
    await response.prepare(request)
    block = b" " * (64 * KiB)
    try:
        while True:
            await response.write(block)
    except ConnectionError:  # the client stopped reading and closed: as it should
        pass
    return response


async def run_child(handler: Handler) -> dict[str, int | str]:
    """The child's report: peak resident set before and after one ``mailboxes.list()``
    answered by ``handler``, and how the call ended."""
    async with serve({"/pec": handler}) as server:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            server.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=Path(__file__).parents[1],
        )
        try:
            # Not a timing check: only a guard against a hang that would stall the run.
            out, err = await asyncio.wait_for(child.communicate(), 300)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
    assert child.returncode == 0, err.decode()
    report: dict[str, int | str] = json.loads(out)
    return report


@pytest.mark.parametrize("handler", [bomb, endless], ids=["gzip-bomb", "endless-body"])
async def test_memory_stays_bounded(handler: Handler) -> None:
    report = await run_child(handler)
    assert report["outcome"] == f"too large: {ResponseLimits().json}"
    # The 64 MiB read up to the limit, and slack; without a bound it would be gigabytes.
    assert report["after"] - report["before"] < 200 * MiB, report


LIMIT = ResponseLimits().json_values


def values_listing(item: bytes, count: int, size: int = 60 * MiB) -> Handler:
    """A listing of ``count`` copies of ``item``, padded with spaces to ``size`` bytes."""
    body = b'{"success":true,"data":[' + b",".join([item] * count) + b"]}"
    body += b" " * (size - len(body))

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    return handle


@pytest.mark.parametrize(
    ("item", "count", "outcome"),
    [
        # Just under the limit: [] counts twice (a comma and a bracket), 72 bytes parsed.
        (b"[]", (LIMIT - 13) // 2, "parsed, not a listing"),
        # Just under the limit: a short string counts once and takes some 60 bytes.
        (b'"ab"', LIMIT - 13, "parsed, not a listing"),
        (b"[]", 20_000_000, f"too large: {LIMIT}"),  # 60 MiB of []
    ],
    ids=["lists-under-the-limit", "strings-under-the-limit", "too-many-values"],
)
async def test_parsing_stays_bounded(item: bytes, count: int, outcome: str) -> None:
    """Unbounded, 60 MiB of ``[],[],...`` parses into 1.6 GB; within the value limit
    it cannot take more than some 150 MB beyond the body it was read from."""
    report = await run_child(values_listing(item, count))
    assert report["outcome"] == outcome
    growth = int(report["after"]) - int(report["before"])
    # The body (60 MiB), its text for the parser (60 MiB), 2 million values (150 MB).
    assert growth < 450 * MiB, report

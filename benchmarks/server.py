"""The benchmarks' server: ``pecapi.testing.Emulator`` seeded, served on loopback, in a
process of its own (so its CPU time and memory are never counted as the client's).

``python -m benchmarks.server [--latency S] [--credit EUR] [--registrata N]`` prints one
JSON line ``{"url", "token", "mailbox", "registrata": [...]}`` once it is serving, then
serves until SIGTERM/SIGINT.

``mailbox`` is an ``evasa`` mailbox (for ``GET /pec/{id}``); ``registrata`` lists N
mailboxes waiting for their activation documents (one upload each).

The emulator refuses request bodies over 64 MB (``pecapi.testing.app.MAX_BODY``); a
100 MB PDF travels as ~133 MB of base64, so this script raises that limit for itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from decimal import Decimal

import pecapi.testing.app as emulator_app
from pecapi.testing import DEFAULT_TOKEN, Emulator

MAX_BODY = 1024 * 1024 * 1024


async def serve(args: argparse.Namespace) -> None:
    emulator_app.MAX_BODY = MAX_BODY  # read by build_app() when the server starts
    emu = Emulator(credit=Decimal(args.credit), latency=args.latency)
    mailbox = emu.seed_mailbox("bench.get@testcert.legalmail.it", stato="evasa")
    registrata = [
        emu.seed_mailbox(f"bench.upload{i}@testcert.legalmail.it", stato="registrata")
        for i in range(args.registrata)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with emu.serve("127.0.0.1", 0) as running:
        info = {
            "url": running.url,
            "token": DEFAULT_TOKEN,
            "mailbox": mailbox,
            "registrata": registrata,
        }
        print(json.dumps(info), flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--credit", default="1000")
    parser.add_argument("--registrata", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()

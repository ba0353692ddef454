"""``python -m pecapi.testing``: serve an emulator until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from decimal import Decimal

from .state import DEFAULT_TOKEN, Emulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's options (shared with ``pecapi emulator``)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    parser.add_argument(
        "--token", default=DEFAULT_TOKEN, help="bearer token the emulator accepts (a test value)"
    )
    parser.add_argument(
        "--production", action="store_true", help="production rules (default: sandbox)"
    )
    parser.add_argument("--credit", type=Decimal, default=Decimal("1000"), help="wallet (EUR)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument(
        "--auto-process",
        action="store_true",
        help="complete activations and comunica_pec steps at once",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of ids and faults")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pecapi.testing",
        description="Serve a stateful emulator of the Openapi.it PEC API.",
    )
    add_arguments(parser)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    emulator = Emulator(
        environment="production" if args.production else "sandbox",
        tokens={args.token: None},
        credit=args.credit,
        auto_process=args.auto_process,
        latency=args.latency,
        seed=args.seed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with emulator.serve(args.host, args.port) as running:
        print(running.url, flush=True)
        print(
            f"pecapi.testing: {emulator.environment} emulator at {running.url} "
            f"({_describe(args.token)}); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()


def _describe(token: str) -> str:
    # The default test token is printed so that users can copy it; one of their own is not.
    return f"token {token!r}" if token == DEFAULT_TOKEN else "the token given with --token"


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""``pecapi emulator``: serve :mod:`pecapi.testing`'s emulator until Ctrl-C or SIGTERM.

The same server as ``python -m pecapi.testing`` (its code runs it): the base URL is
printed on stdout, a note on stderr.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from pecapi.testing import DEFAULT_TOKEN
from pecapi.testing import __main__ as testing_main

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="serve the PEC API emulator (for tests and trials)",
        description="Serve a stateful emulator of the Openapi.it PEC API until Ctrl-C. "
        "Prints its base URL on stdout; point the other commands at it with --base-url.",
    )
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Handed to pecapi.testing as a command line, so that options it gains later keep
    # their defaults there.
    argv = [
        "--host", args.host,
        "--port", str(args.port),
        "--token", args.token,
        "--credit", str(args.credit),
        "--latency", str(args.latency),
        "--seed", str(args.seed),
    ]  # fmt: skip
    if args.production:
        argv.append("--production")
    if args.auto_process:
        argv.append("--auto-process")
    return testing_main.main(argv)

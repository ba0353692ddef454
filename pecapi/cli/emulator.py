"""``pecapi emulator``: serve :mod:`pecapi.testing`'s emulator until Ctrl-C or SIGTERM.

The same server as ``python -m pecapi.testing`` (its code runs it): the base URL is
printed on stdout, a note on stderr.
"""

from __future__ import annotations

import argparse
from typing import Any

from pecapi.testing import __main__ as testing_main

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="serve the PEC API emulator (for tests and trials)",
        description="Serve a stateful emulator of the Openapi.it PEC API until Ctrl-C. "
        "Prints its base URL on stdout; point the other commands at it with --base-url. "
        "Drive it over HTTP under /_emulator/ (faults, wallet, ledger, request log, "
        "lifecycle, clock, reset): see pecapi/testing/README.md.",
    )
    testing_main.add_arguments(parser)
    parser.set_defaults(handler=testing_main.run)

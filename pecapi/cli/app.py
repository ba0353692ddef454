"""The argument parser of ``pecapi`` and the code that runs a parsed command.

Layout: ``pecapi GROUP COMMAND ...`` for the API's operations (built from the table in
:mod:`pecapi.cli.commands`), and top-level tools, each a module with ``add_parser``
(:data:`TOOLS`: ``demo``, ``emulator``). Every leaf parser gets a ``handler`` default:
a function from the parsed arguments to an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from pecapi import __version__
from pecapi.errors import PecError

from . import demo, emulator, provision
from .commands import COMMANDS, GROUPS, Command
from .connection import add_connection_options, client_from_args
from .exits import ExitCode, InputFileError, error_line, exit_code_for
from .fields import add_model_flags
from .output import Download, Output

__all__ = ["TOOLS", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

#: Top-level commands that are not one API call: modules with ``add_parser(subparsers)``.
TOOLS: tuple[ModuleType, ...] = (demo, emulator, provision)

DESCRIPTION = """\
Manage Openapi.it PEC mailboxes (certified e-mail) from a terminal or a script.

The token comes from OPENAPI_TOKEN (production) or OPENAPI_SANDBOX_TOKEN (--sandbox),
or from --token-file; it is never printed."""

EPILOG = """\
output:
  tables for people by default; --json prints one JSON document per command (API field
  names, enums as values, dates dd/mm/yyyy, timestamps in unix seconds, unknown fields
  kept). Errors are one line on stderr.

exit codes:
  0 success        2 usage error    3 API error (status and code on stderr)
  4 transport error, unreadable answer or unknown outcome (check before retrying)
  5 invalid input, nothing sent     6 configuration (token, --base-url), nothing sent
  1 other failure  130 interrupted"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _command_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], command: Command
) -> None:
    effect = "paid: debits the wallet" if command.paid else command.endpoint.effect.value
    parser = subparsers.add_parser(
        command.name,
        help=command.help + (" (paid)" if command.paid else ""),
        description=f"{command.help}.\n\ncalls {command.endpoint} ({effect})",
        formatter_class=_Formatter,
    )
    for spec in command.args:
        parser.add_argument(*spec.flags, **spec.options)
    if command.model is not None:
        add_model_flags(parser, *command.model)
    add_connection_options(parser, top=False)
    parser.set_defaults(handler=_api_handler(command))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pecapi", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"pecapi {__version__}")
    add_connection_options(parser, top=True)
    top = parser.add_subparsers(title="commands", metavar="COMMAND", dest="group")
    top.required = True
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for name, text in GROUPS.items():
        group_parser = top.add_parser(name, help=text, description=text)
        groups[name] = group_parser.add_subparsers(
            title="commands", metavar="COMMAND", dest="command"
        )
        groups[name].required = True
    for command in COMMANDS:
        _command_parser(groups[command.group], command)
    for tool in TOOLS:
        tool.add_parser(top)
    return parser


# -- running -----------------------------------------------------------------------------


async def _call(command: Command, args: argparse.Namespace) -> Any:
    async with client_from_args(args) as client:
        return await command.call(client, args)


def _api_handler(command: Command) -> Handler:
    def handle(args: argparse.Namespace) -> int:
        # Made before the call: it needs rich (the cli extra), and a missing extra must
        # stop the command before a paid call is sent, not after.
        out = Output(json_mode=args.json)
        result = asyncio.run(_call(command, args))
        if not (isinstance(result, Download) and result.path is None):  # PDF went to stdout
            out.result(result)
        return ExitCode.OK

    return handle


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pecapi`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (2)
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    handler: Handler = args.handler
    try:
        return handler(args)
    except PecError as exc:
        print(error_line(exc), file=sys.stderr, flush=True)
        return exit_code_for(exc)
    except InputFileError as exc:
        print(exc.line(), file=sys.stderr, flush=True)
        return exc.code
    except KeyboardInterrupt:
        print("pecapi: interrupted", file=sys.stderr, flush=True)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # e.g. `pecapi --json mailboxes list | head -c 100`
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes
        return ExitCode.FAILURE

"""The argument parser of ``pecapi`` and the code that runs a parsed command.

Layout: ``pecapi GROUP COMMAND ...`` for the API's operations (built from the table in
:mod:`pecapi.cli.commands`), and top-level tools, each a module with ``add_parser``
(:data:`TOOLS`: ``demo``, ``emulator``, ``provision``). Every leaf parser gets a
``handler`` default: a function from the parsed arguments to an exit code.

Help texts are plain text (people read them in a terminal): no reStructuredText there,
docstrings stay for the code; tests/cli/test_help.py checks every command's help.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, NoReturn

from pecapi._version import __version__
from pecapi.errors import PecError

from . import demo, emulator, provision
from .commands import COMMANDS, GROUPS, Command
from .connection import add_connection_options, client_from_args
from .events import error_event
from .exits import ExitCode, InputFileError, UsageError, error_text, exit_code_for
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
  kept), JSON lines for provision and demo. An error is one line on stderr: text, or
  with --json one JSON object ("event": "error", with "exit_code").

exit codes:
  0 success        2 usage error    3 API error (status and code on stderr)
  4 transport error, unreadable answer or unknown outcome (check before retrying)
  5 invalid input, nothing sent     6 configuration (token, --base-url), nothing sent
  1 other failure  130 interrupted (Ctrl-C)  143 terminated (SIGTERM)"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are raised (:class:`UsageError`), so that
    ``main`` prints them as text or as JSON; subparsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.format_usage(), self.prog, message)


def _command_parser(subparsers: argparse._SubParsersAction[_Parser], command: Command) -> None:
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
    parser = _Parser(
        prog="pecapi", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"pecapi {__version__}")
    add_connection_options(parser, top=True)
    top = parser.add_subparsers(title="commands", metavar="COMMAND", dest="group")
    top.required = True
    groups: dict[str, argparse._SubParsersAction[_Parser]] = {}
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


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether ``--json`` was asked for, read before (or without) parsing: a usage
    error must be JSON too. Options end at ``--``."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options


def _report(exc: BaseException, text: str, code: int, json_mode: bool) -> int:
    """Print one error to stderr: ``pecapi: text``, or under --json one JSON object."""
    if json_mode:
        line = json.dumps(error_event(exc, text, code), ensure_ascii=False)
    else:
        line = "pecapi: " + text
    print(line, file=sys.stderr, flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pecapi`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        if _wants_json(argv):
            return _report(exc, exc.message, ExitCode.USAGE, True)
        print(exc.text(), end="", file=sys.stderr, flush=True)
        return ExitCode.USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    args.argv = argv  # for the command that says how to resume (provision)
    json_mode = bool(getattr(args, "json", False))
    handler: Handler = args.handler
    try:
        return handler(args)
    except UsageError as exc:  # options that do not go together, found by the command
        if json_mode:
            return _report(exc, exc.message, ExitCode.USAGE, True)
        print(exc.text(), end="", file=sys.stderr, flush=True)
        return ExitCode.USAGE
    except PecError as exc:
        return _report(exc, error_text(exc), exit_code_for(exc), json_mode)
    except InputFileError as exc:
        return _report(exc, exc.text(), exc.code, json_mode)
    except KeyboardInterrupt as exc:
        return _report(exc, "interrupted", ExitCode.INTERRUPTED, json_mode)
    except BrokenPipeError:  # e.g. `pecapi --json mailboxes list | head -c 100`
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes
        return ExitCode.FAILURE

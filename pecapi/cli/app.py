"""The argument parser of ``pecapi`` and the code that runs a parsed command.

Layout: ``pecapi GROUP COMMAND ...`` for the API's operations (built from the table in
:mod:`pecapi.cli.commands`), and top-level tools, each a module with ``add_parser``
(:data:`TOOLS`: ``demo``, ``emulator``, ``provision``, ``worker``). Every leaf parser gets a
``handler`` default: a function from the parsed arguments to an exit code.

Help texts are plain text (people read them in a terminal): no reStructuredText there,
docstrings stay for the code; tests/cli/test_help.py checks every command's help.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any, NoReturn

from pecapi._version import __version__
from pecapi.errors import PecError

from . import demo, emulator, provision, worker
from .commands import COMMANDS, GROUPS, Command
from .connection import add_connection_options, client_from_args
from .events import error_event, log_event
from .exits import ExitCode, InputFileError, UsageError, error_text, exit_code_for
from .fields import add_model_flags
from .output import Download, Output

__all__ = ["TOOLS", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

#: Top-level commands that are not one API call: modules with ``add_parser(subparsers)``.
TOOLS: tuple[ModuleType, ...] = (demo, emulator, provision, worker)

DESCRIPTION = """\
Manage Openapi.it PEC mailboxes (certified e-mail) from a terminal or a script.

The token comes from OPENAPI_TOKEN (production) or OPENAPI_SANDBOX_TOKEN (--sandbox),
or from --token-file; it is never printed."""

EPILOG = """\
output:
  tables for people by default; --json prints one JSON document per command (API field
  names, enums as values, dates dd/mm/yyyy, timestamps in unix seconds, unknown fields
  kept), JSON lines for provision and demo. An error is one line on stderr: text, or
  with --json one JSON object ("event": "error", with "exit_code"). With --json stderr
  holds JSON lines only: a warning (with -v: each retry) is one "event": "log" object.

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


class _JsonLogHandler(logging.Handler):
    """Each record as one ``"event": "log"`` JSON line on stderr (looked up at each
    record: the stream of the moment, which tests capture)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        # Warnings from anyone (pecapi, asyncio, aiohttp, Python's warnings); with -v the
        # library's INFO notes too (each retry and settling). Not what a logger's level
        # lets through: a caller's DEBUG configuration must not flood stderr.
        library = record.name == "pecapi" or record.name.startswith("pecapi.")
        floor = logging.INFO if self.verbose and library else logging.WARNING
        return record.levelno >= floor and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.dumps(log_event(record), ensure_ascii=False, default=str)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # as logging.Handler does: a record never ends the command
            self.handleError(record)


@contextlib.contextmanager
def _json_logging(args: argparse.Namespace) -> Iterator[None]:
    """Under ``--json``, stderr carries JSON lines only: every log record that reaches the
    root logger (the library's warnings, such as provisioning's "the wallet cannot pay",
    asyncio's and aiohttp's, Python's ``warnings`` through ``logging.captureWarnings``)
    is written as a ``"log"`` event rather than as text by Python's last-resort handler.

    ``-v`` then reports each retry and settling as the library logs it (INFO on the
    ``pecapi`` logger), as log events, instead of the text lines it prints without
    ``--json``. Undone on the way out: ``main`` may run again in the same process."""
    verbose = bool(getattr(args, "verbose", False))
    if verbose:
        args.verbose = False  # no text retry lines from the client's on_attempt hook
    handler = _JsonLogHandler(verbose)
    root, library = logging.getLogger(), logging.getLogger("pecapi")
    level = library.level
    if verbose and not library.isEnabledFor(logging.INFO):
        library.setLevel(logging.INFO)
    root.addHandler(handler)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        library.setLevel(level)
        if verbose:
            args.verbose = True


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
    with _json_logging(args) if json_mode else contextlib.nullcontext():
        return _run(args, json_mode)


def _run(args: argparse.Namespace, json_mode: bool) -> int:
    """The parsed command, its errors reported on stderr; returns the exit code."""
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

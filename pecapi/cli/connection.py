"""The options every API command shares (environment, token, timeout, retries, output),
and the client they configure. For the command table and for tools (``provision``...).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from pecapi import jsontext
from pecapi.client import PecClient
from pecapi.errors import ConfigurationError
from pecapi.transport.auth import SANDBOX_TOKEN_ENV, TOKEN_ENV
from pecapi.transport.retry import Attempt, RetryPolicy

__all__ = [
    "add_connection_options",
    "client_from_args",
    "positive_int",
    "retry_policy",
    "whole_number",
]


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        value = jsontext.whole_number(text, signed=True)
        if value is None:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


positive_int = _whole_number(1)
_non_negative = _whole_number(0)
#: Any whole number in ASCII digits: the range is the library's to check (exit 5).
whole_number = _whole_number(-(10**18))


def add_connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every API command takes, before or after the subcommand.

    On subcommands their default is SUPPRESS so that a value given before the
    subcommand (on the top-level parser) is not overwritten by the subparser's default.
    """

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--sandbox",
        action="store_true",
        default=default(False),
        help=f"use the sandbox (token from {SANDBOX_TOKEN_ENV}); default: production",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=default(None),
        help="another API address, e.g. a local emulator (plain http only on loopback)",
    )
    group.add_argument(
        "--token-file",
        metavar="PATH",
        default=default(None),
        help=f"read the token from this file instead of {TOKEN_ENV} / {SANDBOX_TOKEN_ENV}",
    )
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=default(None),
        help="total time limit of each request (default 60)",
    )
    group.add_argument(
        "--retries",
        type=_non_negative,
        metavar="N",
        default=default(None),
        help="retries of a failed call (default 3; 0: try once). Paid operations are "
        "reconciled, never sent twice",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default(False),
        help="report each retry on stderr",
    )  # fmt: skip
    group.add_argument(
        "--json", action="store_true", default=default(False), help="print JSON (for scripts)"
    )


def _read_token_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigurationError(f"cannot read --token-file {path!r}: {reason}") from None
    token = text.strip()
    if not token:
        raise ConfigurationError(f"--token-file {path!r} is empty")
    return token


def client_from_args(args: argparse.Namespace) -> PecClient:
    """A client configured by the connection options (token from the environment or file)."""
    token = _read_token_file(args.token_file) if args.token_file else None
    env = SANDBOX_TOKEN_ENV if args.sandbox else TOKEN_ENV
    if token is None and not os.environ.get(env, "").strip():
        raise ConfigurationError(f"no token: set {env} in the environment or give --token-file")
    kwargs: dict[str, Any] = {}
    if args.timeout is not None:
        kwargs["timeout"] = args.timeout
    kwargs["retry"] = retry_policy(args)
    return PecClient(token, sandbox=args.sandbox, base_url=args.base_url, **kwargs)


def _report_retry(attempt: Attempt) -> None:
    error = " ".join(str(attempt.error).split())
    doing = (
        f"settling {attempt.operation} (watching the account for up to {attempt.wait:.0f}s)"
        if attempt.reconcile
        else f"retrying {attempt.operation}"
    )
    print(
        f"pecapi: {doing} after attempt {attempt.attempt} ({attempt.reason}): {error}",
        file=sys.stderr,
        flush=True,
    )


def retry_policy(args: argparse.Namespace) -> RetryPolicy:
    """The client's retry policy, changed by --retries, --timeout and --verbose."""
    if args.retries == 0:
        return RetryPolicy.never()
    default = RetryPolicy()
    changes: dict[str, Any] = {}
    if args.retries is not None:
        changes["max_attempts"] = args.retries + 1
    if args.timeout is not None and default.deadline is not None:
        # a long --timeout (a big upload) must not be cut short by the retry deadline
        changes["deadline"] = max(default.deadline, args.timeout)
    if args.verbose:
        changes["on_attempt"] = _report_retry
    return attrs.evolve(default, **changes)

"""The options every API command shares (environment, token, timeout, retries, output),
and the client they configure. For the command table and for tools (``provision``...).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from pecapi import jsontext
from pecapi.client import PecClient
from pecapi.errors import ConfigurationError
from pecapi.oauth import API_KEY_ENV, EMAIL_ENV, SANDBOX_API_KEY_ENV, OAuthTokenProvider
from pecapi.oauth_choice import OAUTH_VERSION_ENV, oauth_provider
from pecapi.oauth_scopes import all_pec_scopes
from pecapi.oauth_v2 import OAuthV2TokenProvider
from pecapi.transport.auth import SANDBOX_TOKEN_ENV, TOKEN_ENV
from pecapi.transport.retry import Attempt, RetryPolicy

__all__ = [
    "CONCURRENCY",
    "OAUTH_VERSION_HINT",
    "add_connection_options",
    "client_from_args",
    "missing_oauth_credentials",
    "oauth_from_args",
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


#: Items at a time in ``provision`` and ``demo``: the library's default (``provision``,
#: ``Batch``, ``client.map``), so that the command and a script behave alike.
CONCURRENCY = 50

positive_int = _whole_number(1)
_non_negative = _whole_number(0)
#: Any whole number in ASCII digits: the range is the library's to check (exit 5).
whole_number = _whole_number(-(10**18))


_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds. ``--timeout abc`` and
    ``--timeout 0`` are both usage errors (exit 2), like any option of the command's
    own out of its range."""
    # ASCII digits only: float() would also take "1_0", "nan", "inf" and other scripts'
    # digits, none of which a person means as a timeout.
    if not _SECONDS.fullmatch(text.removeprefix("-")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


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
        type=seconds,
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


def missing_oauth_credentials(sandbox: bool) -> list[str]:
    """The environment variables the account's OAuth credentials need that are unset
    (empty: the command can read the wallet). Only their presence is looked at here: the
    values stay in the environment until the provider reads them."""
    key = SANDBOX_API_KEY_ENV if sandbox else API_KEY_ENV
    return [name for name in (EMAIL_ENV, key) if not os.environ.get(name, "").strip()]


def oauth_from_args(args: argparse.Namespace) -> OAuthTokenProvider | OAuthV2TokenProvider:
    """An OAuth provider of the account's e-mail and API key from the environment
    (``OPENAPI_EMAIL``, ``OPENAPI_SANDBOX_API_KEY`` / ``OPENAPI_API_KEY``), of the
    service ``OPENAPI_OAUTH_VERSION`` names (default v2), at ``--oauth-url`` if given.

    The command uses it to read the wallet (HTTP Basic), which makes no token: the
    scopes, which every provider must have, are never asked for."""
    options: dict[str, Any] = {}
    if getattr(args, "oauth_url", None):
        options["base_url"] = args.oauth_url
    if args.timeout is not None:
        options["timeout"] = args.timeout
    return oauth_provider(
        scopes=all_pec_scopes(sandbox=args.sandbox), sandbox=args.sandbox, **options
    )


#: For the messages that say how to pick the service (v1: accounts made on openapi.it).
OAUTH_VERSION_HINT = f"{OAUTH_VERSION_ENV}=1 for an account made on openapi.it"


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

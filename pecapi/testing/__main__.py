"""``python -m pecapi.testing``: serve an emulator until Ctrl-C (or SIGTERM).

Its base URL is the first line on stdout; with ``--oauth-v2-port``, the OAuth v2 token
service of the same emulator (tokens for it, its wallet) is served too and its base URL is
the second line.

Exit codes: 0 stopped by Ctrl-C or SIGTERM, 1 could not listen (port busy, no such
address), 2 usage error (including a non-loopback ``--host`` with the public test token).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import TypeVar

from pecapi.transport.urls import is_loopback

from .account import DEFAULT_TOKEN
from .admin import ADMIN_PREFIX
from .emulator import Emulator, RunningEmulator
from .oauth_v2 import OAuthV2Emulator, RunningOAuthV2

PROG = "pecapi.testing"
# The OAuth v2 account of the command line unless given: OAuthV2Emulator's own defaults.
DEFAULT_OAUTH_EMAIL = "mail@domain.com"
DEFAULT_OAUTH_API_KEY = "pecapi-emulator-api-key"


class _CannotStart(Exception):
    """A one-line reason the server cannot start, and its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 and 65535")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's options (shared with ``pecapi emulator``). Every help says the
    default: ``--help`` is where a user of another language learns how it will behave."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=_port, default=8080, help="port, 0 for any free one (default: %(default)s)"
    )
    parser.add_argument(
        "--token",
        default=DEFAULT_TOKEN,
        help="bearer token the emulator accepts (default: the public test token "
        "%(default)s, which is refused with a non-loopback --host)",
    )
    parser.add_argument(
        "--admin-token",
        default=None,
        metavar="TOKEN",
        help=f"bearer token of the admin surface under {ADMIN_PREFIX}/ (default: the --token "
        "on a loopback --host; on any other host the admin surface is off unless given)",
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help="production rules and host in scopes (default: off, sandbox)",
    )
    parser.add_argument(
        "--credit",
        type=Decimal,
        default=Decimal("1000"),
        metavar="EUR",
        help="wallet at start and after a reset (default: %(default)s)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds added to every request (default: %(default)s)",
    )
    parser.add_argument(
        "--fault-rate",
        type=_probability,
        default=0.0,
        metavar="P",
        help="probability from 0 to 1 that a request meets a transient fault, one of: a 503 "
        "JSON answer, an nginx 502 page (neither processed), a connection closed before "
        "processing, or after it (committed, charged, unanswered); seeded by --seed "
        "(default: %(default)s, none)",
    )
    parser.add_argument(
        "--auto-process",
        action="store_true",
        help="complete activations and comunica_pec steps at once (default: off: they wait "
        f"to be advanced, e.g. by POST {ADMIN_PREFIX}/process-all)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of ids, codes and faults (default: %(default)s)"
    )
    parser.add_argument(
        "--callback-host",
        action="append",
        default=[],
        metavar="HOST",
        help="also deliver callbacks to this host name or address (repeatable; default: "
        "only to loopback)",
    )
    parser.add_argument(
        "--allow-external-callbacks",
        action="store_true",
        help="deliver callbacks to any host a request names, which sends traffic off the "
        "machine (default: off)",
    )
    parser.add_argument(
        "--oauth-v2-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="also serve the OAuth v2 token service (POST /tokens, /wallet, ...) of this "
        "emulator on --host at this port, 0 for any free one; its URL is printed on a second "
        "line (default: off)",
    )
    parser.add_argument(
        "--oauth-email",
        default=DEFAULT_OAUTH_EMAIL,
        metavar="EMAIL",
        help="HTTP Basic user name of the OAuth v2 token service (default: %(default)s)",
    )
    parser.add_argument(
        "--oauth-api-key",
        default=DEFAULT_OAUTH_API_KEY,
        metavar="KEY",
        help="HTTP Basic password (API key) of the OAuth v2 token service (default: the "
        "public %(default)s, which is refused with a non-loopback --host)",
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pecapi.testing",
        description="Serve a stateful emulator of the Openapi.it PEC API.",
    )
    add_arguments(parser)
    return parser.parse_args(argv)


def _check(args: argparse.Namespace) -> None:
    # Anyone who can reach a non-loopback interface could use (and drain) the emulator with
    # a token printed in the documentation: they must choose one of their own.
    if not is_loopback(args.host) and args.token == DEFAULT_TOKEN:
        raise _CannotStart(
            f"{PROG}: --host {args.host or '(all interfaces)'} is not a loopback address: "
            "give a --token of your own (the default one is public)",
            2,
        )
    if args.oauth_v2_port is not None:
        email, key = args.oauth_email, args.oauth_api_key
        # Basic credentials: a colon ends the user name (RFC 7617)
        if not email or email != email.strip() or ":" in email:
            raise _CannotStart(
                f"{PROG}: --oauth-email must be non-empty, without a colon or surrounding spaces",
                2,
            )
        if not key or key != key.strip():
            raise _CannotStart(
                f"{PROG}: --oauth-api-key must be non-empty, without surrounding spaces", 2
            )
        # the same reason as for --token: the default key is in the documentation
        if not is_loopback(args.host) and args.oauth_api_key == DEFAULT_OAUTH_API_KEY:
            raise _CannotStart(
                f"{PROG}: --host {args.host or '(all interfaces)'} is not a loopback address: "
                "give an --oauth-api-key of your own (the default one is public)",
                2,
            )
    admin = args.admin_token
    if admin is not None and (not admin or admin.split() != [admin]):
        raise _CannotStart(f"{PROG}: --admin-token must be non-empty, without spaces", 2)
    if not is_loopback(args.host) and admin == DEFAULT_TOKEN:
        raise _CannotStart(
            f"{PROG}: --admin-token cannot be the public test token with a non-loopback --host",
            2,
        )


_Server = TypeVar("_Server", RunningEmulator, RunningOAuthV2)


async def _listen(
    stack: contextlib.AsyncExitStack,
    server: contextlib.AbstractAsyncContextManager[_Server],
    host: str,
    port: int,
) -> _Server:
    try:
        return await stack.enter_async_context(server)
    except OSError as exc:
        # asyncio's own message repeats the address as a tuple: the errno's text is clearer
        if isinstance(exc, socket.gaierror) or not exc.errno:
            reason = exc.strerror or str(exc)
        else:
            reason = os.strerror(exc.errno)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise _CannotStart(f"{PROG}: cannot listen on {where}: {reason}", 1) from None


def _local_url(running: RunningEmulator | RunningOAuthV2) -> str:
    """A URL pecapi's client accepts for this server (plain http only to loopback)."""
    try:
        address = ipaddress.ip_address(running.host)
    except ValueError:
        return running.url
    if not address.is_unspecified:
        return running.url
    # a wildcard address is not one a client can connect to: its loopback is
    loopback = "127.0.0.1" if address.version == 4 else "[::1]"
    return f"http://{loopback}:{running.port}"


def emulator_from_args(args: argparse.Namespace) -> Emulator:
    """The emulator the parsed options describe (not served yet)."""
    return Emulator(
        environment="production" if args.production else "sandbox",
        tokens={args.token: None},
        credit=args.credit,
        auto_process=args.auto_process,
        latency=args.latency,
        seed=args.seed,
        callback_hosts=args.callback_host,
        allow_external_callbacks=args.allow_external_callbacks,
        admin_token=args.admin_token,
        fault_rate=args.fault_rate,
    )


async def serve(args: argparse.Namespace) -> None:
    emulator = emulator_from_args(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        running = await _listen(stack, emulator.serve(args.host, args.port), args.host, args.port)
        url = _local_url(running)
        oauth_url = None
        if args.oauth_v2_port is not None:
            oauth = OAuthV2Emulator(emulator, email=args.oauth_email, api_key=args.oauth_api_key)
            served = await _listen(
                stack, oauth.serve(args.host, args.oauth_v2_port), args.host, args.oauth_v2_port
            )
            oauth_url = _local_url(served)
            # both lines at once: a reader of the first line may wait for the second
            print(f"{url}\n{oauth_url}", flush=True)
        else:
            print(url, flush=True)
        print(
            f"{PROG}: {emulator.environment} emulator at {url} "
            f"({_describe(args.token)}); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        print(_admin_note(args, url), file=sys.stderr, flush=True)
        if oauth_url is not None:
            print(_oauth_note(args, oauth_url), file=sys.stderr, flush=True)
        if not is_loopback(running.host):
            print(_remote_note(running), file=sys.stderr, flush=True)
        await stop.wait()


def _admin_note(args: argparse.Namespace, url: str) -> str:
    if args.admin_token is not None:
        whose = "the token given with --admin-token"
    elif is_loopback(args.host):
        whose = "the same token as the API"
    else:
        return f"{PROG}: admin surface off: a non-loopback --host needs an --admin-token of its own"
    return f"{PROG}: admin surface at {url}{ADMIN_PREFIX}/ ({whose})"


def _oauth_note(args: argparse.Namespace, url: str) -> str:
    # The default key is printed so that users can copy it; one of their own is not.
    if args.oauth_api_key == DEFAULT_OAUTH_API_KEY:
        key = f"API key {args.oauth_api_key!r}"
    else:
        key = "the API key given with --oauth-api-key"
    return (
        f"{PROG}: OAuth v2 token service at {url} (HTTP Basic: {args.oauth_email!r}, {key}); "
        "its tokens work on the emulator above, its wallet is the emulator's"
    )


def _remote_note(running: RunningEmulator) -> str:
    wildcard = _local_url(running) != running.url
    interface = f"every interface ({running.host})" if wildcard else running.host
    target = running.host if not wildcard else "localhost"
    target = f"[{target}]" if ":" in target else target
    return (
        f"{PROG}: listening on {interface} port {running.port}, reachable "
        "from other machines; pecapi clients refuse plain http to a non-loopback host (the "
        "token would travel in clear text): reach it through an https proxy, or an SSH "
        f"tunnel (ssh -L {running.port}:{target}:{running.port} THIS-HOST, then --base-url "
        f"http://127.0.0.1:{running.port})"
    )


def _describe(token: str) -> str:
    # The default test token is printed so that users can copy it; one of their own is not.
    return f"token {token!r}" if token == DEFAULT_TOKEN else "the token given with --token"


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; the exit code (see the module docstring)."""
    try:
        _check(args)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args))
    except _CannotStart as exc:
        print(exc, file=sys.stderr, flush=True)
        return exc.code
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

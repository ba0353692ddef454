"""``pecapi worker --queue redis://...``: do the rows of queued provisioning jobs until a
signal (``pecapi provision FILE.csv --queue ...`` submits them)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import attrs

from pecapi.client import PecClient
from pecapi.errors import ConfigurationError

from .connection import add_connection_options, positive_int, retry_policy, seconds
from .exits import ExitCode, UsageError
from .output import Output
from .provision import DEFAULT_LEASE, DEFAULT_NAMESPACE, QUEUE_ENV
from .stopping import Stop

__all__ = ["add_parser"]

DESCRIPTION = """\
Do the rows of provisioning jobs queued with 'pecapi provision FILE.csv --queue URL',
with any number of workers on any machines, one Openapi account.

Each worker takes items (chunks of rows) off the queue and does their rows as a run in
one process would: check, register, activate, every outcome in the journal in Redis. A
worker that dies (killed, its machine lost) stops heartbeating; after --lease seconds
its items go back on the queue, and the worker that takes a row whose registration may
have been in flight waits out the settle window and reads the account before anything:
nothing is registered or charged twice. Documents ('documenti' paths) must be readable
at the same paths by every worker.

SIGTERM or Ctrl-C drains: no new row is started, those in flight finish, the items with
rows left go back on the queue, and the worker exits 0; a second signal cancels what is
in flight (a registration in flight is settled by the worker that takes its row; exit
130 or 143).

--rate-limit caps the account's requests per second over every worker sharing the
namespace (pecapi.fleet coordination in Redis: also one token for all of them)."""

SETTLE_HELP = "seconds an unanswered registration may still be processed by the API (default 60)"


def _token_file(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigurationError(f"cannot read --token-file {path!r}: {reason}") from None
    if not token:
        raise ConfigurationError(f"--token-file {path!r} is empty")
    return token


def _client(args: argparse.Namespace) -> PecClient:
    """The worker's client: the connection options, the settle window, and the fleet's
    coordination (shared token, account-wide rate) when --rate-limit asks for it."""
    from pecapi.transport.auth import SANDBOX_TOKEN_ENV, TOKEN_ENV

    token = _token_file(args.token_file)
    env = SANDBOX_TOKEN_ENV if args.sandbox else TOKEN_ENV
    if token is None and not os.environ.get(env, "").strip():
        raise ConfigurationError(f"no token: set {env} in the environment or give --token-file")
    policy = retry_policy(args)
    if args.settle is not None:
        policy = attrs.evolve(policy, settle=args.settle)
    options: dict[str, Any] = {"retry": policy}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.rate_limit is not None:
        options.update(_shared_rate(args))
    return PecClient(token, sandbox=args.sandbox, base_url=args.base_url, **options)


def _shared_rate(args: argparse.Namespace) -> dict[str, Any]:
    """The fleet's coordination at the account-wide rate: every worker of the namespace
    shares the limit (and one token) through Redis."""
    from pecapi.fleet import RedisCoordination

    fleet = RedisCoordination(args.queue, namespace=args.namespace, rate_limit=args.rate_limit)
    return {"coordination": fleet}


async def run(args: argparse.Namespace, out: Output) -> int:
    from pecapi.fleet.worker import ProvisionWorker

    worker: ProvisionWorker | None = None

    def stopping(name: str) -> None:
        if worker is not None:
            worker.stop()
        if not out.json_mode:
            print(
                f"pecapi worker: {name}: finishing the rows in flight, putting the rest back "
                "on the queue (again to cancel them)",
                file=sys.stderr,
                flush=True,
            )

    stop = Stop(stopping)

    async def work() -> None:
        nonlocal worker
        async with _client(args) as client:
            worker = ProvisionWorker(
                client,
                args.queue,
                namespace=args.namespace,
                concurrency=args.concurrency,
                items=args.items,
                lease=args.lease,
            )
            if stop.requested:
                worker.stop()
            started = {"event": "worker", "state": "started", "pid": os.getpid()}
            if out.json_mode:
                out.json(started)
            else:
                print(
                    f"pecapi worker: taking provisioning items ({args.concurrency} rows at a "
                    "time); SIGTERM or Ctrl-C to stop",
                    file=sys.stderr,
                    flush=True,
                )
            try:
                await worker.run()
            except asyncio.CancelledError:
                worker.cancel()
                raise

    await stop.run(work())
    code = stop.exit_code if stop.forced else ExitCode.OK
    rows = worker.rows_done if worker is not None else 0
    if out.json_mode:
        out.json({"event": "worker", "state": "stopped", "rows": rows,
                  "interrupted": stop.signal, "exit_code": code})  # fmt: skip
    else:
        out.line(f"pecapi worker: stopped ({stop.signal or 'done'}): {rows} rows done")
    return code


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="do the rows of provisioning jobs queued in Redis, until a signal",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--queue",
        default=os.environ.get(QUEUE_ENV) or None,
        metavar="REDIS_URL",
        help=f"the job queue's Redis URL (default: ${QUEUE_ENV}, the place for a URL with a "
        "password)",
    )
    parser.add_argument(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        metavar="NS",
        help=f"prefix of the Redis keys; the submitter's own (default {DEFAULT_NAMESPACE})",
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=50, metavar="N",
        help="rows at a time in this worker (default 50)",
    )  # fmt: skip
    parser.add_argument(
        "--items", type=positive_int, default=4, metavar="N",
        help="queue items held at a time (default 4)",
    )  # fmt: skip
    parser.add_argument(
        "--lease",
        type=seconds,
        default=DEFAULT_LEASE,
        metavar="SECONDS",
        help=f"how long this worker's items wait if it dies (default {DEFAULT_LEASE:g}, "
        "at least 3; heartbeats every third of it)",
    )
    parser.add_argument("--settle", type=seconds, metavar="SECONDS", help=SETTLE_HELP)
    parser.add_argument(
        "--rate-limit",
        type=seconds,
        metavar="PER_SECOND",
        help="the account's requests per second over all workers (default: no limit)",
    )
    add_connection_options(parser, top=False)

    def handle(args: argparse.Namespace) -> int:
        if args.lease < 3:
            raise UsageError(parser.format_usage(), parser.prog, "--lease: at least 3 seconds")
        if not args.queue:
            raise UsageError(
                parser.format_usage(), parser.prog, f"--queue (or ${QUEUE_ENV}) is required"
            )
        out = Output(json_mode=args.json)
        return asyncio.run(run(args, out))

    parser.set_defaults(handler=handle)

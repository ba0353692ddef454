"""Stopping a long command (``provision``, ``demo``) on SIGINT or SIGTERM, cleanly.

The first signal asks the command to start no new item and to let the ones in flight
finish (each is journaled as usual), then to print a partial summary; a second one
cancels those in flight (a cancelled registration is journaled as ``pending`` and
settled by the next run). Later signals are ignored: cancelling again would interrupt
that cancellation itself (the journal's ``pending`` records, the client's closing) and
leak tasks and connections; SIGKILL still ends the process at once. Either way the
command exits with 130 (SIGINT) or 143 (SIGTERM), as a shell reports a process those
signals ended.

The handlers exist only while :meth:`Stop.run` runs, on the main thread of a platform
with ``loop.add_signal_handler`` (not Windows): elsewhere Ctrl-C stays a
``KeyboardInterrupt`` (exit 130, no summary).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from .exits import ExitCode

__all__ = ["Stop"]

_CODES = {"SIGINT": ExitCode.INTERRUPTED, "SIGTERM": ExitCode.TERMINATED}


class Stop:
    """Whether a signal asked the command to stop, and which.

    ``on_signal(name)`` is called on the first signal (e.g. to say that the command is
    finishing what is in flight).
    """

    def __init__(self, on_signal: Callable[[str], None] | None = None) -> None:
        self.signal: str | None = None
        self.forced = False  # a second signal cancelled the items in flight
        self.received = 0  # signals handled, the ignored ones included
        self._on_signal = on_signal
        self._work: asyncio.Task[None] | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> ExitCode:
        """130 or 143 once a signal came (OK before: callers pick their own code then)."""
        return _CODES[self.signal] if self.signal is not None else ExitCode.OK

    def run_exit_code(self, incomplete: int) -> ExitCode:
        """How a provisioning run (one process or a queued job) exits: 130/143 when a
        signal stopped it, else 1 when rows are not done, else 0."""
        if self.requested:
            return self.exit_code
        return ExitCode.OK if incomplete == 0 else ExitCode.FAILURE

    def _received(self, name: str) -> None:
        self.received += 1
        if self.signal is None:
            self.signal = name
            if self._on_signal is not None:
                self._on_signal(name)
        elif not self.forced and self._work is not None and not self._work.done():
            # Once only: a second cancel() would land in the work's own cleanup (the
            # batch gathering its cancelled workers, the client closing) and cut it short.
            self.forced = True
            self._work.cancel()

    async def run(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` with the signal handlers in place; returns normally when a second
        signal cancelled it (``forced``), so that the caller still prints its summary."""
        loop = asyncio.get_running_loop()
        installed: list[tuple[signal.Signals, Any]] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                # What to put back afterwards: remove_signal_handler would leave the
                # default (KeyboardInterrupt for SIGINT), dropping the handler asyncio.run
                # installed, which lets a Ctrl-C during the summary cancel the main task
                # at its next await rather than cut a line short anywhere.
                before = signal.getsignal(sig)
                loop.add_signal_handler(sig, self._received, sig.name)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # Windows, or not the main thread: the default behaviour stays
            installed.append((sig, before))
        self._work = asyncio.ensure_future(work)
        try:
            # asyncio.wait does not raise the task's cancellation: only our own (which
            # then cancels the work too, below) or nothing.
            await asyncio.wait({self._work})
        finally:
            for sig, before in installed:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
                    if before is not None:  # None: set from C, cannot be put back
                        signal.signal(sig, before)
            if not self._work.done():  # we were cancelled ourselves: take the work along
                self._work.cancel()
                await asyncio.gather(self._work, return_exceptions=True)
        if self._work.cancelled() and self.forced:
            return
        self._work.result()  # its exception, or a cancellation that was not ours

"""Late commits: requests the emulator processes some time after the client was answered
(or gave up), as a real API behind a gateway keeps processing a write after a 504; and
:class:`Incoming`, a request read in full, which can be processed once its connection is gone.

Each late commit is a background task the emulator owns: it sleeps until its time, then
commits. :meth:`LateCommits.drain` waits for all of them; :meth:`LateCommits.aclose` cancels
those still waiting (the emulator does it on shutdown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from multidict import MultiMapping

__all__ = ["Incoming", "LateCommits", "read_request"]


@dataclass(frozen=True, slots=True)
class Incoming:
    """A request read in full: all that processing needs, without the connection (which
    may be gone by the time it is processed)."""

    method: str
    path: str
    authorization: str
    query: MultiMapping[str]
    body: bytes
    too_large: bool = False  # the body exceeded the app's limit (413 where a body is read)


async def read_request(request: web.Request, method: str, path: str) -> Incoming:
    """Read ``request`` in full (its body too) into an :class:`Incoming`."""
    try:
        body, too_large = await request.read(), False
    except web.HTTPRequestEntityTooLarge:
        body, too_large = b"", True
    auth = request.headers.get("Authorization", "")
    return Incoming(method, path, auth, request.query, body, too_large)


class LateCommits:
    """The late commits of an emulator (see the module docstring)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """Late commits not made yet (still waiting for their time)."""
        return sum(1 for task in self._tasks if not task.done())

    def schedule(self, at: float, commit: Callable[[], None]) -> asyncio.Task[None]:
        """Call ``commit`` at ``at`` (the running loop's clock); the task doing it."""
        task = asyncio.ensure_future(self._run(at, commit))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    async def drain(self) -> None:
        """Wait until every late commit scheduled so far (and any scheduled meanwhile) was
        made or cancelled."""
        while any(not task.done() for task in self._tasks):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel the late commits still waiting, and wait until they are gone."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- internals --------------------------------------------------------------------------

    @staticmethod
    async def _run(at: float, commit: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        commit()  # synchronous: nothing else runs between the check and the commit

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # an emulator bug: handlers only raise API errors (answers)
            task.get_loop().call_exception_handler(
                {"message": "a late commit of the emulator failed", "exception": exc, "task": task}
            )

"""``async with`` for everything pecapi hands out that must be closed."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, TypeVar

from pecapi.errors import EventLoopError

__all__ = ["AsyncClosing", "check_loop"]

C = TypeVar("C", bound="AsyncClosing")


class AsyncClosing:
    """``async with obj:`` closes ``obj`` on the way out (``aclose()``), however it leaves."""

    __slots__ = ()

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self: C) -> C:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def check_loop(session: Any, owner: str) -> None:
    """Raise :class:`~pecapi.EventLoopError` when ``session`` (an aiohttp session) was
    made in another event loop than the running one.

    Without this check the second ``asyncio.run()`` of a program that keeps a client
    across runs fails deep in aiohttp with ``RuntimeError: Event loop is closed``.
    """
    made_in = getattr(session, "_loop", None)  # aiohttp's own record of its loop
    if made_in is None or made_in is asyncio.get_running_loop():
        return
    state = "is closed" if made_in.is_closed() else "is not the running one"
    raise EventLoopError(
        f"this {owner} was first used in another event loop, which {state} (a second "
        "asyncio.run()?): an HTTP session cannot move between loops. Create the "
        f"{owner} inside the coroutine that uses it (async with {owner}(...)), one per loop"
    )

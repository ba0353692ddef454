"""``async with`` for everything pecapi hands out that must be closed."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["AsyncClosing"]

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

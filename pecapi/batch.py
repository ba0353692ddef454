"""Run one operation over many inputs with bounded concurrency, yielding results as they
complete. The input is consumed lazily (never more than ``concurrency`` items are in
memory as tasks), so a million inputs cost the memory of ``concurrency``.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sized,
)
from typing import Generic, Literal, TypeAlias, TypeVar

import attrs

from pecapi.closing import AsyncClosing
from pecapi.errors import ValidationError

__all__ = ["Batch", "BatchFailure", "BatchProgress", "BatchResult", "BatchSuccess"]

I = TypeVar("I")  # noqa: E741 (the input type)
R = TypeVar("R")


@attrs.frozen(kw_only=True)
class BatchSuccess(Generic[I, R]):
    """An input whose call returned: ``value`` is what it returned (``ok`` is True,
    ``error`` None)."""

    index: int
    input: I
    value: R
    ok: Literal[True] = attrs.field(default=True, init=False)
    error: None = attrs.field(default=None, init=False, repr=False)


@attrs.frozen(kw_only=True)
class BatchFailure(Generic[I]):
    """An input whose call raised: ``error`` is the exception (``ok`` is False, ``value``
    None)."""

    index: int
    input: I
    error: Exception
    ok: Literal[False] = attrs.field(default=False, init=False)
    value: None = attrs.field(default=None, init=False, repr=False)


BatchResult: TypeAlias = BatchSuccess[I, R] | BatchFailure[I]
"""One input with its outcome: a :class:`BatchSuccess` (``value``) or a
:class:`BatchFailure` (``error``). Both have ``index``, ``input``, ``ok``, ``value`` and
``error``; a type checker narrows the result by ``ok`` (mypy: ``if result.ok:``; pyright
narrows a boolean tag only by comparison: ``if result.ok is True:``) or by
``result.error is None`` (both), ``isinstance`` or ``match``."""


@attrs.frozen(kw_only=True)
class BatchProgress:
    """Counts handed to a progress callback after each result."""

    done: int
    failed: int
    total: int | None


class Batch(AsyncClosing, Generic[I, R]):
    """``fn`` applied to every input, ``concurrency`` at a time.

    Iterate it (``async for result in batch``) to get each :class:`BatchResult` as it
    completes; one failure never stops the others. Use it as an async context manager
    (``async with client.map(...) as results:``) so that leaving the block early, an
    error or a cancellation cancels what is still in flight and waits for it: no task
    and no connection is left behind.
    """

    def __init__(
        self,
        fn: Callable[[I], Awaitable[R]],
        inputs: Iterable[I] | AsyncIterable[I],
        *,
        concurrency: int = 50,
        total: int | None = None,
        on_progress: Callable[[BatchProgress], None] | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError("concurrency", f"must be an int >= 1, not {concurrency!r}")
        self._fn = fn
        self._inputs = inputs
        self._concurrency = concurrency
        self._on_progress = on_progress
        if total is None and isinstance(inputs, Sized):
            total = len(inputs)
        self.total = total
        self.done = 0
        self.failed = 0
        self._pending: set[asyncio.Task[BatchResult[I, R]]] = set()
        #: Inputs whose call was cancelled while in flight (leaving the batch early, an
        #: error, a cancellation): a write among them may have reached the API, and its
        #: outcome is in the client's ``pending_outcomes()``.
        self.interrupted: list[I] = []
        self._iterator: AsyncGenerator[BatchResult[I, R], None] | None = None

    # -- iteration -----------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[BatchResult[I, R]]:
        if self._iterator is not None:
            raise RuntimeError("a Batch can be iterated only once")
        self._iterator = self._run()
        return self._iterator

    async def _one(self, index: int, item: I) -> BatchResult[I, R]:
        try:
            value = await self._fn(item)
        except asyncio.CancelledError:
            self.interrupted.append(item)
            raise
        except Exception as exc:  # one failure must not stop the batch; cancellation does
            return BatchFailure(index=index, input=item, error=exc)
        return BatchSuccess(index=index, input=item, value=value)

    async def _inputs_async(self) -> AsyncGenerator[I, None]:
        if isinstance(self._inputs, AsyncIterable):
            async for item in self._inputs:
                yield item
        else:
            for item in self._inputs:
                yield item

    async def _run(self) -> AsyncGenerator[BatchResult[I, R], None]:
        source = self._inputs_async()
        index = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(self._pending) < self._concurrency:
                    try:
                        item = await source.__anext__()
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    self._pending.add(asyncio.ensure_future(self._one(index, item)))
                    index += 1
                if not self._pending:
                    return
                finished, self._pending = await asyncio.wait(
                    self._pending, return_when=asyncio.FIRST_COMPLETED
                )
                for task in sorted(finished, key=lambda t: t.result().index):
                    result = task.result()
                    self.done += 1
                    self.failed += 0 if result.ok else 1
                    if self._on_progress is not None:
                        self._on_progress(
                            BatchProgress(done=self.done, failed=self.failed, total=self.total)
                        )
                    yield result
        finally:
            await self._cancel_pending()
            await source.aclose()

    async def _cancel_pending(self) -> None:
        pending, self._pending = self._pending, set()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- lifecycle -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel what is in flight and wait for it."""
        if self._iterator is not None:
            await self._iterator.aclose()
        await self._cancel_pending()

    async def collect(self) -> list[BatchResult[I, R]]:
        """Every result, in input order (for small batches)."""
        async with self:
            results = [result async for result in self]
        return sorted(results, key=lambda r: r.index)

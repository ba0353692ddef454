"""Run one operation over many inputs with bounded concurrency, yielding results as they
complete. The input is consumed lazily (never more than ``concurrency`` items are in
memory as tasks), so a million inputs cost the memory of ``concurrency``.

A batch stops sending on its first :class:`~pecapi.InsufficientCreditError` (HTTP 402:
the wallet cannot pay for the operation, nor for the next ones): the inputs it has not
started come out as :class:`BatchSkipped`, never sent, instead of one 402 each.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sized,
)
from typing import Any, Generic, Literal, TypeAlias, TypeVar

import attrs

from pecapi.closing import AsyncClosing
from pecapi.errors import InsufficientCreditError, PecError, ValidationError

__all__ = [
    "INSUFFICIENT_CREDIT",
    "Batch",
    "BatchFailure",
    "BatchProgress",
    "BatchResult",
    "BatchSkipped",
    "BatchSuccess",
    "NotSentError",
]

#: The :attr:`NotSentError.reason` of an input not sent because the wallet ran out.
INSUFFICIENT_CREDIT = "insufficient credit"

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
    None). A :class:`BatchSkipped`, an input never sent, is a failure too."""

    index: int
    input: I
    error: Exception
    ok: Literal[False] = attrs.field(default=False, init=False)
    value: None = attrs.field(default=None, init=False, repr=False)


class NotSentError(PecError):
    """An input a batch (or a provisioning run) stopped before sending: nothing was sent
    for it, so nothing was charged; send it again later (after topping up the wallet).

    ``reason`` says why (``"insufficient credit"``); ``cause`` is the error that made the
    batch stop (its first :class:`~pecapi.InsufficientCreditError`), shared by every input
    it skipped.
    """

    request_sent = False  # as TokenError's: nothing reached the API

    def __init__(self, reason: str, cause: Exception | None = None) -> None:
        self.reason = reason
        self.cause = cause
        self.message = f"not sent: {reason}"
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.cause))


@attrs.frozen(kw_only=True)
class BatchSkipped(BatchFailure[I]):
    """An input the batch never sent, because it had stopped (on an insufficient credit
    error) before this input's turn: a :class:`BatchFailure` whose ``error`` is a
    :class:`NotSentError`; ``reason`` is that error's reason.

    It is a failure (``ok`` False, counted in ``failed``): the input was not done. Tell
    it from one whose call raised with ``isinstance(result, BatchSkipped)``.
    """

    error: NotSentError

    @property
    def reason(self) -> str:
        return self.error.reason


BatchResult: TypeAlias = BatchSuccess[I, R] | BatchFailure[I]
"""One input with its outcome: a :class:`BatchSuccess` (``value``) or a
:class:`BatchFailure` (``error``; a :class:`BatchSkipped` when the input was never sent).
Both have ``index``, ``input``, ``ok``, ``value`` and ``error``; a type checker narrows
the result by ``ok`` (mypy: ``if result.ok:``; pyright narrows a boolean tag only by
comparison: ``if result.ok is True:``) or by ``result.error is None`` (both),
``isinstance`` or ``match``."""


@attrs.frozen(kw_only=True)
class BatchProgress:
    """Counts handed to a progress callback after each result: ``done`` results so far,
    ``failed`` those not ok (skipped ones included), ``skipped`` those never sent."""

    done: int
    failed: int
    total: int | None
    skipped: int = 0


class Batch(AsyncClosing, Generic[I, R]):
    """``fn`` applied to every input, ``concurrency`` at a time.

    Iterate it (``async for result in batch``) to get each :class:`BatchResult` as it
    completes; one failure never stops the others, except an insufficient credit error.

    With ``stop_on_insufficient_credit`` (the default), the first call that raises
    :class:`~pecapi.InsufficientCreditError` (HTTP 402) stops the batch: it starts no
    other input, the calls in flight finish as they finish, and then every input not
    started is yielded as a :class:`BatchSkipped` (not sent, nothing charged). A 402 says
    the wallet cannot pay, and the next paid call would get one too. ``stopped_by`` is
    that first error. Pass False to send every input whatever the others got (when the
    inputs' prices differ a lot, say, and the cheaper ones may still be paid for).

    Use it as an async context manager (``async with client.map(...) as results:``) so
    that leaving the block early, an error or a cancellation cancels what is still in
    flight and waits for it: no task and no connection is left behind.
    """

    def __init__(
        self,
        fn: Callable[[I], Awaitable[R]],
        inputs: Iterable[I] | AsyncIterable[I],
        *,
        concurrency: int = 50,
        total: int | None = None,
        on_progress: Callable[[BatchProgress], None] | None = None,
        stop_on_insufficient_credit: bool = True,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError("concurrency", f"must be an int >= 1, not {concurrency!r}")
        if not isinstance(stop_on_insufficient_credit, bool):
            value = stop_on_insufficient_credit
            raise ValidationError("stop_on_insufficient_credit", f"must be a bool, not {value!r}")
        self._fn = fn
        self._stop_on_credit = stop_on_insufficient_credit
        self._stopped_by: InsufficientCreditError | None = None
        self._inputs = inputs
        self._concurrency = concurrency
        self._on_progress = on_progress
        if total is None and isinstance(inputs, Sized):
            total = len(inputs)
        self.total = total
        self.done = 0
        self.failed = 0
        self.skipped = 0
        self._pending: set[asyncio.Task[BatchResult[I, R]]] = set()
        # Tasks that finished and are not yielded yet, told by each task's done callback:
        # ``asyncio.wait`` over the pending set would add and remove a callback on every
        # pending task at each wake-up (200 of them at concurrency 200, per result).
        self._finished: collections.deque[asyncio.Task[BatchResult[I, R]]] = collections.deque()
        self._wakeup: asyncio.Event | None = None
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
            if (
                isinstance(exc, InsufficientCreditError)
                and self._stop_on_credit
                and self._stopped_by is None
            ):
                # Set when the task ends, so before the loop starts anything else.
                self._stopped_by = exc
            return BatchFailure(index=index, input=item, error=exc)
        return BatchSuccess(index=index, input=item, value=value)

    def _halted(self) -> bool:
        """Whether to start no other input (a subclass may add its own reasons)."""
        return self._stopped_by is not None

    @property
    def stopped_by(self) -> Exception | None:
        """The error that stopped the batch (its first insufficient credit error), or None."""
        return self._stopped_by

    def _counted(self, result: BatchResult[I, R]) -> BatchResult[I, R]:
        self.done += 1
        self.failed += 0 if result.ok else 1
        self.skipped += 1 if isinstance(result, BatchSkipped) else 0
        if self._on_progress is not None:
            self._on_progress(
                BatchProgress(
                    done=self.done, failed=self.failed, skipped=self.skipped, total=self.total
                )
            )
        return result

    async def _inputs_async(self) -> AsyncGenerator[I, None]:
        if isinstance(self._inputs, AsyncIterable):
            async for item in self._inputs:
                yield item
        else:
            for item in self._inputs:
                yield item

    def _on_done(self, task: asyncio.Task[BatchResult[I, R]]) -> None:
        self._finished.append(task)
        if self._wakeup is not None:
            self._wakeup.set()

    async def _next_finished(self) -> list[asyncio.Task[BatchResult[I, R]]]:
        """The tasks finished since the last call (at least one), in input order."""
        wakeup = self._wakeup
        if wakeup is None:
            wakeup = self._wakeup = asyncio.Event()
        while not self._finished:
            wakeup.clear()
            await wakeup.wait()
        finished = list(self._finished)
        self._finished.clear()
        self._pending.difference_update(finished)
        if len(finished) > 1:
            finished.sort(key=lambda t: t.result().index)
        return finished

    async def _run(self) -> AsyncGenerator[BatchResult[I, R], None]:
        source = self._inputs_async()
        index = 0
        exhausted = False
        try:
            while True:
                while (
                    not exhausted and not self._halted() and len(self._pending) < self._concurrency
                ):
                    try:
                        item = await source.__anext__()
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    if self._stopped_by is not None:
                        # The 402 came while an async source was suspended: this input
                        # is after the stop, so it is not sent either.
                        error = NotSentError(INSUFFICIENT_CREDIT, self._stopped_by)
                        yield self._counted(BatchSkipped(index=index, input=item, error=error))
                        index += 1
                        break
                    task = asyncio.ensure_future(self._one(index, item))
                    task.add_done_callback(self._on_done)
                    self._pending.add(task)
                    index += 1
                if not self._pending:
                    break
                for task in await self._next_finished():
                    yield self._counted(task.result())
            # Stopped, and what was in flight has finished: the rest is reported, not sent
            # (read lazily like the rest of the input).
            cause = self._stopped_by
            if cause is not None and not exhausted:
                async for item in source:
                    error = NotSentError(INSUFFICIENT_CREDIT, cause)
                    yield self._counted(BatchSkipped(index=index, input=item, error=error))
                    index += 1
        finally:
            await self._cancel_pending()
            await source.aclose()

    async def _cancel_pending(self) -> None:
        pending, self._pending = self._pending, set()
        self._finished.clear()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._finished.clear()  # their done callbacks ran during the gather

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

"""The raw answer of a call beside its value: ``await with_raw_response(call)``.

One generic wrapper instead of a raw twin of every operation: ``with_raw_response``
takes the call's coroutine, so ``RawResult[T]`` keeps the operation's own result type,
and it works for every operation (downloads and paid writes included) without a second
copy of the resources. While the call runs, a context variable holds a recorder; the
pipeline tells it about every answer it reads (``answered``) and about every value it
decodes from one (``decoded``). A context variable is per task, so concurrent calls
never see each other's answers; when none is set (the common case) the pipeline's cost
is one ``ContextVar.get`` per answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Mapping
from typing import Any, Generic, TypeVar

import aiohttp
import attrs

from pecapi.errors import ValidationError
from pecapi.transport.exchange import Exchange

__all__ = ["RawResult", "ResponseInfo", "answered", "decoded", "with_raw_response"]

T = TypeVar("T")

#: The header naming a request, where a server or gateway adds one (the spec names none).
REQUEST_ID_HEADER = "X-Request-Id"


@attrs.frozen
class ResponseInfo:
    """One HTTP answer: the ``operation`` that received it (``"mailboxes.get"``), its
    ``status`` and ``headers`` (case-insensitive lookup)."""

    operation: str
    status: int
    headers: Mapping[str, str] = attrs.field(repr=False, eq=False)

    @property
    def request_id(self) -> str | None:
        """The ``X-Request-Id`` header, if the answer has one. The PEC API's spec names
        no request id header: None unless a server or gateway on the way adds it."""
        return self.headers.get(REQUEST_ID_HEADER)


@attrs.frozen
class RawResult(Generic[T]):
    """A call's ``value`` with the HTTP ``response`` it was read from.

    ``responses`` are every answer the call received, in order: failed attempts,
    reconciliation reads. After a paid write settled by reading the account (its own
    answer was lost, or was a 5xx), ``response`` is the read that found the change:
    ``operation`` says so (``"mailboxes.get"`` for a renewal), and the write's own answer,
    if it had one, is among ``responses``.
    """

    value: T
    response: ResponseInfo
    responses: tuple[ResponseInfo, ...] = attrs.field(repr=False)

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self.response.headers

    @property
    def request_id(self) -> str | None:
        return self.response.request_id

    @property
    def operation(self) -> str:
        return self.response.operation


class _Recorder:
    __slots__ = ("answers", "pending", "values")

    def __init__(self) -> None:
        self.answers: list[ResponseInfo] = []
        # The last answer read per exchange, until it is decoded (or fails to be).
        self.pending: dict[Exchange, ResponseInfo] = {}
        self.values: list[tuple[Any, ResponseInfo]] = []

    def answer_of(self, value: Any) -> ResponseInfo | None:
        # By identity: a reconciled write returns the very object its read decoded.
        for candidate, info in reversed(self.values):
            if candidate is value:
                found: ResponseInfo = info
                return found
        return self.answers[-1] if self.answers else None


_recorder: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar(
    "pecapi_raw_response", default=None
)


def answered(exchange: Exchange, response: aiohttp.ClientResponse) -> None:
    """Called by the pipeline for every answer it has read."""
    recorder = _recorder.get()
    if recorder is not None:
        info = ResponseInfo(exchange.endpoint.name, response.status, response.headers)
        recorder.answers.append(info)
        recorder.pending[exchange] = info


def decoded(exchange: Exchange, value: T) -> T:
    """Called by the pipeline with each value decoded from an answer; returns it."""
    recorder = _recorder.get()
    if recorder is not None:
        info = recorder.pending.pop(exchange, None)
        if info is not None:
            recorder.values.append((value, info))
    return value


async def with_raw_response(call: Awaitable[T]) -> RawResult[T]:
    """Await ``call`` (an operation: ``client.mailboxes.get(id)``, not awaited yet) and
    return its value with the HTTP answer it was read from::

        raw = await pecapi.with_raw_response(client.mailboxes.renew(box_id))
        raw.value  # the Mailbox
        raw.status, raw.headers, raw.request_id, raw.operation

    Errors propagate unchanged (a :class:`~pecapi.PecApiError` carries the status,
    headers and body of its answer).
    """
    if isinstance(call, asyncio.Future) or not inspect.isawaitable(call):
        # A task runs in the context it was created in: its answers would not be seen.
        raise ValidationError(
            None,
            "with_raw_response takes the call itself, not awaited and not a task: "
            "with_raw_response(client.mailboxes.get(id))",
        )
    recorder = _Recorder()
    token = _recorder.set(recorder)
    try:
        value = await call
    finally:
        _recorder.reset(token)
    info = recorder.answer_of(value)
    if info is None:
        raise ValidationError(None, "the awaited call received no HTTP answer to report")
    return RawResult(value, info, tuple(recorder.answers))

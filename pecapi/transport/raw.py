"""The raw answer of a call beside its value: ``await with_raw_response(call)``; or
instead of its value: ``await with_raw_json(call)`` (the answer's JSON, not decoded).

One generic wrapper instead of a raw twin of every operation: ``with_raw_response``
takes the call's coroutine, so ``RawResult[T]`` keeps the operation's own result type,
and it works for every operation (downloads and paid writes included) without a second
copy of the resources. While the call runs, a context variable holds a recorder; the
pipeline tells it about every answer it reads (``answered``) and about every value it
decodes from one (``decoded``). A context variable is per task, so concurrent calls
never see each other's answers; when none is set (the common case) the pipeline's cost
is one ``ContextVar.get`` per answer.

``with_raw_json`` records the same way, and tells the pipeline to hand the call's own
answers over as parsed (the envelope still checked, its errors still typed) instead of
decoding them into models: the cheapest way to read the API, for a caller that only
passes the JSON on.
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

__all__ = [
    "RawResult",
    "ResponseInfo",
    "answered",
    "decoded",
    "recording",
    "with_raw_json",
    "with_raw_response",
]

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


class Recorder:
    """What one ``with_raw_response`` or ``with_raw_json`` call has seen so far."""

    __slots__ = ("answers", "data", "json", "own", "pending", "values")

    def __init__(self, *, json: bool = False) -> None:
        self.answers: list[ResponseInfo] = []
        # The last answer read per exchange, until it is decoded (or fails to be).
        self.pending: dict[Exchange, ResponseInfo] = {}
        self.values: list[tuple[Any, ResponseInfo]] = []
        #: with_raw_json: the call's own answers are not decoded into models.
        self.json = json
        #: with_raw_json: the call's own exchange, the first the pipeline is given (the
        #: reads of a write's reconciliation come after it, and are decoded: the
        #: reconciler needs models).
        self.own: Exchange | None = None
        #: with_raw_json: the parsed data of each value decoded from another exchange (a
        #: settled write's value is the read that found its change), by the value.
        self.data: list[tuple[Any, Any]] = []

    def claim(self, exchange: Exchange) -> None:
        """Told by the pipeline of every exchange it is given: the first is the call's."""
        if self.own is None:
            self.own = exchange

    def undecoded(self, exchange: Exchange) -> bool:
        """Whether ``exchange``'s answers are handed over as parsed (with_raw_json)."""
        return self.json and self.own is exchange

    def keep(self, value: Any, data: Any) -> None:
        self.data.append((value, data))

    def forget(self) -> None:
        """Drop what the call recorded: aiohttp's timers (a kept-alive connection's, for
        seconds) copy the context they are set in, this recorder with it, and must not
        keep the call's answers and values alive."""
        self.answers = []
        self.pending = {}
        self.values = []
        self.data = []
        self.own = None

    def data_of(self, value: Any) -> Any:
        """The JSON kept beside ``value`` (with_raw_json), else ``value`` itself."""
        for candidate, data in reversed(self.data):
            if candidate is value:
                return data
        return value

    def answer_of(self, value: Any) -> ResponseInfo | None:
        # By identity: a reconciled write returns the very object its read decoded.
        for candidate, info in reversed(self.values):
            if candidate is value:
                found: ResponseInfo = info
                return found
        return self.answers[-1] if self.answers else None


_recorder: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "pecapi_raw_response", default=None
)


def recording() -> Recorder | None:
    """The recorder of the ``with_raw_response``/``with_raw_json`` call running in this
    task, if any."""
    return _recorder.get()


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
    _check_call(call, "with_raw_response")
    result: RawResult[T] = await _recorded(call, Recorder())
    return result


async def with_raw_json(call: Awaitable[object]) -> RawResult[Any]:
    """Await ``call`` (an operation, not awaited yet) and return the ``data`` of its answer
    as parsed JSON (dicts, lists, strings...), not decoded into models, with the HTTP
    answer it came from::

        raw = await pecapi.with_raw_json(client.mailboxes.get(box_id))
        raw.value["stato"]  # the API's own JSON: a web backend can pass it on as it is
        raw.status, raw.headers, raw.request_id

    The cheapest way to read the API: the call runs as it would (retries, typed errors
    for error statuses and broken answers, limits), only the models' decoding is skipped.
    A paid write settled by reading the account returns the JSON of the read that found
    its change; an operation that makes its value of an error answer returns that value
    (``mailboxes.is_available``: False for "taken"); a PDF form, its bytes or path.
    """
    _check_call(call, "with_raw_json")
    return await _recorded(call, Recorder(json=True))


async def _recorded(call: Awaitable[Any], recorder: Recorder) -> RawResult[Any]:
    """``call`` awaited under ``recorder``; its value (for with_raw_json, the JSON kept
    beside it) with the answer it came from."""
    token = _recorder.set(recorder)
    # forget() on every way out, an error's too: the copied contexts outlive the call.
    try:
        try:
            value = await call
        finally:
            _recorder.reset(token)
        info = _answer_of(recorder, value)
        return RawResult(recorder.data_of(value), info, tuple(recorder.answers))
    finally:
        recorder.forget()


def _check_call(call: Awaitable[Any], name: str) -> None:
    if isinstance(call, asyncio.Future) or not inspect.isawaitable(call):
        # A task runs in the context it was created in: its answers would not be seen.
        raise ValidationError(
            None,
            f"{name} takes the call itself, not awaited and not a task: "
            f"{name}(client.mailboxes.get(id))",
        )


def _answer_of(recorder: Recorder, value: Any) -> ResponseInfo:
    info = recorder.answer_of(value)
    if info is None:
        raise ValidationError(None, "the awaited call received no HTTP answer to report")
    return info

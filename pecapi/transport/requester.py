"""What resources talk to: a :class:`Requester` sends an endpoint's calls through the
pipeline with one client's defaults.

``client.mailboxes`` and the other namespaces hold their client's requester, never the
client: they call ``await requester.call(endpoint, ...)`` (the endpoint's value) or
``await requester.download(endpoint, dest, ...)`` (a PDF), and the pipeline does the
rest, one send path for both (retries, settling, error mapping, limits, raw recording).
"""

from __future__ import annotations

from collections.abc import Coroutine, Hashable, Mapping
from pathlib import Path
from typing import Any, TypeVar, overload

from pecapi.errors import ConfigurationError
from pecapi.transport.download import Destination
from pecapi.transport.endpoint import Answer, Effect, Endpoint
from pecapi.transport.exchange import BodyFactory, no_body
from pecapi.transport.options import RequestOptions
from pecapi.transport.pending import outer_deadline
from pecapi.transport.pipeline import DEFAULT_RETRY, Pipeline
from pecapi.transport.retry import Reconciler

__all__ = ["Requester"]

T = TypeVar("T")


class Requester:
    """Sends calls of :class:`~pecapi.transport.endpoint.Endpoint` through one pipeline
    with the effective defaults of one client (or ``with_options`` copy).

    ``defaults`` are complete: the client's settings with each copy's options merged
    over them once, when the client or copy is made. A call's ``options`` are merged
    over them once per call, and not again by the pipeline.
    """

    __slots__ = ("_pipeline", "defaults")

    def __init__(self, pipeline: Pipeline, defaults: RequestOptions | None = None) -> None:
        self._pipeline = pipeline
        #: The effective options of a call given none.
        self.defaults = (
            pipeline.defaults if defaults is None else defaults.merged_over(pipeline.defaults)
        )

    def with_options(self, options: RequestOptions) -> Requester:
        """A requester on the same pipeline whose defaults are ``options`` over these."""
        copy = object.__new__(Requester)
        copy._pipeline = self._pipeline
        copy.defaults = options.merged_over(self.defaults)
        return copy

    def options(self, options: RequestOptions | None = None) -> RequestOptions:
        """A call's effective options: ``options`` over :attr:`defaults`."""
        return self.defaults if options is None else options.merged_over(self.defaults)

    def call(
        self,
        endpoint: Endpoint[T],
        *,
        params: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        body: BodyFactory = no_body,
        options: RequestOptions | None = None,
        reconciler: Reconciler[T] | None = None,
        target: str | None = None,
    ) -> Coroutine[Any, Any, T]:
        """Send one call of ``endpoint`` and return its value (what its ``decode`` makes
        of the envelope). ``params`` fill the path, ``query`` is the
        operation's own query, ``body`` makes the body of each attempt. A write's
        ``reconciler`` settles an unknown outcome; ``target`` names what it is about
        (by default ``<segment>/<id>``): one paid write per target at a time. A PDF
        endpoint is refused: :meth:`download` reads those (one rule, both ways).

        Not a coroutine function: it returns the pipeline's coroutine (one coroutine less
        per call), and so checks its arguments when called, not when awaited."""
        if endpoint.answer is not Answer.ENVELOPE:
            raise ConfigurationError(f"{endpoint.name} answers a PDF: use download()")
        pipeline = self._pipeline
        exchange = pipeline.exchange(
            endpoint, params=params, query=query, body=body, options=self.options(options)
        )
        call: Coroutine[Any, Any, T] = pipeline.call(exchange, reconciler, target=target)
        return call

    @overload
    async def download(
        self,
        endpoint: Endpoint[bytes],
        dest: None = None,
        *,
        params: Mapping[str, str] | None = None,
        options: RequestOptions | None = None,
    ) -> bytes: ...
    @overload
    async def download(
        self,
        endpoint: Endpoint[bytes],
        dest: Destination,
        *,
        params: Mapping[str, str] | None = None,
        options: RequestOptions | None = None,
    ) -> Path: ...
    async def download(
        self,
        endpoint: Endpoint[bytes],
        dest: Destination | None = None,
        *,
        params: Mapping[str, str] | None = None,
        options: RequestOptions | None = None,
    ) -> bytes | Path:
        """Read the PDF ``endpoint`` answers: its bytes, or with ``dest`` the path it was
        streamed to (written beside it and renamed at the end). Same path as
        :meth:`call`; a bad ``dest`` is refused before anything is sent."""
        if endpoint.answer is not Answer.PDF:
            raise ConfigurationError(f"{endpoint.name} answers JSON: use call()")
        pipeline = self._pipeline
        exchange = pipeline.exchange(endpoint, params=params, options=self.options(options))
        result: bytes | Path = await pipeline.call(exchange, dest=dest)
        return result

    async def shared_read(
        self, endpoint: Endpoint[T], *, newer_than: float, options: RequestOptions | None = None
    ) -> T:
        """The value of ``endpoint`` (a read without parameters: a listing) from a read
        started at or after ``newer_than`` (``time.monotonic()``), shared with the
        concurrent callers whose effective options equal this call's (see
        ``pecapi/transport/shared.py``): a reconciliation's view of the account.

        The read runs with this call's options, in a task of its own that belongs to no
        caller (outside ``with_raw_response``); this caller waits for it until its own
        deadline, when it is the read of a settling write."""
        if endpoint.effect is not Effect.READ or endpoint.params:
            raise ConfigurationError(f"{endpoint.name} cannot be shared: not a plain read")
        effective = self.options(options)
        clock = (effective.retry or DEFAULT_RETRY).clock
        deadline = outer_deadline(clock)
        pipeline = self._pipeline

        async def fetch() -> T:
            value: T = await pipeline.call(pipeline.exchange(endpoint, options=effective))
            return value

        listing = pipeline.reads.listing(endpoint.name)
        value: T = await listing.newer_than(
            newer_than,
            _key(effective),
            fetch,
            time_left=None if deadline is None else deadline - clock(),
            operation=endpoint.name,
        )
        return value

    def __repr__(self) -> str:
        return f"Requester({str(self._pipeline.base_url)!r})"


def _key(options: RequestOptions) -> Hashable:
    """What a shared read is shared by: equal options. A policy holding something that
    cannot be hashed (a ``sleep`` bound to such an object) shares with no other call."""
    try:
        hash(options)
    except TypeError:
        return object()
    return options

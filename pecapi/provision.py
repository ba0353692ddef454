"""Provision many mailboxes: check, register, activate — crash-safe through a journal.

For each :class:`ProvisionRequest` the pipeline checks that the address is free,
registers the mailbox and, when documents are given, activates it. Every outcome is
appended to a JSON-lines journal (:class:`Journal`) as it arrives; running again with
the same journal skips what is complete, resumes what is half done (a registered
mailbox is activated, never registered again) and retries what failed. Requests may
come from a CSV file (:func:`read_registrations_csv`, from :mod:`pecapi.provision_input`).

An address whose domain does not suit the client's environment (a production domain on
a sandbox client, a sandbox one in production, a provider's domain of another mailbox
type) is ``invalid``, with nothing sent for it, in this run and the next ones.

The account's mailboxes are listed once at the start, and for every request the
journal has not completed the account wins over the journal:

- an address the account lists is taken over, never registered again (this covers a
  crash between a registration and its journal line, and a ``pending`` registration
  whose outcome was unknown and did take effect);
- a mailbox the journal left ``awaiting_activation`` (or ``pending``) that the account
  shows as ``in_evasione`` or ``evasa`` is ``activated``: the activation was processed
  although its answer was lost, and it is not sent again;
- a mailbox id in the journal that the account does not list any more (revoked, or
  never there) is not trusted: the address is checked and registered as if new (the
  availability check comes first, so an address still taken is ``unavailable``, never
  paid for twice).

A request the journal completed is ``skipped`` without looking at the account.

After the first registration answered HTTP 402 the run sends no other registration
(:func:`provision` says more); what costs nothing goes on: activations, mailboxes taken
over from the account, invalid and duplicate rows. A registration that succeeded is
journaled (``awaiting_activation``) before its activation is sent, so that a run
cancelled or killed during the activation leaves the paid mailbox in the journal.

``provision(stop=...)`` stops a run cleanly (the command line's first signal): no other
request is read, and none that is started sends a check or a registration after it.
The per-request steps are in ``pecapi/provision_run.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from pecapi.batch import Batch, BatchProgress, BatchResult
from pecapi.errors import ValidationError
from pecapi.journal import STATUSES, Journal, ProvisionJournal, ProvisionOutcome, ProvisionStatus
from pecapi.provision_input import (
    InvalidRow,
    ProvisionRequest,
    RegistrationsCsv,
    read_registrations_csv,
)
from pecapi.provision_run import ProvisionRun, StopCheck

if TYPE_CHECKING:
    from pecapi.client import PecClient

__all__ = [
    "STATUSES",
    "InvalidRow",
    "Journal",
    "ProvisionJournal",
    "ProvisionOutcome",
    "ProvisionRequest",
    "ProvisionStatus",
    "RegistrationsCsv",
    "provision",
    "read_registrations_csv",
]


class Provisioning(Batch[ProvisionRequest | InvalidRow, ProvisionOutcome]):
    """A provisioning batch: iterate it for each outcome; closing it closes the journal.

    When the iteration starts, before any request is read from the input, the journal is
    opened and read (a path that cannot be written raises
    :class:`~pecapi.errors.ConfigurationError` from the ``async for``) and the account
    is listed: an error there (a refused token, a lost connection) is raised from the
    ``async for`` too, once, with no outcome before it. The journal is closed when the
    iteration ends, and by ``aclose()``.
    """

    def __init__(self, run: ProvisionRun, *args: Any, **kwargs: Any) -> None:
        # The run stops its own registrations on a 402 (and goes on with what is free);
        # its calls never raise one, so the batch's own stop would never fire.
        super().__init__(run, *args, stop_on_insufficient_credit=False, **kwargs)
        self._state = run

    @property
    def stopped_by(self) -> Exception | None:
        """The 402 after which the run sent no registration, or None."""
        return self._state.out_of_credit

    def _halted(self) -> bool:
        return super()._halted() or self._state.stopped()

    async def _inputs_async(self) -> AsyncGenerator[ProvisionRequest | InvalidRow, None]:
        source = super()._inputs_async()
        try:
            # The first request read first: a CSV file whose header is unusable fails
            # before anything is sent, the account's listing included.
            try:
                first = await anext(source)
            except StopAsyncIteration:
                return  # nothing to do: not even the listing
            # Then the setup, before any request is started: its failure is the run's
            # (raised once from the ``async for``), and a stop meanwhile starts nothing.
            await self._state.ready()
            if self._state.stopped():
                return
            yield first
            async for item in source:
                yield item
        finally:
            await source.aclose()

    async def _run(
        self,
    ) -> AsyncGenerator[BatchResult[ProvisionRequest | InvalidRow, ProvisionOutcome], None]:
        try:
            await self._state.open()
            async with contextlib.aclosing(super()._run()) as results:
                async for result in results:
                    yield result
        finally:
            await self._state.aclose()

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self._state.aclose()


def provision(
    client: PecClient,
    requests: Iterable[ProvisionRequest | InvalidRow]
    | AsyncIterable[ProvisionRequest | InvalidRow],
    *,
    concurrency: int = 50,
    journal: str | os.PathLike[str] | ProvisionJournal | None = None,
    fsync: bool = False,
    total: int | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    stop_on_insufficient_credit: bool = True,
    stop: StopCheck | None = None,
) -> Provisioning:
    """Provision ``requests``; iterate the batch for each outcome::

        async with provision(client, requests, journal="run.jsonl") as run:
            async for result in run:
                print(result.value.status if result.value else result.error)

    ``journal`` is a path (a JSON-lines :class:`Journal`, ``fsync`` forcing each line to
    disk) or any :class:`ProvisionJournal`, such as the Redis journal that processes
    share (``pecapi.fleet.journal_redis.RedisJournal``).

    When the iteration starts, opens the journal (a path that cannot be written raises
    :class:`~pecapi.errors.ConfigurationError`, nothing sent) and reads it; then lists
    the account's mailboxes (one ``GET /pec``) before the first request.

    After the first registration answered HTTP 402, no other registration is sent: the
    requests still needing one are ``no_credit`` (``stop_on_insufficient_credit=False``
    sends each of them, to be answered its own 402 when the wallet cannot pay).

    ``stop`` (a function returning True, or an :class:`asyncio.Event` that is set) asks
    the run to stop, e.g. from a signal handler: it reads no other request from
    ``requests``, and a request already started whose registration is not yet sent is
    ``stopped`` (its error a :class:`~pecapi.NotSentError`, reason ``"stopped"``):
    neither its availability check nor its registration is sent after the stop. What is
    in flight finishes as usual (a registration sent is activated); the iteration ends
    then. ``stopped`` is not complete: the next run does those requests, and those never
    read.
    """
    if not isinstance(stop_on_insufficient_credit, bool):
        value = stop_on_insufficient_credit
        raise ValidationError("stop_on_insufficient_credit", f"must be a bool, not {value!r}")
    if stop is not None and not (isinstance(stop, asyncio.Event) or callable(stop)):
        raise ValidationError("stop", f"must be a function or an asyncio.Event, not {stop!r}")
    book: ProvisionJournal | None
    if journal is None or isinstance(journal, ProvisionJournal):
        book = journal
    else:
        book = Journal(journal, fsync=fsync)
    run = ProvisionRun(client, book, stop_on_credit=stop_on_insufficient_credit, stop=stop)
    return Provisioning(
        run, requests, concurrency=concurrency, total=total, on_progress=on_progress
    )

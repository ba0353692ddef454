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
over from the account, invalid and duplicate rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from pecapi.batch import INSUFFICIENT_CREDIT, Batch, BatchProgress, BatchResult, NotSentError
from pecapi.errors import (
    ConfigurationError,
    InsufficientCreditError,
    OutcomeUnknownError,
    PecError,
    ValidationError,
)
from pecapi.journal import STATUSES, Journal, ProvisionOutcome, ProvisionStatus
from pecapi.models.enums import MailboxState
from pecapi.models.mailbox import Mailbox
from pecapi.models.rules import check_mailbox_domain
from pecapi.provision_input import (
    InvalidRow,
    ProvisionRequest,
    RegistrationsCsv,
    read_registrations_csv,
)

if TYPE_CHECKING:
    from pecapi.client import PecClient

__all__ = [
    "STATUSES",
    "InvalidRow",
    "Journal",
    "ProvisionOutcome",
    "ProvisionRequest",
    "ProvisionStatus",
    "RegistrationsCsv",
    "provision",
    "read_registrations_csv",
]

logger = logging.getLogger("pecapi")

# account states that mean the activation documents were received
_ACTIVATED = (MailboxState.IN_EVASIONE, MailboxState.EVASA)
# journal statuses of a mailbox an earlier run registered, or may have registered
_RESUMED = ("awaiting_activation", "pending")


class _Run:
    """The state of one provisioning run."""

    def __init__(self, client: PecClient, journal: Journal | None, *, stop_on_credit: bool) -> None:
        self.client = client
        self.journal = journal
        self.stop_on_credit = stop_on_credit
        #: the first 402 of a registration (with stop_on_credit): no registration after it
        self.out_of_credit: InsufficientCreditError | None = None
        self.previous: dict[str, dict[str, Any]] = {}
        self.existing: dict[str, tuple[str, MailboxState | None]] = {}
        self.seen: set[str] = set()
        self._opened = False
        self._ready: asyncio.Task[None] | None = None

    def open(self) -> None:
        """Open the journal (so a path that cannot be written fails now) and read it.

        Called when the batch starts, before any request; again (a no-op) by ``_load``.
        """
        if self._opened:
            return
        if self.journal is not None:
            self.journal.open()
            try:
                self.previous = self.journal.load()
            except OSError as exc:
                self.journal.close()
                reason = exc.strerror or str(exc)
                path = str(self.journal.path)
                raise ConfigurationError(f"cannot read the journal {path!r}: {reason}") from exc
        self._opened = True

    async def aclose(self) -> None:
        """Stop the one-time setup if it still runs, then close the journal."""
        ready, self._ready = self._ready, None
        if ready is not None and not ready.done():
            ready.cancel()
            await asyncio.gather(ready, return_exceptions=True)
        if self.journal is not None:
            self.journal.close()

    async def _load(self) -> None:
        self.open()  # before the listing: nothing is sent unless the journal is writable
        await self._settle_earlier_pending()
        self.existing = {
            item.casella_pec.strip().lower(): (item.id, item.stato)
            for item in await self.client.mailboxes.list()
            if item.casella_pec and item.id and item.stato is not MailboxState.REVOCATA
        }

    async def _settle_earlier_pending(self) -> None:
        """A registration an earlier run left ``pending`` may still be committed by the
        API until its settle window has passed: list the account only after that."""
        window = self.client.retry_policy.settle
        now = dt.datetime.now(dt.timezone.utc)
        wait = 0.0
        for record in self.previous.values():
            if record.get("status") != "pending":
                continue
            try:
                at = dt.datetime.fromisoformat(str(record.get("at")))
            except ValueError:
                at = now  # unreadable: assume it just happened
            if at.tzinfo is None:
                at = at.replace(tzinfo=dt.timezone.utc)
            wait = max(wait, min(window, window - (now - at).total_seconds()))
        if wait > 0:
            logger.info(
                "provisioning: an earlier run left registrations pending; waiting %.1fs for "
                "their settle window before reading the account",
                wait,
            )
            await self.client.retry_policy.sleep(wait)

    async def _register(
        self, item: ProvisionRequest, steps: list[str]
    ) -> Mailbox | ProvisionOutcome:
        """Register, settling an unknown outcome before anything else: the registered
        mailbox, or the outcome to record."""
        try:
            return await self.client.mailboxes.register(item.registration)
        except asyncio.CancelledError:
            # Cancelled in flight: the API may still register it. The journal says so,
            # and the next run settles it before registering anything.
            self._record_quietly(self._outcome(item, "pending", [*steps, "register: cancelled"]))
            raise
        except OutcomeUnknownError as exc:
            steps.append("register: outcome unknown")
            if exc.pending is None:
                return self._outcome(item, "pending", steps, error=exc)
            # Recorded first, so that a crash while settling leaves the truth behind.
            self._record(self._outcome(item, "pending", steps, error=exc))
            try:
                box: Mailbox | None = await self.client.reconcile(exc.pending)
            except asyncio.CancelledError:
                raise
            except PecError as again:
                return self._outcome(item, "pending", steps, error=again)
            if box is None:
                steps.append("settled: not registered")
                return self._outcome(item, "failed", steps, error=exc)
            steps.append("settled: registered")
            return box
        except InsufficientCreditError as exc:
            steps.append(f"register: {type(exc).__name__}")
            if self.stop_on_credit and self.out_of_credit is None:
                self.out_of_credit = exc
                logger.warning(
                    "provisioning: the wallet cannot pay for a registration (%s); no other "
                    "registration is sent in this run: top the wallet up and run it again",
                    exc,
                )
            return self._outcome(item, "no_credit", steps, error=exc)
        except PecError as exc:
            steps.append(f"register: {type(exc).__name__}")
            return self._outcome(item, "failed", steps, error=exc)

    def _not_sent(self, item: ProvisionRequest, steps: list[str]) -> ProvisionOutcome | None:
        """The outcome of a request whose registration is not sent because an earlier one
        was answered 402; None while registrations may be sent."""
        if self.out_of_credit is None:
            return None
        steps.append(f"not sent: {INSUFFICIENT_CREDIT}")
        error = NotSentError(INSUFFICIENT_CREDIT, self.out_of_credit)
        return self._outcome(item, "no_credit", steps, error=error)

    def _record(self, outcome: ProvisionOutcome) -> None:
        if self.journal is not None and outcome.status != "skipped":
            self.journal.append(outcome)

    def _record_quietly(self, outcome: ProvisionOutcome) -> None:
        """Record while a cancellation propagates: a full disk must not replace it."""
        try:
            self._record(outcome)
        except OSError as exc:
            logger.warning("provisioning: cannot write the journal (%s)", exc)

    async def __call__(self, item: ProvisionRequest | InvalidRow) -> ProvisionOutcome:
        if self._ready is None:  # once, before the first request, shared by all workers
            self._ready = asyncio.ensure_future(self._load())
        await asyncio.shield(self._ready)
        outcome = await self._provision(item)
        self._record(outcome)
        return outcome

    async def _provision(self, item: ProvisionRequest | InvalidRow) -> ProvisionOutcome:
        if isinstance(item, InvalidRow):
            return ProvisionOutcome(
                key=item.key, status="invalid", line=item.line, error=item.error
            )
        key, line, registration = item.key, item.line, item.registration
        try:  # register() would refuse it, after the check was sent: send nothing for it
            check_mailbox_domain(
                registration.casella_pec, registration.tipo_casella, sandbox=self.client.sandbox
            )
        except ValidationError as exc:
            return ProvisionOutcome(key=key, status="invalid", line=line, error=exc)
        if key in self.seen:
            error = ValidationError("casella_pec", f"{key} appears more than once in the input")
            return ProvisionOutcome(key=key, status="duplicate", line=line, error=error)
        self.seen.add(key)
        before = self.previous.get(key) or {}
        if before.get("complete"):
            return ProvisionOutcome(
                key=key, status="skipped", line=line, mailbox_id=before.get("mailbox_id")
            )
        # The account wins over the journal: what the journal says of an incomplete
        # request may be stale (an answer lost after the API processed the request).
        resumed = before.get("status") in _RESUMED
        steps: list[str] = []
        mailbox_id: str | None = None
        state: MailboxState | None = None
        if key in self.existing:
            mailbox_id, state = self.existing[key]
            steps.append(f"found on the account: {state}" if state else "found on the account")
        elif before.get("mailbox_id"):
            steps.append(f"journal: mailbox {before['mailbox_id']} not on the account")
        if mailbox_id is None:
            # a registration is paid: none after a 402, and no check for one either
            if (skipped := self._not_sent(item, steps)) is not None:
                return skipped
            try:
                available = await self.client.mailboxes.is_available(item.registration.casella_pec)
            except PecError as exc:
                steps.append(f"check: {type(exc).__name__}")
                return self._outcome(item, "failed", steps, error=exc)
            if not available:
                steps.append("check: taken")
                return self._outcome(item, "unavailable", steps)
            steps.append("check: available")
            # the 402 may have come while this check was in flight
            if (skipped := self._not_sent(item, steps)) is not None:
                return skipped
            registered = await self._register(item, steps)
            if isinstance(registered, ProvisionOutcome):
                return registered
            mailbox_id, state = registered.id, registered.stato
            steps.append("register: ok")
            resumed = False
        assert mailbox_id is not None
        waiting = state in (MailboxState.REGISTRATA, MailboxState.DOCUMENTI_ERRATI)
        if item.documents is None or not waiting:
            status: ProvisionStatus
            if "register: ok" in steps:
                status = "registered"
            elif resumed and state in _ACTIVATED:
                status = "activated"  # the earlier run's activation (or someone's) went through
            elif resumed and state is MailboxState.REGISTRATA:
                status = "registered"  # a pending registration that took effect
            else:
                status = "existing"
            return self._outcome(item, status, steps, mailbox_id=mailbox_id)
        try:
            await self.client.mailboxes.activate(mailbox_id, item.documents)
        except PecError as exc:
            steps.append(f"activate: {type(exc).__name__}")
            return self._outcome(
                item, "awaiting_activation", steps, mailbox_id=mailbox_id, error=exc
            )
        steps.append("activate: ok")
        return self._outcome(item, "activated", steps, mailbox_id=mailbox_id)

    @staticmethod
    def _outcome(
        item: ProvisionRequest,
        status: ProvisionStatus,
        steps: list[str],
        *,
        mailbox_id: str | None = None,
        error: Exception | None = None,
    ) -> ProvisionOutcome:
        return ProvisionOutcome(
            key=item.key,
            status=status,
            line=item.line,
            mailbox_id=mailbox_id,
            steps=tuple(steps),
            error=error,
        )


class Provisioning(Batch[ProvisionRequest | InvalidRow, ProvisionOutcome]):
    """A provisioning batch: iterate it for each outcome; closing it closes the journal.

    The journal is opened when the iteration starts: a path that cannot be written
    raises :class:`ConfigurationError` from the ``async for``, before any request. It is
    closed when the iteration ends, and by ``aclose()``.
    """

    def __init__(self, run: _Run, *args: Any, **kwargs: Any) -> None:
        # The run stops its own registrations on a 402 (and goes on with what is free);
        # its calls never raise one, so the batch's own stop would never fire.
        super().__init__(run, *args, stop_on_insufficient_credit=False, **kwargs)
        self._state = run

    @property
    def stopped_by(self) -> Exception | None:
        """The 402 after which the run sent no registration, or None."""
        return self._state.out_of_credit

    async def _run(
        self,
    ) -> AsyncGenerator[BatchResult[ProvisionRequest | InvalidRow, ProvisionOutcome], None]:
        try:
            self._state.open()
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
    journal: str | os.PathLike[str] | None = None,
    fsync: bool = False,
    total: int | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    stop_on_insufficient_credit: bool = True,
) -> Provisioning:
    """Provision ``requests``; iterate the batch for each outcome::

        async with provision(client, requests, journal="run.jsonl") as run:
            async for result in run:
                print(result.value.status if result.value else result.error)

    When the iteration starts, opens the journal (a path that cannot be written raises
    :class:`~pecapi.errors.ConfigurationError`, nothing sent) and reads it; then lists
    the account's mailboxes (one ``GET /pec``) before the first request.

    After the first registration answered HTTP 402, no other registration is sent: the
    requests still needing one are ``no_credit`` (``stop_on_insufficient_credit=False``
    sends each of them, to be answered its own 402 when the wallet cannot pay).
    """
    if not isinstance(stop_on_insufficient_credit, bool):
        value = stop_on_insufficient_credit
        raise ValidationError("stop_on_insufficient_credit", f"must be a bool, not {value!r}")
    book = Journal(journal, fsync=fsync) if journal is not None else None
    run = _Run(client, book, stop_on_credit=stop_on_insufficient_credit)
    return Provisioning(
        run, requests, concurrency=concurrency, total=total, on_progress=on_progress
    )

"""The steps of one provisioning run (:func:`pecapi.provision.provision`), per request.

Kept apart from :mod:`pecapi.provision` (the batch and its documentation) to keep both
short: this is what happens to one request, and the state the requests of a run share
(the journal read at the start, the account's mailboxes, the first 402, the stop).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from pecapi.batch import INSUFFICIENT_CREDIT, NotSentError
from pecapi.errors import (
    InsufficientCreditError,
    OutcomeUnknownError,
    PecError,
    ValidationError,
)
from pecapi.journal import UNSETTLED, ProvisionJournal, ProvisionOutcome, ProvisionStatus
from pecapi.models.enums import MailboxState
from pecapi.models.mailbox import Mailbox
from pecapi.models.rules import check_mailbox_domain
from pecapi.provision_input import InvalidRow, ProvisionRequest

if TYPE_CHECKING:
    from pecapi.client import PecClient

__all__ = ["STOPPED", "ProvisionRun", "StopCheck", "settle_wait"]

logger = logging.getLogger("pecapi")

#: The :attr:`~pecapi.NotSentError.reason` of a request not sent because the run was
#: asked to stop (``provision(stop=...)``).
STOPPED = "stopped"

#: What ``provision(stop=...)`` takes: a function that says whether to stop, or an event.
StopCheck: TypeAlias = Callable[[], bool] | asyncio.Event

# account states that mean the activation documents were received
_ACTIVATED = (MailboxState.IN_EVASIONE, MailboxState.EVASA)
# journal statuses of a mailbox an earlier run registered, or may have registered
_RESUMED = ("awaiting_activation", *sorted(UNSETTLED))


def settle_wait(record: dict[str, Any], window: float, now: dt.datetime | None = None) -> float:
    """Seconds still to wait before the account may be read for a registration that
    ``record`` left unsettled (``pending``, ``registering``): the API may commit it until
    ``window`` seconds after it was journaled (its ``at``). 0 for any other record."""
    if record.get("status") not in UNSETTLED:
        return 0.0
    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        at = dt.datetime.fromisoformat(str(record.get("at")))
    except ValueError:
        at = now  # unreadable: assume it just happened
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    return max(0.0, min(window, window - (now - at).total_seconds()))


class ProvisionRun:
    """The state of one provisioning run; calling it provisions one request."""

    def __init__(
        self,
        client: PecClient,
        journal: ProvisionJournal | None,
        *,
        stop_on_credit: bool,
        stop: StopCheck | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.stop_on_credit = stop_on_credit
        self._stop = stop
        #: the first 402 of a registration (with stop_on_credit): no registration after it
        self.out_of_credit: InsufficientCreditError | None = None
        self.previous: dict[str, dict[str, Any]] = {}
        self.existing: dict[str, tuple[str, MailboxState | None]] = {}
        self.seen: set[str] = set()
        self._opened = False
        self._ready: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the journal (so a path that cannot be written fails now) and read it.

        Called when the batch starts, before any request; again (a no-op) by ``_load``.
        """
        if self._opened:
            return
        if self.journal is not None:
            await self.journal.start()
            try:
                self.previous = await self.journal.read()
            except BaseException:
                await self.journal.finish()
                raise
        self._opened = True

    def stopped(self) -> bool:
        """Whether the run was asked to stop (its ``stop`` function or event)."""
        if self._stop is None:
            return False
        if isinstance(self._stop, asyncio.Event):
            return self._stop.is_set()
        return bool(self._stop())

    async def ready(self) -> None:
        """Open and read the journal, wait out an earlier run's settle window, list the
        account (``GET /pec``): once, shared by every caller. Its error (a refused token,
        a lost connection) is the run's, raised before any request is processed."""
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._load())
        # shielded: one caller cancelled must not cancel the others' setup (aclose does)
        await asyncio.shield(self._ready)

    async def aclose(self) -> None:
        """Stop the one-time setup if it still runs, then close the journal."""
        ready, self._ready = self._ready, None
        if ready is not None and not ready.done():
            ready.cancel()
            await asyncio.gather(ready, return_exceptions=True)
        if self.journal is not None:
            await self.journal.finish()

    async def _load(self) -> None:
        await self.open()  # before the listing: nothing is sent unless the journal is writable
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
        wait = max((settle_wait(r, window, now) for r in self.previous.values()), default=0.0)
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
            await self._record_quietly(
                self._outcome(item, "pending", [*steps, "register: cancelled"])
            )
            raise
        except OutcomeUnknownError as exc:
            steps.append("register: outcome unknown")
            if exc.pending is None:
                return self._outcome(item, "pending", steps, error=exc)
            # Recorded first, so that a crash while settling leaves the truth behind.
            await self._record(self._outcome(item, "pending", steps, error=exc), final=False)
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
        """The outcome of a request whose registration is not sent, because an earlier one
        was answered 402 or because the run was asked to stop; None while registrations
        may be sent."""
        if self.out_of_credit is not None:
            steps.append(f"not sent: {INSUFFICIENT_CREDIT}")
            error = NotSentError(INSUFFICIENT_CREDIT, self.out_of_credit)
            return self._outcome(item, "no_credit", steps, error=error)
        if self.stopped():
            steps.append(f"not sent: {STOPPED}")
            return self._outcome(item, "stopped", steps, error=NotSentError(STOPPED))
        return None

    async def _record(self, outcome: ProvisionOutcome, *, final: bool = True) -> None:
        if self.journal is not None:
            await self.journal.write(outcome, final=final)

    async def _record_quietly(self, outcome: ProvisionOutcome) -> None:
        """Record while a cancellation propagates: a full disk (or a lost Redis) must not
        replace it."""
        try:
            await self._record(outcome, final=False)
        except Exception as exc:
            logger.warning("provisioning: cannot write the journal (%s)", exc)

    async def _taken(self, item: ProvisionRequest) -> tuple[str, MailboxState | None] | None:
        """The account's mailbox of an address the availability check found taken, when
        the account has it (the run takes it over); None: taken by someone else. The
        account was listed at the start, before any registration of this run: nothing
        to read again here (a run sharing its work with other processes does)."""
        return None

    async def __call__(self, item: ProvisionRequest | InvalidRow) -> ProvisionOutcome:
        await self.ready()  # done by the batch before its first request: a no-op then
        outcome = await self._provision(item)
        await self._record(outcome)
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
            # a registration is paid: none after a 402 or a stop, and no check for one either
            if (skipped := self._not_sent(item, steps)) is not None:
                return skipped
            try:
                available = await self.client.mailboxes.is_available(item.registration.casella_pec)
            except PecError as exc:
                steps.append(f"check: {type(exc).__name__}")
                return self._outcome(item, "failed", steps, error=exc)
            found = None if available else await self._taken(item)
            if found is not None:
                mailbox_id, state = found
                steps.append(f"check: taken; found on the account: {state}")
            elif not available:
                steps.append("check: taken")
                return self._outcome(item, "unavailable", steps)
            else:
                steps.append("check: available")
                # the 402 (or the stop) may have come while this check was in flight
                if (skipped := self._not_sent(item, steps)) is not None:
                    return skipped
                if self.journal is not None and self.journal.intents:
                    # Before it is sent: a process dying now leaves this behind, and
                    # whoever takes the request over reads the account before anything.
                    intent = self._outcome(item, "registering", [*steps, "register: sent"])
                    await self._record(intent, final=False)
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
        if "register: ok" in steps:
            # Paid for: journaled before the activation, so that a cancellation or a crash
            # during it leaves the mailbox in the journal (the next run activates it).
            paid = self._outcome(item, "awaiting_activation", steps, mailbox_id=mailbox_id)
            await self._record(paid, final=False)
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

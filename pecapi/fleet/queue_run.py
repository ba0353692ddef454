"""One row of a queued provisioning job, as a worker does it: the single-process steps
(:class:`pecapi.provision_run.ProvisionRun`) with what sharing the work needs.

- no listing of the whole account per item: a row is read against the journal when its
  claim is taken, and the account is read for that row only when the journal says it
  may be on it (a registration left ``pending``: after its settle window; left
  ``registering``: a settle window after the row was taken over, see ``_settle_wait``;
  a mailbox id: ``GET /pec/{id}``), or when its address turns out taken (one listing per
  worker and job, :class:`AccountListing`, says whether the account has it);
- every journal write is fenced by the row's claim (:class:`~pecapi.fleet.journal_redis.
  ClaimLost` when it was lost), and the claim is checked again just before the
  registration is sent;
- a row stopped by a draining worker is not journaled: the item goes back on the queue
  and another worker does it.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from pecapi.errors import NotFoundError, PecError
from pecapi.fleet.journal_redis import ClaimLost, RedisJournal
from pecapi.journal import UNSETTLED, ProvisionOutcome, ProvisionStatus
from pecapi.models.enums import MailboxState
from pecapi.models.mailbox import Mailbox
from pecapi.provision_input import InvalidRow, ProvisionRequest
from pecapi.provision_run import ProvisionRun, StopCheck, settle_wait

if TYPE_CHECKING:
    from pecapi.client import PecClient

__all__ = ["AccountListing", "QueueRun"]

Found = tuple[str, MailboxState | None]


class AccountListing:
    """The account's mailboxes by address, listed (``GET /pec``) at most once per need:
    a listing made after ``newer_than`` (``time.time()``) is reused by every row of the
    worker that asks, and those asking at once share one."""

    def __init__(self, client: PecClient) -> None:
        self._client = client
        self._at = float("-inf")
        self._boxes: dict[str, Found] = {}
        self._lock = asyncio.Lock()
        self.listings: int = 0

    async def find(self, key: str, newer_than: float) -> Found | None:
        async with self._lock:
            if self._at < newer_than:
                started = time.time()
                boxes = await self._client.mailboxes.list()
                self._boxes = {
                    item.casella_pec.strip().lower(): (item.id, item.stato)
                    for item in boxes
                    if item.casella_pec and item.id and item.stato is not MailboxState.REVOCATA
                }
                self._at = started
                self.listings += 1
        return self._boxes.get(key)


class QueueRun(ProvisionRun):
    """The rows of one item (see the module doc). ``since``: when the job was submitted
    (``time.time()``): a listing older than that does not say what the account held."""

    def __init__(
        self,
        client: PecClient,
        journal: RedisJournal,
        *,
        listing: AccountListing,
        lease: float,
        since: float,
        stop: StopCheck | None = None,
    ) -> None:
        super().__init__(client, journal, stop_on_credit=True, stop=stop)
        self.shared: RedisJournal = journal
        self.listing: AccountListing = listing
        self.lease: float = lease
        self.since: float = since

    async def open(self) -> None:
        # The journal is read row by row, once each row is claimed (not all of it here).
        self._opened = True

    async def _load(self) -> None:
        await self.open()  # no listing of the account per item: rows read what they need

    async def _taken(self, item: ProvisionRequest) -> Found | None:
        return await self.listing.find(item.key, self.since)

    async def _register(
        self, item: ProvisionRequest, steps: list[str]
    ) -> Mailbox | ProvisionOutcome:
        # The last moment to find out that another worker took the row over.
        if not await self.shared.still_holds(item.key, self.lease):
            raise ClaimLost(f"{item.key}: the claim was lost before the registration was sent")
        return await super()._register(item, steps)

    async def prepare(self, item: ProvisionRequest) -> ProvisionOutcome | None:
        """Read the row's journal record and, when it says the account may hold the
        mailbox, the account; None, or the outcome when the account cannot be read."""
        key = item.key
        record = (await self.shared.read([key])).get(key)
        self.existing.pop(key, None)
        if record is None:
            self.previous.pop(key, None)
            return None
        self.previous[key] = record
        if record.get("complete"):
            return None
        unsettled = record.get("status") in UNSETTLED
        try:
            if unsettled:
                # The process that sent it died or gave up: the API may commit it until
                # the settle window from its last send has passed; then the account tells.
                wait = await self._settle_wait(record)
                if wait > 0:
                    await self.client.retry_policy.sleep(wait)
                checked = time.time()
                if await self.client.mailboxes.is_available(item.registration.casella_pec):
                    return None  # never registered: done as a new row
                # any listing begun after the window ended shows it: rows settling at once
                # share one
                found = await self.listing.find(key, checked)
                if found is not None:
                    self.existing[key] = found
            elif record.get("mailbox_id"):
                try:
                    box = await self.client.mailboxes.get(str(record["mailbox_id"]))
                except NotFoundError:
                    return None  # not on the account: checked and registered as new
                if box.id and box.stato is not MailboxState.REVOCATA:
                    self.existing[key] = (box.id, box.stato)
        except asyncio.CancelledError:
            raise
        except PecError as exc:
            steps = [f"reconcile: {type(exc).__name__}"]
            # still unsettled: the next run (or worker) reads the account again
            status: ProvisionStatus = "pending" if unsettled else "failed"
            return self._outcome(item, status, steps, error=exc)
        return None

    async def _settle_wait(self, record: dict[str, Any]) -> float:
        """Seconds to wait before reading the account for an unsettled row."""
        window = self.client.retry_policy.settle
        if record.get("status") == "registering":
            # Journaled once, before the first send; the call may have sent it again
            # later (a settle window ending "not applied" is followed by a resend), at
            # any time until its worker stopped: before this claim was taken. So the
            # window runs from now, not from the record.
            return float(window)
        # ``pending`` is journaled once its call gave up: nothing was sent after it. On
        # Redis's clock, as the record's time: the worker that wrote it may run on a
        # machine whose clock is off from this one's.
        return settle_wait(record, window, await self.shared.now())

    async def __call__(self, item: ProvisionRequest | InvalidRow) -> ProvisionOutcome:
        outcome = await self._provision(item)
        if outcome.status != "stopped":  # stopped: left for the worker that takes the item
            await self._record(outcome)
        return outcome

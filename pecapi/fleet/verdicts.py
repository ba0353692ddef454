"""Verdicts of settled outcomes, kept for every process that holds the outcome.

An outcome recorded in Redis may be settled by another process than the one that made it
(:mod:`pecapi.fleet.pending_store` adopts it under the target's lease). That process then
writes on the target itself: from then on, the first process's own check (against the
state it noted before its write) would take that later write's change for its own. So
the one that settles a recorded outcome keeps its verdict, ``<ns>:settled:<record id>``
(``"applied"`` / ``"not_applied"``, for the outcome's window plus ``KEEP_FOR``), and a
process finding its own record gone takes that verdict instead of checking again:

- ``"not_applied"``: a read after the window showed no change: settled as not applied;
- ``"applied"``: the change showed. The result is read again (the process's own check,
  else the object as it is now: a registered mailbox since activated no longer passes a
  registration's check); it is never "not applied", which would invite a paid resend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pecapi.errors import ConfigurationError
from pecapi.models.comunica import ComunicaPec
from pecapi.models.mailbox import Mailbox
from pecapi.transport.pending import PendingOutcome, Reconciler

if TYPE_CHECKING:
    from pecapi.client import PecClient

__all__ = ["APPLIED", "NOT_APPLIED", "Applied", "verdict_of"]

APPLIED = "applied"
NOT_APPLIED = "not_applied"


def verdict_of(pending: PendingOutcome[Any]) -> str | None:
    """What settling ``pending`` found, or None if it is not settled."""
    if not pending.settled:
        return None
    return NOT_APPLIED if pending.result is None else APPLIED


class Applied:
    """The reconciler of an outcome another process found applied: its own check's
    result, else the target as it is now; never None (not applied)."""

    __slots__ = ("_check", "_client", "_target")

    def __init__(self, client: PecClient, check: Reconciler[Any], target: str) -> None:
        self._client = client
        self._check = check
        self._target = target

    async def prepare(self) -> None:
        return None

    async def check(self) -> Any:
        found = await self._check.check()
        if found is None:
            found = await _current(self._client, self._target)
        if found is None:
            raise ConfigurationError(
                "another process found it applied, and the account no longer shows what it made"
            )
        return found


async def _current(client: PecClient, target: str) -> Mailbox | ComunicaPec | None:
    """The object a write on ``target`` was about, in whatever state it is now (None: the
    account no longer lists it, or a creation's object cannot be told apart)."""
    kind, _, rest = target.partition("/")
    if kind == "pec":
        return await client.mailboxes.get(rest)
    if kind == "register":
        for item in await client.mailboxes.list():
            if (item.casella_pec or "").lower() == rest and item.id:
                return await client.mailboxes.get(item.id)
        return None
    if kind == "comunica_pec" and not rest.startswith("new/"):
        return await client.comunica_pec.get(rest)
    # A creation's own check found no new request: one listed at its address now may be
    # older than the write, or another process's since; it is not taken for this one.
    return None

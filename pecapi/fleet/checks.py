"""How an outcome recorded by one process is checked by another: a small JSON description
of its reconciler (:func:`check_of`) and the reconciler rebuilt from it with another
client's reads (:func:`rebuild`).

Described: the mailbox read-backs whose test is one of pecapi's named ones (revoke,
activate, conservation, renew with the expiry noted before it), a space change (its
absolute targets) and a registration (found by address, as ``register`` finds it). Any
other is ``{"kind": "window"}``: another process can only wait out its settle window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pecapi.errors import ConfigurationError
from pecapi.models.enums import MailboxState
from pecapi.models.mailbox import Mailbox
from pecapi.resources.reconcile import (
    ReadBack,
    SpaceTargets,
    expiry_moved,
    has_conservation,
    is_activated,
    is_revoked,
)
from pecapi.transport.pending import PendingOutcome, Reconciler

if TYPE_CHECKING:
    from pecapi.client import PecClient

__all__ = ["Unchecked", "check_of", "rebuild"]

_TESTS = {
    "is_revoked": is_revoked,
    "is_activated": is_activated,
    "has_conservation": has_conservation,
    "expiry_moved": expiry_moved,
}
_SPACE_FIELDS = ("spazio_disco", "spazio_storico", "spazio_conservazione")


def check_of(pending: PendingOutcome[Any]) -> dict[str, Any]:
    """The description of ``pending``'s reconciler another process can rebuild."""
    reconciler: object = pending.reconciler
    target = pending.target or ""
    if pending.operation == "mailboxes.register" and target.startswith("register/"):
        return {"kind": "register"}
    if isinstance(reconciler, ReadBack) and target.startswith("pec/"):
        test = getattr(reconciler, "_done", None)
        name = getattr(test, "__name__", "")
        before = reconciler.before
        if _TESTS.get(name) is test and (before is None or type(before) is int):
            return {"kind": "mailbox", "test": name, "before": before}
    if isinstance(reconciler, SpaceTargets) and target.startswith("pec/"):
        targets = getattr(reconciler, "_targets", None)
        if isinstance(targets, dict) and all(type(v) is int for v in targets.values()):
            return {"kind": "space", "targets": dict(targets)}
    return {"kind": "window"}


class Unchecked:
    """The reconciler of an outcome another process cannot check: settling it raises
    :class:`~pecapi.OutcomeUnknownError` at once (it is for its own process to settle)."""

    async def prepare(self) -> None:
        return None

    async def check(self) -> Any:
        raise ConfigurationError(
            "it was recorded by another process and can only be checked there (or by "
            "reading the account yourself)"
        )


class _Space:
    def __init__(self, client: PecClient, id: str, targets: dict[str, int]) -> None:
        self._client = client
        self._id = id
        self._targets = targets

    async def prepare(self) -> None:
        return None

    async def check(self) -> Mailbox | None:
        box = await self._client.mailboxes.get(self._id)
        for name in _SPACE_FIELDS:
            target = self._targets.get(name)
            if isinstance(target, int) and (getattr(box, name) or 0) < target:
                return None
        return box


def rebuild(
    client: PecClient, check: object, target: str, *, listing: bool = False
) -> Reconciler[Any] | None:
    """The reconciler ``check`` describes, reading with ``client``; for a description it
    cannot rebuild, None (or, ``listing``, an :class:`Unchecked`)."""
    spec = check if isinstance(check, dict) else {}
    kind = spec.get("kind")
    mailboxes = client.mailboxes
    if kind == "mailbox" and target.startswith("pec/"):
        test = _TESTS.get(str(spec.get("test")))
        before = spec.get("before")
        if test is not None and (before is None or type(before) is int):
            id = target[len("pec/") :]

            async def fetch() -> Mailbox:
                return await mailboxes.get(id)

            read_back = ReadBack(fetch, test)
            read_back.before = before
            return read_back
    if kind == "space" and target.startswith("pec/"):
        targets = spec.get("targets")
        if isinstance(targets, dict) and all(type(v) is int for v in targets.values()):
            return _Space(client, target[len("pec/") :], targets)
    if kind == "register" and target.startswith("register/"):
        address = target[len("register/") :]

        async def find() -> Mailbox | None:
            # As Mailboxes.register's own check: a free address was not registered.
            if await mailboxes.is_available(address):
                return None
            for item in await mailboxes.list():
                same = (item.casella_pec or "").lower() == address
                if same and item.id and item.stato is MailboxState.REGISTRATA:
                    return await mailboxes.get(item.id)
            return None

        return ReadBack(find, lambda value, before: True)
    return Unchecked() if listing else None

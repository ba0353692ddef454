"""Reconcilers: how each write finds out, with the API's own reads, whether it took effect.

One rule per operation (the README has the table). A reconciler is built per call; its
``prepare`` runs before the first attempt, ``check`` after an attempt whose outcome is
unknown. The listing a registration reads is shared by the registrations settling at
once: ``Requester.shared_read`` (pecapi/transport/shared.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from pecapi.models.enums import MailboxState
from pecapi.models.mailbox import Mailbox, SpaceChange

__all__ = ["NewItem", "ReadBack", "SpaceTargets", "count_users", "expiry"]

T = TypeVar("T")


class ReadBack(Generic[T]):
    """Reads the object back and tests it: ``done(value, baseline)``.

    ``baseline`` (optional) reads a value before the first attempt, for operations whose
    effect is a change relative to the state before (a renewal moves the expiry on).
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[T | None]],
        done: Callable[[T, Any], bool],
        baseline: Callable[[T], Any] | None = None,
    ) -> None:
        self._fetch = fetch
        self._done = done
        self._baseline = baseline
        self.before: Any = None
        # Without a baseline there is nothing to read first: the retry loop skips prepare.
        self.prepares = baseline is not None

    async def prepare(self) -> None:
        if self._baseline is not None:
            value = await self._fetch()
            self.before = self._baseline(value) if value is not None else None

    async def check(self) -> T | None:
        value = await self._fetch()
        if value is not None and self._done(value, self.before):
            return value
        return None


class NewItem(Generic[T]):
    """A created object, found by listing the ids of its kind before the first attempt and
    again after an attempt whose outcome is unknown: a new id is the one created."""

    def __init__(
        self, list_ids: Callable[[], Awaitable[set[str]]], get: Callable[[str], Awaitable[T]]
    ) -> None:
        self._list_ids = list_ids
        self._get = get
        self.before: set[str] = set()

    async def prepare(self) -> None:
        self.before = await self._list_ids()

    async def check(self) -> T | None:
        new = sorted(await self._list_ids() - self.before)
        return await self._get(new[0]) if new else None


def expiry(box: Mailbox) -> int:
    """The mailbox's expiry (unix seconds), 0 when it has none."""
    return (box.timestamp.scadenza if box.timestamp else None) or 0


def count_users(box: Mailbox, nome: str, cognome: str, email: str) -> int:
    return sum(
        1
        for user in box.multiutenza
        if (user.nome, user.cognome, user.email_gestione_password) == (nome, cognome, email)
    )


_SPACE_FIELDS = ("spazio_disco", "spazio_storico", "spazio_conservazione")


class SpaceTargets:
    """A space change made absolute: ``"+1024"`` applied twice would add twice, so before
    the first attempt the current spaces are read and every relative value becomes the
    absolute target; the body sent (every attempt) is the absolute one."""

    def __init__(self, change: SpaceChange, fetch: Callable[[], Awaitable[Mailbox]]) -> None:
        self._change = change
        self._fetch = fetch
        self._targets: dict[str, int | str] | None = None

    def body(self) -> dict[str, int | str]:
        return self._targets if self._targets is not None else self._change.as_body()

    async def prepare(self) -> None:
        current = await self._fetch()
        targets: dict[str, int | str] = {}
        for name, value in self._change.as_body().items():
            if isinstance(value, str):  # "+N"
                targets[name] = (getattr(current, name) or 0) + int(value[1:])
            else:
                targets[name] = value
        self._targets = targets

    async def check(self) -> Mailbox | None:
        if self._targets is None:
            return None
        box = await self._fetch()
        for name in _SPACE_FIELDS:
            target = self._targets.get(name)
            if isinstance(target, int) and (getattr(box, name) or 0) < target:
                return None
        return box


def is_revoked(box: Mailbox, _: Any) -> bool:
    return box.stato is MailboxState.REVOCATA


def is_activated(box: Mailbox, _: Any) -> bool:
    return box.stato in (MailboxState.IN_EVASIONE, MailboxState.EVASA)


def has_conservation(box: Mailbox, _: Any) -> bool:
    return box.conservazione is True


def expiry_moved(box: Mailbox, before: Any) -> bool:
    return expiry(box) > (before or 0)

"""The provisioning journal: what each status means, the interface every journal has
(:class:`ProvisionJournal`), and the default one, a JSON-lines file (:class:`Journal`):
one line per outcome (and one per registration, written before its activation is sent),
the latest per request counting.

A journal shared by many processes (provisioning on a job queue) lives in Redis:
``pecapi.fleet.journal_redis.RedisJournal``, behind the same interface. Kept apart from
:mod:`pecapi.provision` (which re-exports it) because it is about storage, not requests:
opening early, ending a torn line, reading leniently.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
import os
from collections.abc import Collection
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias

import attrs

from pecapi.errors import ConfigurationError
from pecapi.jsontext import JsonError, loads

__all__ = [
    "STATUSES",
    "UNSETTLED",
    "Journal",
    "ProvisionJournal",
    "ProvisionOutcome",
    "ProvisionStatus",
]

#: What happened to one request: :attr:`ProvisionOutcome.status` (the keys of STATUSES).
ProvisionStatus: TypeAlias = Literal[
    "activated",
    "registered",
    "existing",
    "skipped",
    "awaiting_activation",
    "pending",
    "registering",
    "unavailable",
    "failed",
    "no_credit",
    "stopped",
    "invalid",
    "duplicate",
]

# status -> whether the request is complete (nothing left to do on a rerun). Keyed by str:
# a status read back from a journal file is any string.
STATUSES: dict[str, bool] = {
    # registered and documents uploaded; also a mailbox left awaiting_activation (or
    # pending) by an earlier run that the account shows in_evasione/evasa: not resent
    "activated": True,
    # registered, no documents asked for (also a pending registration found on the account)
    "registered": True,
    "existing": True,  # already on the account, nothing to do
    "skipped": True,  # complete in the journal of an earlier run
    # registered, but not activated: the activation failed, or (written just before the
    # activation is sent) the run ended during it; the next run activates it
    "awaiting_activation": False,
    # the registration was sent but its outcome is unknown (OutcomeUnknownError, kept as
    # the error): the next run takes the mailbox over if the account lists the address,
    # and registers it again only if the account does not
    "pending": False,
    # written just before a registration is sent, by a journal shared between processes
    # (``ProvisionJournal.intents``): a record left so says that its process died while
    # the registration may have been in flight. Whoever takes the request over waits out
    # the settle window from ``at``, then reads the account before registering anything
    "registering": False,
    "unavailable": False,  # the address is taken by someone else
    "failed": False,  # an error before the mailbox was registered
    # not registered for want of credit: the API answered 402 (the error), or the run had
    # stopped sending registrations after a 402 and sent nothing for it (a NotSentError);
    # the next run, after topping up the wallet, registers it
    "no_credit": False,
    # the run was asked to stop (provision's ``stop``) before this request's check or
    # registration was sent: nothing sent (a NotSentError), the next run does it
    "stopped": False,
    "invalid": False,  # bad input, nothing sent
    "duplicate": False,  # the same address twice in the input
}


#: Statuses of a registration that may have been sent and whose outcome is not known:
#: the account is read (after the settle window) before the request is done again.
UNSETTLED: frozenset[str] = frozenset({"pending", "registering"})


@attrs.frozen(kw_only=True)
class ProvisionOutcome:
    """What happened to one request. ``steps`` lists each step and its result."""

    key: str
    status: ProvisionStatus = attrs.field(validator=attrs.validators.in_(STATUSES))
    line: int | None = None
    mailbox_id: str | None = None
    steps: tuple[str, ...] = ()
    error: Exception | None = None

    @property
    def complete(self) -> bool:
        return STATUSES.get(self.status, False)

    def record(self) -> dict[str, Any]:
        """The journal line of this outcome."""
        error: dict[str, Any] | None = None
        if self.error is not None:
            error = {
                "type": type(self.error).__name__,
                "message": str(self.error),
            }
            field = getattr(self.error, "field", None)
            if field:
                error["field"] = field
            # False for a NotSentError: nothing reached the API, nothing was charged
            sent = getattr(self.error, "request_sent", None)
            if isinstance(sent, bool):
                error["request_sent"] = sent
        return {
            "key": self.key,
            "line": self.line,
            "status": self.status,
            "complete": self.complete,
            "mailbox_id": self.mailbox_id,
            "steps": list(self.steps),
            "error": error,
            "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
        }


class ProvisionJournal(abc.ABC):
    """Where a provisioning run keeps each request's latest outcome, so that running again
    skips what is complete and settles what is not.

    Two implementations: :class:`Journal` (a JSON-lines file: the default, for one
    process) and ``pecapi.fleet.journal_redis.RedisJournal`` (shared by the workers of a
    job queue). ``provision(journal=...)`` takes either.
    """

    #: Whether a registration is journaled (``registering``) just before it is sent: a
    #: journal that other processes read must say so, since the process that sent it may
    #: die before its outcome is written and another takes the request over.
    intents: bool = False

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """What messages call the journal (a path, a Redis key)."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Make the journal ready for writing; :class:`~pecapi.errors.ConfigurationError`
        when it cannot be written (nothing is sent then)."""

    @abc.abstractmethod
    async def read(self, keys: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
        """The latest record per key (of ``keys`` only, when given)."""

    @abc.abstractmethod
    async def write(self, outcome: ProvisionOutcome, *, final: bool) -> None:
        """Record ``outcome``. ``final``: the request's outcome in this run (else a step on
        the way: ``registering``, ``awaiting_activation`` before the activation, ``pending``
        while it is settled). A ``skipped`` outcome changes no record."""

    @abc.abstractmethod
    async def finish(self) -> None:
        """Release what the journal holds (a file, connections); it may start again."""


class Journal(ProvisionJournal):
    """A JSON-lines journal: one line per outcome, flushed as it is written.

    ``fsync=True`` also forces each line to disk (survives a power cut, costs a disk
    sync per line); by default a line survives a crash or Ctrl-C of the process.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path: Path = Path(path)
        self._fsync = fsync
        self._file: IO[bytes] | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    async def start(self) -> None:
        self.open()

    async def read(self, keys: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
        try:
            records = self.load()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigurationError(f"cannot read the journal {self.name!r}: {reason}") from exc
        if keys is None:
            return records
        return {key: records[key] for key in keys if key in records}

    async def write(self, outcome: ProvisionOutcome, *, final: bool) -> None:
        if outcome.status != "skipped":
            self.append(outcome)

    async def finish(self) -> None:
        self.close()

    def load(self) -> dict[str, dict[str, Any]]:
        """The latest record per key (a torn line, from a crash, is ignored)."""
        records: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return records
        # errors="replace": a line torn inside a multi-byte character is just not JSON
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for text in fh:
                try:
                    record = loads(text)
                except JsonError:  # torn, or hand-edited
                    continue
                if isinstance(record, dict) and isinstance(record.get("key"), str):
                    records[record["key"]] = record
        return records

    def open(self) -> None:
        """Open the journal for appending (once; ``append`` does it when needed).

        A path that cannot be written (a directory, a parent that is a file, no
        permission...) raises :class:`ConfigurationError` naming it. A torn last line,
        one without its newline, is ended first so that the next record is not glued
        to it.
        """
        if self._file is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = self.path.open("a+b")
        except OSError as exc:
            raise self._unwritable(exc) from exc
        try:
            if fh.seek(0, os.SEEK_END) > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    self._write(fh, b"\n")
        except OSError as exc:
            fh.close()
            raise self._unwritable(exc) from exc
        self._file = fh

    def append(self, outcome: ProvisionOutcome) -> None:
        self.open()
        assert self._file is not None
        line = json.dumps(outcome.record(), ensure_ascii=False) + "\n"
        self._write(self._file, line.encode("utf-8"))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, fh: IO[bytes], data: bytes) -> None:
        fh.write(data)  # in append mode: always at the end, whatever was read before
        fh.flush()
        if self._fsync:
            os.fsync(fh.fileno())

    def _unwritable(self, exc: OSError) -> ConfigurationError:
        reason = exc.strerror or str(exc)
        return ConfigurationError(f"cannot write the journal {str(self.path)!r}: {reason}")

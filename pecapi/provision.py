"""Provision many mailboxes: check, register, activate — crash-safe through a journal.

For each :class:`ProvisionRequest` the pipeline checks that the address is free,
registers the mailbox and, when documents are given, activates it. Every outcome is
appended to a JSON-lines journal as it arrives; running again with the same journal
skips what is complete, resumes what is half done (a registered mailbox is activated,
never registered again) and retries what failed. A crash between a registration and its
journal line is covered too: the account's mailboxes are listed once at the start, and
an address already registered there is taken over instead of registered twice.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import os
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from pecapi.batch import Batch, BatchProgress
from pecapi.documents import DocumentKind, Documents, prepare_documents
from pecapi.errors import PecError, ValidationError
from pecapi.models.enums import MailboxState
from pecapi.models.mailbox import MailboxRegistration

if TYPE_CHECKING:
    from pecapi.client import PecClient

__all__ = [
    "InvalidRow",
    "Journal",
    "ProvisionOutcome",
    "ProvisionRequest",
    "provision",
    "read_registrations_csv",
]

DOCUMENTS_COLUMN = "documenti"


@attrs.frozen(kw_only=True)
class ProvisionRequest:
    """One mailbox to provision; ``documents`` (the signed form and identity document)
    make the pipeline activate it after registering."""

    registration: MailboxRegistration
    documents: Documents | None = None
    line: int | None = None

    @property
    def key(self) -> str:
        return self.registration.casella_pec.strip().lower()


@attrs.frozen(kw_only=True)
class InvalidRow:
    """An input row that could not become a request; reported, never sent."""

    line: int
    error: ValidationError
    key: str = ""


# status -> whether the request is complete (nothing left to do on a rerun)
STATUSES: dict[str, bool] = {
    "activated": True,  # registered and documents uploaded
    "registered": True,  # registered, no documents asked for
    "existing": True,  # already on the account, nothing to do
    "skipped": True,  # complete in the journal of an earlier run
    "awaiting_activation": False,  # registered, but the activation failed: resumable
    "unavailable": False,  # the address is taken by someone else
    "failed": False,  # an error before the mailbox was registered
    "invalid": False,  # bad input, nothing sent
    "duplicate": False,  # the same address twice in the input
}


@attrs.frozen(kw_only=True)
class ProvisionOutcome:
    """What happened to one request. ``steps`` lists each step and its result."""

    key: str
    status: str
    line: int | None = None
    mailbox_id: str | None = None
    steps: tuple[str, ...] = ()
    error: Exception | None = None

    @property
    def complete(self) -> bool:
        return STATUSES.get(self.status, False)

    def record(self) -> dict[str, Any]:
        """The journal line of this outcome."""
        error = None
        if self.error is not None:
            error = {"type": type(self.error).__name__, "message": str(self.error)}
            field = getattr(self.error, "field", None)
            if field:
                error["field"] = field
        return {
            "key": self.key,
            "line": self.line,
            "status": self.status,
            "complete": self.complete,
            "mailbox_id": self.mailbox_id,
            "steps": list(self.steps),
            "error": error,
            "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }


class Journal:
    """A JSON-lines journal: one line per outcome, flushed as it is written.

    ``fsync=True`` also forces each line to disk (survives a power cut, costs a disk
    sync per line); by default a line survives a crash or Ctrl-C of the process.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._file: IO[str] | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """The latest record per key (a torn last line, from a crash, is ignored)."""
        records: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return records
        with self.path.open(encoding="utf-8") as fh:
            for text in fh:
                try:
                    record = json.loads(text)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("key"), str):
                    records[record["key"]] = record
        return records

    def append(self, outcome: ProvisionOutcome) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(outcome.record(), ensure_ascii=False) + "\n")
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Run:
    """The state of one provisioning run."""

    def __init__(self, client: PecClient, journal: Journal | None) -> None:
        self.client = client
        self.journal = journal
        self.previous: dict[str, dict[str, Any]] = {}
        self.existing: dict[str, tuple[str, MailboxState | None]] = {}
        self.seen: set[str] = set()
        self._ready: asyncio.Task[None] | None = None

    async def _load(self) -> None:
        if self.journal is not None:
            self.previous = self.journal.load()
        self.existing = {
            item.casella_pec.strip().lower(): (item.id, item.stato)
            for item in await self.client.mailboxes.list()
            if item.casella_pec and item.id and item.stato is not MailboxState.REVOCATA
        }

    async def __call__(self, item: ProvisionRequest | InvalidRow) -> ProvisionOutcome:
        if self._ready is None:  # once, before the first request, shared by all workers
            self._ready = asyncio.ensure_future(self._load())
        await asyncio.shield(self._ready)
        outcome = await self._provision(item)
        if self.journal is not None and outcome.status != "skipped":
            self.journal.append(outcome)
        return outcome

    async def _provision(self, item: ProvisionRequest | InvalidRow) -> ProvisionOutcome:
        if isinstance(item, InvalidRow):
            return ProvisionOutcome(
                key=item.key, status="invalid", line=item.line, error=item.error
            )
        key, line = item.key, item.line
        if key in self.seen:
            error = ValidationError("casella_pec", f"{key} appears more than once in the input")
            return ProvisionOutcome(key=key, status="duplicate", line=line, error=error)
        self.seen.add(key)
        before = self.previous.get(key)
        if before is not None and before.get("complete"):
            return ProvisionOutcome(
                key=key, status="skipped", line=line, mailbox_id=before.get("mailbox_id")
            )
        steps: list[str] = []
        mailbox_id = before.get("mailbox_id") if before else None
        state: MailboxState | None = MailboxState.REGISTRATA if mailbox_id else None
        if mailbox_id is None and key in self.existing:
            mailbox_id, state = self.existing[key]
            steps.append("found on the account")
        try:
            if mailbox_id is None:
                if not await self.client.mailboxes.is_available(item.registration.casella_pec):
                    steps.append("check: taken")
                    return ProvisionOutcome(
                        key=key, status="unavailable", line=line, steps=tuple(steps)
                    )
                steps.append("check: available")
                box = await self.client.mailboxes.register(item.registration)
                mailbox_id, state = box.id, box.stato
                steps.append("register: ok")
        except PecError as exc:
            return ProvisionOutcome(
                key=key, status="failed", line=line, steps=tuple(steps), error=exc
            )
        assert mailbox_id is not None
        waiting = state in (MailboxState.REGISTRATA, MailboxState.DOCUMENTI_ERRATI)
        if item.documents is None or not waiting:
            status = "registered" if "register: ok" in steps else "existing"
            return ProvisionOutcome(
                key=key, status=status, line=line, mailbox_id=mailbox_id, steps=tuple(steps)
            )
        try:
            await self.client.mailboxes.activate(mailbox_id, item.documents)
        except PecError as exc:
            steps.append(f"activate: {type(exc).__name__}")
            return ProvisionOutcome(
                key=key,
                status="awaiting_activation",
                line=line,
                mailbox_id=mailbox_id,
                steps=tuple(steps),
                error=exc,
            )
        steps.append("activate: ok")
        return ProvisionOutcome(
            key=key, status="activated", line=line, mailbox_id=mailbox_id, steps=tuple(steps)
        )


class Provisioning(Batch[ProvisionRequest | InvalidRow, ProvisionOutcome]):
    """A provisioning batch: iterate it for each outcome; closing it closes the journal."""

    def __init__(self, journal: Journal | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._journal = journal

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            if self._journal is not None:
                self._journal.close()


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
) -> Provisioning:
    """Provision ``requests``; iterate the batch for each outcome::

        async with provision(client, requests, journal="run.jsonl") as run:
            async for result in run:
                print(result.value.status if result.value else result.error)

    Reads the journal (when given) and the account's mailboxes (one ``GET /pec``)
    before the first request.
    """
    book = Journal(journal, fsync=fsync) if journal is not None else None
    run = _Run(client, book)
    return Provisioning(
        book, run, requests, concurrency=concurrency, total=total, on_progress=on_progress
    )


# -- CSV input ---------------------------------------------------------------------------

_FIELDS = {f.name: f for f in attrs.fields(MailboxRegistration)}
_REQUIRED = [name for name, f in _FIELDS.items() if f.default is attrs.NOTHING]


def read_registrations_csv(
    path: str | os.PathLike[str],
) -> Iterator[ProvisionRequest | InvalidRow]:
    """Requests from a CSV file whose header names the API's fields (``casella_pec``,
    ``tipo_casella``, ``tipo_cliente``, ``nome_richiedente``...). An optional
    ``documenti`` column lists activation documents separated by ``;`` (paths relative
    to the CSV's folder). A malformed row becomes an :class:`InvalidRow` with its line
    number and field; an unknown column is an error for the whole file (raised before
    any row is read). Rows are read lazily.
    """
    source = Path(path)
    with source.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [name.strip() for name in reader.fieldnames or []]
        unknown = [n for n in header if n not in _FIELDS and n != DOCUMENTS_COLUMN]
        if unknown:
            raise ValidationError(unknown[0], f"unknown column in {source.name}")
        missing = [n for n in _REQUIRED if n not in header]
        if missing:
            raise ValidationError(missing[0], f"required column missing in {source.name}")
        for row in reader:
            yield _row(reader.line_num, row, source.parent)


def _row(line: int, row: dict[str, Any], folder: Path) -> ProvisionRequest | InvalidRow:
    values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
    key = values.get("casella_pec", "").lower()
    if None in row:
        error = ValidationError(None, "more cells than columns")
        return InvalidRow(line=line, error=error, key=key)
    for name in _REQUIRED:
        if not values.get(name):
            return InvalidRow(line=line, error=ValidationError(name, "is required"), key=key)
    documents_cell = values.pop(DOCUMENTS_COLUMN, "")
    fields: dict[str, Any] = {k: v for k, v in values.items() if v != ""}
    if "autorinnovo" in fields:
        fields["autorinnovo"] = fields["autorinnovo"].lower() in ("1", "true", "yes", "si", "sì")
    try:
        registration = MailboxRegistration(**fields)
    except ValidationError as exc:
        return InvalidRow(line=line, error=exc, key=key)
    documents = [folder / p.strip() for p in documents_cell.split(";") if p.strip()]
    if documents:
        try:
            prepare_documents(documents, DocumentKind.PDF, field=DOCUMENTS_COLUMN)
        except ValidationError as exc:
            return InvalidRow(line=line, error=exc, key=key)
    return ProvisionRequest(registration=registration, documents=documents or None, line=line)

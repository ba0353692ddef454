"""What provisioning reads: a request, an input row that cannot be one, and CSV files of them.

Kept apart from :mod:`pecapi.provision` (which re-exports every name here) because it is
about input files, not about running requests.

Spreadsheets save "CSV" in several dialects: Excel in Italian (and most European
locales) separates cells with ``;`` and starts the file with a UTF-8 byte order mark.
Without a ``delimiter``, it is the one of ``,`` ``;`` tab ``|`` that splits the header
into the most known column names (a comma when none does better). An unknown column is
refused naming it, with a hint when the header holds another delimiter; a row with fewer
or more cells than the header has columns is an :class:`InvalidRow` (its line, both
counts), never read as a missing field.
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from pecapi.documents import DocumentKind, Documents, prepare_documents
from pecapi.errors import ValidationError
from pecapi.models.mailbox import MailboxRegistration

__all__ = [
    "DELIMITERS",
    "DOCUMENTS_COLUMN",
    "InvalidRow",
    "ProvisionRequest",
    "RegistrationsCsv",
    "read_registrations_csv",
    "sniff_delimiter",
]

#: The optional column of activation documents: paths separated by ``;``.
DOCUMENTS_COLUMN: Final = "documenti"

#: The delimiters a CSV file may use, each with the name messages give it.
DELIMITERS: Final[Mapping[str, str]] = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}

_FIELDS = {f.name: f for f in attrs.fields(MailboxRegistration)}
_REQUIRED = [name for name, f in _FIELDS.items() if f.default is attrs.NOTHING]
_KNOWN = frozenset([*_FIELDS, DOCUMENTS_COLUMN])
_TRUE = ("1", "true", "yes", "si", "sì")
# What a line holds when every cell of it is blank, whatever the delimiter: spaces,
# delimiters and quotes (Excel saves an empty row of a 5-column sheet as ";;;;")
_BLANK = frozenset(' \t\r\n\f\v,;|"')


def _blank_line(text: str) -> bool:
    return all(ch in _BLANK for ch in text)


@attrs.frozen
class ProvisionRequest:
    """One mailbox to provision: ``ProvisionRequest(registration, documents=[...])``.

    ``documents`` (the signed form and identity document) make the pipeline activate the
    mailbox after registering it; ``line`` is the input line it came from, if any.
    """

    registration: MailboxRegistration
    documents: Documents | None = attrs.field(default=None, kw_only=True)
    line: int | None = attrs.field(default=None, kw_only=True)

    @property
    def key(self) -> str:
        return self.registration.casella_pec.strip().lower()


@attrs.frozen(kw_only=True)
class InvalidRow:
    """An input row that could not become a request; reported, never sent."""

    line: int
    error: ValidationError
    key: str = ""


def _split(line: str, delimiter: str) -> list[str]:
    none: list[str] = []
    return [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter), none)]


def sniff_delimiter(header: str) -> str:
    """The delimiter (a key of :data:`DELIMITERS`) that splits the header line ``header``
    into the most known column names; ``,`` on a tie."""
    scores = {sep: sum(c in _KNOWN for c in _split(header, sep)) for sep in DELIMITERS}
    best = max(scores.values())
    return next(sep for sep in DELIMITERS if scores[sep] == best)  # "," first on a tie


def _check_delimiter(delimiter: str | None) -> None:
    if delimiter is not None and delimiter not in DELIMITERS:
        raise ValidationError("delimiter", f"must be one of ',' ';' tab '|', not {delimiter!r}")


def _python_hint(delimiter: str) -> str:
    return f"delimiter={delimiter!r}"


class RegistrationsCsv:
    """CSV text of registrations, its header read and checked when it is made.

    ``lines`` is the text line by line, line ends kept (a file opened with
    ``newline=""``, or a list of lines); ``name`` and ``folder`` say which file it is, for
    messages and for the ``documenti`` paths. ``delimiter`` is a key of
    :data:`DELIMITERS`, or None to take it from the header (:func:`sniff_delimiter`).
    ``suggest`` words the hint of an unknown column when the header holds another
    delimiter (default ``delimiter=';'``; the command line says ``--delimiter ';'``).

    Raises :class:`~pecapi.errors.ValidationError` for a header that cannot be used: an
    unknown column (named), a required column missing, no header at all (an empty file,
    or one of blank lines). Then :meth:`rows` gives each non-blank row once (a row whose
    cells are all blank, as ``;;;;``, is blank), and :meth:`request` makes it a request
    (iterating the object does both, lazily). No file is opened here:
    :func:`read_registrations_csv` opens one.
    """

    def __init__(
        self,
        lines: Iterable[str],
        *,
        name: str = "the CSV",
        folder: str | os.PathLike[str] = ".",
        delimiter: str | None = None,
        suggest: Callable[[str], str] | None = None,
    ) -> None:
        _check_delimiter(delimiter)
        self.name = name
        self.folder = Path(folder)
        # The header line is needed as text (to find the delimiter and to hint at
        # another): read up to it, then hand every line read so far to the reader, so
        # that its line numbers still count the blank lines before the header. A blank
        # line before it goes to the reader as an empty one: whatever the delimiter, the
        # reader then finds the same header line as this loop.
        source = iter(lines)
        head: list[str] = []
        first: str | None = None
        for text in source:
            if not head:
                text = text.removeprefix("\ufeff")
            if not _blank_line(text):
                head.append(text)
                first = text
                break
            head.append("\n")
        if first is None:
            raise ValidationError(None, f"empty file: no header in {name}")
        self.delimiter: str = sniff_delimiter(first) if delimiter is None else delimiter
        self._reader = csv.reader(itertools.chain(head, source), delimiter=self.delimiter)
        self._remaining = self._rows()
        none: tuple[int, list[str]] = (0, [])
        cells = next(self._remaining, none)[1]  # the first row that is not blank
        self.header: tuple[str, ...] = tuple(cell.strip() for cell in cells)
        self._check_header(first, suggest or _python_hint)

    def _check_header(self, line: str, suggest: Callable[[str], str]) -> None:
        unknown = [column for column in self.header if column not in _KNOWN]
        if unknown:
            column = unknown[0] if len(unknown[0]) <= 60 else unknown[0][:57] + "..."
            reason = f"unknown column in {self.name} (columns separated by {self.separated_by})"
            others = [d for d in DELIMITERS if d != self.delimiter and d in line]
            if others:
                held = " and ".join(DELIMITERS[d] for d in others)
                reason += f"; the header also holds {held}: try {suggest(others[0])}"
            raise ValidationError(column, reason)
        missing = [column for column in _REQUIRED if column not in self.header]
        if missing:
            raise ValidationError(missing[0], f"required column missing in {self.name}")

    @property
    def separated_by(self) -> str:
        """The delimiter as messages name it: ``','``, ``';'``, ``tab`` or ``'|'``."""
        return DELIMITERS[self.delimiter]

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = self._reader
        try:
            for cells in reader:
                # blank lines are not rows, nor are rows of blank cells (";;;;")
                if any(cell.strip() for cell in cells):
                    yield reader.line_num, cells
        except csv.Error as exc:
            line = reader.line_num
            raise ValidationError(
                None, f"not a readable CSV file: {exc} (line {line} of {self.name})"
            ) from exc

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Each non-blank row after the header, once: the line it ends on and its cells.

        Raises :class:`~pecapi.errors.ValidationError` (from the :class:`csv.Error`) for
        text that is not CSV, such as a cell over :func:`csv.field_size_limit`.
        """
        return self._remaining

    def request(self, line: int, cells: Sequence[str]) -> ProvisionRequest | InvalidRow:
        """The row ``cells`` (ending on ``line``) as a request, or as an invalid row: too
        few or too many cells, a required cell empty, a bad value, a document that is
        missing or not a PDF."""
        values = {k: v.strip() for k, v in zip(self.header, cells, strict=False)}  # checked below
        key = values.get("casella_pec", "").lower()
        if len(cells) != len(self.header):
            few = "too few" if len(cells) < len(self.header) else "too many"
            reason = (
                f"{few} cells: {len(cells)} where the header has {len(self.header)} columns"
                f" (separated by {self.separated_by})"
            )
            return InvalidRow(line=line, error=ValidationError(None, reason), key=key)
        for name in _REQUIRED:
            if not values.get(name):
                return InvalidRow(line=line, error=ValidationError(name, "is required"), key=key)
        documents_cell = values.pop(DOCUMENTS_COLUMN, "")
        fields: dict[str, Any] = {k: v for k, v in values.items() if v != ""}
        if "autorinnovo" in fields:
            fields["autorinnovo"] = fields["autorinnovo"].lower() in _TRUE
        try:
            registration = MailboxRegistration(**fields)
        except ValidationError as exc:
            return InvalidRow(line=line, error=exc, key=key)
        documents = [self.folder / p.strip() for p in documents_cell.split(";") if p.strip()]
        if documents:
            try:
                prepare_documents(documents, DocumentKind.PDF, field=DOCUMENTS_COLUMN)
            except ValidationError as exc:
                return InvalidRow(line=line, error=exc, key=key)
        return ProvisionRequest(registration=registration, documents=documents or None, line=line)

    def __iter__(self) -> Iterator[ProvisionRequest | InvalidRow]:
        """Each row as a request or an invalid row, lazily (documents are checked as
        their rows are reached)."""
        for line, cells in self.rows():
            yield self.request(line, cells)


def read_registrations_csv(
    path: str | os.PathLike[str], *, delimiter: str | None = None
) -> Iterator[ProvisionRequest | InvalidRow]:
    """Requests from a CSV file whose header names the API's fields (``casella_pec``,
    ``tipo_casella``, ``tipo_cliente``, ``nome_richiedente``...). An optional
    ``documenti`` column lists activation documents separated by ``;`` (paths relative
    to the CSV's folder). Cells are separated by ``delimiter`` (``,`` ``;`` ``"\\t"`` or
    ``|``; by default the one that splits the header into the most known column names);
    a UTF-8 byte order mark and CRLF line ends are fine.

    A malformed row (a bad value, too few or too many cells) becomes an
    :class:`InvalidRow` with its line number and field. An unknown column (named, with a
    hint when the header holds another delimiter) or a missing one is a
    :class:`~pecapi.errors.ValidationError` for the whole file, raised before any row is
    read; so is a line that is not UTF-8 when it is reached. Rows are read lazily: the
    file is opened on the first ``next()``. A ``delimiter`` that is not one of the four
    is refused now.
    """
    _check_delimiter(delimiter)
    return _read(Path(path), delimiter)


def _read(source: Path, delimiter: str | None) -> Iterator[ProvisionRequest | InvalidRow]:
    # surrogateescape, then a check per line: a byte that is not UTF-8 is reported with
    # its line number (a strict decoder fails on a whole chunk, somewhere ahead)
    with source.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        yield from RegistrationsCsv(
            _utf8_lines(fh, source.name),
            name=source.name,
            folder=source.parent,
            delimiter=delimiter,
        )


def _utf8_lines(lines: Iterable[str], name: str) -> Iterator[str]:
    for number, text in enumerate(lines, 1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            reason = f"line {number} of {name} is not UTF-8 text: save the file as UTF-8"
            raise ValidationError(None, reason) from None
        yield text

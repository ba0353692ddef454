"""The CSV file of ``pecapi provision``: read whole, then each row made a request lazily.

The library reads the dialect (:class:`pecapi.provision.RegistrationsCsv`: the delimiter
given or found from the header, the header checked, a row of the wrong length
``invalid``); this module adds what a command needs: the whole file read and split into
rows before anything is sent (a file that turned out unreadable halfway would otherwise
stop a run after some mailboxes were paid for), its row count for the progress bar, and
file errors worded for a person (``pecapi: <path>: <reason>``, exit 5).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import attrs

from pecapi.errors import ValidationError
from pecapi.provision import InvalidRow, ProvisionRequest, RegistrationsCsv
from pecapi.provision_input import DELIMITERS

from .exits import InputFileError

__all__ = ["DELIMITERS", "CsvTable", "delimiter", "read_csv"]

_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}


def delimiter(text: str) -> str:
    """An argparse type: ``,`` ``;`` ``|`` or a tab (``tab``, ``\\t``, or the character)."""
    value = _NAMES.get(text.lower(), text)
    if value not in DELIMITERS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of ',' ';' tab '|'")
    return value


def _suggest(sep: str) -> str:
    return f"--delimiter {DELIMITERS[sep]}"


@attrs.frozen
class CsvTable:
    """A CSV file read whole: its checked header, each non-blank row with the line it
    ends on."""

    source: RegistrationsCsv
    rows: list[tuple[int, list[str]]]

    def requests(self) -> Iterator[ProvisionRequest | InvalidRow]:
        """Each row as a request, or as an invalid row (made lazily: documents are
        checked as rows are reached). An address of the other environment is found by
        the pipeline, which knows the client's: ``invalid``, nothing sent."""
        for line, cells in self.rows:
            yield self.source.request(line, cells)


def _lines(fh: IO[bytes], name: str) -> Iterator[str]:
    # decoded line by line (a newline byte is never inside a UTF-8 character) to say where
    for number, raw in enumerate(fh, 1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            reason = f"line {number} is not UTF-8 text: save the file as UTF-8"
            raise InputFileError(name, reason) from None


def read_csv(path: Path, name: str, sep: str | None) -> CsvTable:
    """The whole file, checked, before anything is sent.

    :class:`InputFileError` for a file that cannot be read (named ``name``, as given on
    the command line), ValidationError for a header that cannot be used.
    """
    try:
        with path.open("rb") as fh:
            lines = list(_lines(fh, name))
    except OSError as exc:
        raise InputFileError(name, exc.strerror or str(exc)) from None
    try:
        source = RegistrationsCsv(
            lines, name=path.name, folder=path.parent, delimiter=sep, suggest=_suggest
        )
        rows = list(source.rows())
    except ValidationError as exc:
        if isinstance(exc.__cause__, csv.Error):  # not CSV at all: the file, not a field
            raise InputFileError(name, f"not a readable CSV file: {exc.__cause__}") from None
        raise
    return CsvTable(source, rows)

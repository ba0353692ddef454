"""Provisioning requests read from CSV (:mod:`pecapi.provision_input`), then provisioned
against the emulator: the dialects spreadsheets write, a header that cannot be used,
rows of the wrong length, lines that are not UTF-8 or not CSV."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import pytest

from pecapi import PecClient, ValidationError
from pecapi.provision import (
    InvalidRow,
    ProvisionOutcome,
    ProvisionRequest,
    RegistrationsCsv,
    provision,
    read_registrations_csv,
)
from pecapi.provision_input import DELIMITERS, sniff_delimiter
from pecapi.testing import Emulator
from tests.conftest import PDF_BYTES

HEADER = [
    "casella_pec", "tipo_casella", "tipo_cliente", "nome_richiedente", "cognome_richiedente",
    "email", "telefono", "codice_fiscale_richiedente", "data_nascita_richiedente",
    "sesso_richiedente", "nazione_nascita_richiedente", "indirizzo_titolare",
    "comune_titolare", "cap_titolare", "nazione_titolare", "provincia_titolare", "documenti",
]  # fmt: skip


def _row(name: str, documents: str = "form.pdf") -> list[str]:
    return [
        f"{name}@testcert.legalmail.it", "bronze", "PV", "Mario", "Rossi", "m@d.it", "0548",
        "RSSMRA82D11H501X", "11/04/1982", "M", "IT", "via Verdi 20", "Roma", "00042", "IT",
        "RM", documents,
    ]  # fmt: skip


def _write(folder: Path, rows: Iterable[list[str]], sep: str = ",", *, excel: bool = False) -> Path:
    """The CSV as a spreadsheet writes it (cells quoted when they hold ``sep``); ``excel``:
    a byte order mark and CRLF line ends, as Excel in Italian saves it."""
    (folder / "form.pdf").write_bytes(PDF_BYTES)
    (folder / "id.pdf").write_bytes(PDF_BYTES)
    path = folder / "people.csv"
    with path.open("w", newline="", encoding="utf-8-sig" if excel else "utf-8") as fh:
        writer = csv.writer(fh, delimiter=sep, lineterminator="\r\n" if excel else "\n")
        writer.writerows([HEADER, *rows])
    return path


async def _provision(
    client: PecClient, items: Iterable[ProvisionRequest | InvalidRow], journal: Path
) -> dict[str, ProvisionOutcome]:
    outcomes: dict[str, ProvisionOutcome] = {}
    async with provision(client, items, journal=journal) as run:
        async for result in run:
            assert result.value is not None, result.error
            outcomes[result.value.key] = result.value
    return outcomes


def _sent_for(emulator: Emulator, local_part: str) -> list[str]:
    return [f"{r.method} {r.path}" for r in emulator.requests if f"/{local_part}@" in r.path]


# -- dialects ------------------------------------------------------------------------------


@pytest.mark.parametrize("given", [False, True], ids=["found", "given"])
@pytest.mark.parametrize("sep", list(DELIMITERS), ids=["comma", "semicolon", "tab", "pipe"])
async def test_every_delimiter_is_read_and_provisioned(
    client: PecClient, emulator: Emulator, tmp_path: Path, sep: str, given: bool
) -> None:
    rows = [_row("anna"), _row("bruno", documents="form.pdf;id.pdf")]  # quoted with ';'
    source = _write(tmp_path, rows, sep, excel=sep == ";")
    items = list(read_registrations_csv(source, delimiter=sep if given else None))
    assert all(isinstance(item, ProvisionRequest) for item in items), items
    assert [item.line for item in items] == [2, 3]
    assert items[1].documents == [tmp_path / "form.pdf", tmp_path / "id.pdf"]  # type: ignore[union-attr]
    outcomes = await _provision(client, items, tmp_path / "run.jsonl")
    assert {o.status for o in outcomes.values()} == {"activated"}
    assert len(emulator.mailboxes) == 2
    assert len(emulator.documents) == 3  # one document for anna, two for bruno


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("casella_pec;tipo_casella;tipo_cliente", ";"),
        ("casella_pec\ttipo_casella", "\t"),
        ("casella_pec|tipo_casella\r\n", "|"),
        ("casella_pec;tipo_casella,x", ";"),  # ';' gives 1 known name, ',' none
        ("casella_pec", ","),  # a tie: every delimiter finds one name
        ("colore;forma|taglia", ","),  # a tie at none
        ("", ","),
    ],
)
def test_the_delimiter_is_the_one_that_finds_the_most_column_names(
    header: str, expected: str
) -> None:
    assert sniff_delimiter(header) == expected


def test_a_byte_order_mark_in_given_lines_is_not_part_of_the_first_column() -> None:
    lines = ["\ufeff" + ";".join(HEADER) + "\r\n", ";".join(_row("anna", documents="")) + "\r\n"]
    table = RegistrationsCsv(lines)
    assert (table.delimiter, table.separated_by, table.header[0]) == (";", "';'", "casella_pec")
    [item] = list(table)
    assert isinstance(item, ProvisionRequest) and item.key == "anna@testcert.legalmail.it"


def test_lines_are_counted_as_the_csv_reader_does() -> None:
    """Blank lines before the header and between rows count; a quoted cell spanning two
    lines is one row, on the line it ends on."""
    multi = [f'"{c}\nscala B"' if c == "via Verdi 20" else c for c in _row("multi", "")]
    lines = [
        "\n",
        ",".join(HEADER) + "\n",
        "\n",
        *(",".join(multi) + "\n").splitlines(keepends=True),
        "\n",
        ",".join(_row("plain", "")) + "\n",
    ]
    table = RegistrationsCsv(lines, name="people.csv")
    items = list(table)
    assert [(item.line, type(item).__name__) for item in items] == [
        (5, "ProvisionRequest"),
        (7, "ProvisionRequest"),
    ]
    assert items[0].registration.indirizzo_titolare == "via Verdi 20\nscala B"  # type: ignore[union-attr]


@pytest.mark.parametrize("sep", list(DELIMITERS))
def test_rows_of_blank_cells_are_blank_rows_not_invalid_ones(sep: str) -> None:
    """Excel saves an emptied row of the sheet as ``;;;;`` (a cell per column): a blank
    row, skipped like an empty line, not a row missing its required cells."""
    blank = sep * (len(HEADER) - 1)
    lines = [
        sep.join(HEADER) + "\r\n",
        blank + "\r\n",
        sep.join(_row("anna", documents="")) + "\r\n",
        sep.join(["  "] * len(HEADER)) + "\r\n",  # spaces in every cell
        sep * 3 + "\r\n",  # and one of the wrong length, blank all the same
        blank + "\r\n",
    ]
    items = list(RegistrationsCsv(lines, delimiter=sep))
    assert [(item.line, type(item).__name__) for item in items] == [(3, "ProvisionRequest")]


@pytest.mark.parametrize("before", [" \n", "\t\r\n", ";;;;\n", ",,,\n", '"";""\n'], ids=repr)
def test_a_blank_first_line_is_not_the_header(before: str) -> None:
    """A line of spaces, delimiters or empty quotes before the header is blank to the
    loop that finds the header line and to the CSV reader alike: the header is the next
    line, the delimiter found from it, and the lines still counted."""
    lines = ["\ufeff" + before, before, ";".join(HEADER) + "\n", ";".join(_row("bea", "")) + "\n"]
    table = RegistrationsCsv(lines)
    assert (table.delimiter, table.header) == (";", tuple(HEADER))
    [item] = list(table)
    assert isinstance(item, ProvisionRequest) and (item.key, item.line) == (
        "bea@testcert.legalmail.it",
        4,
    )


@pytest.mark.parametrize("text", ["", "\ufeff", "\n\n", " \r\n;;;\r\n"], ids=repr)
def test_an_empty_file_says_it_has_no_header(tmp_path: Path, text: str) -> None:
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        next(read_registrations_csv(path))
    assert info.value.field is None
    assert str(info.value) == "empty file: no header in people.csv"
    with pytest.raises(ValidationError, match=r"^empty file: no header in the CSV$"):
        RegistrationsCsv(text.splitlines(keepends=True))


# -- a header that cannot be used: the whole file, before any request ---------------------


async def test_the_wrong_delimiter_names_the_column_and_hints(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    source = _write(tmp_path, [_row("anna")], ";")
    with pytest.raises(ValidationError) as info:
        await _provision(client, read_registrations_csv(source, delimiter=","), tmp_path / "j")
    assert info.value.field is not None and info.value.field.startswith("casella_pec;tipo_")
    assert info.value.field.endswith("...") and len(info.value.field) == 60
    assert info.value.message == (
        "unknown column in people.csv (columns separated by ','); "
        "the header also holds ';': try delimiter=';'"
    )
    assert emulator.requests == []  # not even the account's listing

    tabs = _write(tmp_path, [_row("anna")], "\t")
    with pytest.raises(ValidationError, match=r"holds tab: try delimiter='\\t'$"):
        next(read_registrations_csv(tabs, delimiter="|"))
    table_hint = "--delimiter tab"  # how a command words it
    with tabs.open(newline="", encoding="utf-8") as fh:
        lines = list(fh)
    with pytest.raises(ValidationError, match=f"holds tab: try {table_hint}$"):
        RegistrationsCsv(lines, delimiter=",", suggest=lambda d: table_hint)


def test_an_unknown_column_is_named_and_a_missing_one_too(tmp_path: Path) -> None:
    source = tmp_path / "odd.csv"
    source.write_text(";".join([*HEADER, "colore"]) + "\n" + ";".join([*_row("a"), "rosso"]))
    with pytest.raises(ValidationError) as info:
        next(read_registrations_csv(source))
    assert info.value.field == "colore"
    assert info.value.message == "unknown column in odd.csv (columns separated by ';')"

    source.write_text(";".join(c for c in HEADER if c != "tipo_cliente") + "\n")
    with pytest.raises(ValidationError) as info:
        next(read_registrations_csv(source))
    assert (info.value.field, info.value.message) == (
        "tipo_cliente",
        "required column missing in odd.csv",
    )


@pytest.mark.parametrize("value", [":", "comma", ";;", "\n", ""])
def test_a_delimiter_that_is_not_one_of_the_four_is_refused_at_once(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ValidationError) as info:
        read_registrations_csv(tmp_path / "not-even-there.csv", delimiter=value)  # not iterated
    assert info.value.field == "delimiter"
    assert info.value.message == f"must be one of ',' ';' tab '|', not {value!r}"
    with pytest.raises(ValidationError, match="delimiter: must be one of"):
        RegistrationsCsv([], delimiter=value)


# -- rows --------------------------------------------------------------------------------


async def test_rows_of_the_wrong_length_are_invalid_as_such(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    # a row without its documenti cell is not a row "without documents": registered and
    # never activated, it would be paid for and useless
    short, long = _row("short")[:-1], [*_row("long"), "extra"]
    source = _write(tmp_path, [_row("anna"), short, long], ";")
    items = list(read_registrations_csv(source))
    assert isinstance(items[0], ProvisionRequest)
    for item, line, key, found, which in (
        (items[1], 3, "short@testcert.legalmail.it", 16, "too few"),
        (items[2], 4, "long@testcert.legalmail.it", 18, "too many"),
    ):
        assert isinstance(item, InvalidRow)
        assert (item.line, item.key, item.error.field) == (line, key, None)
        assert item.error.message == (
            f"{which} cells: {found} where the header has 17 columns (separated by ';')"
        )
    outcomes = await _provision(client, items, tmp_path / "run.jsonl")
    assert outcomes["anna@testcert.legalmail.it"].status == "activated"
    for key in ("short@testcert.legalmail.it", "long@testcert.legalmail.it"):
        assert (outcomes[key].status, outcomes[key].complete) == ("invalid", False)
    assert _sent_for(emulator, "short") == _sent_for(emulator, "long") == []


def test_bad_values_are_invalid_rows_with_their_field(tmp_path: Path) -> None:
    rows = [
        [*_row("a")[:1], "platinum", *_row("a")[2:]],
        [*_row("b")[:3], "", *_row("b")[4:]],  # a required cell left empty
        _row("c", documents="missing.pdf"),
    ]
    items = list(read_registrations_csv(_write(tmp_path, rows)))
    assert [(i.line, i.error.field) for i in items if isinstance(i, InvalidRow)] == [
        (2, "tipo_casella"),
        (3, "nome_richiedente"),
        (4, "documenti"),
    ]


def test_a_line_that_is_not_utf8_is_named_when_it_is_reached(tmp_path: Path) -> None:
    source = _write(tmp_path, [_row("anna"), _row("bruno")])
    with source.open("ab") as fh:  # "Maréo" saved as Latin-1
        fh.write(",".join(_row("late")).replace("Mario", "Mar\xe9o").encode("latin-1") + b"\n")
    items = read_registrations_csv(source)
    assert [next(items).line, next(items).line] == [2, 3]  # lazily: the rows above come first
    with pytest.raises(ValidationError) as info:
        next(items)
    assert (info.value.field, info.value.message) == (
        None,
        "line 4 of people.csv is not UTF-8 text: save the file as UTF-8",
    )


def test_text_that_is_not_csv_is_refused_naming_the_line(tmp_path: Path) -> None:
    huge = [*_row("anna")[:11], "x" * (csv.field_size_limit() + 1), *_row("anna")[12:]]
    source = _write(tmp_path, [_row("bruno"), huge])
    with pytest.raises(ValidationError) as info:
        list(read_registrations_csv(source))
    assert isinstance(info.value.__cause__, csv.Error)
    assert info.value.message == (
        f"not a readable CSV file: {info.value.__cause__} (line 3 of people.csv)"
    )

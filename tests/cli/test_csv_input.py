"""``pecapi provision``'s CSV dialects: delimiters given or found, a header that cannot be
read, rows of the wrong length, addresses of the other environment."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pecapi.cli import ExitCode
from pecapi.testing import Emulator

from .conftest import PDF, Run
from .test_provision import HEADER, _row

NAMES = {",": ",", ";": ";", "\t": "tab", "|": "|"}


def _write(folder: Path, rows: list[str], sep: str = ",", *, excel: bool = False) -> Path:
    """The test CSV with ``sep`` between cells (the test rows hold none of them);
    ``excel``: a byte order mark and CRLF line ends, as Excel in Italian saves it."""
    (folder / "form.pdf").write_bytes(PDF)
    (folder / "id.pdf").write_bytes(PDF)
    lines = [line.replace(",", sep) for line in [HEADER, *rows]]
    text = ("\r\n" if excel else "\n").join(lines) + ("\r\n" if excel else "\n")
    path = folder / "people.csv"
    path.write_bytes((b"\xef\xbb\xbf" if excel else b"") + text.encode())
    return path


def _sent_for(emulator: Emulator, address: str) -> list[str]:
    return [f"{r.method} {r.path}" for r in emulator.requests if address in r.path]


async def test_excel_semicolon_csv_with_a_bom_is_read(
    api: Run, pec_emulator: Emulator, tmp_path: Path
) -> None:
    rows = [_row("anna"), _row("bruno", documents='"form.pdf;id.pdf"')]  # ';' inside quotes
    source = _write(tmp_path, rows, ";", excel=True)
    result = await api("provision", str(source))
    assert result.code == ExitCode.OK, result.err
    assert "2 rows: 2 activated" in result.out
    assert len(pec_emulator.mailboxes) == 2
    assert len(pec_emulator.documents) == 3  # one document for anna, two for bruno


@pytest.mark.parametrize("given", [False, True], ids=["found", "given"])
@pytest.mark.parametrize("sep", list(NAMES), ids=["comma", "semicolon", "tab", "pipe"])
async def test_every_delimiter(
    api: Run, pec_emulator: Emulator, tmp_path: Path, sep: str, given: bool
) -> None:
    source = _write(tmp_path, [_row("anna"), _row("bruno")], sep)
    flags = ["--delimiter", NAMES[sep]] if given else []
    result = await api("provision", str(source), *flags)
    assert result.code == ExitCode.OK, result.err
    assert "2 rows: 2 activated" in result.out


async def test_the_wrong_delimiter_names_the_column_and_hints(
    api: Run, pec_emulator: Emulator, tmp_path: Path
) -> None:
    source = _write(tmp_path, [_row("anna")], ";")
    result = await api("provision", str(source), "--delimiter", ",")
    assert result.code == ExitCode.INVALID_INPUT
    [line] = result.err.splitlines()
    assert "invalid input, nothing sent: casella_pec;tipo_casella;" in line
    assert "unknown column in people.csv (columns separated by ',')" in line
    assert "try --delimiter ';'" in line
    error = json.loads((await api("--json", "provision", str(source), "--delimiter", ",")).err)
    assert error["field"].startswith("casella_pec;tipo_casella;")
    assert "--delimiter ';'" in error["message"]
    assert pec_emulator.requests == []


async def test_an_unknown_column_is_named(api: Run, pec_emulator: Emulator, tmp_path: Path) -> None:
    source = tmp_path / "odd.csv"
    header = HEADER.replace(",", ";") + ";colore"
    source.write_text(header + "\n" + _row("a").replace(",", ";") + ";rosso\n")
    result = await api("provision", str(source))
    assert result.code == ExitCode.INVALID_INPUT
    [line] = result.err.splitlines()
    assert "colore: unknown column in odd.csv (columns separated by ';')" in line
    assert "--delimiter" not in line  # the header holds no other delimiter
    assert pec_emulator.requests == []


async def test_rows_of_the_wrong_length_are_invalid_as_such(
    api: Run, pec_emulator: Emulator, tmp_path: Path
) -> None:
    short = _row("short").rsplit(",", 1)[0]  # no documenti cell: not "no documents"
    long = _row("long") + ",extra"
    source = _write(tmp_path, [_row("anna"), short, long])
    result = await api("--json", "provision", str(source))
    assert result.code == ExitCode.FAILURE
    events = {e.get("key"): e for e in map(json.loads, result.out.splitlines())}
    for key, line, found, which in (
        ("short@testcert.legalmail.it", 3, 16, "too few"),
        ("long@testcert.legalmail.it", 4, 18, "too many"),
    ):
        event = events[key]
        assert (event["status"], event["line"], event["complete"]) == ("invalid", line, False)
        assert event["error"]["message"] == (
            f"{which} cells: {found} where the header has 17 columns (separated by ',')"
        )
        assert "field" not in event["error"]
        assert _sent_for(pec_emulator, key.split("@")[0]) == []
    assert events["anna@testcert.legalmail.it"]["status"] == "activated"
    human = await api("provision", str(source))
    assert "line 3: short@testcert.legalmail.it: invalid: too few cells: 16 where" in human.err


async def test_an_address_of_the_other_environment_is_invalid_and_never_sent(
    api: Run, pec_emulator: Emulator, tmp_path: Path
) -> None:
    production = _row("anna").replace("anna@testcert.legalmail.it", "anna@legalmail.it")
    source = _write(tmp_path, [production, _row("bruno")])
    for _run in range(2):  # and not retried by the next run
        result = await api("provision", str(source))
        assert result.code == ExitCode.FAILURE
        assert "line 2: anna@legalmail.it: invalid: casella_pec: in the sandbox" in result.err
        assert _sent_for(pec_emulator, "anna@") == []  # no /verifica_pec, no POST /pec
    assert "1 invalid, 1 skipped" in result.out
    assert [c.operation for c in pec_emulator.ledger] == ["register"]  # bruno only


async def test_text_that_is_not_csv_is_a_file_error(
    api: Run, pec_emulator: Emulator, tmp_path: Path
) -> None:
    limit = csv.field_size_limit()
    huge = _row("anna").replace("via Verdi 20", "x" * (limit + 1))
    source = _write(tmp_path, [_row("bruno"), huge])
    result = await api("provision", str(source))
    assert result.code == ExitCode.INVALID_INPUT
    [line] = result.err.splitlines()
    assert line == (
        f"pecapi: {source}: not a readable CSV file: field larger than field limit ({limit})"
    )
    assert pec_emulator.requests == []


@pytest.mark.parametrize("value", [":", "comma;", "\\n", ""])
async def test_an_unknown_delimiter_is_a_usage_error(
    api: Run, pec_emulator: Emulator, tmp_path: Path, value: str
) -> None:
    result = await api("provision", str(_write(tmp_path, [])), "--delimiter", value)
    assert result.code == ExitCode.USAGE
    assert "--delimiter" in result.err and "is not one of ',' ';' tab '|'" in result.err

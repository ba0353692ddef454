"""A file named on the command line that cannot be used: one line ``pecapi: <path>:
<reason>`` on stderr, exit code 5 (invalid input), nothing sent, no traceback."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from pecapi.cli import ExitCode
from pecapi.testing import Emulator

from .conftest import Run, subprocess_env
from .test_provision import HEADER, _row

BAD_BYTES = "Mar\xe9o".encode("latin-1")  # "Maréo" saved as Latin-1, not UTF-8


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pecapi: ")
    return lines[0]


def _write_csv(folder: Path, rows: list[bytes]) -> Path:
    (folder / "form.pdf").write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    path = folder / "people.csv"
    path.write_bytes(b"\n".join([HEADER.encode(), *rows]) + b"\n")
    return path


@pytest.mark.parametrize("kind", ["missing", "folder"])
async def test_provision_of_a_file_that_is_not_there(
    api: Run, pec_emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "people.csv"
    if kind == "folder":
        path.mkdir()
    result = await api("provision", str(path))
    assert result.code == ExitCode.INVALID_INPUT == 5
    assert result.out == ""
    reason = "Is a directory" if kind == "folder" else "No such file or directory"
    assert one_line(result.err) == f"pecapi: {path}: {reason}"
    assert pec_emulator.requests == []


async def test_provision_of_a_csv_that_is_not_utf8_sends_nothing(
    api: Run, pec_emulator: Emulator, tmp_path: Path
) -> None:
    # the bad byte is on the last line: found before the rows above it are registered
    good = [_row(f"user{i}").encode() for i in range(3)]
    source = _write_csv(tmp_path, [*good, _row("late").encode().replace(b"Mario", BAD_BYTES)])
    result = await api("provision", str(source))
    assert result.code == ExitCode.INVALID_INPUT
    line = one_line(result.err)
    assert line.startswith(f"pecapi: {source}: line 5 ")
    assert "UTF-8" in line
    assert pec_emulator.requests == []
    assert not source.with_suffix(".journal.jsonl").exists()


async def test_provision_counts_rows_as_the_csv_reader_does(
    api: Run, pec_emulator: Emulator, tmp_path: Path
) -> None:
    # a quoted cell spanning two lines is one row: the total must not count it twice
    row = _row("multi").replace("via Verdi 20", '"via Verdi 20\nscala B"')
    source = _write_csv(tmp_path, [row.encode(), b"", _row("plain").encode()])
    result = await api("provision", str(source))
    assert result.code == ExitCode.OK, result.err
    assert "2/2 rows" in result.out and "/3 rows" not in result.out
    assert "2 rows: 2 activated" in result.out


async def test_no_traceback_from_the_installed_command(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi", "--sandbox", "provision", str(tmp_path / "none.csv"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**subprocess_env(), "OPENAPI_SANDBOX_TOKEN": "unused"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == ExitCode.INVALID_INPUT
    assert out == b""
    assert one_line(err.decode()) == f"pecapi: {tmp_path / 'none.csv'}: No such file or directory"


@pytest.mark.parametrize(
    "argv",
    [
        ("mailboxes", "renew", "6489d7c8e4b0f1a2b3c4d5e6", "--anni", "\u0663"),  # Arabic-Indic 3
        ("mailboxes", "renew", "6489d7c8e4b0f1a2b3c4d5e6", "--anni", "1_000"),
        ("--timeout", "nan", "mailboxes", "list"),
        ("--timeout", "inf", "mailboxes", "list"),
    ],
)
async def test_numbers_on_the_command_line_are_plain_and_finite(
    api: Run, pec_emulator: Emulator, argv: tuple[str, ...]
) -> None:
    result = await api(*argv)
    assert result.code == ExitCode.USAGE  # not a plain number: the command line is wrong
    assert "Traceback" not in result.err
    assert pec_emulator.requests == []

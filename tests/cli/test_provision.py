"""``pecapi provision``: a CSV provisioned against the emulator, and resumed."""

from __future__ import annotations

import json
from pathlib import Path

from pecapi.cli.exits import ExitCode
from pecapi.testing import Emulator, Fault
from tests.cli.conftest import PDF, Run

HEADER = (
    "casella_pec,tipo_casella,tipo_cliente,nome_richiedente,cognome_richiedente,email,"
    "telefono,codice_fiscale_richiedente,data_nascita_richiedente,sesso_richiedente,"
    "nazione_nascita_richiedente,indirizzo_titolare,comune_titolare,cap_titolare,"
    "nazione_titolare,provincia_titolare,documenti"
)


def _row(name: str, tipo: str = "bronze", documents: str = "form.pdf") -> str:
    return (
        f"{name}@testcert.legalmail.it,{tipo},PV,Mario,Rossi,m@d.it,0548,RSSMRA82D11H501X,"
        f"11/04/1982,M,IT,via Verdi 20,Roma,00042,IT,RM,{documents}"
    )


def _csv(folder: Path, rows: list[str]) -> Path:
    (folder / "form.pdf").write_bytes(PDF)
    path = folder / "people.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


async def test_provision_a_csv_and_resume(api: Run, pec_emulator: Emulator, tmp_path: Path) -> None:
    rows = [_row(f"user{i}") for i in range(20)]
    rows.insert(5, _row("broken", tipo="platinum"))
    source = _csv(tmp_path, rows)
    journal = tmp_path / "run.jsonl"
    pec_emulator.faults.rate(0.15, [Fault.drop_after(), Fault.status(503)], seed=2)

    first = await api(
        "--retries", "12", "provision", str(source), "--journal", str(journal), "--concurrency", "4"
    )
    assert first.code == ExitCode.FAILURE  # the broken row is not done
    assert "21 rows: 20 activated, 1 invalid" in first.out
    assert "line 7: broken@testcert.legalmail.it: invalid: tipo_casella" in first.err
    assert len(pec_emulator.mailboxes) == 20
    assert all(m["stato"] == "in_evasione" for m in pec_emulator.mailboxes.values())

    again = await api("--json", "provision", str(source), "--journal", str(journal))
    records = [json.loads(line) for line in again.out.splitlines()]
    summary = records[-1]
    assert summary["event"] == "summary"
    assert summary["statuses"] == {"skipped": 20, "invalid": 1}
    assert len(pec_emulator.mailboxes) == 20
    charged = [c.target_id for c in pec_emulator.charges(operation="register")]
    assert len(charged) == len(set(charged)) == 20
    lines = journal.read_text().splitlines()
    # 20 registered (journaled before their activation), 20 activated, the invalid
    # row, then the invalid row again
    assert len(lines) == 20 + 20 + 1 + 1


async def test_provision_refuses_an_unknown_column(api: Run, tmp_path: Path) -> None:
    source = tmp_path / "odd.csv"
    source.write_text(HEADER + ",colore\n" + _row("a") + ",rosso\n", encoding="utf-8")
    result = await api("provision", str(source))
    assert result.code == ExitCode.INVALID_INPUT
    assert "colore" in result.err

"""Each subcommand's success, as a table for people and as JSON for scripts."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from pecapi.cli.commands import COMMANDS
from pecapi.resources import comunica_pec, domains, mailboxes
from pecapi.testing import Emulator

from .conftest import ESC, PDF, Run

BOX = "mario.rossi@testcert.legalmail.it"
FORMATS = ["json", "human"]

REGISTER_FLAGS = [
    "--casella-pec", BOX,
    "--tipo-casella", "bronze",
    "--tipo-cliente", "PV",
    "--nome-richiedente", "Mario",
    "--cognome-richiedente", "Rossi",
    "--email", "mario@example.org",
    "--telefono", "0548798569",
    "--codice-fiscale-richiedente", "RSSMRA82D11H501X",
    "--data-nascita-richiedente", "11/04/1982",
    "--sesso-richiedente", "m",
    "--nazione-nascita-richiedente", "IT",
    "--indirizzo-titolare", "via [bold]Verdi[/bold] 20",
    "--comune-titolare", "Roma",
    "--cap-titolare", "00042",
    "--nazione-titolare", "IT",
    "--provincia-titolare", "RM",
]  # fmt: skip

COMUNICA = {
    "casella_pec": BOX,
    "cf": "RSSMRA82D11H501X",
    "nome": "Mario",
    "cognome": "Rossi",
    "qualifica": "titolare",
    "email": "mario@example.org",
    "cellulare": "3490000018",
    "ragione_sociale": "ACME srl",
    "cf_piva": "12345678910",
    "comune": "Roma",
    "provincia": "RM",
}


def fmt_args(fmt: str) -> list[str]:
    return ["--json"] if fmt == "json" else []


def check_output(result, fmt: str):  # type: ignore[no-untyped-def]
    """Exit 0, nothing on stderr; the JSON document, or a table with no control codes."""
    assert result.code == 0, result.err
    assert result.err == ""
    assert ESC not in result.out
    if fmt == "json":
        return result.json()
    assert not result.out.lstrip().startswith(("{", "["))
    return result.out


def test_every_client_operation_has_a_command() -> None:
    endpoints = {
        e.name for e in (*domains.ENDPOINTS, *mailboxes.ENDPOINTS, *comunica_pec.ENDPOINTS)
    }
    assert {c.endpoint.name for c in COMMANDS} == endpoints


@pytest.mark.parametrize("fmt", FORMATS)
async def test_domains_check(api: Run, fmt: str) -> None:
    certified = check_output(await api("domains", "check", "legalmail.it", *fmt_args(fmt)), fmt)
    other = check_output(await api("domains", "check", "example.org", *fmt_args(fmt)), fmt)
    if fmt == "json":
        assert certified["dominio"] == "legalmail.it"
        assert certified["certified"] is True
        assert other["certified"] is False
    else:
        assert "legalmail.it" in certified and "yes" in certified
        assert "example.org" in other and "no" in other.split()


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mailboxes_available(api: Run, emulator: Emulator, fmt: str) -> None:
    emulator.seed_mailbox("taken@testcert.legalmail.it")
    free = check_output(await api("mailboxes", "available", BOX, *fmt_args(fmt)), fmt)
    taken = check_output(
        await api("mailboxes", "available", "taken@testcert.legalmail.it", *fmt_args(fmt)), fmt
    )
    if fmt == "json":
        assert free == {"casella_pec": BOX, "available": True}
        assert taken == {"casella_pec": "taken@testcert.legalmail.it", "available": False}
    else:
        assert free.strip() == f"{BOX} is available"
        assert "not available" in taken


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mailboxes_list(api: Run, emulator: Emulator, fmt: str) -> None:
    empty = check_output(await api("mailboxes", "list", *fmt_args(fmt)), fmt)
    assert empty == [] if fmt == "json" else empty.strip() == "(none)"
    first = emulator.seed_mailbox("a.very.long.address.indeed@testcert.legalmail.it")
    second = emulator.seed_mailbox(
        "b@testcert.legalmail.it", tipo_casella="GOLD", stato="registrata"
    )
    listed = check_output(await api("mailboxes", "list", *fmt_args(fmt)), fmt)
    if fmt == "json":
        by_id = {item["id"]: item for item in listed}
        assert set(by_id) == {first, second}
        assert by_id[second]["tipo_casella"] == "GOLD"
        assert by_id[second]["stato"] == "registrata"
        assert isinstance(by_id[first]["timestamp"]["registrazione"], int)
    else:
        lines = listed.splitlines()
        assert any(
            first in ln and "a.very.long.address.indeed@testcert.legalmail.it" in ln for ln in lines
        )
        assert any(second in ln and "GOLD" in ln and "registrata" in ln for ln in lines)
        assert "2 in all" in listed


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mailboxes_get(api: Run, emulator: Emulator, fmt: str) -> None:
    box_id = emulator.seed_mailbox(BOX, nuovo_campo="dal futuro", stato_extra=[1, 2])
    shown = check_output(await api("mailboxes", "get", box_id, *fmt_args(fmt)), fmt)
    casella = emulator.mailboxes[box_id]
    if fmt == "json":
        assert shown["id"] == box_id
        assert shown["casella_pec"] == BOX
        assert shown["stato"] == "evasa"
        assert shown["tipo_casella"] == "BRONZE"
        assert shown["data_scadenza"] == casella["data_scadenza"]  # dd/mm/yyyy, as the API
        assert shown["data_nascita_richiedente"] == "11/04/1982"
        assert shown["spazio_disco"] == 1024
        assert shown["timestamp"]["scadenza"] == casella["timestamp"]["scadenza"]
        assert shown["nuovo_campo"] == "dal futuro"  # extra fields kept
        assert shown["stato_extra"] == [1, 2]
    else:
        assert box_id in shown and BOX in shown and "evasa" in shown
        assert casella["data_scadenza"] in shown
        assert "nuovo_campo" in shown and "dal futuro" in shown
        assert " UTC" in shown  # timestamps as date-times


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mailboxes_register_with_flags(api: Run, emulator: Emulator, fmt: str) -> None:
    shown = check_output(await api("mailboxes", "register", *REGISTER_FLAGS, *fmt_args(fmt)), fmt)
    [(box_id, casella)] = emulator.mailboxes.items()
    assert casella["casella_pec"] == BOX
    assert casella["tipo_casella"] == "BRONZE"  # normalised by the model
    assert casella["indirizzo_titolare"] == "via [bold]Verdi[/bold] 20"
    assert len(emulator.charges("register")) == 1
    if fmt == "json":
        assert shown["id"] == box_id
        assert shown["stato"] == "registrata"
    else:
        assert box_id in shown and "registrata" in shown
        assert "via [bold]Verdi[/bold] 20" in shown  # printed as text, not rich markup


async def test_mailboxes_register_from_json_with_overrides(
    api: Run, emulator: Emulator, tmp_path
) -> None:
    body = {
        flag[2:].replace("-", "_"): value
        for flag, value in zip(REGISTER_FLAGS[::2], REGISTER_FLAGS[1::2], strict=True)
    }
    body["callback"] = {"url": "https://example.org/cb", "data": {"ticket": 7}}
    body["autorinnovo"] = True
    path = tmp_path / "box.json"
    path.write_text(json.dumps(body))
    result = await api(
        "mailboxes", "register", "--from-json", str(path), "--tipo-casella", "GOLD",
        "--callback-method", "json", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    casella = emulator.mailboxes[result.json()["id"]]
    assert casella["tipo_casella"] == "GOLD"  # the flag wins over the file
    assert casella["autorinnovo"] is True
    assert casella["callback"]["url"] == "https://example.org/cb"
    assert casella["callback"]["method"] == "JSON"
    assert casella["callback"]["data"] == {"ticket": 7}
    assert result.json()["callback"]["data"] == {"ticket": 7}


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mailboxes_revoke(api: Run, emulator: Emulator, fmt: str) -> None:
    box_id = emulator.seed_mailbox(BOX)
    shown = check_output(await api("mailboxes", "revoke", box_id, *fmt_args(fmt)), fmt)
    assert emulator.mailboxes[box_id]["stato"] == "revocata"
    assert shown["stato"] == "revocata" if fmt == "json" else "revocata" in shown


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mailboxes_activate(api: Run, emulator: Emulator, files, fmt: str) -> None:
    box_id = emulator.seed_mailbox(BOX, stato="registrata")
    result = await api(
        "mailboxes", "activate", box_id, "--document", str(files / "form.pdf"),
        "--document", str(files / "id.pdf"), *fmt_args(fmt),
    )  # fmt: skip
    shown = check_output(result, fmt)
    assert emulator.mailboxes[box_id]["stato"] == "in_evasione"
    uploaded = [name for name in emulator.documents if name.startswith(box_id)]
    assert len(uploaded) == 2
    assert all(emulator.documents[name] == PDF for name in uploaded)
    assert shown["stato"] == "in_evasione" if fmt == "json" else "in_evasione" in shown


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mailboxes_change_space(api: Run, emulator: Emulator, fmt: str) -> None:
    box_id = emulator.seed_mailbox(BOX)
    result = await api(
        "mailboxes", "change-space", box_id, "--spazio-disco", "+1024",
        "--spazio-storico", "2048", *fmt_args(fmt),
    )  # fmt: skip
    shown = check_output(result, fmt)
    assert emulator.mailboxes[box_id]["spazio_disco"] == 2048
    assert emulator.mailboxes[box_id]["spazio_storico"] == 2048
    assert len(emulator.charges("space", box_id)) == 1
    if fmt == "json":
        assert shown["spazio_disco"] == 2048
    else:
        assert "spazio_disco" in shown and "2048" in shown


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mailboxes_activate_conservation(
    api: Run, emulator: Emulator, files, fmt: str
) -> None:
    box_id = emulator.seed_mailbox(BOX)
    result = await api(
        "mailboxes", "activate-conservation", box_id, "--document", str(files / "form.pdf"),
        "--spazio-conservazione", "1024", *fmt_args(fmt),
    )  # fmt: skip
    shown = check_output(result, fmt)
    assert emulator.mailboxes[box_id]["conservazione"] is True
    assert emulator.mailboxes[box_id]["spazio_conservazione"] == 1024
    if fmt == "json":
        assert shown["conservazione"] is True
    else:
        assert "conservazione" in shown and "yes" in shown


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mailboxes_change_type(api: Run, emulator: Emulator, fmt: str) -> None:
    box_id = emulator.seed_mailbox(BOX)
    shown = check_output(await api("mailboxes", "change-type", box_id, "gold", *fmt_args(fmt)), fmt)
    assert emulator.mailboxes[box_id]["tipo_casella"] == "GOLD"
    assert len(emulator.charges("trasformazione", box_id)) == 1
    assert shown["tipo_casella"] == "GOLD" if fmt == "json" else "GOLD" in shown


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mailboxes_renew(api: Run, emulator: Emulator, fmt: str) -> None:
    box_id = emulator.seed_mailbox(BOX)
    before = emulator.mailboxes[box_id]["data_scadenza"]
    shown = check_output(
        await api("mailboxes", "renew", box_id, "--anni", "2", *fmt_args(fmt)), fmt
    )
    [charge] = emulator.charges("renewal", box_id)
    assert charge.amount == Decimal("16.00")  # 2 years of BRONZE
    after = emulator.mailboxes[box_id]["data_scadenza"]
    assert int(after[-4:]) == int(before[-4:]) + 2
    assert shown["data_scadenza"] == after if fmt == "json" else after in shown


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mailboxes_add_user(api: Run, emulator: Emulator, fmt: str) -> None:
    box_id = emulator.seed_mailbox(BOX)
    result = await api(
        "mailboxes", "add-user", box_id, "--nome", "Anna", "--cognome", "Bianchi",
        "--descrizione", "segreteria", "--email-gestione-password", "anna@example.org",
        *fmt_args(fmt),
    )  # fmt: skip
    shown = check_output(result, fmt)
    [user] = emulator.mailboxes[box_id]["multiutenza"]
    assert user["email_gestione_password"] == "anna@example.org"
    if fmt == "json":
        assert shown["multiutenza"][0]["nome"] == "Anna"
        assert shown["multiutenza"][0]["id_utenza"] == user["id_utenza"]
    else:
        assert "multiutenza[0].nome" in shown and "Anna" in shown


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("command", "stato"), [("activation-form", "registrata"), ("conservation-form", "evasa")]
)
async def test_mailbox_forms(
    api: Run, emulator: Emulator, tmp_path, fmt: str, command: str, stato: str
) -> None:
    box_id = emulator.seed_mailbox(BOX, stato=stato)
    dest = tmp_path / "form.pdf"
    shown = check_output(
        await api("mailboxes", command, box_id, "-o", str(dest), *fmt_args(fmt)), fmt
    )
    data = dest.read_bytes()
    assert data.startswith(b"%PDF-")
    if fmt == "json":
        assert shown == {"id": box_id, "path": str(dest), "bytes": len(data)}
    else:
        assert shown.strip() == f"wrote {dest} ({len(data)} bytes)"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_comunica_pec_list_create_get(
    api: Run, emulator: Emulator, tmp_path, fmt: str
) -> None:
    empty = check_output(await api("comunica-pec", "list", *fmt_args(fmt)), fmt)
    assert empty == [] if fmt == "json" else empty.strip() == "(none)"
    path = tmp_path / "request.json"
    path.write_text(json.dumps(COMUNICA))
    created = check_output(
        await api(
            "comunica-pec", "create", "--from-json", str(path), "--nome", "Maria", *fmt_args(fmt)
        ),
        fmt,
    )
    [(request_id, record)] = emulator.comunica_requests.items()
    assert record["nome"] == "Maria"
    assert record["qualifica"] == "TITOLARE"
    assert len(emulator.charges("comunica_pec")) == 1
    got = check_output(await api("comunica-pec", "get", request_id, *fmt_args(fmt)), fmt)
    listed = check_output(await api("comunica-pec", "list", *fmt_args(fmt)), fmt)
    if fmt == "json":
        assert created["id"] == request_id
        assert got["qualifica"] == "TITOLARE"
        assert "callback" not in got  # the API's callback: false; unset fields are left out
        assert [item["id"] for item in listed] == [request_id]
    else:
        assert request_id in created and "TITOLARE" in got
        assert request_id in listed and "1 in all" in listed


@pytest.mark.parametrize("fmt", FORMATS)
async def test_comunica_pec_documents_and_power_of_attorney(
    api: Run, emulator: Emulator, files, fmt: str
) -> None:
    request_id = emulator.seed_comunica(BOX, stato="in_attesa_di_documenti")
    dest = files / "procura.pdf"
    shown = check_output(
        await api("comunica-pec", "power-of-attorney", request_id, "-o", str(dest), *fmt_args(fmt)),
        fmt,
    )
    assert dest.read_bytes().startswith(b"%PDF-")
    assert shown["path"] == str(dest) if fmt == "json" else str(dest) in shown
    result = await api(
        "comunica-pec", "upload-documents", request_id, "--document", str(files / "procura.p7m"),
        *fmt_args(fmt),
    )  # fmt: skip
    shown = check_output(result, fmt)
    assert emulator.comunica_requests[request_id]["stato"] == "documenti_caricati"
    if fmt == "json":
        assert shown["stato"] == "documenti_caricati"
        assert len(shown["documenti_registro_imprese"]) == 1
    else:
        assert "documenti_caricati" in shown


async def test_form_to_stdout(pec_server, emulator: Emulator, capsysbinary) -> None:
    import asyncio

    from pecapi.cli import main

    box_id = emulator.seed_mailbox(BOX, stato="registrata")
    argv = ["--sandbox", "--base-url", pec_server.url, "mailboxes", "activation-form", box_id]
    code = await asyncio.to_thread(main, [*argv, "-o", "-", "--json"])
    out, err = capsysbinary.readouterr()
    assert code == 0, err
    assert out.startswith(b"%PDF-") and out.rstrip().endswith(b"%%EOF")  # only the PDF


async def test_options_before_or_after_the_command(
    api: Run, run_cli: Run, pec_server, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox(BOX)
    after = await run_cli(
        "mailboxes", "get", box_id, "--sandbox", "--json", "--base-url", pec_server.url
    )
    before = await run_cli(
        "--json", "--sandbox", "--base-url", pec_server.url, "mailboxes", "get", box_id
    )
    assert after.code == before.code == 0
    assert after.json()["id"] == before.json()["id"] == box_id

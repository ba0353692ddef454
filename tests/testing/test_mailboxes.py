"""/pec: register, list, read, revoke, activate, change space, conservation, type, renew, users."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import aiohttp
import jsonschema
import pytest

from pecapi.testing import DEFAULT_TOKEN, Charge, Emulator, PriceList
from pecapi.testing.errors import REG_REQUIRED
from pecapi.testing.rules import add_years, fmt_date
from pecapi.testing.samples import mailbox_body, multiutenza_body, p7m_base64, pdf_base64

CASELLA_KEYS = {
    "casella_pec", "tipo_casella", "tipo_cliente", "sottotipo_cliente", "sottotipo_cliente_altro",
    "nome_richiedente", "cognome_richiedente", "email", "telefono", "codice_fiscale_richiedente",
    "data_nascita_richiedente", "sesso_richiedente", "nazione_nascita_richiedente",
    "provincia_nascita_richiedente", "denominazione_titolare", "cf_piva_titolare",
    "indirizzo_titolare", "comune_titolare", "cap_titolare", "nazione_titolare",
    "provincia_titolare", "callback", "dominio", "owner", "timestamp", "cellulare",
    "comune_nascita_richiedente", "cod_attivazione", "uid", "conservazione", "data_scadenza",
    "descrizione", "sms", "spazio_conservazione", "spazio_disco", "spazio_storico", "stato",
    "storico", "id", "autorinnovo", "numero_documento",
    "data_scadenza_documento", "documento_rilasciato_da", "data_rilascio_documento",
}  # fmt: skip
NOW = 1_700_000_000  # 14/11/2023
SPEC = Path(__file__).parents[1] / "data" / "pec.openapi.json"
ZERO_ID = "0123456789abcdef01234567"


@pytest.fixture
def emu() -> Emulator:
    emu = Emulator(seed=1)
    emu.set_time(NOW)
    return emu


def active(emu: Emulator, tipo: str = "BRONZE", **fields) -> str:
    address = f"box{len(emu.mailboxes)}@testcert.legalmail.it"
    if tipo == "DOMICILIODIGITALE":
        address = f"box{len(emu.mailboxes)}@test.domiciliodigitale.com"
    return emu.seed_mailbox(address, tipo_casella=tipo, **fields)


# --- POST /pec --------------------------------------------------------------------------------


async def test_register_returns_full_casella_and_charges(api):
    emu = api.emu
    data = await api.ok("POST", "/pec", mailbox_body())
    assert set(data) == CASELLA_KEYS
    assert re.fullmatch(r"[0-9a-f]{24}", data["id"])
    assert data["stato"] == "registrata"
    assert data["tipo_casella"] == "BRONZE"
    assert data["nazione_nascita_richiedente"] == "IT"
    assert data["nazione_titolare"] == "IT"
    assert data["provincia_titolare"] == "rm"
    assert data["dominio"] == "testcert.legalmail.it"
    assert data["owner"] == "mail@domain.com"
    assert data["descrizione"] == "yourpec@testcert.legalmail.it"
    assert data["callback"] == {
        "url": "https://your_domain.it/your_callback.php",
        "field": "data",
        "method": "POST",
        "data": {},
    }
    assert data["timestamp"] == {"registrazione": NOW, "ultima_modifica": NOW}
    assert re.fullmatch(r"\d{8}", data["cod_attivazione"])
    assert re.fullmatch(r"MA\d{6}", data["uid"])
    assert (data["spazio_disco"], data["spazio_storico"], data["spazio_conservazione"]) == (0, 0, 0)
    assert data["conservazione"] is data["sms"] is data["storico"] is data["autorinnovo"] is False
    assert data["data_scadenza"] == ""
    assert data["cellulare"] == ""
    assert "tipo_documento" not in data  # unset: the schema's enum has no ""
    assert emu.ledger == [
        Charge("register", Decimal("8.00"), data["id"], "BRONZE yourpec@testcert.legalmail.it", NOW)
    ]
    assert emu.wallet == Decimal("992.00")
    assert emu.mailboxes[data["id"]] == data
    assert (await api.ok("GET", f"/pec/{data['id']}")) == data


def _casella_errors(data: dict) -> list[str]:
    """What is wrong with ``data`` as a Casella of the specification (enums, types)."""
    spec = json.loads(SPEC.read_text())
    schema = {"$ref": "#/components/schemas/Casella", "components": spec["components"]}
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(data)]


async def test_mailbox_answers_follow_the_casella_schema(api):
    emu = api.emu
    registered = await api.ok("POST", "/pec", mailbox_body())
    seeded = emu.seed_mailbox("seeded@testcert.legalmail.it")
    with_document = await api.ok(
        "POST", "/pec", mailbox_body("doc@testcert.legalmail.it", tipo_documento="PATENTE")
    )
    for data in (
        registered,
        await api.ok("GET", f"/pec/{registered['id']}"),
        await api.ok("GET", f"/pec/{seeded}"),
        await api.ok("GET", f"/pec/{seeded}/rinnovo"),
        with_document,
    ):
        assert _casella_errors(data) == [], data["id"]
    # an unset enum field is left out, a set one is answered as sent
    assert "tipo_documento" not in registered
    assert "tipo_documento" not in emu.mailboxes[seeded]
    assert with_document["tipo_documento"] == "PATENTE"
    # the other unset strings stay "" (the schema allows it), as the spec's examples show
    assert registered["sottotipo_cliente"] == registered["numero_documento"] == ""


async def test_register_without_callback_omits_it(api):
    body = mailbox_body()
    del body["callback"]
    data = await api.ok("POST", "/pec", body)
    assert "callback" not in data


async def test_register_optional_fields(api):
    body = mailbox_body(
        autorinnovo=True,
        tipo_documento="PATENTE",
        data_scadenza_documento="01/01/2030",
        cellulare="333",
        callback={"url": "https://x.it/cb", "method": "JSON", "data": {"k": 1}},
    )
    data = await api.ok("POST", "/pec", body)
    assert data["autorinnovo"] is True
    assert data["tipo_documento"] == "PATENTE"
    assert data["callback"] == {
        "url": "https://x.it/cb",
        "field": "data",
        "method": "JSON",
        "data": {"k": 1},
    }


@pytest.mark.parametrize("field", sorted(REG_REQUIRED))
@pytest.mark.parametrize("how", ["missing", "empty"])
async def test_register_required_fields(api, field, how):
    body = mailbox_body()
    if how == "missing":
        del body[field]
    else:
        body[field] = "  "
    await api.fails(
        "POST", "/pec", body, status=428, code=REG_REQUIRED[field].code, message=f"{field} required"
    )
    assert api.emu.ledger == []
    assert not api.emu.mailboxes


async def test_register_tipo_casella_required_is_224(api):
    body = mailbox_body()
    del body["tipo_casella"]
    await api.fails("POST", "/pec", body, status=428, code=224, message="tipo_casella required")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("tipo_casella", "bronze", 225),  # uppercase only: the client normalises
        ("tipo_casella", "PLATINUM", 225),
        ("tipo_cliente", "ZZ", 227),
        ("sottotipo_cliente", "QQ", 228),
        ("email", "not-an-email", 233),
        ("sesso_richiedente", "X", 244),
        ("tipo_documento", "TESSERA", 253),
        ("casella_pec", "bad address@testcert.legalmail.it", 222),
        ("callback", {"field": "data"}, 251),
        ("callback", {"url": "https://x.it", "method": "GET"}, 251),
        ("autorinnovo", "yes", 252),
        ("nome_richiedente", 12, 259),
    ],
)
async def test_register_invalid_values_are_406(api, field, value, code):
    await api.fails("POST", "/pec", mailbox_body(**{field: value}), status=406, code=code)
    assert api.emu.ledger == []


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("data_nascita_richiedente", 242),
        ("data_scadenza_documento", 254),
        ("data_rilascio_documento", 255),
    ],
)
@pytest.mark.parametrize("value", ["1982-04-11", "31/02/1982", "1/4/1982", "11/04/82"])
async def test_register_bad_dates(api, field, code, value):
    await api.fails(
        "POST",
        "/pec",
        mailbox_body(**{field: value}),
        status=406,
        code=code,
        message=f"{field} not valid, accepted format: dd/mm/yyyy",
    )


async def test_register_empty_optional_strings_are_unset(api):
    data = await api.ok(
        "POST", "/pec", mailbox_body(sottotipo_cliente="", tipo_documento="", cellulare="")
    )
    assert data["sottotipo_cliente"] == ""
    assert "tipo_documento" not in data  # unset: left out (an enum of the schema)


@pytest.mark.parametrize(
    ("address", "tipo"),
    [
        ("a@testcert.legalmail.it", "STANDARD"),
        ("a@testcert.legalmail.it", "GOLD"),
        ("a@testcert.legalmail.it", "PECMASSIVA"),
        ("a@test.domiciliodigitale.com", "DOMICILIODIGITALE"),
    ],
)
async def test_sandbox_domains(api, address, tipo):
    data = await api.ok("POST", "/pec", mailbox_body(address, tipo))
    assert data["tipo_casella"] == tipo
    assert api.emu.ledger[0].amount == PriceList().register[tipo]


@pytest.mark.parametrize(
    ("address", "tipo", "status", "code"),
    [
        ("a@legalmail.it", "BRONZE", 404, 326),  # production domain: unknown in the sandbox
        ("a@example.com", "BRONZE", 404, 326),
        ("a@pec.it", "BRONZE", 404, 326),  # certified, but someone else's
        ("a@test.domiciliodigitale.com", "BRONZE", 406, 327),
        ("a@testcert.legalmail.it", "DOMICILIODIGITALE", 406, 327),
    ],
)
async def test_sandbox_domain_errors(api, address, tipo, status, code):
    resp = await api.fails("POST", "/pec", mailbox_body(address, tipo), status=status, code=code)
    if code == 326:
        dominio = address.split("@")[1]
        assert resp.json["message"] == (
            f"the domain {dominio} is non-existent in the system or belongs to someone else"
        )
    assert api.emu.ledger == []


async def test_production_domains():
    emu = Emulator(environment="production", own_domains=["studio.it"])
    cases = [
        ("a@legalmail.it", "STANDARD", 200, None),
        ("b@legalmail.it", "GOLD", 200, None),
        ("c@domiciliodigitale.com", "DOMICILIODIGITALE", 200, None),
        ("d@pecmassiva.com", "PECMASSIVA", 200, None),
        ("e@studio.it", "SILVER", 200, None),
        ("f@studio.it", "PECMASSIVA", 406, 327),
        ("g@testcert.legalmail.it", "BRONZE", 404, 326),
        ("h@legalmail.it", "DOMICILIODIGITALE", 406, 327),
        ("i@pecmassiva.com", "BRONZE", 406, 327),
        ("j@other.it", "BRONZE", 404, 326),
    ]
    async with emu.serve() as server, aiohttp.ClientSession() as s:
        headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        for address, tipo, status, code in cases:
            async with s.post(
                server.url + "/pec", json=mailbox_body(address, tipo), headers=headers
            ) as r:
                body = await r.json()
                assert (r.status, body.get("error")) == (status, code), (address, tipo, body)
    assert len(emu.ledger) == 5


async def test_register_taken_address(api):
    await api.ok("POST", "/pec", mailbox_body("dup@testcert.legalmail.it"))
    await api.fails("POST", "/pec", mailbox_body("DUP@testcert.legalmail.it"), status=406, code=223)
    assert len(api.emu.ledger) == 1


async def test_register_after_revocation(api):
    api.emu.seed_mailbox("again@testcert.legalmail.it", stato="revocata")
    await api.ok("POST", "/pec", mailbox_body("again@testcert.legalmail.it"))


async def test_register_insufficient_credit(api):
    api.emu.wallet = Decimal("7.50")
    await api.fails(
        "POST",
        "/pec",
        mailbox_body(),
        status=402,
        code=262,
        message="Insufficient Credit in Wallet: 7.50",
    )
    assert api.emu.ledger == []
    assert not api.emu.mailboxes
    assert api.emu.wallet == Decimal("7.50")


# --- GET /pec, GET /pec/{id} ---------------------------------------------------------------------


async def test_list_empty_is_404_200(api):
    await api.fails("GET", "/pec", status=404, code=200, message="no pec linked to this account")


async def test_list_returns_caselle(api):
    first = active(api.emu)
    second = await api.ok("POST", "/pec", mailbox_body("z@testcert.legalmail.it"))
    listed = await api.ok("GET", "/pec")
    assert [m["id"] for m in listed] == [first, second["id"]]
    assert set(listed[0]) == {
        "id", "casella_pec", "tipo_casella", "stato", "data_scadenza", "timestamp", "owner"
    }  # fmt: skip
    assert listed[0]["stato"] == "evasa"
    assert listed[0]["data_scadenza"] == fmt_date(add_years(NOW, 1))


@pytest.mark.parametrize("path", ["/pec/xyz", "/pec/0123456789ABCDEF0123456G", "/pec/" + "a" * 25])
async def test_get_wrong_id(api, path):
    await api.fails("GET", path, status=400, code=201, message="Wrong id")


async def test_get_not_found(api):
    await api.fails("GET", f"/pec/{ZERO_ID}", status=404, code=202, message="no pec found")


# --- DELETE /pec/{id} ----------------------------------------------------------------------------


async def test_revoke(api):
    mailbox_id = active(api.emu)
    api.emu.advance_time(60)
    data = await api.ok("DELETE", f"/pec/{mailbox_id}")
    assert data["stato"] == "revocata"
    assert data["timestamp"]["revoca"] == NOW + 60
    await api.fails("DELETE", f"/pec/{mailbox_id}", status=406, code=303)
    assert api.emu.ledger == []


async def test_revoke_errors(api):
    registered = active(api.emu, stato="registrata")
    await api.fails("DELETE", "/pec/bad", status=400, code=301, message="Wrong id")
    await api.fails("DELETE", f"/pec/{ZERO_ID}", status=404, code=302, message="no pec found")
    await api.fails(
        "DELETE",
        f"/pec/{registered}",
        status=428,
        code=304,
        message="you can revoke the pec only if it is active",
    )


# --- PATCH /pec/{id}/attivazione ----------------------------------------------------------------


async def test_activation_flow(api):
    emu = api.emu
    created = await api.ok("POST", "/pec", mailbox_body())
    mailbox_id = created["id"]
    pdf = pdf_base64()
    data = await api.ok("PATCH", f"/pec/{mailbox_id}/attivazione", {"documenti": [pdf, pdf]})
    assert data["stato"] == "in_evasione"
    assert data["documenti_attivazione"] == [
        f"{mailbox_id}_0_attivazione.pdf",
        f"{mailbox_id}_1_attivazione.pdf",
    ]
    assert emu.documents[f"{mailbox_id}_0_attivazione.pdf"].startswith(b"%PDF-")
    await api.fails(
        "PATCH", f"/pec/{mailbox_id}/attivazione", {"documenti": pdf}, status=428, code=267
    )
    emu.reject_documents(mailbox_id)
    assert emu.mailboxes[mailbox_id]["stato"] == "documenti_errati"
    data = await api.ok("PATCH", f"/pec/{mailbox_id}/attivazione", {"documenti": pdf})
    assert data["documenti_attivazione"] == [f"{mailbox_id}_0_attivazione.pdf"]
    emu.advance_time(100)
    emu.complete_activation(mailbox_id)
    data = await api.ok("GET", f"/pec/{mailbox_id}")
    assert data["stato"] == "evasa"
    assert data["timestamp"]["evasione"] == NOW + 100
    assert data["timestamp"]["scadenza"] == add_years(NOW + 100, 1)
    assert data["data_attivazione"] == "14/11/2023"
    assert data["data_scadenza"] == "14/11/2024"
    assert (data["spazio_disco"], data["spazio_storico"]) == (1024, 1024)
    assert data["sms"] is True
    assert data["storico"] is True
    assert [c.operation for c in emu.ledger] == ["register"]  # activation is free
    with pytest.raises(ValueError, match="not in_evasione"):
        emu.complete_activation(mailbox_id)


async def test_activation_errors(api):
    mailbox_id = active(api.emu, stato="registrata")
    pdf = pdf_base64()
    path = f"/pec/{mailbox_id}/attivazione"
    await api.fails("PATCH", "/pec/nope/attivazione", {"documenti": pdf}, status=400, code=265)
    await api.fails(
        "PATCH", f"/pec/{ZERO_ID}/attivazione", {"documenti": pdf}, status=404, code=266
    )
    await api.fails("PATCH", path, {}, status=428, code=268, message="documenti required")
    await api.fails("PATCH", path, {"documenti": []}, status=428, code=268)
    not_pdf = "wrong file format, pdf required"
    for bad in ["!!not base64!!", p7m_base64(), [pdf, "aGVsbG8="], 42]:
        await api.fails("PATCH", path, {"documenti": bad}, status=406, code=296, message=not_pdf)
    evasa = active(api.emu)
    await api.fails(
        "PATCH",
        f"/pec/{evasa}/attivazione",
        {"documenti": pdf},
        status=428,
        code=267,
        message=(
            "you can activate the pec only when it is in the 'registrata|documenti_errati' state"
        ),
    )
    assert api.emu.mailboxes[mailbox_id]["stato"] == "registrata"


async def test_activation_auto_process():
    emu = Emulator(auto_process=True)
    mailbox_id = emu.seed_mailbox("x@testcert.legalmail.it", stato="registrata")
    async with emu.serve() as server, aiohttp.ClientSession() as s:
        headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        url = f"{server.url}/pec/{mailbox_id}/attivazione"
        async with s.patch(url, json={"documenti": pdf_base64()}, headers=headers) as r:
            assert (await r.json())["data"]["stato"] == "evasa"


async def test_process_all(emu):
    a = active(emu, stato="in_evasione")
    b = active(emu, stato="in_evasione")
    c = emu.seed_comunica("x@pec.it")
    assert emu.process_all() == 3
    assert emu.mailboxes[a]["stato"] == emu.mailboxes[b]["stato"] == "evasa"
    assert emu.comunica_requests[c]["stato"] == "in_attesa_di_documenti"
    assert emu.process_all() == 0


# --- PATCH /pec/{id}/modifica ------------------------------------------------------------------


async def test_modify_space(api):
    emu = api.emu
    mailbox_id = active(emu, "GOLD", conservazione=True, spazio_conservazione=512)
    body = {"spazio_disco": "4096", "spazio_storico": "+1024", "spazio_conservazione": 1536}
    data = await api.ok("PATCH", f"/pec/{mailbox_id}/modifica", body)
    assert (data["spazio_disco"], data["spazio_storico"], data["spazio_conservazione"]) == (
        4096,
        4096,
        1536,
    )
    prices = PriceList()
    expected = prices.spazio_disco * 1 + prices.spazio_storico * 1 + prices.spazio_conservazione * 2
    assert [(c.operation, c.amount, c.target_id) for c in emu.ledger] == [
        ("space", expected, mailbox_id)
    ]
    await api.ok("PATCH", f"/pec/{mailbox_id}/modifica", {"spazio_disco": 5120})
    assert len(emu.charges(operation="space", target_id=mailbox_id)) == 2


async def test_modify_space_errors(api):
    emu = api.emu
    mailbox_id = active(emu, "BRONZE")
    path = f"/pec/{mailbox_id}/modifica"
    await api.fails("PATCH", "/pec/x/modifica", {"spazio_disco": 2048}, status=400, code=265)
    await api.fails(
        "PATCH", f"/pec/{ZERO_ID}/modifica", {"spazio_disco": 2048}, status=404, code=266
    )
    await api.fails(
        "PATCH",
        path,
        {"spazio_disco": 1500},
        status=406,
        code=325,
        message="the system only takes into account multiples of 1024",
    )
    await api.fails("PATCH", path, {"spazio_storico": "+1000"}, status=406, code=325)
    await api.fails("PATCH", path, {"spazio_disco": 1024}, status=406, code=285)  # not an upgrade
    await api.fails("PATCH", path, {"spazio_disco": "lots"}, status=406, code=284)
    for digits in ("9" * 5000, "+" + "9" * 5000, "+ 1024", "²"):  # never a 500
        await api.fails("PATCH", path, {"spazio_disco": digits}, status=406, code=284)
    await api.fails("PATCH", path, {}, status=428, code=283)
    await api.fails(
        "PATCH",
        path,
        {"spazio_conservazione": 512},
        status=428,
        code=282,
        message="you must first activate the 'conservazione' service",
    )
    with_cons = active(emu, "BRONZE", conservazione=True, spazio_conservazione=512)
    await api.fails(
        "PATCH",
        f"/pec/{with_cons}/modifica",
        {"spazio_conservazione": "+1000"},
        status=406,
        code=325,
        message="the system only takes into account multiples of 512",
    )
    for tipo in ("DOMICILIODIGITALE", "PECMASSIVA"):
        other = active(emu, tipo)
        await api.fails(
            "PATCH", f"/pec/{other}/modifica", {"spazio_disco": 2048}, status=406, code=280
        )
    registered = active(emu, stato="registrata")
    await api.fails(
        "PATCH", f"/pec/{registered}/modifica", {"spazio_disco": 2048}, status=428, code=281
    )
    emu.wallet = Decimal("1")
    await api.fails("PATCH", path, {"spazio_disco": 2048}, status=402, code=290)
    assert emu.ledger == []
    assert emu.mailboxes[mailbox_id]["spazio_disco"] == 1024


# --- PATCH /pec/{id}/conservazione ---------------------------------------------------------------


async def test_conservation(api):
    emu = api.emu
    mailbox_id = active(emu, "SILVER")
    body = {"documenti": [pdf_base64(), pdf_base64()], "spazio_conservazione": "1024"}
    data = await api.ok("PATCH", f"/pec/{mailbox_id}/conservazione", body)
    assert data["conservazione"] is True
    assert data["spazio_conservazione"] == 1024
    assert data["documenti_conservazione"] == [
        f"{mailbox_id}_0_conservazione.pdf",
        f"{mailbox_id}_1_conservazione.pdf",
    ]
    prices = PriceList()
    assert emu.ledger[0].amount == prices.conservazione + 2 * prices.spazio_conservazione
    await api.fails(
        "PATCH",
        f"/pec/{mailbox_id}/conservazione",
        body,
        status=406,
        code=293,
        message="conservazione service is already active",
    )


async def test_conservation_default_space(api):
    mailbox_id = active(api.emu)
    data = await api.ok("PATCH", f"/pec/{mailbox_id}/conservazione", {"documenti": pdf_base64()})
    assert data["spazio_conservazione"] == 512


async def test_conservation_errors(api):
    emu = api.emu
    mailbox_id = active(emu)
    path = f"/pec/{mailbox_id}/conservazione"
    pdf = pdf_base64()
    await api.fails("PATCH", "/pec/x/conservazione", {"documenti": pdf}, status=400, code=265)
    await api.fails(
        "PATCH", f"/pec/{ZERO_ID}/conservazione", {"documenti": pdf}, status=404, code=266
    )
    await api.fails("PATCH", path, {}, status=428, code=294, message="documenti required")
    await api.fails("PATCH", path, {"documenti": p7m_base64()}, status=406, code=296)
    for space in (700, "+512", 0):
        await api.fails(
            "PATCH", path, {"documenti": pdf, "spazio_conservazione": space}, status=406, code=295
        )
    for tipo in ("DOMICILIODIGITALE", "PECMASSIVA"):
        other = active(emu, tipo)
        await api.fails(
            "PATCH", f"/pec/{other}/conservazione", {"documenti": pdf}, status=406, code=291
        )
    registered = active(emu, stato="registrata")
    await api.fails(
        "PATCH", f"/pec/{registered}/conservazione", {"documenti": pdf}, status=428, code=292
    )
    emu.wallet = Decimal("20")
    await api.fails("PATCH", path, {"documenti": pdf}, status=402, code=297)
    assert emu.ledger == []
    assert emu.mailboxes[mailbox_id]["conservazione"] is False


# --- PATCH /pec/{id}/trasformazione ---------------------------------------------------------------


async def test_change_type(api):
    emu = api.emu
    mailbox_id = active(emu, "STANDARD")
    data = await api.ok("PATCH", f"/pec/{mailbox_id}/trasformazione", {"tipo_casella": "SILVER"})
    assert data["tipo_casella"] == "SILVER"
    assert (data["spazio_disco"], data["spazio_storico"]) == (2048, 2048)
    assert emu.charges("trasformazione") == [
        Charge("trasformazione", Decimal("10.00"), mailbox_id, "STANDARD->SILVER", NOW)
    ]


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("BRONZE", "BRONZE", "SILVER or GOLD"),
        ("BRONZE", "STANDARD", "SILVER or GOLD"),
        ("STANDARD", "STANDARD", "BRONZE, SILVER or GOLD"),
        ("SILVER", "BRONZE", "GOLD"),
    ],
)
async def test_change_type_downgrade(api, current, target, allowed):
    mailbox_id = active(api.emu, current)
    await api.fails(
        "PATCH",
        f"/pec/{mailbox_id}/trasformazione",
        {"tipo_casella": target},
        status=406,
        code=276,
        message=f"a downgrade of the 'tipo_casella' is not allowed; only {allowed} allowed",
    )


async def test_change_type_errors(api):
    emu = api.emu
    gold = active(emu, "GOLD")
    body = {"tipo_casella": "GOLD"}
    await api.fails("PATCH", "/pec/x/trasformazione", body, status=400, code=265)
    await api.fails("PATCH", f"/pec/{ZERO_ID}/trasformazione", body, status=404, code=266)
    await api.fails("PATCH", f"/pec/{gold}/trasformazione", body, status=406, code=276)
    await api.fails("PATCH", f"/pec/{gold}/trasformazione", {}, status=428, code=274)
    for bad in ("gold", "DOMICILIODIGITALE"):
        await api.fails(
            "PATCH", f"/pec/{gold}/trasformazione", {"tipo_casella": bad}, status=406, code=275
        )
    for tipo in ("DOMICILIODIGITALE", "PECMASSIVA"):
        other = active(emu, tipo)
        await api.fails("PATCH", f"/pec/{other}/trasformazione", body, status=406, code=273)
    registered = active(emu, "STANDARD", stato="registrata")
    await api.fails(
        "PATCH",
        f"/pec/{registered}/trasformazione",
        body,
        status=428,
        code=272,
        message="you can trasform your certified mail only if it has been processed",
    )
    standard = active(emu, "STANDARD")
    emu.wallet = Decimal("9.99")
    await api.fails("PATCH", f"/pec/{standard}/trasformazione", body, status=402, code=279)
    assert emu.ledger == []
    assert emu.mailboxes[standard]["tipo_casella"] == "STANDARD"


# --- GET /pec/{id}/rinnovo -----------------------------------------------------------------------


async def test_renew_extends_future_expiry(api):
    emu = api.emu
    mailbox_id = active(emu)  # expires NOW + 1 year
    data = await api.ok("GET", f"/pec/{mailbox_id}/rinnovo?anni=2")
    assert data["timestamp"]["scadenza"] == add_years(NOW, 3)
    assert data["data_scadenza"] == "14/11/2026"
    assert emu.ledger == [Charge("renewal", Decimal("16.00"), mailbox_id, "BRONZE anni=2", NOW)]


async def test_renew_from_now_when_expired(api):
    emu = api.emu
    mailbox_id = active(emu)
    emu.advance_time(3 * 365 * 86400)
    data = await api.ok("GET", f"/pec/{mailbox_id}/rinnovo")
    assert data["timestamp"]["scadenza"] == add_years(int(emu.now()), 1)


async def test_renew_reactivates_revoked(api):
    emu = api.emu
    mailbox_id = active(emu, stato="revocata")
    data = await api.ok("GET", f"/pec/{mailbox_id}/rinnovo")
    assert data["stato"] == "evasa"
    assert "revoca" not in data["timestamp"]
    await api.fails("GET", f"/verifica_pec/{data['casella_pec']}", status=406, code=209)


async def test_renew_revoked_address_taken_again(api):
    emu = api.emu
    old = emu.seed_mailbox("same@testcert.legalmail.it", stato="revocata")
    emu.seed_mailbox("same@testcert.legalmail.it")
    # a precondition on the mailbox's state: the 428 the operation documents, not a 406
    await api.fails("GET", f"/pec/{old}/rinnovo", status=428, code=206)


async def test_renew_errors(api):
    emu = api.emu
    mailbox_id = active(emu)
    await api.fails("GET", "/pec/x/rinnovo", status=400, code=201, message="Wrong id")
    await api.fails("GET", f"/pec/{ZERO_ID}/rinnovo", status=404, code=202, message="no pec found")
    # "²" passes str.isdigit and not int(); 5000 digits are over int()'s own limit
    for anni in ("0", "-1", "x", "11", "1.5", "%C2%B2", "9" * 5000):
        # a bad query parameter: the 400 the operation documents (it has no 406)
        await api.fails("GET", f"/pec/{mailbox_id}/rinnovo?anni={anni}", status=400, code=204)
    registered = active(emu, stato="registrata")
    await api.fails(
        "GET",
        f"/pec/{registered}/rinnovo",
        status=428,
        code=203,
        message="you can renew only evaded or revoked pec",
    )
    emu.wallet = Decimal("1")
    await api.fails("GET", f"/pec/{mailbox_id}/rinnovo", status=402, code=205)
    assert emu.ledger == []


async def test_charges_refuses_an_unknown_operation_name(api):
    emu = api.emu
    mailbox_id = active(emu)
    await api.ok("GET", f"/pec/{mailbox_id}/rinnovo")
    assert len(emu.charges("renewal", mailbox_id)) == 1
    # "renew" is no operation: a silent [] would let `assert not charges(...)` check nothing
    with pytest.raises(ValueError, match=r"'renew'.*renewal") as info:
        emu.charges("renew")
    for name in ("register", "space", "conservazione", "trasformazione", "multiutenza"):
        assert name in str(info.value)
    with pytest.raises(ValueError, match="'Renewal'"):
        emu.charges(operation="Renewal", target_id=mailbox_id)
    assert emu.charges("verifica_dominio") == []  # a valid name with no charge yet


# --- POST /pec/{id}/multiutenza ------------------------------------------------------------------


async def test_add_users(api):
    emu = api.emu
    mailbox_id = active(emu)
    data = await api.ok("POST", f"/pec/{mailbox_id}/multiutenza", multiutenza_body())
    (user,) = data["multiutenza"]
    assert user["id_utenza"] == f"{mailbox_id}_0"
    assert user["timestamp"] == {"attivazione": NOW}
    assert re.fullmatch(r"MA\d{6}", user["userid"])
    assert user["nome"] == "luca"
    assert user["email_gestione_password"] == "mail@domain.com"
    for _ in range(24):
        data = await api.ok("POST", f"/pec/{mailbox_id}/multiutenza", multiutenza_body())
    assert data["multiutenza"][-1]["id_utenza"] == f"{mailbox_id}_24"
    await api.fails(
        "POST",
        f"/pec/{mailbox_id}/multiutenza",
        multiutenza_body(),
        status=406,
        code=217,
        message="maximum number of users reached: 25",
    )
    assert len(emu.charges("multiutenza", mailbox_id)) == 25


async def test_add_user_errors(api):
    emu = api.emu
    mailbox_id = active(emu)
    path = f"/pec/{mailbox_id}/multiutenza"
    body = multiutenza_body()
    await api.fails("POST", "/pec/x/multiutenza", body, status=400, code=212)
    await api.fails("POST", f"/pec/{ZERO_ID}/multiutenza", body, status=404, code=213)
    for field, code in (
        ("nome", 214),
        ("cognome", 215),
        ("descrizione", 216),
        ("email_gestione_password", 218),
    ):
        partial = dict(body)
        del partial[field]
        await api.fails("POST", path, partial, status=428, code=code, message=f"{field} required")
    await api.fails(
        "POST", path, multiutenza_body(email_gestione_password="nope"), status=406, code=219
    )
    for tipo in ("DOMICILIODIGITALE", "PECMASSIVA"):
        other = active(emu, tipo)
        await api.fails(
            "POST",
            f"/pec/{other}/multiutenza",
            body,
            status=428,
            code=390,
            message="this service cannot be activated on these boxes: DOMICILIODIGITALE|PECMASSIVA",
        )
    registered = active(emu, stato="registrata")
    await api.fails("POST", f"/pec/{registered}/multiutenza", body, status=428, code=211)
    emu.wallet = Decimal("2.99")
    await api.fails(
        "POST", path, body, status=402, code=220, message="Insufficient Credit in Wallet: 2.99"
    )
    assert emu.ledger == []
    assert "multiutenza" not in emu.mailboxes[mailbox_id]


# --- ledger --------------------------------------------------------------------------------------


async def test_ledger_matches_wallet(api):
    emu = api.emu
    start = emu.wallet
    created = await api.ok("POST", "/pec", mailbox_body())
    mailbox_id = created["id"]
    await api.ok("PATCH", f"/pec/{mailbox_id}/attivazione", {"documenti": pdf_base64()})
    emu.complete_activation(mailbox_id)
    await api.ok("GET", f"/pec/{mailbox_id}/rinnovo")
    await api.ok("PATCH", f"/pec/{mailbox_id}/modifica", {"spazio_disco": "+1024"})
    await api.ok("PATCH", f"/pec/{mailbox_id}/conservazione", {"documenti": pdf_base64()})
    await api.ok("PATCH", f"/pec/{mailbox_id}/trasformazione", {"tipo_casella": "GOLD"})
    await api.ok("POST", f"/pec/{mailbox_id}/multiutenza", multiutenza_body())
    await api.ok("DELETE", f"/pec/{mailbox_id}")
    ops = [c.operation for c in emu.ledger]
    assert ops == ["register", "renewal", "space", "conservazione", "trasformazione", "multiutenza"]
    assert all(c.target_id == mailbox_id for c in emu.ledger)
    assert start - emu.wallet == sum(c.amount for c in emu.ledger)
    assert emu.charges(target_id="other") == []
    with pytest.raises(AttributeError):
        emu.ledger[0].amount = Decimal(0)  # type: ignore[misc]


async def test_seeded_ids_are_deterministic():
    a, b = Emulator(seed=5), Emulator(seed=5)
    ids_a = [a.seed_mailbox(f"m{i}@testcert.legalmail.it") for i in range(3)]
    ids_b = [b.seed_mailbox(f"m{i}@testcert.legalmail.it") for i in range(3)]
    assert ids_a == ids_b
    assert Emulator(seed=6).seed_mailbox("m0@testcert.legalmail.it") != ids_a[0]

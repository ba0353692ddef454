"""/comunica_pec and the form downloads (PDF, text/plain errors)."""

from __future__ import annotations

import base64
from decimal import Decimal

import aiohttp
import pytest

from pecapi.testing import DEFAULT_TOKEN, Emulator, make_pdf
from pecapi.testing.errors import COM_REQUIRED
from pecapi.testing.samples import comunica_body, p7m_base64, p7m_bytes, pdf_base64

ZERO_ID = "0123456789abcdef01234567"


async def test_list_empty(api):
    await api.fails(
        "GET", "/comunica_pec", status=404, code=332, message="no request linked to this account"
    )


async def test_create_and_full_flow(api):
    emu = api.emu
    data = await api.ok("POST", "/comunica_pec", comunica_body())
    request_id = data["id"]
    assert data == {
        "casella_pec": "mypec@pec.com",
        "cf": "RSSMRA80A01L117D",
        "nome": "mario",
        "cognome": "rossi",
        "qualifica": "LEGALE_RAPPRESENTANTE",
        "email": "mail@domain.com",
        "cellulare": "3490000018",
        "ragione_sociale": "azienda test",
        "cf_piva": "12345678910",
        "comune": "roma",
        "provincia": "RM",
        # no callback: left out (the schema's Callback is an object; the examples' false
        # is not one)
        "stato": "codice_in_richiesta",
        "codice_registro_imprese": "openapi",
        "documenti_registro_imprese": [],
        "owner": "mail@domain.com",
        "timestamp": data["timestamp"],
        "id": request_id,
    }
    assert [(c.operation, c.amount, c.target_id) for c in emu.ledger] == [
        ("comunica_pec", Decimal("10.00"), request_id)
    ]
    listed = await api.ok("GET", "/comunica_pec")
    assert listed == [
        {
            "id": request_id,
            "casella_pec": "mypec@pec.com",
            "stato": "codice_in_richiesta",
            "timestamp": data["timestamp"],
            "owner": "mail@domain.com",
        }
    ]
    # upload refused until the code is issued
    await api.fails(
        "PATCH",
        f"/comunica_pec/{request_id}",
        {"documenti": p7m_base64()},
        status=406,
        code=355,
        message="you can only upload documents when stato is 'in_attesa_di_documenti'",
    )
    emu.advance_comunica(request_id)
    assert (await api.ok("GET", f"/comunica_pec/{request_id}"))["stato"] == "in_attesa_di_documenti"
    data = await api.ok("PATCH", f"/comunica_pec/{request_id}", {"documenti": p7m_base64()})
    assert data["stato"] == "documenti_caricati"
    assert data["documenti_registro_imprese"] == [f"{request_id}_0_registro_imprese.p7m"]
    assert emu.documents[f"{request_id}_0_registro_imprese.p7m"] == p7m_bytes()
    emu.advance_comunica(request_id)
    assert emu.comunica_requests[request_id]["stato"] == "comunicazione_evasa"
    with pytest.raises(ValueError, match="nothing pending"):
        emu.advance_comunica(request_id)
    assert len(emu.ledger) == 1


async def test_create_with_callback(api):
    data = await api.ok("POST", "/comunica_pec", comunica_body(callback={"url": "https://x.it/cb"}))
    assert data["callback"] == {
        "url": "https://x.it/cb",
        "field": "data",
        "method": "POST",
        "data": {},
    }


async def test_no_callback_is_left_out(api):
    created = await api.ok("POST", "/comunica_pec", comunica_body())
    seeded = api.emu.seed_comunica("s@pec.it", stato="in_attesa_di_documenti")
    uploaded = await api.ok("PATCH", f"/comunica_pec/{seeded}", {"documenti": p7m_base64()})
    for data in (created, await api.ok("GET", f"/comunica_pec/{created['id']}"), uploaded):
        assert "callback" not in data  # the schema's Callback is an object: no `false`
    assert "callback" not in api.emu.comunica_requests[seeded]


async def test_auto_process_comunica():
    emu = Emulator(auto_process=True)
    async with emu.serve() as server, aiohttp.ClientSession() as s:
        headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        async with s.post(server.url + "/comunica_pec", json=comunica_body(), headers=headers) as r:
            data = (await r.json())["data"]
            assert data["stato"] == "in_attesa_di_documenti"
        url = f"{server.url}/comunica_pec/{data['id']}"
        async with s.patch(url, json={"documenti": [p7m_base64()]}, headers=headers) as r:
            assert (await r.json())["data"]["stato"] == "comunicazione_evasa"


@pytest.mark.parametrize("field", sorted(COM_REQUIRED))
async def test_create_required_fields(api, field):
    body = comunica_body()
    del body[field]
    await api.fails(
        "POST",
        "/comunica_pec",
        body,
        status=428,
        code=COM_REQUIRED[field].code,
        message=f"{field} required",
    )
    assert api.emu.ledger == []


async def test_create_cf_piva_required_is_344(api):
    await api.fails(
        "POST", "/comunica_pec", comunica_body(cf_piva=""), status=428, code=344,
        message="cf_piva required",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("casella_pec", "not an address", 336),
        ("qualifica", "legale_rappresentante", 341),
        ("qualifica", "CEO", 341),
        ("email", "x", 348),
        ("pec_amministratore", "yes", 349),
        ("callback", {"url": ""}, 350),
        ("nome", ["mario"], 352),
    ],
)
async def test_create_invalid_values(api, field, value, code):
    await api.fails("POST", "/comunica_pec", comunica_body(**{field: value}), status=406, code=code)
    assert api.emu.ledger == []


async def test_create_insufficient_credit(api):
    api.emu.wallet = Decimal("9.99")
    await api.fails(
        "POST",
        "/comunica_pec",
        comunica_body(),
        status=402,
        code=351,
        message="Insufficient Credit in Wallet: 9.99",
    )
    assert not api.emu.comunica_requests
    assert api.emu.ledger == []


async def test_get_errors(api):
    await api.fails("GET", "/comunica_pec/abc", status=400, code=333, message="Wrong id")
    await api.fails(
        "GET", f"/comunica_pec/{ZERO_ID}", status=404, code=334, message="no request found"
    )


async def test_upload_errors(api):
    emu = api.emu
    request_id = emu.seed_comunica("x@pec.it", stato="in_attesa_di_documenti")
    path = f"/comunica_pec/{request_id}"
    await api.fails("PATCH", "/comunica_pec/abc", {"documenti": p7m_base64()}, status=400, code=353)
    await api.fails(
        "PATCH", f"/comunica_pec/{ZERO_ID}", {"documenti": p7m_base64()}, status=404, code=354
    )
    await api.fails("PATCH", path, {}, status=428, code=356, message="documenti required")
    await api.fails("PATCH", path, {"documenti": ""}, status=428, code=356)
    for bad in (pdf_base64(), "%%%", base64.b64encode(b"\x30\x03abc").decode()):
        await api.fails(
            "PATCH", path, {"documenti": bad}, status=406, code=357,
            message="wrong file format, p7m required",
        )  # fmt: skip
    assert emu.comunica_requests[request_id]["stato"] == "in_attesa_di_documenti"


async def test_upload_accepts_pem_pkcs7(api):
    request_id = api.emu.seed_comunica("x@pec.it", stato="in_attesa_di_documenti")
    pem = b"-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----\n"
    data = await api.ok(
        "PATCH", f"/comunica_pec/{request_id}", {"documenti": base64.b64encode(pem).decode()}
    )
    assert data["stato"] == "documenti_caricati"


# --- forms --------------------------------------------------------------------------------------


def assert_pdf(resp, mentions: str) -> None:
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/pdf"
    assert resp.raw.startswith(b"%PDF-")
    assert resp.raw.endswith(b"%%EOF")
    assert mentions.encode() in resp.raw


def assert_text(resp, status: int, text: str) -> None:
    assert resp.status == status
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.raw.decode() == text


async def test_activation_form(api):
    emu = api.emu
    registered = emu.seed_mailbox("a@testcert.legalmail.it", stato="registrata")
    assert_pdf(await api.call("GET", f"/pec/{registered}/modulo_attivazione"), registered)
    errati = emu.seed_mailbox("b@testcert.legalmail.it", stato="documenti_errati")
    assert_pdf(await api.call("GET", f"/pec/{errati}/modulo_attivazione"), errati)
    evasa = emu.seed_mailbox("c@testcert.legalmail.it")
    resp = await api.call("GET", f"/pec/{evasa}/modulo_attivazione")
    assert resp.status == 406
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert_text(await api.call("GET", "/pec/bad/modulo_attivazione"), 400, "Invalid id")
    assert_text(
        await api.call("GET", f"/pec/{ZERO_ID}/modulo_attivazione"),
        404,
        f"no request matches this id: {ZERO_ID}",
    )


async def test_conservation_form(api):
    emu = api.emu
    evasa = emu.seed_mailbox("a@testcert.legalmail.it")
    assert_pdf(await api.call("GET", f"/pec/{evasa}/modulo_conservazione"), evasa)
    registered = emu.seed_mailbox("b@testcert.legalmail.it", stato="registrata")
    assert_text(
        await api.call("GET", f"/pec/{registered}/modulo_conservazione"),
        406,
        "you cannot activate conservation if you do not first activate a pec",
    )
    active = emu.seed_mailbox("c@testcert.legalmail.it", conservazione=True)
    assert_text(
        await api.call("GET", f"/pec/{active}/modulo_conservazione"),
        406,
        "conservazione service is already active",
    )
    dd = emu.seed_mailbox("d@test.domiciliodigitale.com", tipo_casella="DOMICILIODIGITALE")
    assert (await api.call("GET", f"/pec/{dd}/modulo_conservazione")).status == 406
    assert_text(await api.call("GET", "/pec/bad/modulo_conservazione"), 400, "Invalid id")
    assert (await api.call("GET", f"/pec/{ZERO_ID}/modulo_conservazione")).status == 404


async def test_procura(api):
    emu = api.emu
    waiting = emu.seed_comunica("a@pec.it", stato="in_attesa_di_documenti")
    assert_pdf(await api.call("GET", f"/comunica_pec/{waiting}/procura_registro_imprese"), waiting)
    new = emu.seed_comunica("b@pec.it")
    assert_text(
        await api.call("GET", f"/comunica_pec/{new}/procura_registro_imprese"),
        406,
        "you cannot download this module, it doesn't exist yet",
    )
    done = emu.seed_comunica("c@pec.it", stato="comunicazione_evasa")
    assert (await api.call("GET", f"/comunica_pec/{done}/procura_registro_imprese")).status == 406
    assert_text(
        await api.call("GET", "/comunica_pec/x/procura_registro_imprese"), 400, "Invalid id"
    )
    assert_text(
        await api.call("GET", f"/comunica_pec/{ZERO_ID}/procura_registro_imprese"),
        404,
        f"no request matches this id: {ZERO_ID}",
    )


async def test_forms_need_a_token(api):
    evasa = api.emu.seed_mailbox("a@testcert.legalmail.it")
    await api.fails("GET", f"/pec/{evasa}/modulo_conservazione", status=401, code=401, token=None)


def test_make_pdf_structure():
    pdf = make_pdf("Title (with parens) \\ and àccents", ["line 1", "line 2"])
    assert pdf.startswith(b"%PDF-1.4")
    assert pdf.endswith(b"%%EOF")
    # the xref offsets point at the objects
    xref_at = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref_at:].startswith(b"xref")
    entries = pdf[xref_at:].split(b"\n")[3:9]
    for number, entry in enumerate(entries, start=1):
        offset = int(entry[:10])
        assert pdf[offset:].startswith(f"{number} 0 obj".encode())

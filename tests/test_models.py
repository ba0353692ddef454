"""Models: strict requests (errors name the field), lenient responses, the spec's examples."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pecapi import (
    Callback,
    ComunicaPec,
    ComunicaPecRequest,
    ComunicaPecState,
    ComunicaPecSummary,
    Mailbox,
    MailboxState,
    MailboxSummary,
    MailboxUser,
    TipoCasella,
    ValidationError,
)
from pecapi.models.converter import structure, unstructure
from pecapi.models.mailbox import SpaceChange
from pecapi.models.rules import check_mailbox_domain
from tests.conftest import make_registration


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return {**spec["components"]["schemas"][name], "components": spec["components"]}


# -- requests ----------------------------------------------------------------------------


def test_registration_normalises_case_and_dates() -> None:
    reg = make_registration(
        tipo_casella="bronze",
        tipo_cliente="pv",
        sesso_richiedente="f",
        data_nascita_richiedente="01/02/1990",
        tipo_documento="patente",
        data_scadenza_documento=dt.date(2030, 1, 31),
    )
    body = unstructure(reg)
    assert body["tipo_casella"] == "BRONZE"
    assert body["tipo_cliente"] == "PV"
    assert body["sesso_richiedente"] == "F"
    assert body["tipo_documento"] == "PATENTE"
    assert body["data_nascita_richiedente"] == "01/02/1990"
    assert body["data_scadenza_documento"] == "31/01/2030"


def test_registration_omits_unset_and_blank_fields() -> None:
    body = unstructure(make_registration(sottotipo_cliente="", denominazione_titolare=" "))
    assert "sottotipo_cliente" not in body
    assert "denominazione_titolare" not in body
    assert "callback" not in body
    assert "autorinnovo" not in body
    assert all(value not in ("", None) for value in body.values())


def test_request_bodies_validate_against_the_spec(spec: dict[str, Any]) -> None:
    reg = make_registration(
        sottotipo_cliente="x",
        callback=Callback(url="https://example.org/cb", method="json", field="d", data={"k": 1}),
        autorinnovo=True,
        tipo_documento="CARTA_D_IDENTITA",
        numero_documento="AB123",
        data_rilascio_documento="01/01/2020",
    )
    jsonschema.validate(unstructure(reg), _schema(spec, "BodyPostPec"))
    user = MailboxUser(
        nome="luca", cognome="bianchi", descrizione="d", email_gestione_password="l@d.it"
    )
    jsonschema.validate(unstructure(user), _schema(spec, "BodyPostMultiutenza"))
    req = ComunicaPecRequest(
        casella_pec="a@pec.it",
        cf="RSSMRA80A01L117D",
        nome="mario",
        cognome="rossi",
        qualifica="legale_rappresentante",
        email="mail@domain.com",
        cellulare="3400000000",
        ragione_sociale="azienda",
        cf_piva="12345678910",
        comune="roma",
        provincia="RM",
        pec_amministratore=False,
    )
    jsonschema.validate(unstructure(req), _schema(spec, "BodyPostComunicaPec"))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"tipo_casella": "PLATINUM"}, "tipo_casella"),
        ({"tipo_cliente": "ZZ"}, "tipo_cliente"),
        ({"sesso_richiedente": "X"}, "sesso_richiedente"),
        ({"sottotipo_cliente": "QQ"}, "sottotipo_cliente"),
        ({"tipo_cliente": "IM", "sottotipo_cliente": "PA"}, "sottotipo_cliente"),
        ({"tipo_documento": "TESSERA"}, "tipo_documento"),
        ({"data_nascita_richiedente": "1982-04-11"}, "data_nascita_richiedente"),
        ({"data_nascita_richiedente": "31/02/1982"}, "data_nascita_richiedente"),
        ({"data_scadenza_documento": "soon"}, "data_scadenza_documento"),
        ({"data_rilascio_documento": 12}, "data_rilascio_documento"),
        ({"nome_richiedente": ""}, "nome_richiedente"),
        ({"telefono": "   "}, "telefono"),
        ({"cap_titolare": 42}, "cap_titolare"),
        ({"casella_pec": "not-an-address"}, "casella_pec"),
        ({"email": "x@"}, "email"),
        ({"cellulare": 3400}, "cellulare"),
        ({"autorinnovo": "yes"}, "autorinnovo"),
        ({"callback": Callback(url="ftp://x")}, "callback.url"),
        ({"callback": Callback(url="https://x.it", method="GET")}, "callback.method"),
        ({"callback": Callback(url="https://x.it", data={"k": object()})}, "callback.data"),
        ({"callback": {"url": "https://x.it"}}, "callback"),
    ],
)
def test_bad_registration_names_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_registration(**overrides)
    assert info.value.field == field
    assert field in str(info.value)


def test_missing_required_field_is_a_type_error_from_python() -> None:
    # attrs makes required fields required keyword arguments: forgetting one fails at once.
    with pytest.raises(TypeError, match="nome"):
        MailboxUser(cognome="b", descrizione="d", email_gestione_password="a@b.it")  # type: ignore[call-arg]


def test_comunica_request_validation() -> None:
    with pytest.raises(ValidationError) as info:
        ComunicaPecRequest(
            casella_pec="a@pec.it",
            cf="X",
            nome="m",
            cognome="r",
            qualifica="PRESIDENTE",
            email="m@d.it",
            cellulare="1",
            ragione_sociale="r",
            cf_piva="1",
            comune="c",
            provincia="p",
        )
    assert info.value.field == "qualifica"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"spazio_disco": 2048}, {"spazio_disco": 2048}),
        ({"spazio_disco": "3072"}, {"spazio_disco": 3072}),
        ({"spazio_storico": "+1024"}, {"spazio_storico": "+1024"}),
        ({"spazio_conservazione": 1536}, {"spazio_conservazione": 1536}),
        (
            {"spazio_conservazione": "+512", "spazio_disco": 1024},
            {"spazio_conservazione": "+512", "spazio_disco": 1024},
        ),
    ],
)
def test_space_values(kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    assert SpaceChange(**kwargs).as_body() == expected


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"spazio_disco": 1000}, "spazio_disco"),
        ({"spazio_storico": "+100"}, "spazio_storico"),
        ({"spazio_conservazione": 1024 + 256}, "spazio_conservazione"),
        ({"spazio_disco": 0}, "spazio_disco"),
        ({"spazio_disco": -1024}, "spazio_disco"),
        ({"spazio_disco": "+-1024"}, "spazio_disco"),
        ({"spazio_disco": True}, "spazio_disco"),
        ({"spazio_disco": 1024.0}, "spazio_disco"),
        ({}, "spazio_disco"),
    ],
)
def test_bad_space_values(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SpaceChange(**kwargs)
    assert info.value.field == field


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=10_000))
def test_space_multiples_property(n: int) -> None:
    assert SpaceChange(spazio_disco=n * 1024).spazio_disco == n * 1024
    assert SpaceChange(spazio_conservazione=f"+{n * 512}").spazio_conservazione == f"+{n * 512}"
    if n % 1024:
        with pytest.raises(ValidationError):
            SpaceChange(spazio_disco=n)


@pytest.mark.parametrize(
    ("address", "tipo", "sandbox", "ok"),
    [
        ("a@testcert.legalmail.it", "BRONZE", True, True),
        ("a@test.domiciliodigitale.com", "DOMICILIODIGITALE", True, True),
        ("a@test.domiciliodigitale.com", "GOLD", True, False),
        ("a@legalmail.it", "BRONZE", True, False),
        ("a@legalmail.it", "GOLD", False, True),
        ("a@domiciliodigitale.com", "DOMICILIODIGITALE", False, True),
        ("a@pecmassiva.com", "PECMASSIVA", False, True),
        ("a@legalmail.it", "PECMASSIVA", False, False),
        ("a@pecmassiva.com", "STANDARD", False, False),
        ("a@testcert.legalmail.it", "BRONZE", False, False),
        ("a@pec.mycompany.it", "SILVER", False, True),
    ],
)
def test_mailbox_domain_rules(address: str, tipo: str, sandbox: bool, ok: bool) -> None:
    if ok:
        check_mailbox_domain(address, TipoCasella(tipo), sandbox=sandbox)
    else:
        with pytest.raises(ValidationError) as info:
            check_mailbox_domain(address, TipoCasella(tipo), sandbox=sandbox)
        assert info.value.field == "casella_pec"


# -- responses ---------------------------------------------------------------------------


def _examples(spec: dict[str, Any]) -> list[tuple[str, Any]]:
    found = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            response = op["responses"].get("200", {})
            example = response.get("content", {}).get("application/json", {}).get("example")
            if isinstance(example, dict) and isinstance(example.get("data"), (dict, list)):
                found.append((f"{method.upper()} {path}", example["data"]))
    return found


def _model_for(name: str, data: Any) -> type[Any] | None:
    if "comunica_pec" in name:
        return ComunicaPecSummary if isinstance(data, list) else ComunicaPec
    if name in ("GET /pec",):
        return MailboxSummary
    if "/pec" in name and "verifica" not in name and "domini" not in name:
        return Mailbox
    return None


def test_every_spec_example_decodes(spec: dict[str, Any]) -> None:
    decoded = 0
    for name, data in _examples(spec):
        model = _model_for(name, data)
        if model is None:
            continue
        items = data if isinstance(data, list) else [data]
        for item in items:
            obj = structure(item, model)
            assert obj.id == item["id"], name
            assert obj.extra == {}, f"{name}: unexpected unknown fields {dict(obj.extra)}"
            decoded += 1
    assert decoded >= 15


def test_response_leniency() -> None:
    raw = {
        "id": "6040e4613a716838dc4eee0e",
        "stato": "sospesa",
        "tipo_casella": "PLATINUM",
        "spazio_disco": "2048",
        "spazio_storico": "lots",
        "conservazione": "1",
        "data_scadenza": "",
        "cellulare": "",
        "callback": False,
        "documenti_attivazione": None,
        "timestamp": {"registrazione": 1614865504, "nuovo": 1},
        "brand_new_field": {"x": 1},
    }
    box = structure(raw, Mailbox)
    assert box.stato is not None and box.stato.value == "sospesa" and not box.stato.known
    assert box.tipo_casella is not None and not box.tipo_casella.known
    assert box.spazio_disco == 2048
    assert box.spazio_storico is None
    assert box.conservazione is True
    assert box.data_scadenza is None
    assert box.cellulare is None
    assert box.callback is None
    assert box.documenti_attivazione == ()
    assert box.extra == {"brand_new_field": {"x": 1}, "spazio_storico": "lots"}
    assert box.timestamp is not None and box.timestamp.extra == {"nuovo": 1}
    assert box.timestamp.registered_at == dt.datetime(2021, 3, 4, 13, 45, 4, tzinfo=dt.timezone.utc)


def test_known_states_are_members() -> None:
    box = structure({"id": "m1", "stato": "evasa"}, Mailbox)
    assert box.stato is MailboxState.EVASA
    assert box.stato.known
    req = structure(
        {"id": "c1", "stato": "documenti_caricati", "callback": False, "timestamp": 1622127248},
        ComunicaPec,
    )
    assert req.stato is ComunicaPecState.DOCUMENTI_CARICATI
    assert req.callback is None
    assert req.timestamp_at == dt.datetime(2021, 5, 27, 14, 54, 8, tzinfo=dt.timezone.utc)


@settings(deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["id", "stato", "spazio_disco", "timestamp", "multiutenza", "callback", "x"]
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=3), inner, max_size=3)
            ),
            max_leaves=6,
        ),
    )
)
def test_decoding_any_object_never_raises_but_for_its_id(raw: dict[str, Any]) -> None:
    # Only the id can make a mailbox unreadable, and only as a TypeError or ValueError:
    # the client turns those into a ResponseDecodeError (tests/test_typing.py).
    try:
        box = structure(raw, Mailbox)
    except (TypeError, ValueError):
        readable = isinstance(raw.get("id"), (str, int, float)) and not isinstance(raw["id"], bool)
        assert not (readable and str(raw["id"]).strip())
    else:
        assert isinstance(box.id, str) and box.id.strip()
    box = structure({**raw, "id": "6040e4613a716838dc4eee0e"}, Mailbox)
    assert isinstance(box, Mailbox)
    assert box.id == "6040e4613a716838dc4eee0e"
    json.dumps(dict(box.extra))


def test_decoding_a_non_object_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        structure(["not", "an", "object"], Mailbox)

"""Public JSON conversion: ``to_json`` / ``from_json`` for every model, answers read
leniently and requests strictly, round trips over real answers and generated models."""

from __future__ import annotations

import datetime as dt
import json
import typing
from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pecapi import (
    Callback,
    CallbackMethod,
    ComunicaPec,
    ComunicaPecRequest,
    ComunicaPecSummary,
    DomainCheck,
    Mailbox,
    MailboxRegistration,
    MailboxState,
    MailboxSummary,
    MailboxUser,
    MailboxUserInfo,
    PecClient,
    Timestamps,
    ValidationError,
)
from pecapi.jsonio import JSON_MODELS, from_json, to_json
from pecapi.models import ApiEnum, UserTimestamps
from pecapi.testing import Emulator, samples
from tests.conftest import P7M_BYTES, PDF_BYTES, make_comunica_request, make_registration

ANSWERS = (
    Mailbox,
    MailboxSummary,
    MailboxUserInfo,
    Timestamps,
    UserTimestamps,
    ComunicaPec,
    ComunicaPecSummary,
)
CALLBACK = Callback(
    url="https://example.org/hook?pecapi_sig=abc",
    method=CallbackMethod.JSON,
    data={"pratica": 7, "tags": ["a", "b"], "nested": {"x": None}},
)
USER = MailboxUser(
    nome="luca", cognome="bianchi", descrizione="prima utenza", email_gestione_password="l@d.it"
)


def round_trip(model: Any) -> Any:
    """``model`` through to_json, the JSON text and from_json: what a web backend does."""
    text = json.dumps(to_json(model))
    return from_json(type(model), json.loads(text))


def assert_round_trips(model: Any) -> None:
    back = round_trip(model)
    assert back == model
    if hasattr(model, "extra"):  # not compared by ==
        assert dict(back.extra) == dict(model.extra)


# -- over loopback: real answers -------------------------------------------------------


async def test_every_answer_of_the_emulator_round_trips(
    client: PecClient, emulator: Emulator
) -> None:
    registration = make_registration(callback=CALLBACK, autorinnovo=True)
    box = await client.mailboxes.register(registration)
    assert box.id is not None
    await client.mailboxes.activate(box.id, PDF_BYTES)
    emulator.complete_activation(box.id)
    await client.mailboxes.add_user(box.id, USER)
    full = await client.mailboxes.get(box.id)
    assert full.multiutenza and full.timestamp is not None and full.data_scadenza is not None
    listed = await client.mailboxes.list()
    request = await client.comunica_pec.create(make_comunica_request(callback=CALLBACK))
    assert request.id is not None
    emulator.advance_comunica(request.id)
    uploaded = await client.comunica_pec.upload_documents(request.id, P7M_BYTES)
    requests = await client.comunica_pec.list()
    check = await client.domains.check("testcert.legalmail.it")
    models: list[Any] = [box, full, *listed, request, uploaded, *requests, check]
    models += [full.timestamp, *full.multiutenza, full.multiutenza[0].timestamp, full.callback]
    models += [registration, USER, make_comunica_request(callback=CALLBACK)]
    assert {type(m) for m in models} == JSON_MODELS
    for model in models:
        assert_round_trips(model)


async def test_fields_the_schema_does_not_know_survive(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox(
        "x@testcert.legalmail.it",
        tipo_cliente="ZZ",  # not in the schema: a stand-in member
        nuovo_campo={"a": [1, 2]},
        data_scadenza="not a date",  # unreadable: None, the raw value kept
    )
    box = await client.mailboxes.get(box_id)
    assert box.tipo_cliente is not None and not box.tipo_cliente.known
    assert box.data_scadenza is None and box.extra["data_scadenza"] == "not a date"
    out = to_json(box)
    assert out["tipo_cliente"] == "ZZ"
    assert out["nuovo_campo"] == {"a": [1, 2]}
    assert out["data_scadenza"] == "not a date"
    assert_round_trips(box)
    nested = from_json(Mailbox, {**out, "timestamp": {"scadenza": 9, "sospensione": 5}})
    assert to_json(nested)["timestamp"] == {"scadenza": 9, "sospensione": 5}
    assert round_trip(nested).timestamp.extra == {"sospensione": 5}


# -- the JSON form ---------------------------------------------------------------------


def test_to_json_writes_the_apis_own_form() -> None:
    registration = make_registration(
        data_scadenza_documento=dt.date(2031, 1, 2), tipo_documento="patente", callback=CALLBACK
    )
    out = to_json(registration)
    assert out["data_nascita_richiedente"] == "11/04/1982"  # the API's dd/mm/yyyy
    assert out["data_scadenza_documento"] == "02/01/2031"
    assert out["tipo_casella"] == "BRONZE" and type(out["tipo_casella"]) is str
    assert out["callback"] == {
        "url": CALLBACK.url,
        "method": "JSON",
        "data": {"pratica": 7, "tags": ["a", "b"], "nested": {"x": None}},
    }
    assert "cellulare" not in out and "sottotipo_cliente" not in out  # unset: omitted
    box = Mailbox(
        id="1", stato=MailboxState.EVASA, conservazione=False, timestamp=Timestamps(scadenza=9)
    )
    assert to_json(box) == {
        "id": "1",
        "stato": "evasa",
        "conservazione": False,  # False is a value, not "unset"
        "timestamp": {"scadenza": 9},
    }
    assert to_json(Mailbox(id="x")) == {"id": "x"}
    assert to_json(Timestamps()) == {}


def test_the_spec_example_bodies_are_read() -> None:
    body = samples.mailbox_body()  # "" for unset fields, the callback in the API's form
    registration = from_json(MailboxRegistration, body)
    assert registration.callback == Callback(url=body["callback"]["url"], field="data")
    assert registration.sottotipo_cliente is None and registration.denominazione_titolare is None
    assert registration == samples.registration(callback=registration.callback)
    assert from_json(ComunicaPecRequest, samples.comunica_body()) == samples.comunica_request()
    assert from_json(MailboxUser, samples.multiutenza_body()).nome


@pytest.mark.parametrize("data", [{}, {"id": ""}, {"id": "  "}, {"id": []}, {"id": None}])
@pytest.mark.parametrize("cls", [Mailbox, ComunicaPec])
def test_an_answer_without_its_id_names_it(cls: type[Any], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        from_json(cls, data)
    assert info.value.field == "id"


def test_answers_are_read_leniently() -> None:
    box = from_json(
        Mailbox,
        {"id": 5, "sms": "1", "stato": "", "callback": False, "boh": [1], "spazio_disco": "x"},
    )
    assert (box.id, box.sms, box.stato, box.callback) == ("5", True, None, None)
    assert box.extra == {"boh": [1], "spazio_disco": "x"}
    summary = from_json(MailboxSummary, {"data_scadenza": "01/02/2030"})
    assert summary.data_scadenza == dt.date(2030, 2, 1)


# -- strict requests -------------------------------------------------------------------

BODY = samples.mailbox_body()


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in BODY.items() if k != key}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**BODY, "casella": "x"}, "casella"),
        (_without("email"), "email"),
        ({**BODY, "email": None}, "email"),
        ({**BODY, "callback": {"url": "https://a.it", "extra": 1}}, "callback.extra"),
        ({**BODY, "callback": {"method": "POST"}}, "callback.url"),
        ({**BODY, "callback": {"url": "ftp://a.it"}}, "callback.url"),
        ({**BODY, "callback": {"url": "https://a.it", "method": "GET"}}, "callback.method"),
        ({**BODY, "callback": {"url": "https://a.it", "data": [1]}}, "callback.data"),
        ({**BODY, "callback": {"url": "https://a.it", "field": 3}}, "callback.field"),
        ({**BODY, "callback": "https://a.it"}, "callback"),
        ({**BODY, "autorinnovo": "yes"}, "autorinnovo"),
        ({**BODY, "tipo_casella": 3}, "tipo_casella"),
        ({**BODY, "tipo_casella": "PLATINUM"}, "tipo_casella"),
        ({**BODY, "data_nascita_richiedente": "1982-04-11"}, "data_nascita_richiedente"),
        ({**BODY, "cellulare": 347}, "cellulare"),
        ({**BODY, "email": "not an address"}, "email"),
        ({**BODY, "nome_richiedente": "  "}, "nome_richiedente"),
        ({**BODY, "7": "x"}, "7"),
    ],
)
def test_a_bad_registration_names_its_field(data: dict[Any, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        from_json(MailboxRegistration, data)
    assert info.value.field == field


def test_the_other_request_models_are_strict() -> None:
    with pytest.raises(ValidationError) as info:
        from_json(ComunicaPecRequest, {**samples.comunica_body(), "pec_amministratore": "no"})
    assert info.value.field == "pec_amministratore"
    with pytest.raises(ValidationError) as info:
        from_json(MailboxUser, {"nome": "a"})
    assert info.value.field == "cognome"
    with pytest.raises(ValidationError) as info:  # a Callback alone is named as in a body
        from_json(Callback, {"url": "https://a.it", "metodo": "JSON"})
    assert info.value.field == "callback.metodo"
    with pytest.raises(ValidationError) as info:
        from_json(DomainCheck, {"dominio": "a.it", "certified": "yes"})
    assert info.value.field == "certified"
    assert from_json(Callback, {"url": "https://a.it", "method": "json"}).method is (
        CallbackMethod.JSON
    )


@pytest.mark.parametrize("data", [None, [], "{}", 5, {7: "x"}])
@pytest.mark.parametrize("cls", [Mailbox, MailboxRegistration, Callback])
def test_not_an_object_is_refused(cls: type[Any], data: Any) -> None:
    with pytest.raises(ValidationError) as info:
        from_json(cls, data)
    if isinstance(data, dict):  # a key that is not a field's name
        assert info.value.field in ("7", "callback.7", "id")
    else:
        assert info.value.field == ("callback" if cls is Callback else None)


@pytest.mark.parametrize("value", [object(), {"id": "1"}, [Mailbox(id="1")], Mailbox])
def test_only_models_convert(value: Any) -> None:
    with pytest.raises(ValidationError):
        to_json(value)
    with pytest.raises(ValidationError):
        from_json(value, {})  # not a model class


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from([*BODY, "callback.url", "callback.method", "x"]), value=JSON_VALUES)
def test_a_registration_from_any_json_is_made_or_refused_by_field(key: str, value: Any) -> None:
    data = {**BODY, "callback": dict(BODY["callback"])}
    if key.startswith("callback."):
        data["callback"][key.removeprefix("callback.")] = value
    else:
        data[key] = value
    try:
        registration = from_json(MailboxRegistration, data)
    except ValidationError as exc:  # never a TypeError, KeyError or cattrs' own errors
        field = exc.field
    else:
        assert_round_trips(registration)
        return
    assert field is not None and field.split(".")[0] in (key.split(".")[0], "x")


# -- generated answers round trip ------------------------------------------------------

JSON_OBJECTS = st.dictionaries(st.text(), JSON_VALUES, max_size=3)


def _enum_values(enum: type[ApiEnum]) -> st.SearchStrategy[ApiEnum]:
    # Known members, and values the schema does not list (stand-in members).
    return st.sampled_from(list(enum)) | st.text(min_size=1).map(enum.lenient)


def _strategy(kind: Any) -> st.SearchStrategy[Any]:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if type(None) in typing.get_args(kind):
        return st.none() | _strategy(args[0])
    if typing.get_origin(kind) is tuple:
        return st.lists(_strategy(args[0]), max_size=3).map(tuple)
    if kind is str:
        return st.text(min_size=1)  # "" reads as unset
    if kind is int:
        return st.integers()
    if kind is bool:
        return st.booleans()
    if kind is dt.date:
        return st.dates()
    if kind is Callback:
        return st.builds(
            Callback,
            url=st.text(),
            method=st.none() | st.sampled_from(list(CallbackMethod)),
            field=st.none() | st.text(),
            data=st.none() | JSON_OBJECTS,
        )
    if isinstance(kind, type) and issubclass(kind, ApiEnum):
        return _enum_values(kind)
    if attrs.has(kind):
        return _model(kind)
    raise AssertionError(f"no strategy for {kind}")


def _model(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _strategy(hints[f.name]) for f in attrs.fields(cls) if f.name != "extra"}
    if hints["id" if "id" in hints else "extra"] is str:  # a required id: never blank
        fields["id"] = st.text(min_size=1).filter(str.strip)
    return st.builds(cls, **fields)


@pytest.mark.parametrize("cls", [*ANSWERS, Callback])
def test_generated_answers_round_trip(cls: type[Any]) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_model(cls) if cls is not Callback else _strategy(Callback))
    def check(model: Any) -> None:
        if cls is Callback:  # a Callback read alone is a request: strict; in answers lenient
            box = from_json(Mailbox, {"id": "1", "callback": to_json(model)})
            assert box.callback == model
        else:
            assert_round_trips(model)

    check()


def test_the_models_are_all_covered() -> None:
    assert (
        set(ANSWERS)
        | {Callback, DomainCheck, MailboxRegistration, MailboxUser}
        | {ComunicaPecRequest}
        == JSON_MODELS
    )
    assert all(isinstance(m, type) and attrs.has(m) for m in JSON_MODELS)
    assert isinstance(to_json(Timestamps()), Mapping)

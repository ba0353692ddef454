"""The generated decoders (pecapi.models.decoders) against the reference path, field by
field: same models, same ``extra``, same errors, on the spec's answers, lenient answers,
hostile values and generated ones."""

from __future__ import annotations

import copy
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pecapi import from_json, to_json
from pecapi.errors import ValidationError
from pecapi.models import (
    ComunicaPec,
    ComunicaPecSummary,
    Mailbox,
    MailboxState,
    MailboxSummary,
    MailboxUserInfo,
    Timestamps,
    TipoCasella,
)
from pecapi.models.converter import RESPONSE_MODELS, structure
from pecapi.models.decoder_source import write_decoder
from pecapi.models.decoders import decode_reference, model_plan
from pecapi.models.readers import DATE_CACHE, DATE_CACHE_SIZE

SPEC = json.loads((Path(__file__).parent / "data" / "pec.openapi.json").read_text("utf-8"))


def _example(path: str, method: str = "get") -> dict[str, Any]:
    answer = SPEC["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    data: dict[str, Any] = answer["example"]["data"]
    return data


CASELLA = _example("/pec/{id}")


def same(a: Any, b: Any) -> None:
    """Equal models, equal ``extra`` (not compared by ``==``), the same types throughout."""
    assert type(a) is type(b)
    assert a == b
    if attrs.has(type(a)):
        assert dict(getattr(a, "extra", {})) == dict(getattr(b, "extra", {}))
        for f in attrs.fields(type(a)):
            same(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, tuple):
        for x, y in zip(a, b, strict=True):
            same(x, y)


def both(data: Any, cls: type[Any]) -> Any:
    """Decode by both paths; they must agree (the model, or the error's type and text)."""
    try:
        expected = decode_reference(data, cls)
    except Exception as exc:
        error = exc
    else:
        got = structure(data, cls)
        same(got, expected)
        return got
    with pytest.raises(type(error)) as info:
        structure(data, cls)
    assert str(info.value) == str(error)
    return error


def test_the_spec_casella_decodes_as_by_the_reference_path() -> None:
    box = both(CASELLA, Mailbox)
    assert type(box) is Mailbox
    assert box.tipo_casella is TipoCasella.BRONZE and box.stato is MailboxState.REVOCATA
    assert box.data_scadenza == dt.date(2022, 3, 4)
    assert box.sottotipo_cliente is None and box.cellulare is None  # "" is unset
    assert box.multiutenza[0].timestamp is not None
    assert box.multiutenza[0].timestamp.attivazione == 1614868138
    assert box.callback is not None and box.callback.data == {}
    assert box.extra == {}


def test_a_decoded_model_is_a_plain_frozen_instance_of_its_class() -> None:
    box = structure(CASELLA, Mailbox)
    assert type(box) is Mailbox and type(box.timestamp) is Timestamps
    assert type(box.callback).__name__ == "Callback"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        box.id = "other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del box.uid  # type: ignore[misc]
    plain = {k: v for k, v in CASELLA.items() if k != "callback"}  # its data: a dict
    assert hash(structure(plain, Mailbox)) == hash(decode_reference(plain, Mailbox))
    assert copy.copy(box) == box
    assert attrs.evolve(box, uid="X").uid == "X"
    assert repr(box) == repr(decode_reference(CASELLA, Mailbox))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("spazio_disco", "3072", 3072),
        ("spazio_disco", 3072.0, 3072),
        ("sms", "true", True),
        ("sms", 0, False),
        ("sms", "", None),
        ("stato", "sospesa", "sospesa"),  # unknown: a stand-in member
        ("stato", "", None),
        ("tipo_documento", "PATENTE", "PATENTE"),
        ("cap_titolare", 42, "42"),
        ("data_scadenza", " 4/3/2022 ", dt.date(2022, 3, 4)),
        ("data_scadenza", "", None),
        ("callback", False, None),
        ("callback", [], None),
        ("documenti_attivazione", "one.pdf", ("one.pdf",)),
        ("documenti_attivazione", ["a", 1], ("a", "1")),
        ("documenti_attivazione", "", ()),
        ("multiutenza", "", ()),
        ("multiutenza", {}, ()),
        ("multiutenza", None, ()),
        ("owner", None, None),
    ],
)
def test_lenient_values_read_as_by_the_reference_path(
    field: str, value: Any, expected: Any
) -> None:
    box = both({**CASELLA, field: value}, Mailbox)
    assert getattr(box, field) == expected
    assert field not in box.extra


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("spazio_disco", "lots"),
        ("spazio_disco", True),
        ("sms", "maybe"),
        ("stato", ["evasa"]),  # unhashable: the enum lookup raises
        ("stato", 3),
        ("data_scadenza", "2022-03-04"),
        ("data_scadenza", 20220304),
        ("callback", "https://x.example"),
        ("callback", {"url": "https://x", "data": 5}),
        ("timestamp", [1, 2]),
        ("multiutenza", "ab"),
        ("multiutenza", [{"nome": "a"}, 5]),
        ("documenti_attivazione", {"a": 1}),
        ("casella_pec", {"nested": True}),
        ("casella_pec", ["x"]),
    ],
)
def test_an_unreadable_value_is_none_and_kept_in_extra(field: str, value: Any) -> None:
    box = both({**CASELLA, field: value}, Mailbox)
    assert box.extra[field] == value
    assert box.id == CASELLA["id"]  # the rest of the answer is still read


def test_unknown_fields_and_known_nulls_are_told_apart() -> None:
    box = both({**CASELLA, "nuovo": 1, "uid": None, "storico": None}, Mailbox)
    assert box.extra == {"nuovo": 1} and box.uid is None
    box = both({**CASELLA, "uid": None}, Mailbox)  # a null, and no unknown key
    assert box.extra == {}
    box = both({**CASELLA, "extra": {"a": 1}}, Mailbox)  # "extra" is not a field
    assert box.extra == {"extra": {"a": 1}}


@pytest.mark.parametrize("id_value", [None, "", "  ", [], {}, 7])
def test_a_mailbox_without_a_usable_id_fails_as_by_the_reference_path(id_value: Any) -> None:
    data = {**CASELLA, "id": id_value}
    if id_value == 7:
        assert both(data, Mailbox).id == "7"
        return
    error = both(data, Mailbox)
    assert isinstance(error, (TypeError, ValueError))
    with pytest.raises(ValidationError) as info:
        from_json(Mailbox, data)
    assert info.value.field == "id"


def test_a_missing_id_fails_and_a_listing_item_without_one_does_not() -> None:
    data = {k: v for k, v in CASELLA.items() if k != "id"}
    assert isinstance(both(data, Mailbox), TypeError)
    assert both(data, MailboxSummary).id is None


@pytest.mark.parametrize("data", [None, [], "x", 5, [CASELLA]])
def test_a_non_object_is_a_type_error(data: Any) -> None:
    with pytest.raises(TypeError, match="expected an object for Mailbox"):
        structure(data, Mailbox)


def test_the_reference_path_round_trips_through_to_json() -> None:
    box = structure({**CASELLA, "nuovo": [1]}, Mailbox)
    assert to_json(box) == to_json(decode_reference({**CASELLA, "nuovo": [1]}, Mailbox))
    same(from_json(Mailbox, to_json(box)), box)


def test_the_emulators_answers_decode_as_by_the_reference_path() -> None:
    from pecapi.testing import Emulator

    emu = Emulator()
    users = [{"nome": "a", "cognome": "b", "timestamp": {"attivazione": 1}}]
    emu.seed_mailbox("a@testcert.legalmail.it", stato="evasa", multiutenza=users)
    emu.seed_mailbox("b@testcert.legalmail.it", stato="registrata", nuovo_campo="x")
    for item in emu.resources.mailboxes.list():
        both(item, MailboxSummary)
    for box in emu.resources.mailboxes:
        both(box.wire(), Mailbox)


def test_comunica_answers_decode_as_by_the_reference_path() -> None:
    data = {"id": "c1", "stato": "codice_in_richiesta", "callback": False, "timestamp": "12"}
    assert both(data, ComunicaPec).timestamp == 12
    assert both({"id": None, "stato": "nuovo"}, ComunicaPecSummary).stato == "nuovo"


def test_the_slot_descriptor_build_agrees_too() -> None:
    # Where __class__ assignment is refused, decoders store through the slots' __set__.
    for cls in RESPONSE_MODELS:
        decode = write_decoder(model_plan(cls), swap=False)
        data = CASELLA if cls is Mailbox else {"id": "x", **CASELLA.get("timestamp", {})}
        same(decode(data), decode_reference(data, cls))
        same(decode({**data, "nuovo": 1}), decode_reference({**data, "nuovo": 1}, cls))


def test_the_date_cache_is_bounded_and_not_fooled_by_a_bad_date() -> None:
    for day in range(DATE_CACHE_SIZE + 50):
        date = dt.date(2000, 1, 1) + dt.timedelta(days=day)
        text = f"{date.day:02d}/{date.month:02d}/{date.year}"
        assert structure({"id": "x", "data_scadenza": text}, Mailbox).data_scadenza == date
    assert len(DATE_CACHE) <= DATE_CACHE_SIZE
    for _ in range(2):  # not cached as readable
        box = structure({"id": "x", "data_scadenza": "31/02/2022"}, Mailbox)
        assert box.data_scadenza is None and box.extra["data_scadenza"] == "31/02/2022"


def test_importing_pecapi_generates_no_decoder_and_loads_no_cattrs() -> None:
    code = (
        "import sys, pecapi\n"
        "from pecapi.models import decoders\n"
        "assert not decoders.DECODERS, decoders.DECODERS\n"
        "assert 'cattrs' not in sys.modules\n"
        "from pecapi.models.converter import structure\n"
        "structure({'id': 'x'}, pecapi.Mailbox)\n"
        "assert pecapi.Mailbox in decoders.DECODERS and 'cattrs' not in sys.modules\n"
        "pecapi.to_json(pecapi.Mailbox(id='x'))\n"
        "assert 'cattrs' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- generated answers ------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([1.0, 1.5, "", " ", "0", "1", "true", "no", "x", "04/03/2022", "31/13/2022"]),
    st.sampled_from(["BRONZE", "bronze", "evasa", "PV", "M", "POST", "PATENTE", "nuovo"]),
    st.text(max_size=5),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


def _answers(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    names = [f.name for f in attrs.fields(cls) if f.name not in ("extra", "id")]
    nested = {
        "timestamp": st.fixed_dictionaries({}, optional={"registrazione": _VALUES}),
        "multiutenza": st.lists(
            st.fixed_dictionaries({}, optional={"nome": _VALUES, "timestamp": _VALUES}),
            max_size=2,
        ),
        "callback": st.fixed_dictionaries(
            {}, optional={"url": _VALUES, "method": _VALUES, "data": _VALUES}
        ),
    }
    optional = {name: (nested[name] | _VALUES) if name in nested else _VALUES for name in names}
    optional["unknown_key"] = _VALUES
    return st.fixed_dictionaries({"id": st.just("id-1") | _VALUES}, optional=optional)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=_answers(Mailbox))
def test_generated_mailboxes_decode_as_by_the_reference_path(data: dict[str, Any]) -> None:
    both(data, Mailbox)


@settings(max_examples=150, deadline=None)
@given(
    cls=st.sampled_from([MailboxSummary, MailboxUserInfo, ComunicaPec, ComunicaPecSummary]),
    data=st.data(),
)
def test_generated_answers_of_every_model_decode_alike(cls: type[Any], data: Any) -> None:
    both(data.draw(_answers(cls)), cls)


def _converted(value: Any) -> Any:
    return value


@attrs.frozen(kw_only=True)
class _WithConverter:
    id: str | None = attrs.field(default=None, converter=_converted)
    extra: Any = attrs.field(default=None, eq=False)


@attrs.frozen(kw_only=True, cache_hash=True)
class _WithHashCache:
    id: str | None = None
    extra: Any = attrs.field(default=None, eq=False)


@pytest.mark.parametrize("cls", [_WithConverter, _WithHashCache])
def test_a_model_whose_init_does_more_is_refused(cls: type[Any]) -> None:
    # Its __init__ would convert a value or cache a hash: the stored values would differ.
    with pytest.raises(TypeError, match="the decoders take"):
        write_decoder(model_plan(cls))


def test_the_spec_casella_takes_the_generated_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both paths agreeing proves nothing if the generated one always falls back: here
    # the reference path is not reached at all.
    plan = copy.copy(model_plan(Mailbox))

    def no_fallback(data: dict[str, Any]) -> Any:
        raise AssertionError("fell back to the reference path")

    monkeypatch.setattr(plan, "slow", no_fallback)
    same(write_decoder(plan)(CASELLA), decode_reference(CASELLA, Mailbox))
    same(write_decoder(plan, swap=False)(CASELLA), decode_reference(CASELLA, Mailbox))

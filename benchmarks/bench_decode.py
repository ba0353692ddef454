"""Benchmark 6: decoding answers into models.

1. **One Casella** (the spec's ``GET /pec/{id}`` example, the answer every mailbox read
   decodes) into :class:`pecapi.Mailbox` through the real path (``object_of(Mailbox)``
   of a ``Reply``, as ``client.mailboxes.get`` does), against pydantic v2 (its Rust core)
   validating an equivalent model from the same dict (``PydanticMailbox`` below: the
   same fields, nested models, dates and enums, lenient where pecapi is), and against
   ``json.loads`` of the body alone. Interleaved rounds, medians. pydantic is in the
   ``bench`` extra; without it that row is skipped, and the run says so.
2. **A listing**: the emulator's ``GET /pec`` answer for N mailboxes, ``json.loads`` +
   ``LIST.decode`` (``structure`` of every item into ``MailboxSummary``), as
   ``client.mailboxes.list()`` does, against ``json.loads`` alone.

In-process, CPU-bound, the garbage collector on.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from benchmarks.common import Measure, installed, median, skip

__all__ = ["DecodeConfig", "casella", "list_body", "pydantic_mailbox", "run"]

SPEC = Path(__file__).resolve().parent.parent / "tests" / "data" / "pec.openapi.json"


@attrs.frozen
class DecodeConfig:
    items: int = 10_000
    repeats: int = 9
    #: one Casella: rounds of ``casella_iterations`` decodes by each decoder, interleaved
    casella_rounds: int = 15
    casella_iterations: int = 2_000


def casella() -> dict[str, Any]:
    """The ``data`` of the spec's ``GET /pec/{id}`` example, with the identity document
    fields of the Casella schema (which the example leaves out) set."""
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    answer = spec["paths"]["/pec/{id}"]["get"]["responses"]["200"]["content"]
    data: dict[str, Any] = dict(answer["application/json"]["example"]["data"])
    data.update(
        tipo_documento="CARTA_D_IDENTITA",
        numero_documento="AB1234567",
        data_scadenza_documento="01/01/2030",
        documento_rilasciato_da="comune di roma",
        data_rilascio_documento="01/01/2020",
    )
    return data


def list_body(items: int) -> bytes:
    """The emulator's ``GET /pec`` answer for an account of ``items`` mailboxes."""
    from pecapi.testing import Emulator
    from pecapi.testing.app import envelope

    emu = Emulator()
    states = ("evasa", "registrata", "in_evasione", "revocata")
    for i in range(items):
        emu.seed_mailbox(f"list.{i}@testcert.legalmail.it", stato=states[i % len(states)])
    return envelope(emu.resources.mailboxes.list())


def run(config: DecodeConfig, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    measures, details = _one_casella(config, log)
    listing, listing_details = _listing(config, log)
    return [*measures, *listing], {**details, **listing_details}


# -- one Casella ----------------------------------------------------------------------------


def _one_casella(config: DecodeConfig, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    from pecapi.models import Mailbox
    from pecapi.resources._base import object_of
    from pecapi.transport.endpoint import Reply

    data = casella()
    body = json.dumps({"data": data, "success": True, "message": "", "error": None}).encode()
    decode = object_of(Mailbox)

    def ours() -> Any:
        return decode(Reply(status=200, data=data, message=None, code=None, params={}))

    decoders: dict[str, Callable[[], Any]] = {
        "pecapi": ours,
        "json.loads": lambda: json.loads(body),
    }
    if installed("pydantic"):
        model = pydantic_mailbox()
        validate = model.model_validate
        decoders["pydantic"] = lambda: validate(data)
        mine, theirs = ours(), validate(data)
        assert mine.data_scadenza == theirs.data_scadenza and mine.stato is theirs.stato
        assert mine.multiutenza[0].timestamp.attivazione == 1614868138
        assert theirs.multiutenza[0].timestamp.attivazione == 1614868138
    else:
        skip("decode vs pydantic", "pydantic is not installed (pip install -e '.[bench]')", log)
    for fn in decoders.values():  # untimed: pecapi writes its decoders on first use
        fn()
    samples: dict[str, list[float]] = {name: [] for name in decoders}
    n = config.casella_iterations
    for _ in range(config.casella_rounds):
        for name, fn in decoders.items():  # interleaved: each round runs every decoder
            started = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - started) / n * 1e6)
    us = {name: median(values) for name, values in samples.items()}
    log("  one Casella: " + ", ".join(f"{name} {value:.1f} us" for name, value in us.items()))
    what = "one Casella (the spec's GET /pec/{id}) -> Mailbox"
    measures = []
    if "pydantic" in us:
        measures.append(
            Measure(
                bench="decode",
                what=what + " vs pydantic v2",
                unit="us",
                pecapi=us["pecapi"],
                baseline=us["pydantic"],
                baseline_name="pydantic v2 model_validate, an equivalent model",
                target=1.0,
            )
        )
    measures.append(
        Measure(
            bench="decode",
            what=what + " vs parsing its body",
            unit="us",
            pecapi=us["pecapi"],
            baseline=us["json.loads"],
            baseline_name="json.loads of the envelope alone",
        )
    )
    return measures, {"casella_us": samples}


# -- a listing ------------------------------------------------------------------------------


def _listing(config: DecodeConfig, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    from pecapi.models.mailbox import MailboxSummary
    from pecapi.resources.mailboxes import LIST
    from pecapi.transport.endpoint import Reply

    body = list_body(config.items)

    def decode() -> list[Any]:
        payload = json.loads(body)
        reply = Reply(status=200, data=payload["data"], message=None, code=None, params={})
        result: list[Any] = LIST.decode(reply)
        return result

    boxes = decode()
    assert len(boxes) == config.items and isinstance(boxes[0], MailboxSummary)
    loads: list[float] = []
    full: list[float] = []
    for _ in range(config.repeats):
        started = time.perf_counter()
        json.loads(body)
        loads.append(time.perf_counter() - started)
        started = time.perf_counter()
        decode()
        full.append(time.perf_counter() - started)
    loads_ms, full_ms = median(loads) * 1000, median(full) * 1000
    log(
        f"  decode {config.items} mailboxes ({len(body) / 2**20:.1f} MB): "
        f"json.loads {loads_ms:.1f} ms, + models {full_ms:.1f} ms "
        f"({(full_ms - loads_ms) / config.items * 1000:.1f} us per item)"
    )
    measures = [
        Measure(
            bench="decode",
            what=f"GET /pec with {config.items} mailboxes -> list[MailboxSummary]",
            unit="ms",
            pecapi=full_ms,
            baseline=loads_ms,
            baseline_name="json.loads alone",
            note=f"{(full_ms - loads_ms) / config.items * 1000:.1f} us per item on top",
        )
    ]
    return measures, {"loads_s": loads, "decode_s": full, "body_bytes": len(body)}


# -- the pydantic equivalent --------------------------------------------------------------

_DATE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*$", re.ASCII)


def _wire_date(value: Any) -> Any:
    if isinstance(value, str):
        match = _DATE.match(value)
        if match is None:
            raise ValueError(f"not a dd/mm/yyyy date: {value!r}")
        day, month, year = match.groups()
        return dt.date(int(year), int(month), int(day))
    return value


def _php_object(value: Any) -> Any:
    return {} if value == [] else value


def _no_callback(value: Any) -> Any:
    return None if value is False or value == [] else value


def pydantic_mailbox() -> Any:
    """A pydantic v2 model equivalent to :class:`pecapi.Mailbox`, built as a pydantic user
    would, leaning on pydantic's own lax mode wherever it can: the same fields and nesting,
    frozen, unknown fields kept (``extra="allow"``), numbers accepted for strings
    (``coerce_numbers_to_str``), numeric strings for ints and bools (lax mode), pecapi's
    own enums (whose ``_missing_`` keeps an unknown value readable, which pydantic calls),
    ``""`` as unset (one ``mode="before"`` validator per model, a dict comprehension),
    dd/mm/yyyy dates (an ``Annotated`` before-validator: pydantic parses ISO dates only),
    and ``callback: false`` as None. Not equivalent on garbage: a value pecapi keeps in
    ``extra`` fails pydantic's validation."""
    from typing import Annotated, Optional

    from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, model_validator

    from pecapi.models.enums import (
        CallbackMethod,
        MailboxState,
        Sesso,
        SottotipoCliente,
        TipoCasella,
        TipoCliente,
        TipoDocumento,
    )

    WireDate = Annotated[Optional[dt.date], BeforeValidator(_wire_date)]  # noqa: UP045
    Str = Optional[str]  # noqa: UP045

    class Lenient(BaseModel):
        model_config = ConfigDict(extra="allow", frozen=True, coerce_numbers_to_str=True)

        @model_validator(mode="before")
        @classmethod
        def _unset(cls, data: Any) -> Any:
            if isinstance(data, dict):
                return {k: v for k, v in data.items() if v != ""}
            return data

    class PCallback(Lenient):
        url: str = ""
        method: Optional[CallbackMethod] = None  # noqa: UP045
        field: Str = None
        data: Annotated[Optional[dict[str, Any]], BeforeValidator(_php_object)] = None  # noqa: UP045

    class PTimestamps(Lenient):
        registrazione: Optional[int] = None  # noqa: UP045
        ultima_modifica: Optional[int] = None  # noqa: UP045
        evasione: Optional[int] = None  # noqa: UP045
        scadenza: Optional[int] = None  # noqa: UP045
        revoca: Optional[int] = None  # noqa: UP045

    class PUserTimestamps(Lenient):
        attivazione: Optional[int] = None  # noqa: UP045

    class PUser(Lenient):
        nome: Str = None
        cognome: Str = None
        descrizione: Str = None
        email_gestione_password: Str = None
        id_utenza: Str = None
        timestamp: Optional[PUserTimestamps] = None  # noqa: UP045
        userid: Str = None

    fields: dict[str, Any] = {
        "id": (Annotated[str, StringConstraints(min_length=1)], ...),
        "tipo_casella": (Optional[TipoCasella], None),  # noqa: UP045
        "stato": (Optional[MailboxState], None),  # noqa: UP045
        "tipo_cliente": (Optional[TipoCliente], None),  # noqa: UP045
        "sottotipo_cliente": (Optional[SottotipoCliente], None),  # noqa: UP045
        "sesso_richiedente": (Optional[Sesso], None),  # noqa: UP045
        "tipo_documento": (Optional[TipoDocumento], None),  # noqa: UP045
        "callback": (Annotated[Optional[PCallback], BeforeValidator(_no_callback)], None),  # noqa: UP045
        "timestamp": (Optional[PTimestamps], None),  # noqa: UP045
        "multiutenza": (tuple[PUser, ...], ()),
        "documenti_attivazione": (tuple[str, ...], ()),
        "documenti_conservazione": (tuple[str, ...], ()),
    }
    for name in ("conservazione", "sms", "storico", "autorinnovo"):
        fields[name] = (Optional[bool], None)  # noqa: UP045
    for name in ("spazio_conservazione", "spazio_disco", "spazio_storico"):
        fields[name] = (Optional[int], None)  # noqa: UP045
    for name in (
        "data_nascita_richiedente",
        "data_scadenza",
        "data_attivazione",
        "data_scadenza_documento",
        "data_rilascio_documento",
    ):
        fields[name] = (WireDate, None)
    from pecapi.models import Mailbox

    for field in attrs.fields(Mailbox):
        if field.name not in fields and field.name != "extra":
            fields[field.name] = (Str, None)
    from pydantic import create_model

    return create_model("PydanticMailbox", __base__=Lenient, **fields)

"""The emulator's error answers against the specification: every error a probe provokes,
per operation, has a status (and content type) the spec documents for that operation, or
one of the listed departures (spec_checker.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from pecapi.testing import DEFAULT_TOKEN, DOCUMENTED_CODES, INVENTED_CODES, Emulator, samples
from tests.testing.spec_checker import (
    ALLOWED_DEPARTURES,
    GATEWAY_SCOPE,
    OPERATIONS,
    Departure,
    documented_media_types,
    documented_statuses,
    tolerated,
)

# --- error answers ------------------------------------------------------------------------------


def test_every_declared_error_has_a_documented_status_or_a_listed_departure():
    """The emulator's error tables (every code it can answer with): each status is one the
    spec documents for that operation, or an allowed departure; and no status departure is
    stale (each is needed by some declared error)."""
    needed: set[Departure] = set()
    problems = []
    for entry in (*DOCUMENTED_CODES, *INVENTED_CODES):
        operations = GATEWAY_SCOPE[entry.status] if entry.endpoint == "*" else {entry.endpoint}
        for operation in sorted(operations):
            assert operation in OPERATIONS, entry
            if entry.status in documented_statuses(operation):
                continue
            match = [
                d
                for d in ALLOWED_DEPARTURES
                if d.operation in ("*", operation) and d.where == f"status {entry.status}"
            ]
            if match:
                needed.update(match)
            else:
                problems.append(f"{operation} {entry.status}/{entry.code} {entry.message}")
    assert not problems, "\n".join(problems)
    status_departures = {d for d in ALLOWED_DEPARTURES if d.where.startswith("status ")}
    assert status_departures - needed == set()


@dataclass(frozen=True)
class Probe:
    """One request that must fail.

    ``path`` may name the ids of the seeded world: ``{reg}`` (a registrata mailbox), ``{ev}``
    (evasa, BRONZE), ``{rev}`` (revocata), ``{again}`` (evasa, holding the address of
    ``{rev}``), ``{cons}`` (evasa, conservazione active), ``{pm}`` (evasa, PECMASSIVA),
    ``{new}`` (comunica_pec codice_in_richiesta), ``{wait}`` (in_attesa_di_documenti).
    ``world``: "main", "empty" (nothing seeded) or "poor" (the same world, no credit).
    ``status``: the status expected (and checked to be documented, or a departure).
    """

    path: str
    status: int
    body: Any = None
    raw: bytes | None = None
    token: str | None = DEFAULT_TOKEN
    world: str = "main"


NO_SCOPE = "token-without-scopes"
PDF = samples.pdf_base64()
P7M = samples.p7m_base64()
TAKEN = "ev@testcert.legalmail.it"

# The probes of the id every operation with one gets: malformed, unknown, with a line feed
# (a path the router once left to aiohttp's plain-text 404).
ID_PROBES = (
    Probe("/x", 400),
    Probe("/0123456789abcdef01234567", 404),
    Probe("/ab%0Acd", 400),
)


def _with_id(prefix: str, suffix: str = "") -> tuple[Probe, ...]:
    return tuple(Probe(f"{prefix}{p.path}{suffix}", p.status) for p in ID_PROBES)


PROBES: dict[str, tuple[Probe, ...]] = {
    "GET /domini_pec/{dominio}": (
        Probe("/domini_pec/", 428),
        Probe("/domini_pec/not a domain", 406),
        Probe("/domini_pec/legal%0Amail.it", 406),
    ),
    "GET /verifica_pec/{pec}": (
        Probe("/verifica_pec/", 428),
        Probe("/verifica_pec/not-an-address", 406),
        Probe(f"/verifica_pec/{TAKEN}", 406),
        Probe("/verifica_pec/a%0Ab@testcert.legalmail.it", 406),
    ),
    "GET /pec": (Probe("/pec", 404, world="empty"),),
    "POST /pec": (
        Probe("/pec", 428, body={}),
        Probe("/pec", 406, body=samples.mailbox_body(tipo_casella="bronze")),
        Probe("/pec", 404, body=samples.mailbox_body("a@nobody-owns-this.it")),
        Probe("/pec", 406, body=samples.mailbox_body(TAKEN)),
        Probe("/pec", 402, body=samples.mailbox_body(), world="poor"),
        Probe("/pec", 400, body=[samples.mailbox_body()]),  # a listed departure
        Probe("/pec", 400, raw=b"{not json"),
    ),
    "GET /pec/{id}": _with_id("/pec"),
    "DELETE /pec/{id}": (
        *_with_id("/pec"),
        Probe("/pec/{rev}", 406),
        Probe("/pec/{reg}", 428),
    ),
    "PATCH /pec/{id}/attivazione": (
        *_with_id("/pec", "/attivazione"),
        Probe("/pec/{ev}/attivazione", 428, body={"documenti": PDF}),
        Probe("/pec/{reg}/attivazione", 428, body={}),
        Probe("/pec/{reg}/attivazione", 406, body={"documenti": P7M}),
        Probe("/pec/{reg}/attivazione", 400, body=["documenti"]),
    ),
    "PATCH /pec/{id}/modifica": (
        *_with_id("/pec", "/modifica"),
        Probe("/pec/{reg}/modifica", 428, body={"spazio_disco": "+1024"}),
        Probe("/pec/{pm}/modifica", 406, body={"spazio_disco": "+1024"}),
        Probe("/pec/{ev}/modifica", 428, body={}),
        Probe("/pec/{ev}/modifica", 406, body={"spazio_disco": 1000}),
        Probe("/pec/{ev}/modifica", 428, body={"spazio_conservazione": 1024}),
        Probe("/pec/{ev}/modifica", 402, body={"spazio_disco": "+1024"}, world="poor"),
    ),
    "PATCH /pec/{id}/conservazione": (
        *_with_id("/pec", "/conservazione"),
        Probe("/pec/{pm}/conservazione", 406, body={"documenti": PDF}),
        Probe("/pec/{reg}/conservazione", 428, body={"documenti": PDF}),
        Probe("/pec/{cons}/conservazione", 406, body={"documenti": PDF}),
        Probe("/pec/{ev}/conservazione", 428, body={}),
        Probe("/pec/{ev}/conservazione", 406, body={"documenti": P7M}),
        Probe("/pec/{ev}/conservazione", 402, body={"documenti": PDF}, world="poor"),
    ),
    "PATCH /pec/{id}/trasformazione": (
        *_with_id("/pec", "/trasformazione"),
        Probe("/pec/{pm}/trasformazione", 406, body={"tipo_casella": "GOLD"}),
        Probe("/pec/{reg}/trasformazione", 428, body={"tipo_casella": "GOLD"}),
        Probe("/pec/{ev}/trasformazione", 428, body={}),
        Probe("/pec/{ev}/trasformazione", 406, body={"tipo_casella": "gold"}),
        Probe("/pec/{ev}/trasformazione", 406, body={"tipo_casella": "STANDARD"}),
        Probe("/pec/{ev}/trasformazione", 402, body={"tipo_casella": "GOLD"}, world="poor"),
    ),
    "GET /pec/{id}/rinnovo": (
        *_with_id("/pec", "/rinnovo"),
        Probe("/pec/{reg}/rinnovo", 428),
        Probe("/pec/{ev}/rinnovo?anni=0", 400),
        Probe("/pec/{ev}/rinnovo?anni=two", 400),
        Probe("/pec/{rev}/rinnovo", 428),  # its address was taken again meanwhile
        Probe("/pec/{ev}/rinnovo", 402, world="poor"),
    ),
    "POST /pec/{id}/multiutenza": (
        *_with_id("/pec", "/multiutenza"),
        Probe("/pec/{pm}/multiutenza", 428, body=samples.multiutenza_body()),
        Probe("/pec/{reg}/multiutenza", 428, body=samples.multiutenza_body()),
        Probe("/pec/{ev}/multiutenza", 428, body={}),
        Probe(
            "/pec/{ev}/multiutenza", 406, body=samples.multiutenza_body(email_gestione_password="x")
        ),
        Probe("/pec/{ev}/multiutenza", 402, body=samples.multiutenza_body(), world="poor"),
    ),
    "GET /comunica_pec": (Probe("/comunica_pec", 404, world="empty"),),
    "POST /comunica_pec": (
        Probe("/comunica_pec", 428, body={}),
        Probe("/comunica_pec", 406, body=samples.comunica_body("not-an-address")),
        Probe("/comunica_pec", 406, body=samples.comunica_body(qualifica="CAPO")),
        Probe("/comunica_pec", 402, body=samples.comunica_body(), world="poor"),
        Probe("/comunica_pec", 400, body="a string"),  # a listed departure
        Probe("/comunica_pec", 400, raw=b"\x00"),
    ),
    "GET /comunica_pec/{id}": _with_id("/comunica_pec"),
    "PATCH /comunica_pec/{id}": (
        *_with_id("/comunica_pec"),
        Probe("/comunica_pec/{new}", 406, body={"documenti": P7M}),
        Probe("/comunica_pec/{wait}", 428, body={}),
        Probe("/comunica_pec/{wait}", 406, body={"documenti": PDF}),
    ),
    "GET /pec/{id}/modulo_attivazione": (
        *_with_id("/pec", "/modulo_attivazione"),
        Probe("/pec/{ev}/modulo_attivazione", 406),
    ),
    "GET /pec/{id}/modulo_conservazione": (
        *_with_id("/pec", "/modulo_conservazione"),
        Probe("/pec/{reg}/modulo_conservazione", 406),
        Probe("/pec/{pm}/modulo_conservazione", 406),
        Probe("/pec/{cons}/modulo_conservazione", 406),
    ),
    "GET /comunica_pec/{id}/procura_registro_imprese": (
        *_with_id("/comunica_pec", "/procura_registro_imprese"),
        Probe("/comunica_pec/{new}/procura_registro_imprese", 406),
    ),
}


def _seed(emu: Emulator) -> dict[str, str]:
    return {
        "reg": emu.seed_mailbox("reg@testcert.legalmail.it", stato="registrata"),
        "ev": emu.seed_mailbox(TAKEN),
        "rev": emu.seed_mailbox("rev@testcert.legalmail.it", stato="revocata"),
        # a newer mailbox holding the revoked one's address: renewing {rev} cannot be done
        "again": emu.seed_mailbox("rev@testcert.legalmail.it"),
        "cons": emu.seed_mailbox("cons@testcert.legalmail.it", conservazione=True),
        "pm": emu.seed_mailbox("pm@pecmassiva.com", tipo_casella="PECMASSIVA"),
        "new": emu.seed_comunica("new@pec.it"),
        "wait": emu.seed_comunica("wait@pec.it", stato="in_attesa_di_documenti"),
    }


@asynccontextmanager
async def _world(kind: str) -> AsyncIterator[tuple[str, dict[str, str]]]:
    emu = Emulator(seed=3, credit=Decimal(0) if kind == "poor" else Decimal(1000))
    emu.add_token(NO_SCOPE, scopes=())
    ids = {} if kind == "empty" else _seed(emu)
    async with emu.serve() as server:
        yield server.url, ids


def check_error(operation: str, probe: Probe, status: int, content_type: str, raw: bytes) -> str:
    """What is wrong with one error answer ("" when nothing)."""
    if status != probe.status:
        return f"status {status}, the probe expects {probe.status}: {raw[:120]!r}"
    if not 400 <= status < 500:
        return f"status {status} is not a client error: {raw[:120]!r}"
    documented = status in documented_statuses(operation)
    if not documented and not tolerated(operation, f"status {status}"):
        return f"undocumented status {status}: {raw[:120]!r}"
    # A documented status comes with its documented media type; a departure is a gateway
    # answer, always the JSON envelope.
    media = documented_media_types(operation, status) if documented else {"application/json"}
    if content_type not in media:
        return f"{status} with Content-Type {content_type!r}, documented {sorted(media)}"
    if content_type == "text/plain":
        return "" if raw.strip() else "an empty text/plain error"
    answer = json.loads(raw)
    envelope = (
        isinstance(answer, dict)
        and set(answer) == {"data", "success", "message", "error"}
        and answer["success"] is False
        and answer["data"] is None
        and type(answer["error"]) is int
        and isinstance(answer["message"], str)
    )
    return "" if envelope else f"not the error envelope of the examples: {raw[:160]!r}"


def test_every_operation_has_error_probes():
    assert set(PROBES) == set(OPERATIONS)


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_error_answers_have_documented_statuses(operation: str):
    # Every operation also gets the gateway's 401 and 403 (listed departures).
    probes = (
        *PROBES[operation],
        Probe(PROBES[operation][0].path, 401, token=None),
        Probe(PROBES[operation][0].path, 401, token="not-a-token"),
        Probe(PROBES[operation][0].path, 403, token=NO_SCOPE),
    )
    method = operation.split(" ", 1)[0]
    problems = []
    async with aiohttp.ClientSession() as session:
        for kind in ("main", "empty", "poor"):
            async with _world(kind) as (url, ids):
                for probe in (p for p in probes if p.world == kind):
                    path = probe.path.format(**ids)
                    headers = (
                        {} if probe.token is None else {"Authorization": f"Bearer {probe.token}"}
                    )
                    kwargs: dict[str, Any] = {"headers": headers}
                    if probe.raw is not None:
                        kwargs["data"] = probe.raw
                        headers["Content-Type"] = "application/json"
                    elif probe.body is not None:
                        kwargs["json"] = probe.body
                    async with session.request(method, url + path, **kwargs) as resp:
                        raw = await resp.read()
                        found = check_error(operation, probe, resp.status, resp.content_type, raw)
                    if found:
                        problems.append(f"{method} {path}: {found}")
    assert not problems, "\n".join(problems)


def test_the_error_check_rejects_what_it_must():
    def check(operation: str, status: int, content_type: str, raw: bytes) -> str:
        # the probe expects what arrives: only the other checks are at work
        return check_error(operation, Probe("/", status), status, content_type, raw)

    op, form = "GET /pec/{id}", "GET /pec/{id}/modulo_attivazione"
    envelope = b'{"data": null, "success": false, "message": "Wrong id", "error": 201}'
    assert check(op, 400, "application/json", envelope) == ""
    assert "expects 404" in check_error(op, Probe("/", 404), 400, "application/json", envelope)
    assert "undocumented" in check(op, 406, "application/json", envelope)
    assert "undocumented" in check(op, 402, "application/json", envelope)
    assert check("GET /pec/{id}/rinnovo", 402, "application/json", envelope) == ""
    assert "Content-Type" in check(op, 404, "text/plain", b"404: Not Found")
    assert "envelope" in check(op, 404, "application/json", b'{"error": null}')
    assert "envelope" in check(op, 404, "application/json", envelope.replace(b"201", b"null"))
    assert "not a client error" in check(op, 500, "application/json", envelope)
    assert check(form, 404, "text/plain", b"no request matches this id: x") == ""
    assert "Content-Type" in check(form, 404, "application/json", envelope)
    assert "empty" in check(form, 404, "text/plain", b"")

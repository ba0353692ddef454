"""The emulator against the specification's response schemas, answer by answer.

Every operation of ``pec.openapi.json`` is driven through its success path with raw HTTP
over loopback (an aiohttp session, not pecapi's client: this tests the emulator), and each
2xx JSON answer is validated with jsonschema against that operation's 2xx response schema
(``$ref`` resolved in the spec itself). The PDF downloads are checked for the documented
content type and the ``%PDF`` magic. Error answers: test_status_conformance.py; the
checker and its departures: spec_checker.py.

Nothing is tolerated but :data:`ALLOWED_DEPARTURES`, each with its reason; the "Spec
departures" table of ``pecapi/testing/README.md`` says the same in prose. The client's side
(reading every documented answer) is ``tests/test_spec_conformance.py``.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from pecapi.testing import DEFAULT_TOKEN, Emulator, samples
from tests.testing.spec_checker import (
    ALLOWED_DEPARTURES,
    OPENAPI_ONLY,
    OPERATIONS,
    SPEC,
    Departure,
    check_2xx,
    operation_of,
)

# --- the success path of every operation, over loopback ---------------------------------------


@dataclass
class Answer:
    operation: str
    status: int
    content_type: str
    body: bytes


@dataclass
class Journey:
    """Drives the emulator with a raw session and keeps every answer by operation."""

    session: aiohttp.ClientSession
    url: str
    answers: dict[str, list[Answer]] = field(default_factory=dict)

    async def call(self, operation: str, path: str, body: Any = None) -> Any:
        method = operation.split(" ", 1)[0]
        headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers
        ) as resp:
            raw = await resp.read()
            answer = Answer(operation, resp.status, resp.content_type, raw)
        self.answers.setdefault(operation, []).append(answer)
        assert 200 <= answer.status < 300, (operation, path, answer.status, raw[:300])
        if answer.content_type == "application/json":
            return json.loads(raw)["data"]
        return None


async def _drive_every_operation() -> dict[str, list[Answer]]:
    emu = Emulator(seed=7)
    async with emu.serve() as server, aiohttp.ClientSession() as session:
        j = Journey(session, server.url)
        await j.call("GET /domini_pec/{dominio}", "/domini_pec/legalmail.it")  # certified: 200
        await j.call("GET /domini_pec/{dominio}", "/domini_pec/example.org")  # not: 204
        await j.call("GET /verifica_pec/{pec}", "/verifica_pec/mario@testcert.legalmail.it")
        # One mailbox with every optional field (a callback to a host the emulator refuses
        # to call, without a lookup), one with none of them.
        full = samples.mailbox_body(
            "mario@testcert.legalmail.it",
            cellulare="3400000000",
            autorinnovo=True,
            tipo_documento="PATENTE",
            numero_documento="AB123",
            data_scadenza_documento="01/01/2030",
            documento_rilasciato_da="MCTC",
            data_rilascio_documento="01/01/2020",
        )
        box = (await j.call("POST /pec", "/pec", full))["id"]
        bare = samples.mailbox_body("luigi@testcert.legalmail.it")
        del bare["callback"]
        plain = (await j.call("POST /pec", "/pec", bare))["id"]
        await j.call("GET /pec", "/pec")
        await j.call("GET /pec/{id}", f"/pec/{plain}")
        await j.call("GET /pec/{id}/modulo_attivazione", f"/pec/{box}/modulo_attivazione")
        pdf = samples.pdf_base64()
        await j.call("PATCH /pec/{id}/attivazione", f"/pec/{box}/attivazione", {"documenti": [pdf]})
        emu.complete_activation(box)
        await j.call("GET /pec/{id}", f"/pec/{box}")
        await j.call("GET /pec/{id}/modulo_conservazione", f"/pec/{box}/modulo_conservazione")
        modifica = {"spazio_disco": "+1024", "spazio_storico": 2048}
        await j.call("PATCH /pec/{id}/modifica", f"/pec/{box}/modifica", modifica)
        conservazione = {"documenti": pdf, "spazio_conservazione": 1024}
        await j.call("PATCH /pec/{id}/conservazione", f"/pec/{box}/conservazione", conservazione)
        gold = {"tipo_casella": "GOLD"}
        await j.call("PATCH /pec/{id}/trasformazione", f"/pec/{box}/trasformazione", gold)
        user = samples.multiutenza_body()
        await j.call("POST /pec/{id}/multiutenza", f"/pec/{box}/multiutenza", user)
        await j.call("GET /pec/{id}/rinnovo", f"/pec/{box}/rinnovo?anni=2")
        await j.call("DELETE /pec/{id}", f"/pec/{box}")
        await j.call("GET /pec/{id}/rinnovo", f"/pec/{box}/rinnovo")  # revocata -> evasa
        await j.call("GET /pec", "/pec")
        # comunica_pec: one request without a callback, one with.
        request = (await j.call("POST /comunica_pec", "/comunica_pec", samples.comunica_body()))[
            "id"
        ]
        hooked = samples.comunica_body(
            "luigi@pec.it",
            callback={"url": "https://your_domain.it/cb", "method": "JSON", "data": {"k": 1}},
        )
        await j.call("POST /comunica_pec", "/comunica_pec", hooked)
        await j.call("GET /comunica_pec", "/comunica_pec")
        await j.call("GET /comunica_pec/{id}", f"/comunica_pec/{request}")
        emu.advance_comunica(request)
        await j.call(
            "GET /comunica_pec/{id}/procura_registro_imprese",
            f"/comunica_pec/{request}/procura_registro_imprese",
        )
        p7m = {"documenti": [samples.p7m_base64()]}
        await j.call("PATCH /comunica_pec/{id}", f"/comunica_pec/{request}", p7m)
        emu.advance_comunica(request)
        await j.call("GET /comunica_pec/{id}", f"/comunica_pec/{request}")
        return j.answers


@pytest.fixture(scope="module")
def success_answers() -> dict[str, list[Answer]]:
    # One run for the whole module, in a loop of its own (the tests reading it are sync).
    return asyncio.run(_drive_every_operation())


def test_the_success_path_reaches_every_operation(success_answers: dict[str, list[Answer]]):
    assert len(OPERATIONS) == 19
    assert set(success_answers) == set(OPERATIONS)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_2xx_answer_matches_the_response_schema(
    success_answers: dict[str, list[Answer]], operation: str
):
    answers = success_answers[operation]
    problems = {
        f"#{n} {a.status}": found
        for n, a in enumerate(answers)
        if (found := check_2xx(operation, a.status, a.content_type, a.body))
    }
    assert not problems, json.dumps(problems, indent=1)


# --- the checker can fail ----------------------------------------------------------------------


def _valid_mailbox_answer() -> dict[str, Any]:
    """The spec's own example of GET /pec/{id}, made to follow its schema: its examples say
    ``error: null`` where the schema says integer, so the field is left out."""
    responses = SPEC["paths"]["/pec/{id}"]["get"]["responses"]
    answer: dict[str, Any] = copy.deepcopy(
        responses["200"]["content"]["application/json"]["example"]
    )
    del answer["error"]
    return answer


def _check(answer: Any, operation: str = "GET /pec/{id}", **kw: Any) -> list[str]:
    return check_2xx(operation, 200, "application/json", json.dumps(answer).encode(), **kw)


def test_the_checker_passes_a_conforming_answer():
    assert _check(_valid_mailbox_answer()) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda a: a["data"].update(spazio_disco="3072"), "/data/spazio_disco: '3072' is not"),
        (lambda a: a["data"].update(stato="attiva"), "/data/stato: 'attiva' is not one of"),
        (lambda a: a["data"].update(invented=1), "/data/invented: undocumented property"),
        (lambda a: a["data"]["timestamp"].update(scadenza="x"), "/data/timestamp/scadenza: "),
        (lambda a: a["data"]["multiutenza"][0].update(timestamp=1), "/data/multiutenza/0/"),
        (lambda a: a["data"].update(callback=False), "/data/callback: False is not of type"),
        (lambda a: a["data"].update(tipo_documento=""), "/data/tipo_documento: '' is not one"),
        (lambda a: a.update(error=None), "/error: None is not of type 'integer'"),
        (lambda a: a.update(data=None), "/data: None is not of type 'object'"),
        (lambda a: a.update(success=False), "not a success envelope"),
    ],
)
def test_the_checker_rejects_a_wrong_answer(mutate: Any, expected: str):
    answer = _valid_mailbox_answer()
    mutate(answer)
    problems = _check(answer)
    assert any(p.startswith(expected) for p in problems), problems


def test_the_checker_rejects_wrong_content_types_and_statuses():
    op, pdf_op = "GET /pec/{id}", "GET /pec/{id}/modulo_attivazione"
    body = json.dumps(_valid_mailbox_answer()).encode()
    assert check_2xx(op, 200, "text/plain", body) != []
    assert check_2xx(op, 201, "application/json", body) == ["undocumented status 201"]
    assert check_2xx(pdf_op, 200, "application/json", body) != []
    assert check_2xx(pdf_op, 200, "application/pdf", b"<html>") != []
    assert check_2xx(pdf_op, 200, "application/pdf", b"%PDF-1.4\n") == []
    assert check_2xx("GET /domini_pec/{dominio}", 204, "", b"[]") != []


def test_a_departure_tolerates_its_operation_and_place_only():
    answer = _valid_mailbox_answer()
    answer["data"]["spazio_disco"] = "3072"
    answer["data"]["spazio_storico"] = "3072"
    only = (Departure("GET /pec/{id}", "/data/spazio_disco", "test"),)
    assert _check(answer, departures=only) == [
        "/data/spazio_storico: '3072' is not of type 'integer'"
    ]
    assert len(_check(answer, "DELETE /pec/{id}", departures=only)) == 2
    wildcard = (Departure("*", "/data/*", "test"),)
    assert _check(answer, "DELETE /pec/{id}", departures=wildcard) == []
    assert _check({**answer, "error": None}, departures=wildcard) != []


def test_the_validated_schemas_use_no_keyword_jsonschema_would_ignore():
    def keys(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield key
                if key not in ("example", "examples"):
                    yield from keys(value)
        elif isinstance(node, list):
            for item in node:
                yield from keys(item)

    used = set(keys(SPEC["components"]["schemas"]))
    for operation in OPERATIONS:
        for response in operation_of(operation)["responses"].values():
            used |= set(keys(response))
    assert used & OPENAPI_ONLY == set()


def test_every_departure_names_an_operation_of_the_spec():
    for departure in ALLOWED_DEPARTURES:
        assert departure.operation == "*" or departure.operation in OPERATIONS, departure
        assert departure.why.strip(), departure

"""The emulator against the specification's response schemas, answer by answer.

Every operation of ``pec.openapi.json`` is driven through its success path with raw HTTP
over loopback (an aiohttp session, not pecapi's client: this tests the emulator), and each
2xx JSON answer is validated with jsonschema against that operation's 2xx response schema
(``$ref`` resolved in the spec itself). The PDF downloads are checked for the documented
content type and the ``%PDF`` magic. The error answers the emulator gives are checked to
carry a status (and content type) that the spec documents for that operation.

Nothing is tolerated but :data:`ALLOWED_DEPARTURES`, each with its reason; the "Spec
departures" table of ``pecapi/testing/README.md`` says the same in prose. The client's side
(reading every documented answer) is ``tests/test_spec_conformance.py``.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from pecapi.testing import DEFAULT_TOKEN, DOCUMENTED_CODES, INVENTED_CODES, Emulator, samples
from tests.conftest import SPEC_PATH

SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
SPEC_URI = "urn:pecapi:pec.openapi.json"

#: "METHOD /template" of every operation of the spec, in the spec's order.
OPERATIONS: tuple[str, ...] = tuple(
    f"{method.upper()} {path}" for path, item in SPEC["paths"].items() for method in item
)
#: The operations that take a JSON request body.
BODY_OPERATIONS = frozenset(
    f"{method.upper()} {path}"
    for path, item in SPEC["paths"].items()
    for method, op in item.items()
    if "requestBody" in op
)


@dataclass(frozen=True)
class Departure:
    """One tolerated difference between the emulator and the spec.

    ``operation`` is "METHOD /template" or ``"*"`` (every operation); ``where`` is
    ``"status NNN"`` (an answer with an undocumented HTTP status) or a JSON pointer into a
    2xx answer (``"/data/callback"``; a ``*`` segment matches any one key or index).
    """

    operation: str
    where: str
    why: str


# The whole list: anything else the emulator does differently from the spec fails a test.
ALLOWED_DEPARTURES: tuple[Departure, ...] = (
    Departure(
        "*",
        "status 401",
        "The gateway refuses a request without a valid bearer token. The spec requires "
        "bearerAuth on every operation but documents no 401 answer on any.",
    ),
    Departure(
        "*",
        "status 403",
        "A token without the operation's scope (scoped tokens come from the OAuth service); "
        "the spec documents no 403 answer either.",
    ),
    Departure(
        "*",
        "status 413",
        "A request body over 64 MiB is refused before it is read; the spec states no limit.",
    ),
    Departure(
        "POST /pec",
        "status 400",
        "A body that is not a JSON object is refused before any field is read, with the 400 "
        "of the operations that document one; POST /pec documents none, and its 406 means "
        "'a field's value is not valid'.",
    ),
    Departure(
        "POST /comunica_pec",
        "status 400",
        "As POST /pec: a body that is not a JSON object, refused before any field is read.",
    ),
    Departure(
        "GET /pec/{id}/rinnovo",
        "status 402",
        "A renewal is charged. With too little credit the emulator answers 402 'Insufficient "
        "Credit in Wallet', as every other paid operation documents; the spec documents no "
        "answer for that case on rinnovo.",
    ),
)

# Gateway errors (endpoint "*" in the emulator's error tables): the operations each can answer.
# 404 "resource not found" and 405 answer only requests that match no operation of the spec
# (an unknown path, a method the path does not have): no operation's statuses are concerned.
GATEWAY_SCOPE: dict[int, frozenset[str]] = {
    401: frozenset(OPERATIONS),
    403: frozenset(OPERATIONS),
    400: BODY_OPERATIONS,  # a body that is not a JSON object
    413: BODY_OPERATIONS,
    404: frozenset(),
    405: frozenset(),
}


# --- the checker ------------------------------------------------------------------------------


def _operation(name: str) -> dict[str, Any]:
    method, path = name.split(" ", 1)
    op: dict[str, Any] = SPEC["paths"][path][method.lower()]
    return op


def documented_statuses(operation: str) -> set[int]:
    return {int(status) for status in _operation(operation)["responses"]}


def documented_media_types(operation: str, status: int) -> set[str]:
    return set(_operation(operation)["responses"][str(status)].get("content") or {})


def _strict(node: Any) -> Any:
    """The spec with every object schema closed (``additionalProperties: false``).

    The response schemas name their properties but do not forbid others, so plain
    validation would accept a field the emulator invented; a client must not come to depend
    on one the real API never sends. (In OpenAPI, ``properties`` is only a schema keyword.)
    """
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: _strict(value) for key, value in node.items()}
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        closed["additionalProperties"] = False
    return closed


# OpenAPI 3.0 schema objects are JSON Schema draft 4/5 plus keywords jsonschema would silently
# ignore; the spec must use none of those in what is validated (see the test below).
_OPENAPI_ONLY = frozenset({"nullable", "discriminator", "readOnly", "writeOnly", "xml"})
_REGISTRY: Registry[Any] = Registry().with_resource(
    SPEC_URI, Resource.from_contents(_strict(SPEC), default_specification=DRAFT4)
)


def _pointer_escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def response_schema_ref(operation: str, status: int, media_type: str) -> dict[str, str]:
    method, path = operation.split(" ", 1)
    pointer = "/".join(
        _pointer_escape(s)
        for s in ("paths", path, method.lower(), "responses", str(status), "content", media_type)
    )
    return {"$ref": f"{SPEC_URI}#/{pointer}/schema"}


def _validator(operation: str, status: int) -> jsonschema.protocols.Validator:
    schema = response_schema_ref(operation, status, "application/json")
    cls = jsonschema.Draft4Validator
    # Format checking, for the formats the spec uses (today only "binary", on the PDFs).
    return cls(schema, registry=_REGISTRY, format_checker=cls.FORMAT_CHECKER)


def _pointer(path: Any) -> str:
    return "".join(f"/{_pointer_escape(str(segment))}" for segment in path)


def schema_violations(operation: str, status: int, answer: Any) -> list[tuple[str, str]]:
    """Every (JSON pointer, message) of ``answer`` against the operation's response schema;
    an undocumented property is reported at its own pointer."""
    found: list[tuple[str, str]] = []
    for error in _validator(operation, status).iter_errors(answer):
        where = _pointer(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            named = set(error.schema.get("properties", {}))
            for extra in sorted(set(error.instance) - named):
                found.append((f"{where}/{_pointer_escape(extra)}", "undocumented property"))
        else:
            found.append((where, error.message))
    return sorted(found)


def _matches(pattern: str, pointer: str) -> bool:
    want, got = pattern.split("/"), pointer.split("/")
    return len(want) == len(got) and all(w in ("*", g) for w, g in zip(want, got, strict=True))


def tolerated(
    operation: str, where: str, departures: tuple[Departure, ...] = ALLOWED_DEPARTURES
) -> bool:
    return any(
        d.operation in ("*", operation)
        and (d.where == where if d.where.startswith("status ") else _matches(d.where, where))
        for d in departures
    )


def check_2xx(
    operation: str,
    status: int,
    content_type: str,
    body: bytes,
    departures: tuple[Departure, ...] = ALLOWED_DEPARTURES,
) -> list[str]:
    """What is wrong with one 2xx answer of ``operation``, bar ``departures``."""
    if status not in documented_statuses(operation):
        return (
            []
            if tolerated(operation, f"status {status}", departures)
            else [f"undocumented status {status}"]
        )
    media = documented_media_types(operation, status)
    if not media:  # documented without content (the 204 of /domini_pec)
        return [] if body == b"" else [f"{status} documents no body, got {body[:80]!r}"]
    if content_type not in media:
        return [f"Content-Type {content_type!r}, documented {sorted(media)}"]
    if content_type == "application/pdf":
        return [] if body.startswith(b"%PDF-") else [f"not a PDF: {body[:20]!r}"]
    answer = json.loads(body)
    problems = [
        f"{where or '/'}: {message}"
        for where, message in schema_violations(operation, status, answer)
        if not tolerated(operation, where, departures)
    ]
    # The schemas require no property at all: an empty object would pass them.
    if not (isinstance(answer, dict) and answer.get("success") is True and "data" in answer):
        problems.append("not a success envelope {data, success: true, ...}")
    return problems


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
        for response in _operation(operation)["responses"].values():
            used |= set(keys(response))
    assert used & _OPENAPI_ONLY == set()


def test_every_departure_names_an_operation_of_the_spec():
    for departure in ALLOWED_DEPARTURES:
        assert departure.operation == "*" or departure.operation in OPERATIONS, departure
        assert departure.why.strip(), departure


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

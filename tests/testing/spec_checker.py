"""The checker of emulator answers against the specification's response schemas, and the
departures it tolerates (:data:`ALLOWED_DEPARTURES`, each with its reason; the "Spec
departures" table of ``pecapi/testing/README.md`` says the same in prose). Used by
test_schema_conformance.py (success answers) and test_status_conformance.py (errors)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

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


def operation_of(name: str) -> dict[str, Any]:
    method, path = name.split(" ", 1)
    op: dict[str, Any] = SPEC["paths"][path][method.lower()]
    return op


def documented_statuses(operation: str) -> set[int]:
    return {int(status) for status in operation_of(operation)["responses"]}


def documented_media_types(operation: str, status: int) -> set[str]:
    return set(operation_of(operation)["responses"][str(status)].get("content") or {})


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
OPENAPI_ONLY = frozenset({"nullable", "discriminator", "readOnly", "writeOnly", "xml"})
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

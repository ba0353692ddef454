"""The checker of the token services' answers against their specifications (OAuth v1:
``tests/data/oauth.openapi.json``, v2: ``tests/data/oauthv2.openapi.json``), the same
approach as ``spec_checker.py`` for the PEC API: every 2xx JSON answer validated against
the operation's response schema with every object closed (an invented field is refused),
every other status documented for the operation or a listed departure, every error in the
envelope of the specifications' examples.

:class:`TokenApi` is the raw client of the emulator tests: each answer it reads is checked
on the spot (``conform=False`` for the answers of faults). The departures here are the
"Spec departures" rows of the token services in ``pecapi/testing/README.md``.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from pecapi.testing import Emulator, OAuthEmulator, OAuthV2Emulator
from pecapi.testing import oauth as v1
from pecapi.testing import oauth_v2_records as v2
from tests.testing.spec_checker import Departure, _strict, tolerated

DATA = Path(__file__).parent.parent / "data"

FORMATS = jsonschema.FormatChecker()
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339 (jsonschema checks it only with an optional package)."""
    if not isinstance(value, str):
        return True
    if _RFC3339.fullmatch(value) is None:
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@dataclass
class SpecChecker:
    """The answers of one specification's operations, against its response schemas."""

    filename: str
    #: the operations the emulator serves (the others answer 404, as unknown paths do)
    emulated: tuple[str, ...]
    departures: tuple[Departure, ...]
    #: operations answered as ``{"data": <the schema>}`` (a departure with its reason)
    enveloped: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.spec: dict[str, Any] = json.loads((DATA / self.filename).read_text("utf-8"))
        self.uri = f"urn:pecapi:{self.filename}"
        resource = Resource.from_contents(_strict(self.spec), default_specification=DRAFT4)
        self.registry: Registry[Any] = Registry().with_resource(self.uri, resource)
        self.operations = tuple(
            f"{method.upper()} {path}"
            for path, item in self.spec["paths"].items()
            for method in item
        )
        self._patterns = [
            (
                op,
                re.compile("/" + "/".join(_segment(s) for s in op.split(" ", 1)[1][1:].split("/"))),
            )
            for op in self.operations
        ]

    def operation(self, method: str, path: str) -> str | None:
        """The operation ("METHOD /template") a request is, or None (no such operation)."""
        for op, pattern in self._patterns:
            if op.split(" ", 1)[0] == method and pattern.fullmatch(path):
                return op
        return None

    def responses(self, operation: str) -> dict[str, Any]:
        method, path = operation.split(" ", 1)
        found: dict[str, Any] = self.spec["paths"][path][method.lower()]["responses"]
        return found

    def statuses(self, operation: str) -> set[int]:
        return {int(status) for status in self.responses(operation)}

    def examples(self, operation: str, status: int) -> list[Any]:
        """Every example answer of the operation's ``status``."""
        media = (
            self.responses(operation)[str(status)].get("content", {}).get("application/json", {})
        )
        found = [media["example"]] if "example" in media else []
        return found + [e["value"] for e in media.get("examples", {}).values()]

    def violations(self, operation: str, status: int, answer: Any) -> list[tuple[str, str]]:
        method, path = operation.split(" ", 1)
        pointer = "/".join(
            s.replace("~", "~0").replace("/", "~1")
            for s in ("paths", path, method.lower(), "responses", str(status), "content")
        )
        schema = {"$ref": f"{self.uri}#/{pointer}/application~1json/schema"}
        validator = jsonschema.Draft4Validator(
            schema, registry=self.registry, format_checker=FORMATS
        )
        found = []
        for error in validator.iter_errors(answer):
            where = "".join(f"/{s}" for s in error.absolute_path)
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                for extra in sorted(set(error.instance) - set(error.schema.get("properties", {}))):
                    found.append((f"{where}/{extra}", "undocumented property"))
            else:
                found.append((where, error.message))
        return sorted(found)

    def check(self, operation: str, status: int, content_type: str, body: bytes) -> list[str]:
        """What is wrong with one answer of ``operation``, bar the departures."""
        documented = status in self.statuses(operation)
        if not documented and not tolerated(operation, f"status {status}", self.departures):
            return [f"undocumented status {status}"]
        if not 200 <= status < 300:
            return _error_problems(status, content_type, body)
        content = self.responses(operation)[str(status)].get("content")
        if not content:
            return [] if body == b"" else [f"{status} documents no body, got {body[:80]!r}"]
        if content_type not in content:
            return [f"Content-Type {content_type!r}, documented {sorted(content)}"]
        answer = json.loads(body)
        if operation in self.enveloped:
            if not (isinstance(answer, dict) and set(answer) == {"data"}):
                return [f"not the envelope {{data}} of {operation}: {sorted(answer)}"]
            answer = answer["data"]
        return [
            f"{where or '/'}: {message}"
            for where, message in self.violations(operation, status, answer)
            if not tolerated(operation, where, self.departures)
        ]


def _segment(template: str) -> str:
    return "[^/]*" if template.startswith("{") else re.escape(template)


def _error_problems(status: int, content_type: str, body: bytes) -> list[str]:
    if content_type != "application/json":
        return [f"an error answered {content_type!r}"]
    answer = json.loads(body)
    shape = isinstance(answer, dict) and set(answer) == {"success", "message", "error", "data"}
    if not (
        shape
        and answer["success"] is False
        and answer["data"] is None
        and isinstance(answer["message"], str)
        and isinstance(answer["error"], int)
        and not isinstance(answer["error"], bool)
    ):
        return [f"not the error envelope of the examples: {answer!r}"]
    return []


#: The operations of the v1 specification the emulator serves.
V1_EMULATED = ("POST /token", "GET /token", "DELETE /token/{token}", "GET /credit")
V1 = SpecChecker(
    "oauth.openapi.json",
    V1_EMULATED,
    (
        Departure(
            "*",
            "status 401",
            "Every operation requires basicAuth; none documents the answer to a wrong or "
            "missing e-mail and API key.",
        ),
        Departure("POST /token", "status 400", "A body that is not a JSON object."),
        Departure("POST /token", "status 413", "A body over 1 MiB; the spec states no limit."),
    ),
)

_TOKEN_DETAIL_WHY = (
    "The schema is a bare TokenDetail, with no example; GET /tokens (TokenListOrDetail) "
    "gives a token's detail as {data: TokenDetail}, as every other answer of the service "
    "puts its payload under data. OAuthV2Emulator(bare_token_answers=True) sends the bare "
    "schema instead."
)
V2 = SpecChecker(
    "oauthv2.openapi.json",
    v2.EMULATED,
    (
        Departure(
            "*",
            "status 401",
            "Every operation requires HTTP Basic; only PATCH /tokens/{token} documents the 401 "
            "(error 140) for wrong credentials: the others answer the same.",
        ),
        Departure("POST /tokens", "status 400", "A body that is not a JSON object."),
        Departure("POST /tokens", "status 413", "A body over 1 MiB; the spec states no limit."),
        Departure("PATCH /tokens/{token}", "status 413", "As POST /tokens."),
        Departure(
            "GET /tokens", "status 400", "skip/limit not whole numbers, limit over its maximum 100."
        ),
        Departure("GET /wallet/transactions", "status 400", "As GET /tokens."),
    ),
    enveloped={
        "POST /tokens": _TOKEN_DETAIL_WHY,
        "GET /tokens/{token}": _TOKEN_DETAIL_WHY,
        "PATCH /tokens/{token}": _TOKEN_DETAIL_WHY,
    },
)

#: The checker of an OAuthV2Emulator(bare_token_answers=True): the schema's bare TokenDetail.
V2_BARE = SpecChecker("oauthv2.openapi.json", v2.EMULATED, V2.departures)


# --- the raw client of the tests ----------------------------------------------------------------


def basic(email: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{email}:{key}".encode()).decode()


@dataclass
class Resp:
    status: int
    raw: bytes
    headers: Any
    json: Any

    @property
    def data(self) -> Any:
        assert isinstance(self.json, dict), self.raw[:200]
        return self.json["data"]


@dataclass
class TokenApi:
    """A raw session on a token service: every answer checked against ``checker``."""

    session: aiohttp.ClientSession
    url: str
    checker: SpecChecker
    authorization: str
    #: every (operation, status, error code or None) answered, for the coverage tests
    seen: list[tuple[str, int, int | None]] = field(default_factory=list)

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: str | None = "basic",
        data: bytes | None = None,
        conform: bool = True,
    ) -> Resp:
        """``auth``: "basic" (the account's), None (no header), or a whole header value."""
        headers = {}
        if auth is not None:
            headers["Authorization"] = self.authorization if auth == "basic" else auth
        kwargs: dict[str, Any] = {"headers": headers}
        if data is not None:
            kwargs["data"] = io.BytesIO(data)  # (aiohttp warns of large bytes bodies)
            headers["Content-Type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.url + path, **kwargs) as r:
            raw = await r.read()
            ctype = r.content_type
            parsed = json.loads(raw) if ctype == "application/json" and raw else None
            resp = Resp(r.status, raw, r.headers, parsed)
        if conform:
            operation = self.checker.operation(method, path.split("?", 1)[0])
            if operation not in self.checker.emulated:  # the JSON envelope of a 404/405
                assert resp.status in (404, 405), (method, path, resp.status)
                assert _error_problems(resp.status, ctype, raw) == []
            else:
                code = resp.json.get("error") if isinstance(resp.json, dict) else None
                self.seen.append((operation, resp.status, code))
                problems = self.checker.check(operation, resp.status, ctype, raw)
                assert problems == [], (operation, resp.status, problems, raw[:300])
        return resp

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        resp = await self.call(method, path, body, **kw)
        assert resp.status == 200, resp.raw[:300]
        return resp.json

    async def fails(
        self, method: str, path: str, body: Any = None, *, status: int, code: int, **kw: Any
    ) -> Resp:
        resp = await self.call(method, path, body, **kw)
        assert (resp.status, resp.json["error"]) == (status, code), resp.raw[:300]
        return resp


# --- the checker itself ---------------------------------------------------------------------------


def test_operations_are_found_from_requests():
    assert V2.operation("PATCH", "/tokens/abc") == "PATCH /tokens/{token}"
    assert V2.operation("GET", "/tokens") == "GET /tokens"
    assert V2.operation("GET", "/wallet/transactions") == "GET /wallet/transactions"
    assert V2.operation("PUT", "/tokens") is None
    assert V1.operation("GET", "/credit") == "GET /credit"


def test_the_checker_passes_a_conforming_answer_and_rejects_wrong_ones():
    detail = {
        "token": "656d1e2f8b3c2a001f7e4a12",
        "createdAt": "2025-11-19T10:00:00Z",
        "expireAt": "2025-12-19T10:00:00Z",
        "updatedAt": "2025-11-19T10:00:00Z",
        "scopes": ["GET:test.pec.openapi.it/pec"],
        "refreshToken": "656d1e2f8b3c2a001f7e4a13",
    }

    def check(answer: Any, operation: str = "POST /tokens", status: int = 200) -> list[str]:
        return V2.check(operation, status, "application/json", json.dumps(answer).encode())

    assert check({"data": detail}) == []
    assert check(detail) != []  # the bare schema is not what this checker expects there
    assert check({"data": {**detail, "invented": 1}}) == ["/invented: undocumented property"]
    assert check({"data": {**detail, "expireAt": "19/12/2025"}}) != []
    assert check({"data": {**detail, "scopes": "GET:x/y"}}) != []
    assert check({"data": detail, "success": True}) != []
    assert check({"data": [detail]}, "GET /tokens") == []
    assert check({"data": {"credit": "12"}}, "GET /wallet") != []
    assert check({"message": "Deleted", "data": None}, "DELETE /tokens/{token}") == []
    error = {"success": False, "message": "Not Found", "error": 180, "data": None}
    assert check(error, "DELETE /tokens/{token}", 404) == []
    assert check(error, "DELETE /tokens/{token}", 409) == ["undocumented status 409"]
    assert check({**error, "error": "180"}, "DELETE /tokens/{token}", 404) != []
    assert check(error, "GET /tokens", 401) == []  # a listed departure
    assert V2_BARE.check("POST /tokens", 200, "application/json", json.dumps(detail).encode()) == []


def test_every_departure_and_envelope_names_an_operation_with_a_reason():
    for checker in (V1, V2):
        for departure in checker.departures:
            assert departure.operation == "*" or departure.operation in checker.operations
            assert departure.why.strip()
        assert set(checker.enveloped) <= set(checker.operations)


def test_the_validated_schemas_use_no_keyword_jsonschema_would_ignore_to_some_effect():
    """``nullable`` is OpenAPI's: Draft 4 ignores it, which changes nothing only where the
    schema has no ``type`` (any value, null included)."""

    def nodes(node: Any, spec: dict[str, Any], seen: set[str]) -> Any:
        if isinstance(node, dict):
            yield node
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in seen:
                seen.add(ref)
                target: Any = spec
                for part in ref.removeprefix("#/").split("/"):
                    target = target[part]
                yield from nodes(target, spec, seen)
            for key, value in node.items():
                if key not in ("example", "examples"):
                    yield from nodes(value, spec, seen)
        elif isinstance(node, list):
            for item in node:
                yield from nodes(item, spec, seen)

    for checker, operations in ((V1, V1_EMULATED), (V2, v2.EMULATED)):
        for operation in operations:
            for node in nodes(checker.responses(operation), checker.spec, set()):
                assert not {"discriminator", "readOnly", "writeOnly", "xml"} & set(node)
                assert "nullable" not in node or "type" not in node, (operation, node)


def _v2_errors_by_operation() -> list[tuple[str, v2.V2Error]]:
    return [(operation, error) for error in v2.ERRORS_V2 for operation in error.operations]


@pytest.mark.parametrize(("operation", "error"), _v2_errors_by_operation())
def test_every_declared_v2_error_has_a_documented_status_or_a_listed_departure(
    operation: str, error: v2.V2Error
):
    assert operation in V2.operations
    if error.status not in V2.statuses(operation):
        assert tolerated(operation, f"status {error.status}", V2.departures), (operation, error)


def test_the_documented_v2_errors_are_the_examples_of_the_spec():
    for error in v2.ERRORS_V2:
        documenting = [op for op in error.operations if error.status in V2.statuses(op)]
        wanted = {"success": False, "message": error.message, "error": error.code, "data": None}
        matching = [op for op in documenting if wanted in V2.examples(op, error.status)]
        if error.documented:
            assert matching, error
        else:  # an invented code must not pass for one the spec documents
            assert not matching, error


def test_the_documented_v1_errors_are_the_examples_of_the_spec():
    documented = {("POST /token", v1.MISSING_SCOPES), ("DELETE /token/{token}", v1.MISSING_TOKEN)}
    for operation, (status, code, message) in documented:
        wanted = {"success": False, "message": message, "error": code, "data": None}
        assert wanted in V1.examples(operation, status)
    for status, _code, _message in v1.ERRORS_V1:
        if status in (404, 405):
            continue  # only requests matching no operation
        assert status in V1.statuses("POST /token") or tolerated(
            "POST /token", f"status {status}", V1.departures
        )


def test_every_status_departure_is_needed():
    declared = {(op, e.status) for op, e in _v2_errors_by_operation()}
    for departure in V2.departures:
        status = int(departure.where.split()[1])
        operations = V2.operations if departure.operation == "*" else (departure.operation,)
        assert any(
            (op, status) in declared and status not in V2.statuses(op) for op in operations
        ), departure


# --- serving the token services in a test ---------------------------------------------------------

EMAIL = "owner@example.org"
KEY = "canary-api-key-7f3a"  # a canary: the tests of secrets look for it


@dataclass
class Env:
    """A PEC emulator and a token service over loopback, with a raw session on each."""

    emu: Emulator
    oauth: Any  # OAuthEmulator or OAuthV2Emulator
    api: TokenApi
    pec_url: str
    session: aiohttp.ClientSession
    running: Any  # RunningOAuth or RunningOAuthV2

    async def pec(
        self, token: str, method: str = "GET", path: str = "/pec", body: Any = None
    ) -> tuple[int, str]:
        """The PEC emulator's status and message for a request with ``token``."""
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.request(
            method, self.pec_url + path, json=body, headers=headers
        ) as r:
            return r.status, (await r.json())["message"]


def _one_mailbox(emu: Emulator) -> None:
    """A mailbox, so that GET /pec answers 200 to a token that may list them (no charge)."""
    if not emu.mailboxes:
        emu.seed_mailbox("owner@testcert.legalmail.it")


@asynccontextmanager
async def v2_env(emu: Emulator | None = None, **options: Any) -> AsyncIterator[Env]:
    """An OAuthV2Emulator (account EMAIL / KEY) for ``emu`` (by default one without any
    static token), both served; the session's answers checked against the v2 spec."""
    emu = Emulator(tokens={}) if emu is None else emu
    _one_mailbox(emu)
    oauth = OAuthV2Emulator(emu, email=EMAIL, api_key=KEY, **options)
    checker = V2 if not options.get("bare_token_answers") else V2_BARE
    async with emu.serve() as pec, oauth.serve() as auth, aiohttp.ClientSession() as s:
        api = TokenApi(s, auth.url, checker, basic(EMAIL, KEY))
        yield Env(emu, oauth, api, pec.url, s, auth)


@asynccontextmanager
async def v1_env(emu: Emulator | None = None) -> AsyncIterator[Env]:
    """The same for the v1 service (OAuthEmulator)."""
    emu = Emulator(tokens={}) if emu is None else emu
    _one_mailbox(emu)
    oauth = OAuthEmulator(emu, email=EMAIL, api_key=KEY)
    async with emu.serve() as pec, oauth.serve() as auth, aiohttp.ClientSession() as s:
        yield Env(emu, oauth, TokenApi(s, auth.url, V1, basic(EMAIL, KEY)), pec.url, s, auth)


def test_the_readme_lists_every_v2_error():
    readme = (Path(__file__).parents[2] / "pecapi" / "testing" / "README.md").read_text()
    section = readme[readme.index("### OAuth v2") : readme.index("## Callbacks")]
    for error in v2.ERRORS_V2:
        if error.status in (404, 405) and error.code in (404, 405):
            assert "| 404 / 405 | 404 / 405 |" in section
        else:
            assert f"| {error.status} | {error.code} | {error.message.split('{')[0]}" in section

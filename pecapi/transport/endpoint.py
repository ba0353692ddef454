"""Declarative description of the API's operations, and the URL each one builds."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import attrs
from yarl import URL

from pecapi.errors import ValidationError

__all__ = ["PDF_ACCEPT", "Answer", "Effect", "Endpoint", "Reply", "build_url", "pdf_endpoint"]

T = TypeVar("T")

#: The ``Accept`` of the PDF forms: the spec gives their 200 as ``application/pdf`` and
#: their errors as ``text/plain``; a server that negotiates would refuse JSON with 406.
PDF_ACCEPT = "application/pdf, text/plain;q=0.5"

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class Effect(enum.Enum):
    """What sending an operation twice would do; decides how it may be retried."""

    READ = "read"  # no effect on the account
    WRITE = "write"  # changes state, costs nothing, a repeat is refused or harmless
    PAID = "paid"  # debits the wallet: must happen exactly once


@attrs.frozen(kw_only=True)
class Reply:
    """A decoded API answer handed to an endpoint's ``decode``."""

    status: int
    data: Any
    message: str | None
    code: int | None
    params: Mapping[str, str]


class Answer(enum.Enum):
    """What an operation answers when it succeeds, and so how the pipeline reads it."""

    #: The API's JSON envelope ``{data, success, message, error}``: the endpoint's
    #: ``decode`` makes the call's value of its ``Reply``.
    ENVELOPE = "envelope"
    #: A PDF document (the forms), read as a stream (``transport/download.py``): the
    #: call's value is its bytes, or the file it was written to.
    PDF = "pdf"


_ACCEPT = {Answer.ENVELOPE: "application/json", Answer.PDF: PDF_ACCEPT}


def _default_accept(endpoint: Endpoint[Any]) -> str:
    return _ACCEPT[endpoint.answer]


@attrs.frozen(kw_only=True)
class Endpoint(Generic[T]):
    """One operation of the API: method, path template, effect and what it answers.

    ``answer`` says what a success is (:class:`Answer`): a JSON envelope, made the
    call's value by ``decode`` (required), or a PDF document (no ``decode``: the value is
    the document, ``T`` is ``bytes``). ``empty_when`` lists (HTTP status, API code) pairs
    that the API uses to say "nothing here" (e.g. GET /pec answering 404/200 for an
    account with no mailboxes): they are decoded as a reply with ``data=None`` instead
    of raising. ``accept`` is the ``Accept`` header: the content types the operation's
    answers have in the spec (by default, those of its ``answer``).
    """

    name: str
    method: str
    path: str
    effect: Effect
    answer: Answer = Answer.ENVELOPE
    decode: Callable[[Reply], T] | None = None
    empty_when: frozenset[tuple[int, int]] = frozenset()
    accept: str = attrs.field(default=attrs.Factory(_default_accept, takes_self=True))

    def __attrs_post_init__(self) -> None:
        # Declarations are module constants: a wrong one fails at import, in every test.
        if self.answer is Answer.ENVELOPE and self.decode is None:
            raise TypeError(f"{self.name}: a JSON envelope needs its decode")
        if self.answer is Answer.PDF and (self.decode is not None or self.empty_when):
            raise TypeError(f"{self.name}: a PDF answer has no decode nor empty_when")

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.path))

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def pdf_endpoint(*, name: str, path: str) -> Endpoint[bytes]:
    """A ``GET`` (a read) whose answer is a PDF document."""
    return Endpoint(name=name, method="GET", path=path, effect=Effect.READ, answer=Answer.PDF)


def encode_segment(value: object, name: str) -> str:
    """A path parameter, percent-encoded so that it can never change the path or query."""
    if not isinstance(value, str):
        raise ValidationError(name, f"must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValidationError(name, "must not be empty")
    if value in (".", ".."):
        raise ValidationError(name, f"{value!r} is not a valid {name}")
    return quote(value, safe="")


# Each path template as its parts, parsed once: the literal before the first placeholder,
# then (placeholder, literal after it) pairs. Keyed by the template (a module constant).
_TEMPLATES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}


def _template(path: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    parts = _PLACEHOLDER.split(path)  # literal, name, literal, name, literal...
    template = (parts[0], tuple(zip(parts[1::2], parts[2::2], strict=True)))
    _TEMPLATES[path] = template
    return template


def build_url(base: URL, endpoint: Endpoint[Any], params: Mapping[str, str]) -> URL:
    """``base`` joined with the endpoint's path, its placeholders filled and encoded."""
    path = endpoint.path
    head, rest = _TEMPLATES.get(path) or _template(path)
    pieces = [base.raw_path.rstrip("/"), head]
    for name, literal in rest:
        if name not in params:
            missing = {n for n, _ in rest} - params.keys()
            raise ValidationError(sorted(missing)[0], "is required")
        value = params[name]
        # ASCII letters and digits (every id the API hands out) need no encoding and
        # cannot be "." or "..": yarl's and quote's work is skipped for them.
        if type(value) is str and value.isascii() and value.isalnum():
            pieces.append(value)
        else:
            pieces.append(encode_segment(value, name))
        pieces.append(literal)
    return base.with_path("".join(pieces), encoded=True)

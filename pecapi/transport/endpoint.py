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

__all__ = ["PDF_ACCEPT", "Effect", "Endpoint", "Reply", "build_url"]

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


@attrs.frozen(kw_only=True)
class Endpoint(Generic[T]):
    """One operation of the API: method, path template, effect and how to read the answer.

    ``empty_when`` lists (HTTP status, API code) pairs that the API uses to say "nothing
    here" (e.g. GET /pec answering 404/200 for an account with no mailboxes): they are
    decoded as a reply with ``data=None`` instead of raising. ``accept`` is the
    ``Accept`` header: the content types the operation's answers have in the spec.
    """

    name: str
    method: str
    path: str
    effect: Effect
    decode: Callable[[Reply], T]
    empty_when: frozenset[tuple[int, int]] = frozenset()
    accept: str = "application/json"

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.path))

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def encode_segment(value: object, name: str) -> str:
    """A path parameter, percent-encoded so that it can never change the path or query."""
    if not isinstance(value, str):
        raise ValidationError(name, f"must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValidationError(name, "must not be empty")
    if value in (".", ".."):
        raise ValidationError(name, f"{value!r} is not a valid {name}")
    return quote(value, safe="")


def build_url(base: URL, endpoint: Endpoint[Any], params: Mapping[str, str]) -> URL:
    """``base`` joined with the endpoint's path, its placeholders filled and encoded."""
    missing = set(endpoint.params) - params.keys()
    if missing:
        raise ValidationError(sorted(missing)[0], "is required")
    path = _PLACEHOLDER.sub(lambda m: encode_segment(params[m.group(1)], m.group(1)), endpoint.path)
    base_path = base.raw_path.rstrip("/")
    return base.with_path(base_path + path, encoded=True)

"""How values look on the wire: dd/mm/yyyy dates, unix-second timestamps, e-mail addresses."""

from __future__ import annotations

import datetime as dt
import re

from pecapi.errors import ValidationError
from pecapi.jsontext import nested_deeper

__all__ = [
    "format_date",
    "from_unix",
    "nested_deeper_than",
    "parse_date_input",
    "parse_wire_date",
    "require_address",
    "split_address",
]

# re.ASCII: without it \d also matches other scripts' digits ("٠١/٠١/١٩٩٠").
_DATE_RE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*$", re.ASCII)
# Deliberately simple: a local part, one @, a dotted domain of letters, digits and hyphens.
_ADDRESS_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,63}$"
)


def format_date(value: dt.date) -> str:
    """A date as the API writes it: dd/mm/yyyy."""
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"


def parse_wire_date(text: str) -> dt.date | None:
    """A dd/mm/yyyy date from a response; ``""`` (the API's "unset") is None.

    Raises ValueError on anything else, so the caller can keep the raw value.
    """
    if not text:
        return None
    match = _DATE_RE.match(text)
    if match is None:
        raise ValueError(f"not a dd/mm/yyyy date: {text!r}")
    day, month, year = match.groups()
    return dt.date(int(year), int(month), int(day))


def parse_date_input(value: dt.date | str, field: str) -> dt.date:
    """A date given by the user: a ``date`` or a dd/mm/yyyy string."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            parsed = parse_wire_date(value.strip())
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed
    raise ValidationError(field, f"{value!r} is not a date (give a datetime.date or dd/mm/yyyy)")


def from_unix(seconds: int | None) -> dt.datetime | None:
    """A unix-seconds timestamp as an aware UTC datetime."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


def split_address(address: str) -> tuple[str, str] | None:
    """(local part, lowercase domain) of a syntactically valid address, else None."""
    if not _ADDRESS_RE.match(address):
        return None
    local, _, domain = address.rpartition("@")
    return local, domain.lower()


def require_address(value: str, field: str) -> str:
    """``value`` if it is a syntactically valid e-mail address, else a ValidationError."""
    if split_address(value) is None:
        raise ValidationError(field, f"{value!r} is not a valid e-mail address")
    return value


def nested_deeper_than(value: object, limit: int) -> bool:
    """Whether ``value`` (JSON-like: mappings, lists, tuples) nests more than ``limit``
    levels, its innermost values counted as a level."""
    return nested_deeper(value, limit - 1)

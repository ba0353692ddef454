"""The API's vocabulary and the pure checks of request values: enums, address, id and date
syntax, uploaded documents (PDF / p7m), space values.

Nothing here holds state: every resource module uses these checks, so they live apart from
all of them (and a check can be tested without an emulator).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pecapi.jsontext import whole_number

from .errors import ApiError, ErrorCode

__all__ = [
    "DEFAULT_SPACES",
    "FREE_STATES",
    "MAX_USERS",
    "P7M_OID",
    "QUALIFICHE",
    "SPECIAL",
    "STATI_CASELLA",
    "STATI_COMUNICA",
    "TIPI_CASELLA",
    "TIPI_CLIENTE",
    "TIPI_DOCUMENTO",
    "UPGRADABLE",
    "add_years",
    "decode_documents",
    "fmt_date",
    "is_p7m",
    "is_pdf",
    "parse_space",
    "read_string",
    "valid_date",
    "valid_domain",
    "valid_email",
    "valid_id",
    "valid_pec",
]

Json = dict[str, Any]

TIPI_CASELLA = ("STANDARD", "BRONZE", "SILVER", "GOLD", "DOMICILIODIGITALE", "PECMASSIVA")
UPGRADABLE = ("STANDARD", "BRONZE", "SILVER", "GOLD")  # in rank order
SPECIAL = frozenset({"DOMICILIODIGITALE", "PECMASSIVA"})
TIPI_CLIENTE = frozenset({"IM", "PS", "PL", "PC", "A", "PV", "X"})
SOTTOTIPI_CLIENTE = frozenset(
    {"SI", "IN", "CM", "TE", "ES", "ME", "AL", "CF", "ED", "TM", "MA", "AR", "TL", "FI", "X"}
    | {"PC", "PR", "PN", "PT", "PA", "PL", "LR", "LP", "LC", "LM", "LA", "LI"}
)
TIPI_DOCUMENTO = frozenset({"CARTA_D_IDENTITA", "PATENTE", "PASSAPORTO"})
QUALIFICHE = frozenset(
    {
        "AMMINISTRATORE",
        "COMMISSARIO_GIUDIZIARIO",
        "CURATORE_FALLIMENTARE",
        "LEGALE_RAPPRESENTANTE",
        "LIQUIDATORE",
        "SOCIO",
        "TITOLARE",
    }
)
STATI_CASELLA = frozenset(
    {
        "registrata",
        "in_evasione",
        "evasa",
        "revocata",
        "chiusa",
        "documenti_errati",
        "registrazione_annullata",
    }
)
STATI_COMUNICA = (
    "codice_in_richiesta",
    "in_attesa_di_documenti",
    "documenti_caricati",
    "comunicazione_evasa",
)
#: States in which a mailbox no longer holds its address.
FREE_STATES = frozenset({"revocata", "chiusa", "registrazione_annullata"})

#: Space (MB) a mailbox gets when activated, per type: (spazio_disco, spazio_storico).
#: The emulator's own figures.
DEFAULT_SPACES: Mapping[str, tuple[int, int]] = {
    "STANDARD": (1024, 0),
    "BRONZE": (1024, 1024),
    "SILVER": (2048, 2048),
    "GOLD": (3072, 3072),
    "DOMICILIODIGITALE": (1024, 0),
    "PECMASSIVA": (1024, 0),
}
MAX_USERS = 25

_DOMAIN = r"(?=[a-z0-9.-]{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
DOMAIN_RE = re.compile(_DOMAIN, re.IGNORECASE)
PEC_RE = re.compile(r"([a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?)@([a-z0-9.-]+)", re.IGNORECASE)
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
ID_RE = re.compile(r"[0-9a-f]{24}")
DATE_RE = re.compile(r"(\d{2})/(\d{2})/(\d{4})")
P7M_OID = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02"


def fmt_date(ts: float) -> str:
    """dd/mm/yyyy of a unix time (UTC)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%d/%m/%Y")


def add_years(ts: int, years: int) -> int:
    """The same instant ``years`` calendar years later (29 February -> 28 February)."""
    d = datetime.fromtimestamp(ts, timezone.utc)
    year = d.year + years
    day = min(d.day, calendar.monthrange(year, d.month)[1])
    return int(d.replace(year=year, day=day).timestamp())


def valid_date(text: str) -> bool:
    m = DATE_RE.fullmatch(text)
    if m is None:
        return False
    try:
        datetime(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError:
        return False
    return True


def valid_domain(dominio: str) -> bool:
    return DOMAIN_RE.fullmatch(dominio) is not None


def valid_pec(address: str) -> bool:
    m = PEC_RE.fullmatch(address)
    return m is not None and DOMAIN_RE.fullmatch(m.group(2)) is not None


def valid_email(address: str) -> bool:
    return EMAIL_RE.fullmatch(address) is not None


def valid_id(value: str) -> bool:
    return ID_RE.fullmatch(value) is not None


def decode_documents(value: Any, required: ErrorCode, wrong: ErrorCode) -> list[bytes]:
    """``documenti``: one base64 string or a list of them -> the decoded files."""
    if value is None or value == "" or value == []:
        raise required.error()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise wrong.error()
    out: list[bytes] = []
    for item in items:
        if not isinstance(item, str):
            raise wrong.error()
        text = item
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        try:
            out.append(base64.b64decode("".join(text.split()), validate=True))
        except (binascii.Error, ValueError):
            raise wrong.error() from None
    if not out:
        raise required.error()
    return out


def is_pdf(data: bytes) -> bool:
    # A .p7m wrapping a PDF has the PDF's header in its first KB too: it is not a PDF.
    return b"%PDF-" in data[:1024] and not is_p7m(data)


def is_p7m(data: bytes) -> bool:
    if data[:1] == b"\x30" and P7M_OID in data[:64]:
        return True
    return data.lstrip()[:16] == b"-----BEGIN PKCS7"


def read_string(body: Json, name: str, required: ErrorCode | None, wrong_type: ErrorCode) -> str:
    """A string field of a request body, stripped; ``""`` when absent, null or blank (and
    then ``required`` is raised, if given). Any other JSON type is ``wrong_type``."""
    raw = body.get(name)
    if raw is None:
        value = ""
    elif isinstance(raw, str):
        value = raw.strip()
    else:
        raise wrong_type.error(field=name)
    if not value and required is not None:
        raise required.error()
    return value


def parse_space(raw: Any, invalid: ApiError) -> tuple[bool, int]:
    """A space value: int or string; "+N" adds, "N" sets. -> (adds, N)."""
    if isinstance(raw, bool):  # a bool is an int to Python, never a size to the API
        raise invalid
    if isinstance(raw, int):
        if raw < 0:
            raise invalid
        return False, raw
    if isinstance(raw, str):
        text = raw.strip()
        add = text.startswith("+")
        digits = text[1:] if add else text
        number = whole_number(digits) if digits == digits.strip() else None  # not "+ 5"
        if number is not None:
            return add, number
    raise invalid

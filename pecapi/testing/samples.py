"""Ready-made request bodies and documents for tests against the emulator."""

from __future__ import annotations

import base64
from typing import Any

from pecapi.models import ComunicaPecRequest, MailboxRegistration

from .pdf import make_pdf
from .rules import P7M_OID

__all__ = [
    "comunica_body",
    "comunica_request",
    "mailbox_body",
    "multiutenza_body",
    "p7m_base64",
    "p7m_bytes",
    "pdf_base64",
    "registration",
]


def mailbox_body(
    casella_pec: str = "yourpec@testcert.legalmail.it",
    tipo_casella: str = "BRONZE",
    **overrides: Any,
) -> dict[str, Any]:
    """A valid POST /pec body (the specification's example, uppercase enums)."""
    body: dict[str, Any] = {
        "casella_pec": casella_pec,
        "tipo_casella": tipo_casella,
        "tipo_cliente": "PV",
        "sottotipo_cliente": "",
        "sottotipo_cliente_altro": "",
        "nome_richiedente": "mario",
        "cognome_richiedente": "rossi",
        "email": "mail@domain.com",
        "telefono": "0548798569",
        "codice_fiscale_richiedente": "RSSXXXXXXXX56E",
        "data_nascita_richiedente": "11/04/1982",
        "sesso_richiedente": "M",
        "nazione_nascita_richiedente": "it",
        "provincia_nascita_richiedente": "RM",
        "denominazione_titolare": "",
        "cf_piva_titolare": "",
        "indirizzo_titolare": "via verdi 20",
        "comune_titolare": "roma",
        "cap_titolare": "00042",
        "nazione_titolare": "it",
        "provincia_titolare": "rm",
        "callback": {"url": "https://your_domain.it/your_callback.php", "field": "data"},
    }
    body.update(overrides)
    return body


def comunica_body(casella_pec: str = "mypec@pec.com", **overrides: Any) -> dict[str, Any]:
    """A valid POST /comunica_pec body (the specification's example)."""
    body: dict[str, Any] = {
        "casella_pec": casella_pec,
        "cf": "RSSMRA80A01L117D",
        "nome": "mario",
        "cognome": "rossi",
        "qualifica": "LEGALE_RAPPRESENTANTE",
        "email": "mail@domain.com",
        "cellulare": "3490000018",
        "ragione_sociale": "azienda test",
        "cf_piva": "12345678910",
        "comune": "roma",
        "pec_amministratore": False,
        "provincia": "RM",
    }
    body.update(overrides)
    return body


def registration(
    casella_pec: str = "yourpec@testcert.legalmail.it", **overrides: Any
) -> MailboxRegistration:
    """The client's model of :func:`mailbox_body`, without the callback (an emulator
    would call it, and ``your_domain.it`` is nobody's test server)."""
    body = mailbox_body(casella_pec)
    del body["callback"]
    body.update(overrides)
    return MailboxRegistration(**body)


def comunica_request(casella_pec: str = "mypec@pec.com", **overrides: Any) -> ComunicaPecRequest:
    """The client's model of :func:`comunica_body`."""
    return ComunicaPecRequest(**comunica_body(casella_pec, **overrides))


def multiutenza_body(**overrides: Any) -> dict[str, Any]:
    """A valid POST /pec/{id}/multiutenza body."""
    body: dict[str, Any] = {
        "nome": "luca",
        "cognome": "bianchi",
        "descrizione": "prima utenza",
        "email_gestione_password": "mail@domain.com",
    }
    body.update(overrides)
    return body


def pdf_base64(text: str = "documento") -> str:
    """A small valid PDF, base64-encoded as the API wants ``documenti``."""
    return base64.b64encode(make_pdf(text)).decode("ascii")


def p7m_bytes(payload: bytes = b"signed form") -> bytes:
    """A minimal (BER, indefinite lengths) PKCS#7 signedData envelope: passes the API's p7m
    check (SEQUENCE tag then the signedData OID). Not a real signature."""
    content = b"\x04" + bytes([len(payload)]) + payload if len(payload) < 128 else b""
    return b"\x30\x80" + P7M_OID + b"\xa0\x80" + content + b"\x00\x00\x00\x00"


def p7m_base64(payload: bytes = b"signed form") -> str:
    """:func:`p7m_bytes`, base64-encoded."""
    return base64.b64encode(p7m_bytes(payload)).decode("ascii")

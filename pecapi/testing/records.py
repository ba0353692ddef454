"""The emulator's records, typed: a mailbox (Casella), its users (Utenza), a comunica_pec
request, a callback. Each renders itself as the API answers it with ``wire()``.

The records hold what the emulator knows; ``wire()`` decides what an answer shows (key order
as in the specification's examples, which fields appear only once set). ``extra`` holds
fields a test seeded that the emulator does not know: answers carry them verbatim, so a
client can be tested against fields a future API might add.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from dataclasses import field as dc_field
from operator import attrgetter
from typing import Any, Protocol

from .errors import ErrorCode

__all__ = [
    "Callback",
    "ComunicaDetails",
    "ComunicaRequest",
    "Mailbox",
    "MailboxTimes",
    "Registration",
    "User",
    "WireView",
]

Json = dict[str, Any]


@dataclass(slots=True)
class Callback:
    """Where the API calls back on a state change (the ``Callback`` schema)."""

    url: str
    method: str = "POST"  # POST (a form whose ``field`` holds the JSON) or JSON
    field: str = "data"
    data: Json = dc_field(default_factory=dict)

    @classmethod
    def from_request(cls, value: Any, err: ErrorCode) -> Callback | None:
        """Validate a request's ``callback`` and fill in its defaults (as the API echoes
        it); None when there is none. Raises ``err`` when it is not a valid Callback."""
        if value is None or value == "" or value is False:
            return None
        if not isinstance(value, dict):
            raise err.error()
        url = value.get("url")
        method = value.get("method", "POST") or "POST"
        name = value.get("field", "data") or "data"
        data = value.get("data", {})
        if data is None:
            data = {}
        if not isinstance(url, str) or not url.strip():
            raise err.error()
        if method not in ("POST", "JSON") or not isinstance(name, str):
            raise err.error()
        if not isinstance(data, dict):
            raise err.error()
        return cls(url, method, name, data)

    @classmethod
    def from_seed(cls, value: Any) -> Callback | None:
        """A seeded callback, taken as given (no checks: seeding is the test's word)."""
        if not value:
            return None
        if isinstance(value, Callback):
            return value
        return cls(
            str(value.get("url", "")),
            str(value.get("method") or "POST"),
            str(value.get("field") or "data"),
            dict(value.get("data") or {}),
        )

    def wire(self) -> Json:
        return {"url": self.url, "field": self.field, "method": self.method, "data": self.data}


@dataclass(slots=True)
class MailboxTimes:
    """A mailbox's ``timestamp`` (unix times); the later ones appear once they happened."""

    registrazione: int
    ultima_modifica: int
    evasione: int | None = None
    scadenza: int | None = None
    revoca: int | None = None

    def merge(self, values: Mapping[str, Any]) -> None:
        """Set some of the times by name (seeding); an unknown name is a ValueError."""
        for name, value in values.items():
            if name not in _TIME_NAMES:
                raise ValueError(f"unknown timestamp {name!r}: one of {', '.join(_TIME_NAMES)}")
            setattr(self, name, value)

    def wire(self) -> dict[str, int]:
        out = {"registrazione": self.registrazione, "ultima_modifica": self.ultima_modifica}
        for name in ("evasione", "scadenza", "revoca"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


_TIME_NAMES = ("registrazione", "ultima_modifica", "evasione", "scadenza", "revoca")


@dataclass(slots=True)
class User:
    """A user added to a mailbox (the ``Utenza`` schema)."""

    nome: str
    cognome: str
    descrizione: str
    email_gestione_password: str
    id_utenza: str
    attivazione: int  # timestamp.attivazione
    userid: str

    @classmethod
    def from_seed(cls, value: Any) -> User:
        if isinstance(value, User):
            return value
        return cls(
            str(value.get("nome", "")),
            str(value.get("cognome", "")),
            str(value.get("descrizione", "")),
            str(value.get("email_gestione_password", "")),
            str(value.get("id_utenza", "")),
            int((value.get("timestamp") or {}).get("attivazione", 0)),
            str(value.get("userid", "")),
        )

    def wire(self) -> Json:
        return {
            "nome": self.nome,
            "cognome": self.cognome,
            "descrizione": self.descrizione,
            "email_gestione_password": self.email_gestione_password,
            "id_utenza": self.id_utenza,
            "timestamp": {"attivazione": self.attivazione},
            "userid": self.userid,
        }


@dataclass(slots=True)
class Registration:
    """What a registration (POST /pec) said about the applicant, the holder and the identity
    document: strings, ``""`` when not given. ``casella_pec`` and ``tipo_casella`` are not
    here: they belong to the mailbox (a type change changes ``tipo_casella``)."""

    tipo_cliente: str = ""
    sottotipo_cliente: str = ""
    sottotipo_cliente_altro: str = ""
    nome_richiedente: str = ""
    cognome_richiedente: str = ""
    email: str = ""
    telefono: str = ""
    cellulare: str = ""
    codice_fiscale_richiedente: str = ""
    data_nascita_richiedente: str = ""
    sesso_richiedente: str = ""
    nazione_nascita_richiedente: str = ""
    comune_nascita_richiedente: str = ""
    provincia_nascita_richiedente: str = ""
    denominazione_titolare: str = ""
    cf_piva_titolare: str = ""
    indirizzo_titolare: str = ""
    comune_titolare: str = ""
    cap_titolare: str = ""
    nazione_titolare: str = ""
    provincia_titolare: str = ""
    tipo_documento: str = ""
    numero_documento: str = ""
    data_scadenza_documento: str = ""
    documento_rilasciato_da: str = ""
    data_rilascio_documento: str = ""


REGISTRATION_FIELDS = frozenset(f.name for f in fields(Registration))
# Where the Registration fields go in an answer (the order of the specification's example).
_APPLICANT = (
    "tipo_cliente",
    "sottotipo_cliente",
    "sottotipo_cliente_altro",
    "nome_richiedente",
    "cognome_richiedente",
    "email",
    "telefono",
    "codice_fiscale_richiedente",
    "data_nascita_richiedente",
    "sesso_richiedente",
    "nazione_nascita_richiedente",
    "provincia_nascita_richiedente",
    "denominazione_titolare",
    "cf_piva_titolare",
    "indirizzo_titolare",
    "comune_titolare",
    "cap_titolare",
    "nazione_titolare",
    "provincia_titolare",
)
# one call for the 19 values: an answer is rendered on every read, loops of getattr cost
_applicant_of = attrgetter(*_APPLICANT)
_DOCUMENT = (
    "tipo_documento",
    "numero_documento",
    "data_scadenza_documento",
    "documento_rilasciato_da",
    "data_rilascio_documento",
)


@dataclass(slots=True)
class Mailbox:
    """A mailbox (the ``Casella`` schema)."""

    id: str
    casella_pec: str
    tipo_casella: str
    registration: Registration
    owner: str
    timestamp: MailboxTimes
    cod_attivazione: str
    uid: str
    dominio: str
    descrizione: str
    stato: str = "registrata"
    callback: Callback | None = None
    autorinnovo: bool = False
    conservazione: bool = False
    data_scadenza: str = ""  # dd/mm/yyyy once activated
    sms: bool = False
    spazio_conservazione: int = 0
    spazio_disco: int = 0
    spazio_storico: int = 0
    storico: bool = False
    # These appear in answers once set (as in the specification's examples).
    documenti_attivazione: list[str] | None = None
    data_attivazione: str | None = None
    documenti_conservazione: list[str] | None = None
    multiutenza: list[User] | None = None
    extra: Json = dc_field(default_factory=dict)

    def wire(self) -> Json:
        reg = self.registration
        out: Json = {"casella_pec": self.casella_pec, "tipo_casella": self.tipo_casella}
        out.update(zip(_APPLICANT, _applicant_of(reg), strict=True))
        if self.callback is not None:
            out["callback"] = self.callback.wire()
        out["dominio"] = self.dominio
        out["owner"] = self.owner
        out["timestamp"] = self.timestamp.wire()
        out["cellulare"] = reg.cellulare
        out["comune_nascita_richiedente"] = reg.comune_nascita_richiedente
        out["cod_attivazione"] = self.cod_attivazione
        out["uid"] = self.uid
        out["conservazione"] = self.conservazione
        out["data_scadenza"] = self.data_scadenza
        out["descrizione"] = self.descrizione
        out["sms"] = self.sms
        out["spazio_conservazione"] = self.spazio_conservazione
        out["spazio_disco"] = self.spazio_disco
        out["spazio_storico"] = self.spazio_storico
        out["stato"] = self.stato
        out["storico"] = self.storico
        if self.documenti_attivazione is not None:
            out["documenti_attivazione"] = list(self.documenti_attivazione)
        if self.data_attivazione is not None:
            out["data_attivazione"] = self.data_attivazione
        if self.documenti_conservazione is not None:
            out["documenti_conservazione"] = list(self.documenti_conservazione)
        if self.multiutenza is not None:
            out["multiutenza"] = [user.wire() for user in self.multiutenza]
        out["id"] = self.id
        out["autorinnovo"] = self.autorinnovo
        # tipo_documento is an enum in the Casella schema: unset, it is left out (as in the
        # specification's examples), never "". The other strings allow "".
        if reg.tipo_documento:
            out["tipo_documento"] = reg.tipo_documento
        for name in _DOCUMENT[1:]:
            out[name] = getattr(reg, name)
        out.update(self.extra)
        return out

    def summary(self) -> Json:
        """The item of GET /pec (the ``Caselle`` schema)."""
        return {
            "id": self.id,
            "casella_pec": self.casella_pec,
            "tipo_casella": self.tipo_casella,
            "stato": self.stato,
            "data_scadenza": self.data_scadenza,
            "timestamp": self.timestamp.wire(),
            "owner": self.owner,
        }


MAILBOX_FIELDS = frozenset(f.name for f in fields(Mailbox)) - {"registration", "extra"}


@dataclass(slots=True)
class ComunicaDetails:
    """What a POST /comunica_pec said: the address to communicate, the declarant, the
    company."""

    casella_pec: str = ""
    cf: str = ""
    nome: str = ""
    cognome: str = ""
    qualifica: str = ""
    email: str = ""
    cellulare: str = ""
    ragione_sociale: str = ""
    cf_piva: str = ""
    comune: str = ""
    provincia: str = ""


COMUNICA_DETAILS = tuple(f.name for f in fields(ComunicaDetails))


@dataclass(slots=True)
class ComunicaRequest:
    """A request to communicate a PEC address to the business register (the
    ``RichiestaComunicazionePec`` schema)."""

    id: str
    details: ComunicaDetails
    owner: str
    timestamp: int
    stato: str = "codice_in_richiesta"
    callback: Callback | None = None
    codice_registro_imprese: str = "openapi"
    documenti_registro_imprese: list[str] = dc_field(default_factory=list)
    extra: Json = dc_field(default_factory=dict)

    @property
    def casella_pec(self) -> str:
        return self.details.casella_pec

    def wire(self) -> Json:
        details = self.details
        out: Json = {name: getattr(details, name) for name in COMUNICA_DETAILS}
        # None is left out: the schema's Callback is an object, and the `false` of the
        # specification's examples is not one (a client reads both as "no callback").
        if self.callback is not None:
            out["callback"] = self.callback.wire()
        out["stato"] = self.stato
        out["codice_registro_imprese"] = self.codice_registro_imprese
        out["documenti_registro_imprese"] = list(self.documenti_registro_imprese)
        out["owner"] = self.owner
        out["timestamp"] = self.timestamp
        out["id"] = self.id
        out.update(self.extra)
        return out

    def summary(self) -> Json:
        """The item of GET /comunica_pec (the ``RichiesteComunicazionePec`` schema)."""
        return {
            "id": self.id,
            "casella_pec": self.details.casella_pec,
            "stato": self.stato,
            "timestamp": self.timestamp,
            "owner": self.owner,
        }


COMUNICA_FIELDS = frozenset(f.name for f in fields(ComunicaRequest)) - {"details", "extra"}


class _Wired(Protocol):
    def wire(self) -> Json: ...


class WireView(Mapping[str, Json]):
    """A read-only ``id -> answer`` view of a store of records: each look-up renders the
    record as the API answers it now (a fresh dict: changing it changes nothing)."""

    __slots__ = ("_records",)

    def __init__(self, records: Mapping[str, _Wired]) -> None:
        self._records = records

    def __getitem__(self, key: str) -> Json:
        return self._records[key].wire()

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"WireView({len(self._records)} records)"

"""The emulator's state (account, mailboxes, comunica_pec requests, wallet, ledger) and the
API operations on it. The HTTP layer is in :mod:`pecapi.testing.app`.

Each ``api_*`` method is one endpoint: it validates, raises :class:`ApiError` /
:class:`PlainError` on failure (nothing changed), or commits and returns the ``data`` of the
answer. State is kept as the wire dicts themselves, so answering costs one ``json.dumps``.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import random
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from . import errors as E
from .callbacks import CallbackDeliverer, Delivery
from .errors import ApiError, ErrorCode, PlainError
from .faults import FaultPlan
from .late import LateCommits
from .ledger import Charge, PriceList, RequestRecord
from .pdf import make_pdf

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["DEFAULT_SPACES", "DEFAULT_TOKEN", "Emulator", "Environment", "RunningEmulator"]

Json = dict[str, Any]
Environment = Literal["sandbox", "production"]

#: The bearer token every emulator accepts by default (all scopes).
DEFAULT_TOKEN = "pecapi-emulator-token"

HOSTS: Mapping[str, str] = {"sandbox": "test.pec.openapi.it", "production": "pec.openapi.it"}

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
SYSTEM_DOMAINS = {
    "sandbox": {
        "STANDARD": "testcert.legalmail.it",
        "BRONZE": "testcert.legalmail.it",
        "SILVER": "testcert.legalmail.it",
        "GOLD": "testcert.legalmail.it",
        "DOMICILIODIGITALE": "test.domiciliodigitale.com",
        "PECMASSIVA": "testcert.legalmail.it",
    },
    "production": {
        "STANDARD": "legalmail.it",
        "BRONZE": "legalmail.it",
        "SILVER": "legalmail.it",
        "GOLD": "legalmail.it",
        "DOMICILIODIGITALE": "domiciliodigitale.com",
        "PECMASSIVA": "pecmassiva.com",
    },
}
DEFAULT_CERTIFIED_DOMAINS = (
    "legalmail.it",
    "pec.it",
    "domiciliodigitale.com",
    "pecmassiva.com",
    "testcert.legalmail.it",
    "test.domiciliodigitale.com",
)

_DOMAIN = r"(?=[a-z0-9.-]{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
DOMAIN_RE = re.compile(_DOMAIN, re.IGNORECASE)
PEC_RE = re.compile(r"([a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?)@([a-z0-9.-]+)", re.IGNORECASE)
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
ID_RE = re.compile(r"[0-9a-f]{24}")
DATE_RE = re.compile(r"(\d{2})/(\d{2})/(\d{4})")
P7M_OID = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02"

# Fields of BodyPostPec, in the order of the specification (also the order of validation).
_REG_STRINGS = (
    "casella_pec",
    "tipo_casella",
    "tipo_cliente",
    "sottotipo_cliente",
    "sottotipo_cliente_altro",
    "nome_richiedente",
    "cognome_richiedente",
    "email",
    "telefono",
    "cellulare",
    "codice_fiscale_richiedente",
    "data_nascita_richiedente",
    "sesso_richiedente",
    "nazione_nascita_richiedente",
    "comune_nascita_richiedente",
    "provincia_nascita_richiedente",
    "denominazione_titolare",
    "cf_piva_titolare",
    "indirizzo_titolare",
    "comune_titolare",
    "cap_titolare",
    "nazione_titolare",
    "provincia_titolare",
    "tipo_documento",
    "numero_documento",
    "data_scadenza_documento",
    "documento_rilasciato_da",
    "data_rilascio_documento",
)
_REG_ENUMS: Mapping[str, frozenset[str]] = {
    "tipo_casella": frozenset(TIPI_CASELLA),
    "tipo_cliente": TIPI_CLIENTE,
    "sottotipo_cliente": SOTTOTIPI_CLIENTE,
    "sesso_richiedente": frozenset({"M", "F"}),
    "tipo_documento": TIPI_DOCUMENTO,
}
_COM_STRINGS = (
    "casella_pec",
    "cf",
    "nome",
    "cognome",
    "qualifica",
    "email",
    "cellulare",
    "ragione_sociale",
    "cf_piva",
    "comune",
    "provincia",
)
_CASELLE_KEYS = (
    "id",
    "casella_pec",
    "tipo_casella",
    "stato",
    "data_scadenza",
    "timestamp",
    "owner",
)
_RICHIESTE_KEYS = ("id", "casella_pec", "stato", "timestamp", "owner")


@dataclass(frozen=True, slots=True)
class RunningEmulator:
    """An emulator being served: ``url`` is the base URL, without a trailing slash."""

    url: str
    host: str
    port: int
    emulator: Emulator


# --- small pure helpers --------------------------------------------------------------------


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


def valid_pec(address: str) -> bool:
    m = PEC_RE.fullmatch(address)
    return m is not None and DOMAIN_RE.fullmatch(m.group(2)) is not None


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


def _callback(value: Any, err: ErrorCode) -> Json | None:
    """Validate a Callback object and fill in its defaults (as the API echoes it)."""
    if value is None or value == "" or value is False:
        return None
    if not isinstance(value, dict):
        raise err.error()
    url = value.get("url")
    method = value.get("method", "POST") or "POST"
    field = value.get("field", "data") or "data"
    data = value.get("data", {})
    if data is None:
        data = {}
    if not isinstance(url, str) or not url.strip():
        raise err.error()
    if method not in ("POST", "JSON") or not isinstance(field, str):
        raise err.error()
    if not isinstance(data, dict):
        raise err.error()
    return {"url": url, "field": field, "method": method, "data": data}


def _string(body: Json, name: str, required: ErrorCode | None, wrong_type: ErrorCode) -> str:
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


class Emulator:
    """A stateful, in-memory emulator of the Openapi.it PEC API (one account).

    See ``pecapi/testing/README.md``. Serve it with :meth:`serve` (or mount :meth:`app`).
    """

    def __init__(
        self,
        environment: Environment = "sandbox",
        tokens: Mapping[str, Iterable[str] | None] | None = None,
        credit: Decimal | int | str = Decimal("1000"),
        prices: PriceList | None = None,
        own_domains: Iterable[str] = (),
        certified_domains: Iterable[str] | None = None,
        auto_process: bool = False,
        latency: float = 0.0,
        seed: int = 0,
        owner: str = "mail@domain.com",
        token_expiry: Mapping[str, float] | None = None,
        callback_attempts: int = 3,
        callback_retry_delay: float = 0.0,
        callback_envelope: bool = True,
        callback_hosts: Iterable[str] = (),
        allow_external_callbacks: bool = False,
    ) -> None:
        if environment not in HOSTS:
            raise ValueError("environment must be 'sandbox' or 'production'")
        self.environment: Environment = environment
        self.host = HOSTS[environment]
        if tokens is None:
            tokens = {DEFAULT_TOKEN: None}
        #: token -> None (every scope) or the set of scopes "METHOD:host/segment"
        self.tokens: dict[str, frozenset[str] | None] = {
            t: (None if s is None else frozenset(s)) for t, s in tokens.items()
        }
        #: token -> unix time (emulator clock) from which it is answered 401 "Token expired";
        #: tokens not listed never expire
        self.token_expiry: dict[str, float] = dict(token_expiry or {})
        #: delivers callbacks to the URLs of registrations and requests (see README); only
        #: to loopback hosts, those in ``callback_hosts``, or any with allow_external_callbacks
        self.callbacks = CallbackDeliverer(
            attempts=callback_attempts,
            retry_delay=callback_retry_delay,
            envelope=callback_envelope,
            hosts=callback_hosts,
            allow_external=allow_external_callbacks,
        )
        self.wallet: Decimal = Decimal(credit)
        self.prices = prices if prices is not None else PriceList()
        self.own_domains = frozenset(d.lower() for d in own_domains)
        self.certified_domains = frozenset(
            d.lower()
            for d in (*DEFAULT_CERTIFIED_DOMAINS, *self.own_domains, *(certified_domains or ()))
        )
        self.auto_process = auto_process
        self.latency = latency
        self.seed = seed
        self.owner = owner
        self.faults = FaultPlan(seed)
        #: the requests of ``Fault.late`` faults waiting to be processed (see README)
        self.late_commits = LateCommits()
        self.ledger: list[Charge] = []
        self.requests: list[RequestRecord] = []
        #: the decoded files uploaded, by the name the API gives them
        #: ("<id>_0_attivazione.pdf", "<id>_0_registro_imprese.p7m"...)
        self.documents: dict[str, bytes] = {}
        self._rng = random.Random(seed)
        self._fixed_time: float | None = None
        self._mailboxes: dict[str, Json] = {}
        self._by_address: dict[str, str] = {}
        self._comunica: dict[str, Json] = {}

    # --- public helpers ---------------------------------------------------------------------

    @property
    def mailboxes(self) -> Mapping[str, Json]:
        """id -> the Casella wire dict, as GET /pec/{id} returns it (read-only view)."""
        return MappingProxyType(self._mailboxes)

    @property
    def comunica_requests(self) -> Mapping[str, Json]:
        """id -> the RichiestaComunicazionePec wire dict (read-only view)."""
        return MappingProxyType(self._comunica)

    def now(self) -> float:
        """The emulator's clock: real time unless :meth:`set_time` fixed it."""
        return time.time() if self._fixed_time is None else self._fixed_time

    def set_time(self, ts: float) -> None:
        """Stop the clock at unix time ``ts``."""
        self._fixed_time = float(ts)

    def advance_time(self, seconds: float) -> None:
        """Move the clock forward (it stays fixed from then on)."""
        self._fixed_time = self.now() + seconds

    # --- tokens ---------------------------------------------------------------------------------

    def add_token(
        self, token: str, scopes: Iterable[str] | None = None, *, expires: float | None = None
    ) -> None:
        """Accept ``token`` (``scopes`` None: every scope) until ``expires`` (emulator clock)."""
        self.tokens[token] = None if scopes is None else frozenset(scopes)
        if expires is None:
            self.token_expiry.pop(token, None)
        else:
            self.token_expiry[token] = float(expires)

    def revoke_token(self, token: str) -> bool:
        """Stop accepting ``token`` (answered 401 from now on); False if it was unknown."""
        self.token_expiry.pop(token, None)
        return self.tokens.pop(token, False) is not False

    def token_expired(self, token: str) -> bool:
        """True when ``token`` has an expiry and the emulator clock has reached it."""
        expiry = self.token_expiry.get(token)
        return expiry is not None and self.now() >= expiry

    # --- callbacks -------------------------------------------------------------------------------

    @property
    def deliveries(self) -> list[Delivery]:
        """Every callback scheduled so far, in order: url, stato, attempts, status..."""
        return self.callbacks.deliveries

    async def deliveries_settled(self) -> list[Delivery]:
        """Wait until every scheduled callback was delivered or gave up; the deliveries."""
        await self.callbacks.settled()
        return self.callbacks.deliveries

    async def aclose(self) -> None:
        """Cancel the late commits still waiting (those requests are never processed), then
        the callbacks still being delivered, and close their HTTP session.

        Called when :meth:`serve` ends or the :meth:`app` is cleaned up.
        """
        await self.late_commits.aclose()
        await self.callbacks.aclose()

    # --- late commits (Fault.late) ----------------------------------------------------------

    @property
    def late_pending(self) -> int:
        """Late commits not made yet."""
        return self.late_commits.pending

    async def drain_late(self) -> None:
        """Wait until every late commit scheduled so far has been made."""
        await self.late_commits.drain()

    def _changed(self, kind: str, record: Json) -> None:
        callback = record.get("callback")
        if isinstance(callback, dict) and callback.get("url"):
            self.callbacks.schedule(kind, record)

    def count(self, method: str = "*", path_glob: str = "*") -> int:
        """How many requests matched ``method`` ("*": any) and the fnmatch ``path_glob``."""
        method = method.upper()
        return sum(
            1
            for r in self.requests
            if (method == "*" or r.method == method) and fnmatchcase(r.path, path_glob)
        )

    def charges(self, operation: str | None = None, target_id: str | None = None) -> list[Charge]:
        """The ledger filtered by operation and/or target id."""
        return [
            c
            for c in self.ledger
            if (operation is None or c.operation == operation)
            and (target_id is None or c.target_id == target_id)
        ]

    def seed_mailbox(
        self,
        casella_pec: str,
        *,
        tipo_casella: str = "BRONZE",
        stato: str = "evasa",
        **fields: Any,
    ) -> str:
        """Insert a mailbox directly (no validation of domain rules, no charge); its id.

        ``fields`` override any Casella field (``timestamp`` is merged; ``id`` picks the id).
        An ``evasa``/``revocata`` mailbox is activated (expiry one year from now, default
        spaces).
        """
        if tipo_casella not in TIPI_CASELLA:
            raise ValueError(f"unknown tipo_casella {tipo_casella!r}")
        if stato not in STATI_CASELLA:
            raise ValueError(f"unknown stato {stato!r}")
        mailbox_id = str(fields.pop("id", "")) or self._new_id()
        if not valid_id(mailbox_id) or mailbox_id in self._mailboxes:
            raise ValueError(f"bad or duplicate id {mailbox_id!r}")
        values = {name: "" for name in _REG_STRINGS}
        values.update(
            casella_pec=casella_pec.lower(),
            tipo_casella=tipo_casella,
            tipo_cliente="PV",
            nome_richiedente="mario",
            cognome_richiedente="rossi",
            email=self.owner,
            telefono="0548798569",
            codice_fiscale_richiedente="RSSMRA82D11H501X",
            data_nascita_richiedente="11/04/1982",
            sesso_richiedente="M",
            nazione_nascita_richiedente="IT",
            indirizzo_titolare="via verdi 20",
            comune_titolare="roma",
            cap_titolare="00042",
            nazione_titolare="IT",
            provincia_titolare="RM",
        )
        casella = self._new_casella(mailbox_id, values, None, False)
        if stato in ("in_evasione", "evasa", "revocata", "chiusa", "documenti_errati"):
            casella["documenti_attivazione"] = [f"{mailbox_id}_0_attivazione.pdf"]
        if stato in ("evasa", "revocata", "chiusa"):
            casella["stato"] = "in_evasione"
            self._activate(casella)
        casella["stato"] = stato
        if stato == "revocata":
            casella["timestamp"]["revoca"] = int(self.now())
        timestamp = fields.pop("timestamp", None)
        if timestamp:
            casella["timestamp"].update(timestamp)
        casella.update(fields)
        self._mailboxes[mailbox_id] = casella
        if stato not in FREE_STATES or casella["casella_pec"] not in self._by_address:
            self._by_address[casella["casella_pec"]] = mailbox_id
        return mailbox_id

    def seed_comunica(
        self, casella_pec: str, *, stato: str = "codice_in_richiesta", **fields: Any
    ) -> str:
        """Insert a comunica_pec request directly (no charge); its id."""
        if stato not in STATI_COMUNICA:
            raise ValueError(f"unknown stato {stato!r}")
        request_id = str(fields.pop("id", "")) or self._new_id()
        record: Json = {
            "casella_pec": casella_pec.lower(),
            "cf": "RSSMRA80A01L117D",
            "nome": "mario",
            "cognome": "rossi",
            "qualifica": "LEGALE_RAPPRESENTANTE",
            "email": self.owner,
            "cellulare": "3490000018",
            "ragione_sociale": "azienda test",
            "cf_piva": "12345678910",
            "comune": "roma",
            "provincia": "RM",
            "callback": False,
            "stato": stato,
            "codice_registro_imprese": "openapi",
            "documenti_registro_imprese": [],
            "owner": self.owner,
            "timestamp": int(self.now()),
            "id": request_id,
        }
        if stato in ("documenti_caricati", "comunicazione_evasa"):
            record["documenti_registro_imprese"] = [f"{request_id}_0_registro_imprese.p7m"]
        record.update(fields)
        self._comunica[request_id] = record
        return request_id

    def complete_activation(self, mailbox_id: str) -> None:
        """``in_evasione`` -> ``evasa``: activation date, expiry one year ahead, spaces."""
        casella = self._mailboxes[mailbox_id]
        if casella["stato"] != "in_evasione":
            raise ValueError(f"mailbox {mailbox_id} is {casella['stato']}, not in_evasione")
        self._activate(casella)

    def reject_documents(self, mailbox_id: str) -> None:
        """``in_evasione`` -> ``documenti_errati`` (the documents must be uploaded again)."""
        casella = self._mailboxes[mailbox_id]
        if casella["stato"] != "in_evasione":
            raise ValueError(f"mailbox {mailbox_id} is {casella['stato']}, not in_evasione")
        casella["stato"] = "documenti_errati"
        casella["timestamp"]["ultima_modifica"] = int(self.now())
        self._changed("mailbox", casella)

    def advance_comunica(self, request_id: str) -> None:
        """``codice_in_richiesta`` -> ``in_attesa_di_documenti``;
        ``documenti_caricati`` -> ``comunicazione_evasa``."""
        record = self._comunica[request_id]
        stato = record["stato"]
        if stato == "codice_in_richiesta":
            record["stato"] = "in_attesa_di_documenti"
        elif stato == "documenti_caricati":
            record["stato"] = "comunicazione_evasa"
        else:
            raise ValueError(f"request {request_id} is {stato}: nothing pending")
        record["timestamp"] = int(self.now())
        self._changed("comunica_pec", record)

    def process_all(self) -> int:
        """Complete every pending transition; how many were made."""
        done = 0
        for casella in self._mailboxes.values():
            if casella["stato"] == "in_evasione":
                self._activate(casella)
                done += 1
        for request_id, record in self._comunica.items():
            if record["stato"] in ("codice_in_richiesta", "documenti_caricati"):
                self.advance_comunica(request_id)
                done += 1
        return done

    def app(self) -> web.Application:
        """The aiohttp application serving this emulator."""
        from .app import build_app

        return build_app(self)

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[RunningEmulator]:
        """Serve over HTTP on ``host:port`` (0: a free port) while the context is open."""
        from .app import serve_app

        async with serve_app(self, host, port) as (bound_host, bound_port):
            url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
            yield RunningEmulator(f"http://{url_host}:{bound_port}", bound_host, bound_port, self)

    # --- internals --------------------------------------------------------------------------

    def _new_id(self) -> str:
        while True:
            candidate = f"{self._rng.getrandbits(96):024x}"
            if candidate not in self._mailboxes and candidate not in self._comunica:
                return candidate

    def _pay(
        self, amount: Decimal, err: ErrorCode, operation: str, target_id: str, detail: str
    ) -> None:
        if amount > self.wallet:
            raise err.error(amount=f"{self.wallet:.2f}")
        self.wallet -= amount
        self.ledger.append(Charge(operation, amount, target_id, detail, self.now()))

    def _check_funds(self, amount: Decimal, err: ErrorCode) -> None:
        if amount > self.wallet:
            raise err.error(amount=f"{self.wallet:.2f}")

    def _new_casella(
        self, mailbox_id: str, v: Mapping[str, str], callback: Json | None, autorinnovo: bool
    ) -> Json:
        now = int(self.now())
        address = v["casella_pec"]
        casella: Json = {
            "casella_pec": address,
            "tipo_casella": v["tipo_casella"],
            "tipo_cliente": v["tipo_cliente"],
            "sottotipo_cliente": v["sottotipo_cliente"],
            "sottotipo_cliente_altro": v["sottotipo_cliente_altro"],
            "nome_richiedente": v["nome_richiedente"],
            "cognome_richiedente": v["cognome_richiedente"],
            "email": v["email"],
            "telefono": v["telefono"],
            "codice_fiscale_richiedente": v["codice_fiscale_richiedente"],
            "data_nascita_richiedente": v["data_nascita_richiedente"],
            "sesso_richiedente": v["sesso_richiedente"],
            "nazione_nascita_richiedente": v["nazione_nascita_richiedente"].upper(),
            "provincia_nascita_richiedente": v["provincia_nascita_richiedente"],
            "denominazione_titolare": v["denominazione_titolare"],
            "cf_piva_titolare": v["cf_piva_titolare"],
            "indirizzo_titolare": v["indirizzo_titolare"],
            "comune_titolare": v["comune_titolare"],
            "cap_titolare": v["cap_titolare"],
            "nazione_titolare": v["nazione_titolare"].upper(),
            "provincia_titolare": v["provincia_titolare"],
        }
        if callback is not None:
            casella["callback"] = callback
        casella.update(
            {
                "dominio": address.rpartition("@")[2],
                "owner": self.owner,
                "timestamp": {"registrazione": now, "ultima_modifica": now},
                "cellulare": v["cellulare"],
                "comune_nascita_richiedente": v["comune_nascita_richiedente"],
                "cod_attivazione": str(self._rng.randrange(10_000_000, 100_000_000)),
                "uid": f"MA{self._rng.randrange(100_000, 1_000_000)}",
                "conservazione": False,
                "data_scadenza": "",
                "descrizione": address,
                "sms": False,
                "spazio_conservazione": 0,
                "spazio_disco": 0,
                "spazio_storico": 0,
                "stato": "registrata",
                "storico": False,
                "id": mailbox_id,
                "autorinnovo": autorinnovo,
                "tipo_documento": v["tipo_documento"],
                "numero_documento": v["numero_documento"],
                "data_scadenza_documento": v["data_scadenza_documento"],
                "documento_rilasciato_da": v["documento_rilasciato_da"],
                "data_rilascio_documento": v["data_rilascio_documento"],
            }
        )
        return casella

    def _activate(self, casella: Json) -> None:
        now = int(self.now())
        expiry = add_years(now, 1)
        ts = casella["timestamp"]
        ts["evasione"] = now
        ts["scadenza"] = expiry
        ts["ultima_modifica"] = now
        casella["stato"] = "evasa"
        casella["data_attivazione"] = fmt_date(now)
        casella["data_scadenza"] = fmt_date(expiry)
        self._apply_default_spaces(casella)
        self._changed("mailbox", casella)

    @staticmethod
    def _apply_default_spaces(casella: Json) -> None:
        tipo = casella["tipo_casella"]
        disco, storico = DEFAULT_SPACES.get(tipo, (1024, 0))
        casella["spazio_disco"] = max(int(casella["spazio_disco"]), disco)
        casella["spazio_storico"] = max(int(casella["spazio_storico"]), storico)
        casella["storico"] = casella["spazio_storico"] > 0
        casella["sms"] = tipo not in SPECIAL

    def _taken(self, address: str, except_id: str | None = None) -> bool:
        owner_id = self._by_address.get(address)
        if owner_id is None or owner_id == except_id:
            return False
        casella = self._mailboxes.get(owner_id)
        return casella is not None and casella["stato"] not in FREE_STATES

    def _mailbox_for(self, mailbox_id: str, wrong: ErrorCode, missing: ErrorCode) -> Json:
        if not valid_id(mailbox_id):
            raise wrong.error()
        casella = self._mailboxes.get(mailbox_id)
        if casella is None:
            raise missing.error()
        return casella

    def _request_for(self, request_id: str, wrong: ErrorCode, missing: ErrorCode) -> Json:
        if not valid_id(request_id):
            raise wrong.error()
        record = self._comunica.get(request_id)
        if record is None:
            raise missing.error()
        return record

    def _touch(self, casella: Json) -> int:
        now = int(self.now())
        casella["timestamp"]["ultima_modifica"] = now
        return now

    # --- the API operations -----------------------------------------------------------------

    def api_check_domain(self, dominio: str) -> list[Any] | None:
        """GET /domini_pec/{dominio}: ``[]`` when certified, ``None`` (204) otherwise."""
        if not dominio:
            raise E.DOM_REQUIRED.error()
        if DOMAIN_RE.fullmatch(dominio) is None:
            raise E.DOM_INVALID.error()
        if self.prices.verifica_dominio > 0:
            self._pay(self.prices.verifica_dominio, E.DOM_CREDIT, "verifica_dominio", "", dominio)
        return [] if dominio.lower() in self.certified_domains else None

    def api_check_pec(self, pec: str) -> Json:
        """GET /verifica_pec/{pec}."""
        if not pec:
            raise E.VER_REQUIRED.error()
        if not valid_pec(pec):
            raise E.VER_INVALID.error()
        if self._taken(pec.lower()):
            raise E.VER_TAKEN.error()
        return {"available": True}

    def api_list_mailboxes(self) -> list[Json]:
        """GET /pec."""
        if not self._mailboxes:
            raise E.LIST_EMPTY.error()
        return [{k: c.get(k, "") for k in _CASELLE_KEYS} for c in self._mailboxes.values()]

    def api_register(self, body: Json) -> Json:
        """POST /pec."""
        values: dict[str, str] = {}
        for name in _REG_STRINGS:
            value = _string(body, name, E.REG_REQUIRED.get(name), E.REG_WRONG_TYPE)
            values[name] = value
            if not value:
                continue
            allowed = _REG_ENUMS.get(name)
            if allowed is not None and value not in allowed:
                raise E.REG_INVALID[name].error()
            date_err = E.REG_DATE_INVALID.get(name)
            if date_err is not None and not valid_date(value):
                raise date_err.error()
            if name == "casella_pec" and not valid_pec(value):
                raise E.REG_INVALID["casella_pec"].error()
            if name == "email" and EMAIL_RE.fullmatch(value) is None:
                raise E.REG_INVALID["email"].error()
        callback = _callback(body.get("callback"), E.REG_INVALID["callback"])
        autorinnovo = body.get("autorinnovo", False)
        if autorinnovo is None:
            autorinnovo = False
        if not isinstance(autorinnovo, bool):
            raise E.REG_INVALID["autorinnovo"].error()

        address = values["casella_pec"] = values["casella_pec"].lower()
        tipo = values["tipo_casella"]
        dominio = address.rpartition("@")[2]
        expected = SYSTEM_DOMAINS[self.environment][tipo]
        if dominio != expected and not (dominio in self.own_domains and tipo in UPGRADABLE):
            system = set(SYSTEM_DOMAINS[self.environment].values())
            if dominio in system or dominio in self.own_domains:
                raise E.REG_DOMAIN_WRONG_TYPE.error(tipo=tipo, expected=expected)
            raise E.REG_DOMAIN_UNKNOWN.error(dominio=dominio)
        if self._taken(address):
            raise E.REG_TAKEN.error()
        price = self.prices.register_price(tipo)
        self._check_funds(price, E.REG_CREDIT)
        mailbox_id = self._new_id()
        casella = self._new_casella(mailbox_id, values, callback, autorinnovo)
        self._pay(price, E.REG_CREDIT, "register", mailbox_id, f"{tipo} {address}")
        self._mailboxes[mailbox_id] = casella
        self._by_address[address] = mailbox_id
        self._changed("mailbox", casella)
        return casella

    def api_get_mailbox(self, mailbox_id: str) -> Json:
        """GET /pec/{id}."""
        return self._mailbox_for(mailbox_id, E.GET_WRONG_ID, E.GET_NOT_FOUND)

    def api_revoke(self, mailbox_id: str) -> Json:
        """DELETE /pec/{id}."""
        casella = self._mailbox_for(mailbox_id, E.DEL_WRONG_ID, E.DEL_NOT_FOUND)
        if casella["stato"] == "revocata":
            raise E.DEL_REVOKED.error()
        if casella["stato"] != "evasa":
            raise E.DEL_NOT_ACTIVE.error()
        now = self._touch(casella)
        casella["stato"] = "revocata"
        casella["timestamp"]["revoca"] = now
        self._changed("mailbox", casella)
        return casella

    def api_activate(self, mailbox_id: str, body: Json) -> Json:
        """PATCH /pec/{id}/attivazione."""
        casella = self._mailbox_for(mailbox_id, E.ACT_WRONG_ID, E.ACT_NOT_FOUND)
        if casella["stato"] not in ("registrata", "documenti_errati"):
            raise E.ACT_STATE.error()
        files = decode_documents(body.get("documenti"), E.ACT_DOCS_REQUIRED, E.ACT_NOT_PDF)
        if not all(is_pdf(f) for f in files):
            raise E.ACT_NOT_PDF.error()
        names = [f"{mailbox_id}_{i}_attivazione.pdf" for i in range(len(files))]
        self.documents.update(zip(names, files, strict=True))
        casella["documenti_attivazione"] = names
        casella["stato"] = "in_evasione"
        self._touch(casella)
        self._changed("mailbox", casella)
        if self.auto_process:
            self._activate(casella)
        return casella

    def api_modify_space(self, mailbox_id: str, body: Json) -> Json:
        """PATCH /pec/{id}/modifica."""
        casella = self._mailbox_for(mailbox_id, E.MOD_WRONG_ID, E.MOD_NOT_FOUND)
        if casella["tipo_casella"] in SPECIAL:
            raise E.MOD_NOT_ON.error()
        if casella["stato"] != "evasa":
            raise E.MOD_STATE.error()
        prices = self.prices
        changes: list[tuple[str, int]] = []
        amount = Decimal(0)
        for name, unit, price in (
            ("spazio_disco", 1024, prices.spazio_disco),
            ("spazio_storico", 1024, prices.spazio_storico),
            ("spazio_conservazione", 512, prices.spazio_conservazione),
        ):
            raw = body.get(name)
            if raw is None or raw == "":
                continue
            if name == "spazio_conservazione" and not casella["conservazione"]:
                raise E.MOD_NO_CONSERVAZIONE.error()
            add, number = _parse_space(raw, E.MOD_INVALID.error(field=name))
            if number % unit:
                raise E.MOD_MULTIPLE.error(unit=unit)
            current = int(casella[name])
            target = current + number if add else number
            if target <= current:
                raise E.MOD_DOWNGRADE.error(field=name)
            changes.append((name, target))
            amount += price * ((target - current) // unit)
        if not changes:
            raise E.MOD_REQUIRED.error()
        detail = ", ".join(f"{name} {casella[name]}->{target}" for name, target in changes)
        self._pay(amount, E.MOD_CREDIT, "space", mailbox_id, detail)
        for name, target in changes:
            casella[name] = target
        casella["storico"] = casella["spazio_storico"] > 0
        self._touch(casella)
        return casella

    def api_conservation(self, mailbox_id: str, body: Json) -> Json:
        """PATCH /pec/{id}/conservazione."""
        casella = self._mailbox_for(mailbox_id, E.CONS_WRONG_ID, E.CONS_NOT_FOUND)
        if casella["tipo_casella"] in SPECIAL:
            raise E.CONS_NOT_ON.error()
        if casella["stato"] != "evasa":
            raise E.CONS_STATE.error()
        if casella["conservazione"]:
            raise E.CONS_ACTIVE.error()
        documenti = body.get("documenti")
        if documenti is None or documenti == "" or documenti == []:
            raise E.CONS_DOCS_REQUIRED.error()
        raw_space = body.get("spazio_conservazione")
        space = 512
        if raw_space is not None and raw_space != "":
            add, space = _parse_space(raw_space, E.CONS_MULTIPLE.error())
            if add or space <= 0 or space % 512:
                raise E.CONS_MULTIPLE.error()
        files = decode_documents(documenti, E.CONS_DOCS_REQUIRED, E.CONS_NOT_PDF)
        if not all(is_pdf(f) for f in files):
            raise E.CONS_NOT_PDF.error()
        prices = self.prices
        amount = prices.conservazione + prices.spazio_conservazione * (space // 512)
        self._pay(amount, E.CONS_CREDIT, "conservazione", mailbox_id, f"spazio {space}")
        names = [f"{mailbox_id}_{i}_conservazione.pdf" for i in range(len(files))]
        self.documents.update(zip(names, files, strict=True))
        casella["conservazione"] = True
        casella["spazio_conservazione"] = space
        casella["documenti_conservazione"] = names
        self._touch(casella)
        return casella

    def api_change_type(self, mailbox_id: str, body: Json) -> Json:
        """PATCH /pec/{id}/trasformazione."""
        casella = self._mailbox_for(mailbox_id, E.TRA_WRONG_ID, E.TRA_NOT_FOUND)
        current = casella["tipo_casella"]
        if current in SPECIAL:
            raise E.TRA_NOT_ON.error()
        if casella["stato"] != "evasa":
            raise E.TRA_STATE.error()
        target = body.get("tipo_casella")
        if target is None or target == "":
            raise E.TRA_REQUIRED.error()
        if target not in UPGRADABLE:
            raise E.TRA_INVALID.error()
        rank = UPGRADABLE.index(current)
        if UPGRADABLE.index(target) <= rank:
            higher = UPGRADABLE[rank + 1 :]
            if not higher:
                raise ApiError(
                    E.TRA_DOWNGRADE.status,
                    E.TRA_DOWNGRADE.code,
                    "a downgrade of the 'tipo_casella' is not allowed; GOLD is the highest type",
                )
            allowed = " or ".join(higher) if len(higher) < 3 else "BRONZE, SILVER or GOLD"
            raise E.TRA_DOWNGRADE.error(allowed=allowed)
        self._pay(
            self.prices.trasformazione,
            E.TRA_CREDIT,
            "trasformazione",
            mailbox_id,
            f"{current}->{target}",
        )
        casella["tipo_casella"] = target
        self._apply_default_spaces(casella)
        self._touch(casella)
        return casella

    def api_renew(self, mailbox_id: str, anni_raw: str | None) -> Json:
        """GET /pec/{id}/rinnovo?anni=N."""
        casella = self._mailbox_for(mailbox_id, E.REN_WRONG_ID, E.REN_NOT_FOUND)
        anni = 1
        if anni_raw is not None:
            text = anni_raw.strip()
            if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 10:
                raise E.REN_ANNI.error()
            anni = int(text)
        stato = casella["stato"]
        if stato not in ("evasa", "revocata"):
            raise E.REN_STATE.error()
        address = casella["casella_pec"]
        if stato == "revocata" and self._taken(address, except_id=mailbox_id):
            raise E.REN_TAKEN.error()
        tipo = casella["tipo_casella"]
        price = self.prices.renewal_price(tipo, anni)
        self._pay(price, E.REN_CREDIT, "renewal", mailbox_id, f"{tipo} anni={anni}")
        now = self._touch(casella)
        ts = casella["timestamp"]
        expiry = int(ts.get("scadenza") or 0)
        ts["scadenza"] = add_years(expiry if expiry > now else now, anni)
        casella["data_scadenza"] = fmt_date(ts["scadenza"])
        if stato == "revocata":
            casella["stato"] = "evasa"
            ts.pop("revoca", None)
            self._by_address[address] = mailbox_id
        self._changed("mailbox", casella)
        return casella

    def api_add_user(self, mailbox_id: str, body: Json) -> Json:
        """POST /pec/{id}/multiutenza."""
        casella = self._mailbox_for(mailbox_id, E.USR_WRONG_ID, E.USR_NOT_FOUND)
        if casella["tipo_casella"] in SPECIAL:
            raise E.USR_NOT_ON.error()
        if casella["stato"] != "evasa":
            raise E.USR_STATE.error()
        values = {
            name: _string(body, name, required, required)
            for name, required in E.USR_REQUIRED.items()
        }
        if EMAIL_RE.fullmatch(values["email_gestione_password"]) is None:
            raise E.USR_EMAIL_INVALID.error()
        users: list[Json] = casella.get("multiutenza", [])
        if len(users) >= MAX_USERS:
            raise E.USR_MAX.error()
        self._pay(
            self.prices.multiutenza,
            E.USR_CREDIT,
            "multiutenza",
            mailbox_id,
            values["email_gestione_password"],
        )
        now = self._touch(casella)
        users.append(
            {
                **values,
                "id_utenza": f"{mailbox_id}_{len(users)}",
                "timestamp": {"attivazione": now},
                "userid": f"MA{self._rng.randrange(100_000, 1_000_000)}",
            }
        )
        casella["multiutenza"] = users
        return casella

    def api_list_comunica(self) -> list[Json]:
        """GET /comunica_pec."""
        if not self._comunica:
            raise E.COM_LIST_EMPTY.error()
        return [{k: r[k] for k in _RICHIESTE_KEYS} for r in self._comunica.values()]

    def api_create_comunica(self, body: Json) -> Json:
        """POST /comunica_pec."""
        values: dict[str, str] = {}
        for name in _COM_STRINGS:
            value = _string(body, name, E.COM_REQUIRED[name], E.COM_WRONG_TYPE)
            if name == "casella_pec":
                if not valid_pec(value):
                    raise E.COM_INVALID_PEC.error()
                value = value.lower()
            elif name == "qualifica" and value not in QUALIFICHE:
                raise E.COM_INVALID["qualifica"].error()
            elif name == "email" and EMAIL_RE.fullmatch(value) is None:
                raise E.COM_INVALID["email"].error()
            values[name] = value
        pec_amministratore = body.get("pec_amministratore", False)
        if pec_amministratore is not None and not isinstance(pec_amministratore, bool):
            raise E.COM_INVALID["pec_amministratore"].error()
        callback = _callback(body.get("callback"), E.COM_INVALID["callback"])
        self._check_funds(self.prices.comunica_pec, E.COM_CREDIT)
        request_id = self._new_id()
        record: Json = {
            **values,
            "callback": callback if callback is not None else False,
            "stato": "codice_in_richiesta",
            "codice_registro_imprese": "openapi",
            "documenti_registro_imprese": [],
            "owner": self.owner,
            "timestamp": int(self.now()),
            "id": request_id,
        }
        self._pay(
            self.prices.comunica_pec,
            E.COM_CREDIT,
            "comunica_pec",
            request_id,
            values["casella_pec"],
        )
        self._comunica[request_id] = record
        self._changed("comunica_pec", record)
        if self.auto_process:
            self.advance_comunica(request_id)
        return record

    def api_get_comunica(self, request_id: str) -> Json:
        """GET /comunica_pec/{id}."""
        return self._request_for(request_id, E.COM_GET_WRONG_ID, E.COM_GET_NOT_FOUND)

    def api_upload_comunica(self, request_id: str, body: Json) -> Json:
        """PATCH /comunica_pec/{id}."""
        record = self._request_for(request_id, E.COM_UP_WRONG_ID, E.COM_UP_NOT_FOUND)
        if record["stato"] != "in_attesa_di_documenti":
            raise E.COM_UP_STATE.error()
        files = decode_documents(body.get("documenti"), E.COM_UP_REQUIRED, E.COM_UP_NOT_P7M)
        if not all(is_p7m(f) for f in files):
            raise E.COM_UP_NOT_P7M.error()
        names = [f"{request_id}_{i}_registro_imprese.p7m" for i in range(len(files))]
        self.documents.update(zip(names, files, strict=True))
        record["documenti_registro_imprese"] = names
        record["stato"] = "documenti_caricati"
        record["timestamp"] = int(self.now())
        self._changed("comunica_pec", record)
        if self.auto_process:
            self.advance_comunica(request_id)
        return record

    # --- forms (PDF downloads; errors are text/plain) ---------------------------------------

    def _form_mailbox(self, mailbox_id: str) -> Json:
        if not valid_id(mailbox_id):
            raise PlainError(400, E.FORM_WRONG_ID)
        casella = self._mailboxes.get(mailbox_id)
        if casella is None:
            raise PlainError(404, E.FORM_NOT_FOUND.format(id=mailbox_id))
        return casella

    def api_form_activation(self, mailbox_id: str) -> bytes:
        """GET /pec/{id}/modulo_attivazione."""
        casella = self._form_mailbox(mailbox_id)
        if casella["stato"] not in ("registrata", "documenti_errati"):
            raise PlainError(406, E.FORM_ACT_STATE)
        return make_pdf(
            "Modulo di attivazione casella PEC",
            [
                f"id: {mailbox_id}",
                f"casella_pec: {casella['casella_pec']}",
                f"tipo_casella: {casella['tipo_casella']}",
                f"cod_attivazione: {casella['cod_attivazione']}",
                f"richiedente: {casella['nome_richiedente']} {casella['cognome_richiedente']}",
                "Firma: ______________________",
            ],
        )

    def api_form_conservation(self, mailbox_id: str) -> bytes:
        """GET /pec/{id}/modulo_conservazione."""
        casella = self._form_mailbox(mailbox_id)
        if casella["tipo_casella"] in SPECIAL:
            raise PlainError(406, E.FORM_CONS_NOT_ON)
        if casella["stato"] != "evasa":
            raise PlainError(406, E.FORM_CONS_NOT_ACTIVE)
        if casella["conservazione"]:
            raise PlainError(406, E.FORM_CONS_ACTIVE)
        return make_pdf(
            "Modulo di attivazione del servizio di conservazione",
            [
                f"id: {mailbox_id}",
                f"casella_pec: {casella['casella_pec']}",
                "Firma: ______________________",
            ],
        )

    def api_form_procura(self, request_id: str) -> bytes:
        """GET /comunica_pec/{id}/procura_registro_imprese."""
        if not valid_id(request_id):
            raise PlainError(400, E.FORM_WRONG_ID)
        record = self._comunica.get(request_id)
        if record is None:
            raise PlainError(404, E.FORM_NOT_FOUND.format(id=request_id))
        if record["stato"] == "codice_in_richiesta":
            raise PlainError(406, E.FORM_PROCURA_NOT_YET)
        if record["stato"] != "in_attesa_di_documenti":
            raise PlainError(406, E.FORM_PROCURA_DONE)
        return make_pdf(
            "Procura speciale per la comunicazione della PEC al Registro Imprese",
            [
                f"id: {request_id}",
                f"casella_pec: {record['casella_pec']}",
                f"impresa: {record['ragione_sociale']} ({record['cf_piva']})",
                f"codice: {record['codice_registro_imprese']}",
                "Firma digitale (p7m) del dichiarante",
            ],
        )


def _parse_space(raw: Any, invalid: ApiError) -> tuple[bool, int]:
    """A space value: int or string; "+N" adds, "N" sets. -> (adds, N)."""
    if isinstance(raw, bool):
        raise invalid
    if isinstance(raw, int):
        if raw < 0:
            raise invalid
        return False, raw
    if isinstance(raw, str):
        text = raw.strip()
        add = text.startswith("+")
        digits = text[1:] if add else text
        if digits.isascii() and digits.isdigit():
            return add, int(digits)
    raise invalid

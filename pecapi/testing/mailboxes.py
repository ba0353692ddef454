"""Mailboxes: registration, reading, revocation, activation documents and the activation
lifecycle (GET /verifica_pec, GET and POST /pec, GET and DELETE /pec/{id},
PATCH /pec/{id}/attivazione). The paid changes to an active mailbox are in
:mod:`pecapi.testing.mailbox_changes`.

Each operation validates, raises :class:`~pecapi.testing.errors.ApiError` on failure (then
nothing changed), or commits and returns the record.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from . import errors as E
from .account import Account
from .domains import Domains
from .errors import ErrorCode
from .records import (
    MAILBOX_FIELDS,
    REGISTRATION_FIELDS,
    Callback,
    Json,
    Mailbox,
    MailboxTimes,
    Registration,
    User,
    WireView,
)
from .rules import (
    DEFAULT_SPACES,
    FREE_STATES,
    SOTTOTIPI_CLIENTE,
    SPECIAL,
    STATI_CASELLA,
    TIPI_CASELLA,
    TIPI_CLIENTE,
    TIPI_DOCUMENTO,
    add_years,
    decode_documents,
    fmt_date,
    is_pdf,
    read_string,
    valid_date,
    valid_email,
    valid_id,
    valid_pec,
)

__all__ = ["Mailboxes"]

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
# What a seeded mailbox says about its applicant unless the test says otherwise.
_SEED_APPLICANT = {
    "tipo_cliente": "PV",
    "nome_richiedente": "mario",
    "cognome_richiedente": "rossi",
    "telefono": "0548798569",
    "codice_fiscale_richiedente": "RSSMRA82D11H501X",
    "data_nascita_richiedente": "11/04/1982",
    "sesso_richiedente": "M",
    "nazione_nascita_richiedente": "IT",
    "indirizzo_titolare": "via verdi 20",
    "comune_titolare": "roma",
    "cap_titolare": "00042",
    "nazione_titolare": "IT",
    "provincia_titolare": "RM",
}


class Mailboxes:
    """The account's mailboxes, by id; ``view`` shows them as the API answers."""

    def __init__(self, account: Account, domains: Domains) -> None:
        self._account = account
        self._domains = domains
        self._by_id: dict[str, Mailbox] = {}
        # address -> the id of the mailbox that last held it (it may be free again)
        self._by_address: dict[str, str] = {}
        self.view: Mapping[str, Json] = WireView(self._by_id)

    def __iter__(self) -> Iterator[Mailbox]:
        return iter(self._by_id.values())

    def find(self, mailbox_id: str) -> Mailbox | None:
        return self._by_id.get(mailbox_id)

    def __getitem__(self, mailbox_id: str) -> Mailbox:
        return self._by_id[mailbox_id]

    def lookup(self, mailbox_id: str, wrong: ErrorCode, missing: ErrorCode) -> Mailbox:
        """The mailbox of a path id: ``wrong`` (400) for a malformed id, ``missing`` (404)."""
        if not valid_id(mailbox_id):
            raise wrong.error()
        box = self._by_id.get(mailbox_id)
        if box is None:
            raise missing.error()
        return box

    def taken(self, address: str, except_id: str | None = None) -> bool:
        """Whether a mailbox (other than ``except_id``) holds ``address`` now."""
        owner_id = self._by_address.get(address)
        if owner_id is None or owner_id == except_id:
            return False
        box = self._by_id.get(owner_id)
        return box is not None and box.stato not in FREE_STATES

    def hold(self, box: Mailbox) -> None:
        """``box`` holds its address again (a revoked mailbox renewed)."""
        self._by_address[box.casella_pec] = box.id

    def touch(self, box: Mailbox) -> int:
        now = int(self._account.now())
        box.timestamp.ultima_modifica = now
        return now

    # --- the API operations -----------------------------------------------------------------

    def check_pec(self, pec: str) -> Json:
        """GET /verifica_pec/{pec}."""
        if not pec:
            raise E.VER_REQUIRED.error()
        if not valid_pec(pec):
            raise E.VER_INVALID.error()
        if self.taken(pec.lower()):
            raise E.VER_TAKEN.error()
        return {"available": True}

    def list(self) -> list[Json]:
        """GET /pec."""
        if not self._by_id:
            raise E.LIST_EMPTY.error()
        return [box.summary() for box in self._by_id.values()]

    def register(self, body: Json) -> Mailbox:
        """POST /pec."""
        values: dict[str, str] = {}
        for name in _REG_STRINGS:
            value = read_string(body, name, E.REG_REQUIRED.get(name), E.REG_WRONG_TYPE)
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
            if name == "email" and not valid_email(value):
                raise E.REG_INVALID["email"].error()
        callback = Callback.from_request(body.get("callback"), E.REG_INVALID["callback"])
        autorinnovo = body.get("autorinnovo", False)
        if autorinnovo is None:
            autorinnovo = False
        if not isinstance(autorinnovo, bool):
            raise E.REG_INVALID["autorinnovo"].error()

        address = values.pop("casella_pec").lower()
        tipo = values.pop("tipo_casella")
        self._domains.check_registration(address, tipo)
        if self.taken(address):
            raise E.REG_TAKEN.error()
        account = self._account
        price = account.prices.register_price(tipo)
        account.check_funds(price, E.REG_CREDIT)
        box = self._new(account.new_id(), address, tipo, Registration(**values))
        box.callback = callback
        box.autorinnovo = autorinnovo
        account.pay(price, E.REG_CREDIT, "register", box.id, f"{tipo} {address}")
        self._by_id[box.id] = box
        self._by_address[address] = box.id
        account.notify("mailbox", box)
        return box

    def get(self, mailbox_id: str) -> Mailbox:
        """GET /pec/{id}."""
        return self.lookup(mailbox_id, E.GET_WRONG_ID, E.GET_NOT_FOUND)

    def revoke(self, mailbox_id: str) -> Mailbox:
        """DELETE /pec/{id}."""
        box = self.lookup(mailbox_id, E.DEL_WRONG_ID, E.DEL_NOT_FOUND)
        if box.stato == "revocata":
            raise E.DEL_REVOKED.error()
        if box.stato != "evasa":
            raise E.DEL_NOT_ACTIVE.error()
        box.timestamp.revoca = self.touch(box)
        box.stato = "revocata"
        self._account.notify("mailbox", box)
        return box

    def upload_activation(self, mailbox_id: str, body: Json) -> Mailbox:
        """PATCH /pec/{id}/attivazione: the signed forms, then the mailbox is in_evasione."""
        box = self.lookup(mailbox_id, E.ACT_WRONG_ID, E.ACT_NOT_FOUND)
        if box.stato not in ("registrata", "documenti_errati"):
            raise E.ACT_STATE.error()
        files = decode_documents(body.get("documenti"), E.ACT_DOCS_REQUIRED, E.ACT_NOT_PDF)
        if not all(is_pdf(f) for f in files):
            raise E.ACT_NOT_PDF.error()
        names = [f"{mailbox_id}_{i}_attivazione.pdf" for i in range(len(files))]
        self._account.store(names, files)
        box.documenti_attivazione = names
        box.stato = "in_evasione"
        self.touch(box)
        self._account.notify("mailbox", box)
        if self._account.auto_process:
            self.activate(box)
        return box

    # --- the lifecycle (the provider's side, driven by tests) --------------------------------

    def activate(self, box: Mailbox) -> None:
        """-> ``evasa``: activation date, expiry one year ahead, the type's spaces."""
        now = int(self._account.now())
        expiry = add_years(now, 1)
        box.timestamp.evasione = now
        box.timestamp.scadenza = expiry
        box.timestamp.ultima_modifica = now
        box.stato = "evasa"
        box.data_attivazione = fmt_date(now)
        box.data_scadenza = fmt_date(expiry)
        apply_default_spaces(box)
        self._account.notify("mailbox", box)

    def complete_activation(self, mailbox_id: str) -> None:
        box = self._by_id[mailbox_id]
        if box.stato != "in_evasione":
            raise ValueError(f"mailbox {mailbox_id} is {box.stato}, not in_evasione")
        self.activate(box)

    def reject_documents(self, mailbox_id: str) -> None:
        box = self._by_id[mailbox_id]
        if box.stato != "in_evasione":
            raise ValueError(f"mailbox {mailbox_id} is {box.stato}, not in_evasione")
        box.stato = "documenti_errati"
        self.touch(box)
        self._account.notify("mailbox", box)

    def process_pending(self) -> int:
        """Activate every mailbox in_evasione; how many."""
        pending = [box for box in self._by_id.values() if box.stato == "in_evasione"]
        for box in pending:
            self.activate(box)
        return len(pending)

    def seed(self, casella_pec: str, tipo_casella: str, stato: str, fields: dict[str, Any]) -> str:
        """Insert a mailbox directly (see :meth:`pecapi.testing.Emulator.seed_mailbox`)."""
        if tipo_casella not in TIPI_CASELLA:
            raise ValueError(f"unknown tipo_casella {tipo_casella!r}")
        if stato not in STATI_CASELLA:
            raise ValueError(f"unknown stato {stato!r}")
        account = self._account
        mailbox_id = str(fields.pop("id", ""))
        if mailbox_id:
            if not valid_id(mailbox_id):
                raise ValueError(f"bad id {mailbox_id!r}")
            account.claim_id(mailbox_id)
        else:
            mailbox_id = account.new_id()
        registration = Registration(email=account.owner, **_SEED_APPLICANT)
        box = self._new(mailbox_id, casella_pec.lower(), tipo_casella, registration)
        if stato in ("in_evasione", "evasa", "revocata", "chiusa", "documenti_errati"):
            box.documenti_attivazione = [f"{mailbox_id}_0_attivazione.pdf"]
        if stato in ("evasa", "revocata", "chiusa"):
            box.stato = "in_evasione"
            self.activate(box)
        box.stato = stato
        if stato == "revocata":
            box.timestamp.revoca = int(account.now())
        _override(box, fields)
        self._by_id[mailbox_id] = box
        if stato not in FREE_STATES or box.casella_pec not in self._by_address:
            self._by_address[box.casella_pec] = mailbox_id
        return mailbox_id

    def _new(self, mailbox_id: str, address: str, tipo: str, reg: Registration) -> Mailbox:
        now = int(self._account.now())
        rng = self._account.rng
        # the spec's example shows the nations upper-cased in the answer
        reg.nazione_nascita_richiedente = reg.nazione_nascita_richiedente.upper()
        reg.nazione_titolare = reg.nazione_titolare.upper()
        return Mailbox(
            id=mailbox_id,
            casella_pec=address,
            tipo_casella=tipo,
            registration=reg,
            owner=self._account.owner,
            timestamp=MailboxTimes(registrazione=now, ultima_modifica=now),
            cod_attivazione=str(rng.randrange(10_000_000, 100_000_000)),
            uid=f"MA{rng.randrange(100_000, 1_000_000)}",
            dominio=address.rpartition("@")[2],
            descrizione=address,
        )


def apply_default_spaces(box: Mailbox) -> None:
    """Raise the spaces to the defaults of the mailbox's type (activation, type change)."""
    disco, storico = DEFAULT_SPACES.get(box.tipo_casella, (1024, 0))
    box.spazio_disco = max(int(box.spazio_disco), disco)
    box.spazio_storico = max(int(box.spazio_storico), storico)
    box.storico = box.spazio_storico > 0
    box.sms = box.tipo_casella not in SPECIAL


def _override(box: Mailbox, fields: dict[str, Any]) -> None:
    """Seeded fields, taken as given: the record's own, or ``extra`` for unknown names."""
    for name, value in fields.items():
        if name == "timestamp":
            box.timestamp.merge(value or {})
        elif name == "callback":
            box.callback = Callback.from_seed(value)
        elif name == "multiutenza":
            box.multiutenza = None if value is None else [User.from_seed(u) for u in value]
        elif name in REGISTRATION_FIELDS:
            setattr(box.registration, name, value)
        elif name in MAILBOX_FIELDS:
            setattr(box, name, value)
        else:
            box.extra[name] = value

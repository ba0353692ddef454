"""comunica_pec requests: communicating a PEC address to the business register
(GET and POST /comunica_pec, GET and PATCH /comunica_pec/{id}) and their lifecycle
``codice_in_richiesta`` -> ``in_attesa_di_documenti`` -> (a p7m uploaded)
``documenti_caricati`` -> ``comunicazione_evasa``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from . import errors as E
from .account import Account
from .errors import ErrorCode
from .records import (
    COMUNICA_DETAILS,
    COMUNICA_FIELDS,
    Callback,
    ComunicaDetails,
    ComunicaRequest,
    Json,
    WireView,
)
from .rules import (
    QUALIFICHE,
    STATI_COMUNICA,
    decode_documents,
    is_p7m,
    read_string,
    valid_email,
    valid_id,
    valid_pec,
)

__all__ = ["ComunicaRequests"]

# What a seeded request says unless the test says otherwise.
_SEED_DETAILS = {
    "cf": "RSSMRA80A01L117D",
    "nome": "mario",
    "cognome": "rossi",
    "qualifica": "LEGALE_RAPPRESENTANTE",
    "cellulare": "3490000018",
    "ragione_sociale": "azienda test",
    "cf_piva": "12345678910",
    "comune": "roma",
    "provincia": "RM",
}


class ComunicaRequests:
    """The account's comunica_pec requests, by id; ``view`` shows them as the API answers."""

    def __init__(self, account: Account) -> None:
        self._account = account
        self._by_id: dict[str, ComunicaRequest] = {}
        self.view: Mapping[str, Json] = WireView(self._by_id)

    def __iter__(self) -> Iterator[ComunicaRequest]:
        return iter(self._by_id.values())

    def find(self, request_id: str) -> ComunicaRequest | None:
        return self._by_id.get(request_id)

    def lookup(self, request_id: str, wrong: ErrorCode, missing: ErrorCode) -> ComunicaRequest:
        """The request of a path id: ``wrong`` (400) for a malformed id, ``missing`` (404)."""
        if not valid_id(request_id):
            raise wrong.error()
        record = self._by_id.get(request_id)
        if record is None:
            raise missing.error()
        return record

    # --- the API operations -----------------------------------------------------------------

    def list(self) -> list[Json]:
        """GET /comunica_pec."""
        if not self._by_id:
            raise E.COM_LIST_EMPTY.error()
        return [record.summary() for record in self._by_id.values()]

    def create(self, body: Json) -> ComunicaRequest:
        """POST /comunica_pec."""
        values: dict[str, str] = {}
        for name in COMUNICA_DETAILS:
            value = read_string(body, name, E.COM_REQUIRED[name], E.COM_WRONG_TYPE)
            if name == "casella_pec":
                if not valid_pec(value):
                    raise E.COM_INVALID_PEC.error()
                value = value.lower()
            elif name == "qualifica" and value not in QUALIFICHE:
                raise E.COM_INVALID["qualifica"].error()
            elif name == "email" and not valid_email(value):
                raise E.COM_INVALID["email"].error()
            values[name] = value
        pec_amministratore = body.get("pec_amministratore", False)
        if pec_amministratore is not None and not isinstance(pec_amministratore, bool):
            raise E.COM_INVALID["pec_amministratore"].error()
        callback = Callback.from_request(body.get("callback"), E.COM_INVALID["callback"])
        account = self._account
        price = account.prices.comunica_pec
        account.check_funds(price, E.COM_CREDIT)
        record = ComunicaRequest(
            id=account.new_id(),
            details=ComunicaDetails(**values),
            owner=account.owner,
            timestamp=int(account.now()),
            callback=callback,
        )
        account.pay(price, E.COM_CREDIT, "comunica_pec", record.id, record.casella_pec)
        self._by_id[record.id] = record
        account.notify("comunica_pec", record)
        if account.auto_process:
            self.advance(record.id)
        return record

    def get(self, request_id: str) -> ComunicaRequest:
        """GET /comunica_pec/{id}."""
        return self.lookup(request_id, E.COM_GET_WRONG_ID, E.COM_GET_NOT_FOUND)

    def upload(self, request_id: str, body: Json) -> ComunicaRequest:
        """PATCH /comunica_pec/{id}: the signed power of attorney (p7m)."""
        record = self.lookup(request_id, E.COM_UP_WRONG_ID, E.COM_UP_NOT_FOUND)
        if record.stato != "in_attesa_di_documenti":
            raise E.COM_UP_STATE.error()
        files = decode_documents(body.get("documenti"), E.COM_UP_REQUIRED, E.COM_UP_NOT_P7M)
        if not all(is_p7m(f) for f in files):
            raise E.COM_UP_NOT_P7M.error()
        names = [f"{request_id}_{i}_registro_imprese.p7m" for i in range(len(files))]
        self._account.store(names, files)
        record.documenti_registro_imprese = names
        record.stato = "documenti_caricati"
        record.timestamp = int(self._account.now())
        self._account.notify("comunica_pec", record)
        if self._account.auto_process:
            self.advance(request_id)
        return record

    # --- the lifecycle (the provider's side, driven by tests) --------------------------------

    def advance(self, request_id: str) -> None:
        """``codice_in_richiesta`` -> ``in_attesa_di_documenti``;
        ``documenti_caricati`` -> ``comunicazione_evasa``."""
        record = self._by_id[request_id]
        if record.stato == "codice_in_richiesta":
            record.stato = "in_attesa_di_documenti"
        elif record.stato == "documenti_caricati":
            record.stato = "comunicazione_evasa"
        else:
            raise ValueError(f"request {request_id} is {record.stato}: nothing pending")
        record.timestamp = int(self._account.now())
        self._account.notify("comunica_pec", record)

    def process_pending(self) -> int:
        """Advance every request waiting for the provider; how many."""
        waiting = ("codice_in_richiesta", "documenti_caricati")
        pending = [r.id for r in self._by_id.values() if r.stato in waiting]
        for request_id in pending:
            self.advance(request_id)
        return len(pending)

    def seed(self, casella_pec: str, stato: str, fields: dict[str, Any]) -> str:
        """Insert a request directly (see :meth:`pecapi.testing.Emulator.seed_comunica`)."""
        if stato not in STATI_COMUNICA:
            raise ValueError(f"unknown stato {stato!r}")
        account = self._account
        request_id = str(fields.pop("id", ""))
        if request_id:
            account.claim_id(request_id)
        else:
            request_id = account.new_id()
        details = ComunicaDetails(
            casella_pec=casella_pec.lower(), email=account.owner, **_SEED_DETAILS
        )
        record = ComunicaRequest(
            id=request_id,
            details=details,
            owner=account.owner,
            timestamp=int(account.now()),
            stato=stato,
        )
        if stato in ("documenti_caricati", "comunicazione_evasa"):
            record.documenti_registro_imprese = [f"{request_id}_0_registro_imprese.p7m"]
        for name, value in fields.items():
            if name == "callback":
                record.callback = Callback.from_seed(value)
            elif name in COMUNICA_DETAILS:
                setattr(details, name, value)
            elif name in COMUNICA_FIELDS:
                setattr(record, name, value)
            else:
                record.extra[name] = value
        self._by_id[request_id] = record
        return request_id

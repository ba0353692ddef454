"""The PDF forms to sign: activation and conservation forms of a mailbox
(GET /pec/{id}/modulo_attivazione, GET /pec/{id}/modulo_conservazione) and the power of
attorney of a comunica_pec request (GET /comunica_pec/{id}/procura_registro_imprese).

Their errors are ``text/plain`` (:class:`~pecapi.testing.errors.PlainError`), as the
specification documents for these downloads.
"""

from __future__ import annotations

from . import errors as E
from .comunica import ComunicaRequests
from .errors import PlainError
from .mailboxes import Mailboxes
from .pdf import make_pdf
from .records import Mailbox
from .rules import SPECIAL, valid_id

__all__ = ["Forms"]


class Forms:
    """The forms of the account's mailboxes and requests."""

    def __init__(self, mailboxes: Mailboxes, comunica: ComunicaRequests) -> None:
        self._mailboxes = mailboxes
        self._comunica = comunica

    def _mailbox(self, mailbox_id: str) -> Mailbox:
        if not valid_id(mailbox_id):
            raise PlainError(400, E.FORM_WRONG_ID)
        box = self._mailboxes.find(mailbox_id)
        if box is None:
            raise PlainError(404, E.FORM_NOT_FOUND.format(id=mailbox_id))
        return box

    def activation(self, mailbox_id: str) -> bytes:
        """GET /pec/{id}/modulo_attivazione."""
        box = self._mailbox(mailbox_id)
        if box.stato not in ("registrata", "documenti_errati"):
            raise PlainError(406, E.FORM_ACT_STATE)
        reg = box.registration
        return make_pdf(
            "Modulo di attivazione casella PEC",
            [
                f"id: {mailbox_id}",
                f"casella_pec: {box.casella_pec}",
                f"tipo_casella: {box.tipo_casella}",
                f"cod_attivazione: {box.cod_attivazione}",
                f"richiedente: {reg.nome_richiedente} {reg.cognome_richiedente}",
                "Firma: ______________________",
            ],
        )

    def conservation(self, mailbox_id: str) -> bytes:
        """GET /pec/{id}/modulo_conservazione."""
        box = self._mailbox(mailbox_id)
        if box.tipo_casella in SPECIAL:
            raise PlainError(406, E.FORM_CONS_NOT_ON)
        if box.stato != "evasa":
            raise PlainError(406, E.FORM_CONS_NOT_ACTIVE)
        if box.conservazione:
            raise PlainError(406, E.FORM_CONS_ACTIVE)
        return make_pdf(
            "Modulo di attivazione del servizio di conservazione",
            [
                f"id: {mailbox_id}",
                f"casella_pec: {box.casella_pec}",
                "Firma: ______________________",
            ],
        )

    def procura(self, request_id: str) -> bytes:
        """GET /comunica_pec/{id}/procura_registro_imprese."""
        if not valid_id(request_id):
            raise PlainError(400, E.FORM_WRONG_ID)
        record = self._comunica.find(request_id)
        if record is None:
            raise PlainError(404, E.FORM_NOT_FOUND.format(id=request_id))
        if record.stato == "codice_in_richiesta":
            raise PlainError(406, E.FORM_PROCURA_NOT_YET)
        if record.stato != "in_attesa_di_documenti":
            raise PlainError(406, E.FORM_PROCURA_DONE)
        details = record.details
        return make_pdf(
            "Procura speciale per la comunicazione della PEC al Registro Imprese",
            [
                f"id: {request_id}",
                f"casella_pec: {details.casella_pec}",
                f"impresa: {details.ragione_sociale} ({details.cf_piva})",
                f"codice: {record.codice_registro_imprese}",
                "Firma digitale (p7m) del dichiarante",
            ],
        )

"""Communications of a mailbox to the business register (comunica_pec)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs

from pecapi.errors import ValidationError
from pecapi.models.common import Callback, extra_field
from pecapi.models.enums import ComunicaPecState, Qualifica, QualificaLiteral
from pecapi.models.mailbox import check_required, require_response_id
from pecapi.models.wire import from_unix, require_address

__all__ = ["ComunicaPec", "ComunicaPecRequest", "ComunicaPecSummary"]


@attrs.frozen(kw_only=True)
class ComunicaPecSummary:
    """One item of ``GET /comunica_pec`` (the spec's RichiesteComunicazionePec).

    ``id`` stays optional here, unlike :attr:`ComunicaPec.id`: one item without an id must
    not make the whole listing unreadable (the listing settles a ``create``).
    """

    id: str | None = None
    casella_pec: str | None = None
    stato: ComunicaPecState | None = None
    timestamp: int | None = None
    owner: str | None = None
    extra: Mapping[str, Any] = extra_field()

    @property
    def timestamp_at(self) -> dt.datetime | None:
        return from_unix(self.timestamp)


@attrs.frozen(kw_only=True)
class ComunicaPec:
    """A communication request (the spec's RichiestaComunicazionePec).

    ``callback`` is None when the API answers ``callback: false``. ``id`` is always a
    non-blank string: an answer without one is a :class:`~pecapi.ResponseDecodeError`.
    """

    id: str = attrs.field(validator=require_response_id)
    casella_pec: str | None = None
    stato: ComunicaPecState | None = None
    cf: str | None = None
    nome: str | None = None
    cognome: str | None = None
    qualifica: Qualifica | None = None
    email: str | None = None
    cellulare: str | None = None
    ragione_sociale: str | None = None
    cf_piva: str | None = None
    comune: str | None = None
    provincia: str | None = None
    pec_amministratore: bool | None = None
    callback: Callback | None = None
    codice_registro_imprese: str | None = None
    documenti_registro_imprese: tuple[str, ...] = ()
    owner: str | None = None
    timestamp: int | None = None
    extra: Mapping[str, Any] = extra_field()

    @property
    def timestamp_at(self) -> dt.datetime | None:
        return from_unix(self.timestamp)


def _qualifica(value: Qualifica | QualificaLiteral) -> Qualifica:
    return Qualifica.parse(value, "qualifica")


_REQUIRED = (
    "casella_pec",
    "cf",
    "nome",
    "cognome",
    "email",
    "cellulare",
    "ragione_sociale",
    "cf_piva",
    "comune",
    "provincia",
)


@attrs.frozen(kw_only=True)
class ComunicaPecRequest:
    """Body of ``POST /comunica_pec`` (the spec's BodyPostComunicaPec)."""

    casella_pec: str
    cf: str
    nome: str
    cognome: str
    qualifica: Qualifica = attrs.field(converter=_qualifica)
    email: str
    cellulare: str
    ragione_sociale: str
    cf_piva: str
    comune: str
    provincia: str
    pec_amministratore: bool | None = None
    callback: Callback | None = None

    def __attrs_post_init__(self) -> None:
        check_required(self, _REQUIRED)
        require_address(self.casella_pec, "casella_pec")
        require_address(self.email, "email")
        if self.pec_amministratore is not None and not isinstance(self.pec_amministratore, bool):
            raise ValidationError("pec_amministratore", "must be True or False")
        if self.callback is not None:
            if not isinstance(self.callback, Callback):
                raise ValidationError("callback", "must be a pecapi.Callback")
            self.callback.check()

"""Mailboxes (the spec's Casella, Caselle and Utenza) and the bodies that create or change them.

Response models are lenient: every field is optional, ``""`` reads as None, unknown
fields land in ``extra``. Request models are strict: they normalise what can be
normalised (``"bronze"`` -> ``TipoCasella.BRONZE``, ``"11/04/1982"`` -> a date) and raise
:class:`~pecapi.errors.ValidationError` naming the field for anything else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs

from pecapi.errors import ValidationError
from pecapi.jsontext import whole_number
from pecapi.models.common import Callback, Timestamps, extra_field
from pecapi.models.enums import (
    SUBTYPES_BY_CUSTOMER_TYPE,
    MailboxState,
    Sesso,
    SessoLiteral,
    SottotipoCliente,
    SottotipoClienteLiteral,
    TipoCasella,
    TipoCasellaLiteral,
    TipoCliente,
    TipoClienteLiteral,
    TipoDocumento,
    TipoDocumentoLiteral,
)
from pecapi.models.wire import from_unix, parse_date_input, require_address

__all__ = [
    "CONSERVATION_UNIT",
    "DISK_UNIT",
    "MAX_USERS",
    "Mailbox",
    "MailboxRegistration",
    "MailboxSummary",
    "MailboxUser",
    "MailboxUserInfo",
    "SpaceChange",
    "UserTimestamps",
    "check_required",
    "parse_space",
    "require_response_id",
]

MAX_USERS = 25


# -- responses ---------------------------------------------------------------------------


def require_response_id(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator of the ``id`` of a mailbox or comunica_pec answer: a non-blank string.

    Every answer about one mailbox or request carries its id (every example of the
    specification does, and so does the emulator); one without is not what the API sends,
    and decoding it fails with a ValueError, which the client reports as a
    :class:`~pecapi.ResponseDecodeError` (a callback as a :class:`~pecapi.CallbackError`).
    A ``""`` id reads as None, so it fails here too.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"the {type(instance).__name__} has no id ({value!r})")


@attrs.frozen(kw_only=True)
class UserTimestamps:
    attivazione: int | None = None
    extra: Mapping[str, Any] = extra_field()

    @property
    def activated_at(self) -> dt.datetime | None:
        return from_unix(self.attivazione)


@attrs.frozen(kw_only=True)
class MailboxUserInfo:
    """An extra user of a mailbox (the spec's Utenza)."""

    nome: str | None = None
    cognome: str | None = None
    descrizione: str | None = None
    email_gestione_password: str | None = None
    id_utenza: str | None = None
    timestamp: UserTimestamps | None = None
    userid: str | None = None
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class MailboxSummary:
    """One item of ``GET /pec`` (the spec's Caselle).

    ``id`` stays optional here, unlike :attr:`Mailbox.id`: one item without an id must not
    make the whole listing unreadable (the listing is how pecapi settles a registration
    and resumes a provisioning run).
    """

    id: str | None = None
    casella_pec: str | None = None
    tipo_casella: TipoCasella | None = None
    stato: MailboxState | None = None
    data_scadenza: dt.date | None = None
    timestamp: Timestamps | None = None
    owner: str | None = None
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class Mailbox:
    """A certified mailbox as the API describes it (the spec's Casella).

    ``id`` is always a non-blank string: an answer without one is a
    :class:`~pecapi.ResponseDecodeError`.
    """

    id: str = attrs.field(validator=require_response_id)
    casella_pec: str | None = None
    tipo_casella: TipoCasella | None = None
    stato: MailboxState | None = None
    tipo_cliente: TipoCliente | None = None
    sottotipo_cliente: SottotipoCliente | None = None
    sottotipo_cliente_altro: str | None = None
    nome_richiedente: str | None = None
    cognome_richiedente: str | None = None
    email: str | None = None
    telefono: str | None = None
    cellulare: str | None = None
    codice_fiscale_richiedente: str | None = None
    data_nascita_richiedente: dt.date | None = None
    sesso_richiedente: Sesso | None = None
    nazione_nascita_richiedente: str | None = None
    comune_nascita_richiedente: str | None = None
    provincia_nascita_richiedente: str | None = None
    denominazione_titolare: str | None = None
    cf_piva_titolare: str | None = None
    indirizzo_titolare: str | None = None
    comune_titolare: str | None = None
    cap_titolare: str | None = None
    nazione_titolare: str | None = None
    provincia_titolare: str | None = None
    callback: Callback | None = None
    dominio: str | None = None
    owner: str | None = None
    timestamp: Timestamps | None = None
    cod_attivazione: str | None = None
    uid: str | None = None
    conservazione: bool | None = None
    data_scadenza: dt.date | None = None
    descrizione: str | None = None
    sms: bool | None = None
    spazio_conservazione: int | None = None
    spazio_disco: int | None = None
    spazio_storico: int | None = None
    storico: bool | None = None
    documenti_attivazione: tuple[str, ...] = ()
    data_attivazione: dt.date | None = None
    documenti_conservazione: tuple[str, ...] = ()
    multiutenza: tuple[MailboxUserInfo, ...] = ()
    autorinnovo: bool | None = None
    tipo_documento: TipoDocumento | None = None
    numero_documento: str | None = None
    data_scadenza_documento: dt.date | None = None
    documento_rilasciato_da: str | None = None
    data_rilascio_documento: dt.date | None = None
    extra: Mapping[str, Any] = extra_field()


# -- requests ----------------------------------------------------------------------------


def check_required(obj: Any, names: tuple[str, ...]) -> None:
    """Every name in ``names`` must be a non-blank string on ``obj``."""
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, str):
            raise ValidationError(name, f"must be a string, not {type(value).__name__}")
        if not value.strip():
            raise ValidationError(name, "is required and must not be blank")


def _check_optional_strings(obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and not isinstance(value, str):
            raise ValidationError(name, f"must be a string, not {type(value).__name__}")


# attrs converters must be named functions for mypy to see the accepted input types.
def _tipo_casella(value: TipoCasella | TipoCasellaLiteral) -> TipoCasella:
    return TipoCasella.parse(value, "tipo_casella")


def _tipo_cliente(value: TipoCliente | TipoClienteLiteral) -> TipoCliente:
    return TipoCliente.parse(value, "tipo_cliente")


def _sottotipo_cliente(
    value: SottotipoCliente | SottotipoClienteLiteral | None,
) -> SottotipoCliente | None:
    if value is None or value == "":
        return None
    return SottotipoCliente.parse(value, "sottotipo_cliente")


def _sesso(value: Sesso | SessoLiteral) -> Sesso:
    return Sesso.parse(value, "sesso_richiedente")


def _tipo_documento(value: TipoDocumento | TipoDocumentoLiteral | None) -> TipoDocumento | None:
    if value is None or value == "":
        return None
    return TipoDocumento.parse(value, "tipo_documento")


def _data_nascita(value: dt.date | str) -> dt.date:
    return parse_date_input(value, "data_nascita_richiedente")


def _data_scadenza_documento(value: dt.date | str | None) -> dt.date | None:
    if value is None or value == "":
        return None
    return parse_date_input(value, "data_scadenza_documento")


def _data_rilascio_documento(value: dt.date | str | None) -> dt.date | None:
    if value is None or value == "":
        return None
    return parse_date_input(value, "data_rilascio_documento")


def _blank_to_none(value: str | None) -> str | None:
    # The spec's examples send "" for unset fields; pecapi omits them instead.
    if isinstance(value, str) and not value.strip():
        return None
    return value


_REGISTRATION_REQUIRED = (
    "casella_pec",
    "nome_richiedente",
    "cognome_richiedente",
    "email",
    "telefono",
    "codice_fiscale_richiedente",
    "nazione_nascita_richiedente",
    "indirizzo_titolare",
    "comune_titolare",
    "cap_titolare",
    "nazione_titolare",
    "provincia_titolare",
)
_REGISTRATION_OPTIONAL = (
    "sottotipo_cliente_altro",
    "cellulare",
    "comune_nascita_richiedente",
    "provincia_nascita_richiedente",
    "denominazione_titolare",
    "cf_piva_titolare",
    "numero_documento",
    "documento_rilasciato_da",
)


@attrs.frozen(kw_only=True)
class MailboxRegistration:
    """Body of ``POST /pec`` (the spec's BodyPostPec): registers a new mailbox.

    Required fields are keyword arguments without defaults. Whether ``casella_pec``
    suits the environment (sandbox or production) is checked by the client before
    sending, since only the client knows which one it talks to.
    """

    casella_pec: str
    tipo_casella: TipoCasella = attrs.field(converter=_tipo_casella)
    tipo_cliente: TipoCliente = attrs.field(converter=_tipo_cliente)
    nome_richiedente: str
    cognome_richiedente: str
    email: str
    telefono: str
    codice_fiscale_richiedente: str
    data_nascita_richiedente: dt.date = attrs.field(converter=_data_nascita)
    sesso_richiedente: Sesso = attrs.field(converter=_sesso)
    nazione_nascita_richiedente: str
    indirizzo_titolare: str
    comune_titolare: str
    cap_titolare: str
    nazione_titolare: str
    provincia_titolare: str
    sottotipo_cliente: SottotipoCliente | None = attrs.field(
        default=None, converter=_sottotipo_cliente
    )
    sottotipo_cliente_altro: str | None = attrs.field(default=None, converter=_blank_to_none)
    cellulare: str | None = attrs.field(default=None, converter=_blank_to_none)
    comune_nascita_richiedente: str | None = attrs.field(default=None, converter=_blank_to_none)
    provincia_nascita_richiedente: str | None = attrs.field(default=None, converter=_blank_to_none)
    denominazione_titolare: str | None = attrs.field(default=None, converter=_blank_to_none)
    cf_piva_titolare: str | None = attrs.field(default=None, converter=_blank_to_none)
    callback: Callback | None = None
    autorinnovo: bool | None = None
    tipo_documento: TipoDocumento | None = attrs.field(default=None, converter=_tipo_documento)
    numero_documento: str | None = attrs.field(default=None, converter=_blank_to_none)
    data_scadenza_documento: dt.date | None = attrs.field(
        default=None, converter=_data_scadenza_documento
    )
    documento_rilasciato_da: str | None = attrs.field(default=None, converter=_blank_to_none)
    data_rilascio_documento: dt.date | None = attrs.field(
        default=None, converter=_data_rilascio_documento
    )

    def __attrs_post_init__(self) -> None:
        check_required(self, _REGISTRATION_REQUIRED)
        _check_optional_strings(self, _REGISTRATION_OPTIONAL)
        require_address(self.casella_pec, "casella_pec")
        require_address(self.email, "email")
        allowed = SUBTYPES_BY_CUSTOMER_TYPE.get(self.tipo_cliente)
        subtype = self.sottotipo_cliente
        if subtype is not None and allowed is not None and subtype.value not in allowed:
            raise ValidationError(
                "sottotipo_cliente",
                f"{subtype.value!r} does not apply to tipo_cliente "
                f"{self.tipo_cliente.value} (allowed: {', '.join(sorted(allowed))})",
            )
        if self.autorinnovo is not None and not isinstance(self.autorinnovo, bool):
            raise ValidationError("autorinnovo", "must be True or False")
        if self.callback is not None:
            if not isinstance(self.callback, Callback):
                raise ValidationError("callback", "must be a pecapi.Callback")
            self.callback.check()


_USER_REQUIRED = ("nome", "cognome", "descrizione", "email_gestione_password")


@attrs.frozen(kw_only=True)
class MailboxUser:
    """Body of ``POST /pec/{id}/multiutenza`` (the spec's BodyPostMultiutenza)."""

    nome: str
    cognome: str
    descrizione: str
    email_gestione_password: str

    def __attrs_post_init__(self) -> None:
        check_required(self, _USER_REQUIRED)
        require_address(self.email_gestione_password, "email_gestione_password")


# -- space -------------------------------------------------------------------------------

DISK_UNIT = 1024  # spazio_disco and spazio_storico: MB, multiples of 1024
CONSERVATION_UNIT = 512  # spazio_conservazione: MB, multiples of 512


def parse_space(value: int | str | None, field: str, unit: int) -> int | str | None:
    """A space value: an int (or digits) sets the space, ``"+N"`` adds N. Multiples of ``unit``."""
    if value is None:
        return None
    relative = False
    if isinstance(value, bool):
        raise ValidationError(field, "must be a number of MB, not a boolean")
    if isinstance(value, str):
        text = value.strip()
        relative = text.startswith("+")
        digits = text[1:] if relative else text
        number = whole_number(digits) if digits == digits.strip() else None  # not "+ 5"
        if number is None:
            raise ValidationError(field, f"{value!r} is not a number of MB or '+N'")
        amount = number
    elif isinstance(value, int):
        amount = value
    else:
        raise ValidationError(field, f"must be an int or a '+N' string, not {type(value).__name__}")
    if amount <= 0:
        raise ValidationError(field, f"must be a positive number of MB, not {amount}")
    if amount % unit:
        raise ValidationError(field, f"{amount} is not a multiple of {unit}")
    return f"+{amount}" if relative else amount


def _spazio_disco(value: int | str | None) -> int | str | None:
    return parse_space(value, "spazio_disco", DISK_UNIT)


def _spazio_storico(value: int | str | None) -> int | str | None:
    return parse_space(value, "spazio_storico", DISK_UNIT)


def _spazio_conservazione(value: int | str | None) -> int | str | None:
    return parse_space(value, "spazio_conservazione", CONSERVATION_UNIT)


@attrs.frozen(kw_only=True)
class SpaceChange:
    """Body of ``PATCH /pec/{id}/modifica``: an int sets a space, ``"+N"`` adds N MB."""

    spazio_disco: int | str | None = attrs.field(default=None, converter=_spazio_disco)
    spazio_storico: int | str | None = attrs.field(default=None, converter=_spazio_storico)
    spazio_conservazione: int | str | None = attrs.field(
        default=None, converter=_spazio_conservazione
    )

    def __attrs_post_init__(self) -> None:
        if not self.as_body():
            raise ValidationError(
                "spazio_disco",
                "give at least one of spazio_disco, spazio_storico, spazio_conservazione",
            )

    def as_body(self) -> dict[str, int | str]:
        return {
            name: value
            for name, value in (
                ("spazio_disco", self.spazio_disco),
                ("spazio_storico", self.spazio_storico),
                ("spazio_conservazione", self.spazio_conservazione),
            )
            if value is not None
        }

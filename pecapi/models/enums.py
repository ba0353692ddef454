"""The API's enumerations.

Each enum is strict when it describes something pecapi sends (:meth:`ApiEnum.parse`
accepts any letter case, then only the schema's values) and lenient when it describes
something the API answers (:meth:`ApiEnum.lenient` turns a value the schema does not
know, such as a new ``stato``, into a member that is not one of the listed ones, so
decoding never fails on it; ``member.known`` tells them apart).
"""

from __future__ import annotations

import enum
from typing import Any, Literal, TypeVar

from pecapi.errors import ValidationError

__all__ = [
    "ApiEnum",
    "CallbackMethod",
    "CallbackMethodLiteral",
    "ComunicaPecState",
    "MailboxState",
    "Qualifica",
    "QualificaLiteral",
    "Sesso",
    "SessoLiteral",
    "SottotipoCliente",
    "SottotipoClienteLiteral",
    "TipoCasella",
    "TipoCasellaLiteral",
    "TipoCliente",
    "TipoClienteLiteral",
    "TipoDocumento",
    "TipoDocumentoLiteral",
]

E = TypeVar("E", bound="ApiEnum")


class ApiEnum(str, enum.Enum):
    """A string enum of the API: the member's value is exactly what goes on the wire."""

    def __str__(self) -> str:
        return str(self.value)

    @property
    def known(self) -> bool:
        """False for a value the API sent that is not in the schema."""
        return self.value in type(self)._value2member_map_

    @classmethod
    def parse(cls: type[E], value: E | str, field: str) -> E:
        """The member for ``value`` in any letter case; a :class:`ValidationError` otherwise."""
        if isinstance(value, cls):
            if value.known:
                return value
        elif isinstance(value, str):
            text = value.strip()
            lookup = cls._value2member_map_
            member = lookup.get(text.upper()) or lookup.get(text.lower()) or lookup.get(text)
            if member is not None:
                return member  # type: ignore[return-value]
        allowed = ", ".join(m.value for m in cls)
        raise ValidationError(field, f"{value!r} is not one of {allowed}")

    @classmethod
    def lenient(cls: type[E], value: str) -> E:
        """The member for ``value``, or a stand-in member carrying the unknown value."""
        member = cls._value2member_map_.get(value)
        if member is not None:
            return member  # type: ignore[return-value]
        return cls(value)

    @classmethod
    def _missing_(cls, value: object) -> Any:
        # Only reached for values the schema does not list: build a stand-in member
        # so that responses with new values still decode (see ``lenient``).
        if not isinstance(value, str):
            return None
        pseudo = str.__new__(cls, value)
        pseudo._name_ = value.upper()
        pseudo._value_ = value
        return pseudo


class TipoCasella(ApiEnum):
    """Mailbox type (``tipo_casella``)."""

    STANDARD = "STANDARD"
    BRONZE = "BRONZE"
    SILVER = "SILVER"
    GOLD = "GOLD"
    DOMICILIODIGITALE = "DOMICILIODIGITALE"
    PECMASSIVA = "PECMASSIVA"

    @property
    def upgradable(self) -> bool:
        """Type and space changes are refused for DOMICILIODIGITALE and PECMASSIVA."""
        return self in _LEGALMAIL_TYPES

    @property
    def rank(self) -> int:
        """Order of the Legalmail types (STANDARD < BRONZE < SILVER < GOLD); -1 otherwise."""
        try:
            return _LEGALMAIL_TYPES.index(self)
        except ValueError:
            return -1


_LEGALMAIL_TYPES = (TipoCasella.STANDARD, TipoCasella.BRONZE, TipoCasella.SILVER, TipoCasella.GOLD)


class TipoCliente(ApiEnum):
    """Customer type (``tipo_cliente``)."""

    IMPRESA = "IM"
    PROFESSIONISTA = "PS"
    PA_LOCALE = "PL"
    PA_CENTRALE = "PC"
    ASSOCIAZIONE = "A"
    PRIVATO = "PV"
    ALTRO = "X"


class SottotipoCliente(ApiEnum):
    """Customer subtype (``sottotipo_cliente``); TipologieCliente says which fit which type."""

    SI = "SI"
    IN = "IN"
    CM = "CM"
    TE = "TE"
    ES = "ES"
    ME = "ME"
    AL = "AL"
    CF = "CF"
    ED = "ED"
    TM = "TM"
    MA = "MA"
    AR = "AR"
    TL = "TL"
    FI = "FI"
    X = "X"
    PC = "PC"
    PR = "PR"
    PN = "PN"
    PT = "PT"
    PA = "PA"
    PL = "PL"
    LR = "LR"
    LP = "LP"
    LC = "LC"
    LM = "LM"
    LA = "LA"
    LI = "LI"


# The spec's TipologieCliente: the subtypes each customer type accepts.
SUBTYPES_BY_CUSTOMER_TYPE: dict[TipoCliente, frozenset[str]] = {
    TipoCliente.IMPRESA: frozenset(
        ["SI", "IN", "CM", "TE", "ES", "ME", "AL", "CF", "ED", "TM", "MA", "AR", "TL", "FI", "X"],
    ),
    TipoCliente.PROFESSIONISTA: frozenset(["PC", "PR", "PN", "PT", "PA", "PL", "X"]),
    TipoCliente.PA_LOCALE: frozenset(["LR", "LP", "LC", "LM", "LA", "LI", "X"]),
}


class Sesso(ApiEnum):
    """Gender of the applicant (``sesso_richiedente``)."""

    M = "M"
    F = "F"


class TipoDocumento(ApiEnum):
    """Identity document type (``tipo_documento``)."""

    CARTA_D_IDENTITA = "CARTA_D_IDENTITA"
    PATENTE = "PATENTE"
    PASSAPORTO = "PASSAPORTO"


class Qualifica(ApiEnum):
    """Role of the applicant of a comunica_pec request (``qualifica``)."""

    AMMINISTRATORE = "AMMINISTRATORE"
    COMMISSARIO_GIUDIZIARIO = "COMMISSARIO_GIUDIZIARIO"
    CURATORE_FALLIMENTARE = "CURATORE_FALLIMENTARE"
    LEGALE_RAPPRESENTANTE = "LEGALE_RAPPRESENTANTE"
    LIQUIDATORE = "LIQUIDATORE"
    SOCIO = "SOCIO"
    TITOLARE = "TITOLARE"


class CallbackMethod(ApiEnum):
    """How the API delivers a callback: form POST (``POST``) or a raw JSON body (``JSON``)."""

    POST = "POST"
    JSON = "JSON"


class MailboxState(ApiEnum):
    """Life-cycle state of a mailbox (``stato``); values are lowercase on the wire."""

    REGISTRATA = "registrata"
    IN_EVASIONE = "in_evasione"
    EVASA = "evasa"
    REVOCATA = "revocata"
    CHIUSA = "chiusa"
    DOCUMENTI_ERRATI = "documenti_errati"
    REGISTRAZIONE_ANNULLATA = "registrazione_annullata"


class ComunicaPecState(ApiEnum):
    """State of a communication to the business register (``stato``)."""

    CODICE_IN_RICHIESTA = "codice_in_richiesta"
    IN_ATTESA_DI_DOCUMENTI = "in_attesa_di_documenti"
    DOCUMENTI_CARICATI = "documenti_caricati"
    COMUNICAZIONE_EVASA = "comunicazione_evasa"


# -- what a parameter accepts besides the member ------------------------------------------
#
# The strings each enum's ``parse`` accepts, as a type: a typo ("bronz") is an error for a
# type checker, not only a ValidationError at run time. Upper and lower case, as ``parse``
# normalises them (a mixed-case "Bronze" still works at run time, but is not in the type).
# tests/test_typing.py checks that each lists exactly its enum's values in both cases.

TipoCasellaLiteral = Literal[
    "STANDARD", "BRONZE", "SILVER", "GOLD", "DOMICILIODIGITALE", "PECMASSIVA",
    "standard", "bronze", "silver", "gold", "domiciliodigitale", "pecmassiva",
]  # fmt: skip
TipoClienteLiteral = Literal[
    "IM", "PS", "PL", "PC", "A", "PV", "X",
    "im", "ps", "pl", "pc", "a", "pv", "x",
]  # fmt: skip
SottotipoClienteLiteral = Literal[
    "SI", "IN", "CM", "TE", "ES", "ME", "AL", "CF", "ED", "TM", "MA", "AR", "TL", "FI", "X",
    "PC", "PR", "PN", "PT", "PA", "PL", "LR", "LP", "LC", "LM", "LA", "LI",
    "si", "in", "cm", "te", "es", "me", "al", "cf", "ed", "tm", "ma", "ar", "tl", "fi", "x",
    "pc", "pr", "pn", "pt", "pa", "pl", "lr", "lp", "lc", "lm", "la", "li",
]  # fmt: skip
SessoLiteral = Literal["M", "F", "m", "f"]
TipoDocumentoLiteral = Literal[
    "CARTA_D_IDENTITA", "PATENTE", "PASSAPORTO",
    "carta_d_identita", "patente", "passaporto",
]  # fmt: skip
QualificaLiteral = Literal[
    "AMMINISTRATORE", "COMMISSARIO_GIUDIZIARIO", "CURATORE_FALLIMENTARE",
    "LEGALE_RAPPRESENTANTE", "LIQUIDATORE", "SOCIO", "TITOLARE",
    "amministratore", "commissario_giudiziario", "curatore_fallimentare",
    "legale_rappresentante", "liquidatore", "socio", "titolare",
]  # fmt: skip
CallbackMethodLiteral = Literal["POST", "JSON", "post", "json"]

"""The API's bodies as attrs classes: strict for what pecapi sends, lenient for what it reads."""

from pecapi.models.common import Callback, DomainCheck, Timestamps
from pecapi.models.comunica import ComunicaPec, ComunicaPecRequest, ComunicaPecSummary
from pecapi.models.enums import (
    ApiEnum,
    CallbackMethod,
    ComunicaPecState,
    MailboxState,
    Qualifica,
    Sesso,
    SottotipoCliente,
    TipoCasella,
    TipoCliente,
    TipoDocumento,
)
from pecapi.models.mailbox import (
    Mailbox,
    MailboxRegistration,
    MailboxSummary,
    MailboxUser,
    MailboxUserInfo,
    UserTimestamps,
)

__all__ = [
    "ApiEnum",
    "Callback",
    "CallbackMethod",
    "ComunicaPec",
    "ComunicaPecRequest",
    "ComunicaPecState",
    "ComunicaPecSummary",
    "DomainCheck",
    "Mailbox",
    "MailboxRegistration",
    "MailboxState",
    "MailboxSummary",
    "MailboxUser",
    "MailboxUserInfo",
    "Qualifica",
    "Sesso",
    "SottotipoCliente",
    "Timestamps",
    "TipoCasella",
    "TipoCliente",
    "TipoDocumento",
    "UserTimestamps",
]

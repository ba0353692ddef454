"""pecapi: an asyncio-native client for the Openapi.it PEC API.

Certified e-mail mailboxes (InfoCert Legalmail, Domicilio Digitale, PEC Massiva):
register, activate, renew, upgrade, revoke, and communicate them to the business
register. See :class:`PecClient`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from pecapi.batch import Batch, BatchProgress, BatchResult
from pecapi.callbacks import CallbackError, CallbackEvent
from pecapi.client import PRODUCTION_URL, SANDBOX_URL, PecClient
from pecapi.errors import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    EventLoopError,
    InsufficientCreditError,
    NotAcceptableError,
    NotFoundError,
    OperationFailedError,
    OutcomeUnknownError,
    PecApiError,
    PecConnectionError,
    PecError,
    PecTimeoutError,
    PermissionDeniedError,
    PreconditionRequiredError,
    RateLimitError,
    ResponseDecodeError,
    ResponseTooLargeError,
    ScrubbedCause,
    ServerError,
    TokenError,
    TransportError,
    UnexpectedStatusError,
    ValidationError,
)
from pecapi.models import (
    Callback,
    CallbackMethod,
    ComunicaPec,
    ComunicaPecRequest,
    ComunicaPecState,
    ComunicaPecSummary,
    DomainCheck,
    Mailbox,
    MailboxRegistration,
    MailboxState,
    MailboxSummary,
    MailboxUser,
    MailboxUserInfo,
    Qualifica,
    Sesso,
    SottotipoCliente,
    Timestamps,
    TipoCasella,
    TipoCliente,
    TipoDocumento,
)
from pecapi.oauth import OAuthTokenProvider, all_pec_scopes, pec_scopes
from pecapi.transport.auth import RenewableTokenProvider, StaticToken, TokenProvider
from pecapi.transport.limits import ResponseLimits
from pecapi.transport.options import RequestOptions, Timeout
from pecapi.transport.pending import PendingOutcome
from pecapi.transport.retry import Attempt, RetryPolicy

__all__ = [
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "Batch",
    "BatchProgress",
    "BatchResult",
    "Callback",
    "CallbackError",
    "CallbackEvent",
    "CallbackMethod",
    "ClientClosedError",
    "ComunicaPec",
    "ComunicaPecRequest",
    "ComunicaPecState",
    "ComunicaPecSummary",
    "ConfigurationError",
    "DomainCheck",
    "EventLoopError",
    "InsufficientCreditError",
    "Mailbox",
    "MailboxRegistration",
    "MailboxState",
    "MailboxSummary",
    "MailboxUser",
    "MailboxUserInfo",
    "NotAcceptableError",
    "NotFoundError",
    "OAuthTokenProvider",
    "OperationFailedError",
    "OutcomeUnknownError",
    "PecApiError",
    "PecClient",
    "PecConnectionError",
    "PecError",
    "PecTimeoutError",
    "PendingOutcome",
    "PermissionDeniedError",
    "PreconditionRequiredError",
    "Qualifica",
    "RateLimitError",
    "RenewableTokenProvider",
    "RequestOptions",
    "ResponseDecodeError",
    "ResponseLimits",
    "ResponseTooLargeError",
    "RetryPolicy",
    "ScrubbedCause",
    "ServerError",
    "Sesso",
    "SottotipoCliente",
    "StaticToken",
    "Timeout",
    "Timestamps",
    "TipoCasella",
    "TipoCliente",
    "TipoDocumento",
    "TokenError",
    "TokenProvider",
    "TransportError",
    "UnexpectedStatusError",
    "ValidationError",
    "__version__",
    "all_pec_scopes",
    "pec_scopes",
]

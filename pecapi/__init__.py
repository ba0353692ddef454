"""pecapi: an asyncio-native client for the Openapi.it PEC API.

Certified e-mail mailboxes (InfoCert Legalmail, Domicilio Digitale, PEC Massiva):
register, activate, renew, upgrade, revoke, and communicate them to the business
register. See :class:`PecClient`.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING

from pecapi._version import __version__
from pecapi.batch import (
    Batch,
    BatchFailure,
    BatchProgress,
    BatchResult,
    BatchSkipped,
    BatchSuccess,
    NotSentError,
)
from pecapi.client import PRODUCTION_URL, SANDBOX_URL, PecClient
from pecapi.errors import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    CoordinationError,
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
from pecapi.jsonio import from_json, to_json
from pecapi.models import (
    Callback,
    CallbackMethod,
    CallbackMethodLiteral,
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
    QualificaLiteral,
    Sesso,
    SessoLiteral,
    SottotipoCliente,
    SottotipoClienteLiteral,
    Timestamps,
    TipoCasella,
    TipoCasellaLiteral,
    TipoCliente,
    TipoClienteLiteral,
    TipoDocumento,
    TipoDocumentoLiteral,
)
from pecapi.transport.auth import RenewableTokenProvider, StaticToken, TokenProvider
from pecapi.transport.limits import ResponseLimits
from pecapi.transport.options import RequestOptions, Timeout
from pecapi.transport.pending import PendingOutcome
from pecapi.transport.raw import RawResult, ResponseInfo, with_raw_json, with_raw_response
from pecapi.transport.retry import Attempt, RetryPolicy
from pecapi.wallet import Wallet, WalletTransaction

if TYPE_CHECKING:
    # Loaded on first use (``__getattr__`` below); type checkers see them here.
    from pecapi import provision
    from pecapi.callbacks import (
        CallbackEncodingError,
        CallbackError,
        CallbackEvent,
        CallbackSigner,
        CallbackTooLargeError,
    )
    from pecapi.oauth import OAuthTokenProvider, all_pec_scopes, pec_scopes
    from pecapi.oauth_choice import oauth_provider
    from pecapi.oauth_v2 import OAuthV2TokenProvider

#: Public names whose modules ``import pecapi`` does not load: most programs never use
#: them (a callback receiver, an OAuth token, a CSV provisioning run), and the client
#: does not need them. The first access imports the module; ``from pecapi import X``
#: goes through the same path.
_LAZY = {
    "CallbackEncodingError": "pecapi.callbacks",
    "CallbackError": "pecapi.callbacks",
    "CallbackEvent": "pecapi.callbacks",
    "CallbackSigner": "pecapi.callbacks",
    "CallbackTooLargeError": "pecapi.callbacks",
    "OAuthTokenProvider": "pecapi.oauth",
    "all_pec_scopes": "pecapi.oauth",
    "pec_scopes": "pecapi.oauth",
    "oauth_provider": "pecapi.oauth_choice",
    "OAuthV2TokenProvider": "pecapi.oauth_v2",
}
#: Submodules that ``import pecapi`` loaded before they became lazy: ``pecapi.provision``
#: (the module: ``pecapi.provision.provision(...)``), ``pecapi.oauth.OAUTH_SANDBOX_URL``
#: and the like keep working after a bare ``import pecapi``.
_LAZY_SUBMODULES = frozenset(
    {
        "callback_limits",
        "callback_signing",
        "callbacks",
        "journal",
        "oauth",
        "oauth_choice",
        "oauth_provider_base",
        "oauth_scopes",
        "oauth_service",
        "oauth_v1",
        "oauth_v2",
        "oauth_v2_api",
        "provision",
        "provision_input",
        "provision_run",
    }
)


# Defined for the interpreter only: a module ``__getattr__`` that type checkers saw would
# make every misspelt ``pecapi.X`` pass as ``Any``. They see the names imported above.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        module_name = _LAZY.get(name)
        if module_name is not None:
            value = getattr(_importlib.import_module(module_name), name)
        elif name in _LAZY_SUBMODULES:
            value = _importlib.import_module(f"{__name__}.{name}")
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value  # the next access is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})


__all__ = [
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "Batch",
    "BatchFailure",
    "BatchProgress",
    "BatchResult",
    "BatchSkipped",
    "BatchSuccess",
    "Callback",
    "CallbackEncodingError",
    "CallbackError",
    "CallbackEvent",
    "CallbackMethod",
    "CallbackMethodLiteral",
    "CallbackSigner",
    "CallbackTooLargeError",
    "ClientClosedError",
    "ComunicaPec",
    "ComunicaPecRequest",
    "ComunicaPecState",
    "ComunicaPecSummary",
    "ConfigurationError",
    "CoordinationError",
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
    "NotSentError",
    "OAuthTokenProvider",
    "OAuthV2TokenProvider",
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
    "QualificaLiteral",
    "RateLimitError",
    "RawResult",
    "RenewableTokenProvider",
    "RequestOptions",
    "ResponseDecodeError",
    "ResponseInfo",
    "ResponseLimits",
    "ResponseTooLargeError",
    "RetryPolicy",
    "ScrubbedCause",
    "ServerError",
    "Sesso",
    "SessoLiteral",
    "SottotipoCliente",
    "SottotipoClienteLiteral",
    "StaticToken",
    "Timeout",
    "Timestamps",
    "TipoCasella",
    "TipoCasellaLiteral",
    "TipoCliente",
    "TipoClienteLiteral",
    "TipoDocumento",
    "TipoDocumentoLiteral",
    "TokenError",
    "TokenProvider",
    "TransportError",
    "UnexpectedStatusError",
    "ValidationError",
    "Wallet",
    "WalletTransaction",
    "__version__",
    "all_pec_scopes",
    "from_json",
    "oauth_provider",
    "pec_scopes",
    "provision",
    "to_json",
    "with_raw_json",
    "with_raw_response",
]

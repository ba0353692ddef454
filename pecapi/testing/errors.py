"""The error answers of the emulator: HTTP status, the API's internal ``error`` code, message.

Every code the emulator can answer with is declared here once, as an :class:`ErrorCode`.
Codes and messages taken from the response examples of the official OpenAPI description
(``pec.openapi.json``) are declared with :func:`_doc`; codes the specification does not
document are the emulator's own choice and are declared with :func:`_inv`.
:data:`INVENTED_CODES` lists every one of those invented codes, so that a test (or a reader)
never mistakes them for the real API's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DOCUMENTED_CODES",
    "INVENTED_CODES",
    "ApiError",
    "ErrorCode",
    "PlainError",
]


class ApiError(Exception):
    """Raised inside a handler: answered as a JSON envelope with ``success: false``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class PlainError(Exception):
    """Raised inside a form-download handler: answered as ``text/plain``."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One error answer: ``endpoint`` (``"POST /pec"``), HTTP ``status``, API ``code``,
    ``message`` (a ``str.format`` template) and whether the emulator ``invented`` it."""

    endpoint: str
    status: int
    code: int
    message: str
    invented: bool

    def error(self, **fields: Any) -> ApiError:
        message = self.message.format(**fields) if fields else self.message
        return ApiError(self.status, self.code, message)


_ALL: list[ErrorCode] = []


def _doc(endpoint: str, status: int, code: int, message: str) -> ErrorCode:
    entry = ErrorCode(endpoint, status, code, message, invented=False)
    _ALL.append(entry)
    return entry


def _inv(endpoint: str, status: int, code: int, message: str) -> ErrorCode:
    # The emulator's own choice: the specification documents no code for this case.
    entry = ErrorCode(endpoint, status, code, message, invented=True)
    _ALL.append(entry)
    return entry


_NOT_ON = "this action is not allowed on these boxes: DOMICILIODIGITALE|PECMASSIVA"
_CREDIT = "Insufficient Credit in Wallet: {amount}"

# --- gateway level (every endpoint): the specification documents none of these -----------
# The API's `error` field mirrors the HTTP status for these (emulator's choice).
AUTH_MISSING = _inv("*", 401, 401, "Authorization Bearer token required")
AUTH_INVALID = _inv("*", 401, 401, "Invalid token")
AUTH_EXPIRED = _inv("*", 401, 401, "Token expired")
SCOPE_MISSING = _inv("*", 403, 403, "the token does not have the scope {scope}")
# Also on POST /pec and POST /comunica_pec, which document no 400: their 406 means a field's
# value is not valid, and a body that is no JSON object is refused before any field is read.
BAD_JSON = _inv("*", 400, 400, "invalid JSON body: a JSON object is required")
UNKNOWN_PATH = _inv("*", 404, 404, "resource not found")
BAD_METHOD = _inv("*", 405, 405, "method not allowed")
TOO_LARGE = _inv("*", 413, 413, "request body too large")

# --- GET /domini_pec/{dominio} ---------------------------------------------------------------
DOM_REQUIRED = _doc("GET /domini_pec/{dominio}", 428, 400, "domain required")
DOM_INVALID = _doc("GET /domini_pec/{dominio}", 406, 401, "domain not valid")
DOM_CREDIT = _doc("GET /domini_pec/{dominio}", 402, 403, _CREDIT)

# --- GET /verifica_pec/{pec} -------------------------------------------------------------------
VER_REQUIRED = _doc("GET /verifica_pec/{pec}", 428, 207, "casella_pec required")
VER_INVALID = _doc("GET /verifica_pec/{pec}", 406, 208, "invalid casella_pec")
# The emulator's model of the API reporting an address that is already taken.
VER_TAKEN = _inv("GET /verifica_pec/{pec}", 406, 209, "casella_pec not available")

# --- GET /pec -------------------------------------------------------------------------------------
LIST_EMPTY = _doc("GET /pec", 404, 200, "no pec linked to this account")

# --- POST /pec ------------------------------------------------------------------------------------
_P = "POST /pec"
REG_REQUIRED: dict[str, ErrorCode] = {}
for _field, _code in (
    ("casella_pec", 221),
    ("tipo_casella", 224),  # documented
    ("tipo_cliente", 226),
    ("nome_richiedente", 230),
    ("cognome_richiedente", 231),
    ("email", 232),
    ("telefono", 234),
    ("codice_fiscale_richiedente", 236),
    ("data_nascita_richiedente", 241),
    ("sesso_richiedente", 243),
    ("nazione_nascita_richiedente", 245),
    ("indirizzo_titolare", 246),
    ("comune_titolare", 247),
    ("cap_titolare", 248),
    ("nazione_titolare", 249),
    ("provincia_titolare", 250),
):
    _make = _doc if _field == "tipo_casella" else _inv
    REG_REQUIRED[_field] = _make(_P, 428, _code, f"{_field} required")

REG_INVALID: dict[str, ErrorCode] = {
    "casella_pec": _inv(_P, 406, 222, "invalid casella_pec"),
    "tipo_casella": _inv(_P, 406, 225, "tipo_casella not valid"),
    "tipo_cliente": _inv(_P, 406, 227, "tipo_cliente not valid"),
    "sottotipo_cliente": _inv(_P, 406, 228, "sottotipo_cliente not valid"),
    "email": _inv(_P, 406, 233, "email not valid"),
    "sesso_richiedente": _inv(_P, 406, 244, "sesso_richiedente not valid"),
    "callback": _inv(_P, 406, 251, "callback not valid"),
    "autorinnovo": _inv(_P, 406, 252, "autorinnovo not valid"),
    "tipo_documento": _inv(_P, 406, 253, "tipo_documento not valid"),
}
REG_DATE_INVALID: dict[str, ErrorCode] = {
    "data_nascita_richiedente": _doc(
        _P, 406, 242, "data_nascita_richiedente not valid, accepted format: dd/mm/yyyy"
    ),
    "data_scadenza_documento": _inv(
        _P, 406, 254, "data_scadenza_documento not valid, accepted format: dd/mm/yyyy"
    ),
    "data_rilascio_documento": _inv(
        _P, 406, 255, "data_rilascio_documento not valid, accepted format: dd/mm/yyyy"
    ),
}
# A value of the wrong JSON type (a number where a string is expected...).
REG_WRONG_TYPE = _inv(_P, 406, 259, "{field} not valid")
REG_TAKEN = _inv(_P, 406, 223, "casella_pec not available")
REG_DOMAIN_UNKNOWN = _doc(
    _P, 404, 326, "the domain {dominio} is non-existent in the system or belongs to someone else"
)
REG_DOMAIN_WRONG_TYPE = _inv(
    _P, 406, 327, "a {tipo} mailbox must be registered as box_name@{expected}"
)
REG_CREDIT = _doc(_P, 402, 262, _CREDIT)

# --- GET /pec/{id} --------------------------------------------------------------------------------
GET_WRONG_ID = _doc("GET /pec/{id}", 400, 201, "Wrong id")
GET_NOT_FOUND = _doc("GET /pec/{id}", 404, 202, "no pec found")

# --- DELETE /pec/{id} -----------------------------------------------------------------------------
_D = "DELETE /pec/{id}"
DEL_WRONG_ID = _doc(_D, 400, 301, "Wrong id")
DEL_NOT_FOUND = _doc(_D, 404, 302, "no pec found")
DEL_REVOKED = _doc(_D, 406, 303, "your pec has already been revoked")
DEL_NOT_ACTIVE = _doc(_D, 428, 304, "you can revoke the pec only if it is active")

# --- PATCH /pec/{id}/attivazione --------------------------------------------------------------
_A = "PATCH /pec/{id}/attivazione"
ACT_WRONG_ID = _doc(_A, 400, 265, "Wrong id")
ACT_NOT_FOUND = _doc(_A, 404, 266, "no pec found")
ACT_STATE = _doc(
    _A,
    428,
    267,
    "you can activate the pec only when it is in the 'registrata|documenti_errati' state",
)
ACT_DOCS_REQUIRED = _inv(_A, 428, 268, "documenti required")
ACT_NOT_PDF = _doc(_A, 406, 296, "wrong file format, pdf required")

# --- PATCH /pec/{id}/modifica ------------------------------------------------------------------
_M = "PATCH /pec/{id}/modifica"
MOD_WRONG_ID = _doc(_M, 400, 265, "Wrong id")
MOD_NOT_FOUND = _doc(_M, 404, 266, "no pec found")
MOD_NOT_ON = _inv(_M, 406, 280, _NOT_ON)
MOD_STATE = _inv(_M, 428, 281, "you can modify the space only when the pec is 'evasa'")
MOD_NO_CONSERVAZIONE = _doc(_M, 428, 282, "you must first activate the 'conservazione' service")
MOD_REQUIRED = _inv(_M, 428, 283, "spazio_disco, spazio_storico or spazio_conservazione required")
MOD_INVALID = _inv(_M, 406, 284, "{field} not valid")
MOD_DOWNGRADE = _inv(_M, 406, 285, "only a space upgrade is allowed: {field}")
MOD_MULTIPLE = _doc(_M, 406, 325, "the system only takes into account multiples of {unit}")
MOD_CREDIT = _doc(_M, 402, 290, _CREDIT)

# --- PATCH /pec/{id}/conservazione -----------------------------------------------------------
_C = "PATCH /pec/{id}/conservazione"
CONS_WRONG_ID = _doc(_C, 400, 265, "Wrong id")
CONS_NOT_FOUND = _doc(_C, 404, 266, "no pec found")
CONS_NOT_ON = _inv(_C, 406, 291, _NOT_ON)
CONS_STATE = _inv(
    _C, 428, 292, "you cannot activate conservation if you do not first activate a pec"
)
CONS_ACTIVE = _doc(_C, 406, 293, "conservazione service is already active")
CONS_DOCS_REQUIRED = _doc(_C, 428, 294, "documenti required")
CONS_MULTIPLE = _inv(_C, 406, 295, "the system only takes into account multiples of 512")
CONS_NOT_PDF = _inv(_C, 406, 296, "wrong file format, pdf required")
CONS_CREDIT = _doc(_C, 402, 297, _CREDIT)

# --- PATCH /pec/{id}/trasformazione ----------------------------------------------------------
_T = "PATCH /pec/{id}/trasformazione"
TRA_WRONG_ID = _doc(_T, 400, 265, "Wrong id")
TRA_NOT_FOUND = _doc(_T, 404, 266, "no pec found")
TRA_STATE = _doc(_T, 428, 272, "you can trasform your certified mail only if it has been processed")
TRA_NOT_ON = _inv(_T, 406, 273, _NOT_ON)
TRA_REQUIRED = _inv(_T, 428, 274, "tipo_casella required")
TRA_INVALID = _inv(_T, 406, 275, "tipo_casella not valid")
TRA_DOWNGRADE = _doc(
    _T, 406, 276, "a downgrade of the 'tipo_casella' is not allowed; only {allowed} allowed"
)
TRA_CREDIT = _doc(_T, 402, 279, _CREDIT)

# --- GET /pec/{id}/rinnovo ----------------------------------------------------------------------
_R = "GET /pec/{id}/rinnovo"
REN_WRONG_ID = _doc(_R, 400, 201, "Wrong id")
REN_NOT_FOUND = _doc(_R, 404, 202, "no pec found")
REN_STATE = _doc(_R, 428, 203, "you can renew only evaded or revoked pec")
# rinnovo documents 200, 400, 404 and 428 only: a bad `anni` is a bad request (400), an
# address taken by another mailbox meanwhile an unmet precondition (428), as the 203 is.
REN_ANNI = _inv(_R, 400, 204, "anni not valid: a whole number from 1 to 10 is required")
REN_CREDIT = _inv(_R, 402, 205, _CREDIT)
REN_TAKEN = _inv(_R, 428, 206, "casella_pec not available")

# --- POST /pec/{id}/multiutenza -----------------------------------------------------------------
_U = "POST /pec/{id}/multiutenza"
USR_STATE = _inv(_U, 428, 211, "you can add users only when the pec is 'evasa'")
USR_WRONG_ID = _doc(_U, 400, 212, "Wrong id")
USR_NOT_FOUND = _doc(_U, 404, 213, "no pec found")
USR_REQUIRED: dict[str, ErrorCode] = {
    "nome": _inv(_U, 428, 214, "nome required"),
    "cognome": _inv(_U, 428, 215, "cognome required"),
    "descrizione": _inv(_U, 428, 216, "descrizione required"),
    "email_gestione_password": _inv(_U, 428, 218, "email_gestione_password required"),
}
USR_EMAIL_INVALID = _inv(_U, 406, 219, "email_gestione_password not valid")
USR_MAX = _doc(_U, 406, 217, "maximum number of users reached: 25")
USR_CREDIT = _doc(_U, 402, 220, _CREDIT)
USR_NOT_ON = _doc(
    _U, 428, 390, "this service cannot be activated on these boxes: DOMICILIODIGITALE|PECMASSIVA"
)

# --- GET /comunica_pec ---------------------------------------------------------------------------
COM_LIST_EMPTY = _doc("GET /comunica_pec", 404, 332, "no request linked to this account")

# --- POST /comunica_pec --------------------------------------------------------------------------
_CP = "POST /comunica_pec"
COM_REQUIRED: dict[str, ErrorCode] = {}
for _field, _code in (
    ("casella_pec", 335),
    ("cf", 337),
    ("nome", 338),
    ("cognome", 339),
    ("qualifica", 340),
    ("email", 342),
    ("cellulare", 347),
    ("ragione_sociale", 343),
    ("cf_piva", 344),  # documented
    ("comune", 345),
    ("provincia", 346),
):
    _make = _doc if _field == "cf_piva" else _inv
    COM_REQUIRED[_field] = _make(_CP, 428, _code, f"{_field} required")
COM_INVALID_PEC = _doc(_CP, 406, 336, "invalid casella_pec")
COM_INVALID: dict[str, ErrorCode] = {
    "qualifica": _inv(_CP, 406, 341, "qualifica not valid"),
    "email": _inv(_CP, 406, 348, "email not valid"),
    "pec_amministratore": _inv(_CP, 406, 349, "pec_amministratore not valid"),
    "callback": _inv(_CP, 406, 350, "callback not valid"),
}
COM_WRONG_TYPE = _inv(_CP, 406, 352, "{field} not valid")
COM_CREDIT = _doc(_CP, 402, 351, _CREDIT)

# --- GET /comunica_pec/{id} ----------------------------------------------------------------------
COM_GET_WRONG_ID = _doc("GET /comunica_pec/{id}", 400, 333, "Wrong id")
COM_GET_NOT_FOUND = _doc("GET /comunica_pec/{id}", 404, 334, "no request found")

# --- PATCH /comunica_pec/{id} ---------------------------------------------------------------------
_CU = "PATCH /comunica_pec/{id}"
COM_UP_WRONG_ID = _doc(_CU, 400, 353, "Wrong id")
COM_UP_NOT_FOUND = _doc(_CU, 404, 354, "no request found")
COM_UP_STATE = _doc(
    _CU, 406, 355, "you can only upload documents when stato is 'in_attesa_di_documenti'"
)
COM_UP_REQUIRED = _doc(_CU, 428, 356, "documenti required")
COM_UP_NOT_P7M = _inv(_CU, 406, 357, "wrong file format, p7m required")

DOCUMENTED_CODES: tuple[ErrorCode, ...] = tuple(e for e in _ALL if not e.invented)
#: Every code the emulator answers with that the specification does not document: the
#: emulator's own choice, kept near the documented codes of the same endpoint.
INVENTED_CODES: tuple[ErrorCode, ...] = tuple(e for e in _ALL if e.invented)

# --- form downloads (text/plain answers, no API code) --------------------------------------------
FORM_WRONG_ID = "Invalid id"
FORM_NOT_FOUND = "no request matches this id: {id}"
FORM_ACT_STATE = (
    "you can download the activation form only when the pec is in the "
    "'registrata|documenti_errati' state"
)
FORM_CONS_NOT_ACTIVE = "you cannot activate conservation if you do not first activate a pec"
FORM_CONS_ACTIVE = "conservazione service is already active"
FORM_CONS_NOT_ON = _NOT_ON
FORM_PROCURA_NOT_YET = "you cannot download this module, it doesn't exist yet"
FORM_PROCURA_DONE = "you cannot download this module, the documents have already been uploaded"

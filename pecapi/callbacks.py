"""Receiving the API's callbacks: parse a delivery into a model, or mount a ready handler.

A registration (``MailboxRegistration.callback``) or a comunica_pec request
(``ComunicaPecRequest.callback``) can name a :class:`~pecapi.Callback`: the API then calls
its ``url`` when the mailbox or request changes state. With ``method`` POST (the default)
the JSON travels in the form field ``field`` (default ``data``); with JSON it is the body.
A :class:`CallbackSigner` signs the URL for the mailbox's address, and the handler refuses
deliveries to URLs it did not sign::

    from aiohttp import web
    from pecapi.callbacks import CallbackEvent, CallbackSigner, handler

    signer = CallbackSigner(os.environ["PEC_CALLBACK_KEY"])
    callback = signer.callback("https://me.example/pec-callback", registration_address)

    async def on_event(event: CallbackEvent) -> None:
        if event.mailbox is not None:
            print(event.mailbox.id, event.stato, event.data)

    app = web.Application()
    app.router.add_post("/pec-callback", handler(on_event, verify=signer))

The specification does not document the payload; what this module accepts, and what a
signed URL proves, is written in the README ("Tokens and callbacks")."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

import attrs

from pecapi.callback_limits import (
    MAX_BODY,
    MAX_DEPTH,
    CallbackEncodingError,
    CallbackError,
    CallbackTooLargeError,
    check_identity,
    decode_json,
    field_names,
    read_body,
    read_multipart_field,
)
from pecapi.callback_signing import CallbackSigner
from pecapi.models.comunica import ComunicaPec
from pecapi.models.converter import structure
from pecapi.models.enums import ComunicaPecState, MailboxState
from pecapi.models.mailbox import Mailbox
from pecapi.readonly import ReadOnlyDict

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "MAX_BODY",
    "MAX_DEPTH",
    "CallbackEncodingError",
    "CallbackError",
    "CallbackEvent",
    "CallbackSigner",
    "CallbackTooLargeError",
    "handler",
    "parse_body",
    "parse_payload",
    "read_request",
]

logger = logging.getLogger("pecapi")

Kind = Literal["mailbox", "comunica_pec"]

MAX_FORM_FIELDS = 1000  # parse_qs's own guard against a body of a million "&"s
_MAILBOX_STATES = frozenset(m.value for m in MailboxState)
_COMUNICA_STATES = frozenset(m.value for m in ComunicaPecState)
# Keys only a mailbox (Casella) has, and keys only a comunica_pec request has.
_MAILBOX_KEYS = frozenset(
    {
        "tipo_casella",
        "cod_attivazione",
        "tipo_cliente",
        "nome_richiedente",
        "cognome_richiedente",
        "codice_fiscale_richiedente",
        "spazio_disco",
        "spazio_storico",
        "uid",
        "dominio",
        "data_scadenza",
        "conservazione",
    }
)
_COMUNICA_KEYS = frozenset(
    {
        "codice_registro_imprese",
        "documenti_registro_imprese",
        "qualifica",
        "ragione_sociale",
        "cf_piva",
        "pec_amministratore",
        "cf",
    }
)


@attrs.frozen(kw_only=True)
class CallbackEvent:
    """One callback: the mailbox or comunica_pec request as it is now.

    ``item`` is a :class:`~pecapi.Mailbox` (``kind == "mailbox"``) or a
    :class:`~pecapi.ComunicaPec` (``kind == "comunica_pec"``); ``data`` is the
    ``callback.data`` you sent with the registration, echoed back (None if absent);
    ``message`` the envelope's message, if any; ``raw`` the decoded JSON object.
    """

    kind: Kind
    item: Mailbox | ComunicaPec
    data: Mapping[str, Any] | None = None
    message: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def mailbox(self) -> Mailbox | None:
        return self.item if isinstance(self.item, Mailbox) else None

    @property
    def comunica_pec(self) -> ComunicaPec | None:
        return self.item if isinstance(self.item, ComunicaPec) else None

    @property
    def id(self) -> str:
        return self.item.id

    @property
    def stato(self) -> MailboxState | ComunicaPecState | None:
        return self.item.stato


# -- parsing -----------------------------------------------------------------------------


def _kind_of(obj: Mapping[str, Any]) -> Kind | None:
    stato = obj.get("stato")
    if isinstance(stato, str):
        if stato in _MAILBOX_STATES:
            return "mailbox"
        if stato in _COMUNICA_STATES:
            return "comunica_pec"
    keys = obj.keys()
    mailbox, comunica = len(_MAILBOX_KEYS & keys), len(_COMUNICA_KEYS & keys)
    if mailbox > comunica:
        return "mailbox"
    if comunica > mailbox:
        return "comunica_pec"
    return None


def parse_payload(payload: Any) -> CallbackEvent:
    """The event for a decoded JSON value: a mailbox or request object, bare or wrapped in
    the API's envelope ``{"data": ..., "success", "message", "error"}``."""
    if not isinstance(payload, dict):
        raise CallbackError("the callback's JSON is not an object")
    obj: dict[str, Any] = payload
    message: str | None = None
    if _kind_of(payload) is None and "data" in payload:
        inner = payload["data"]
        if isinstance(inner, str):  # a JSON document inside the JSON: be lenient
            inner = decode_json(inner, "the envelope's data")
        if not isinstance(inner, dict):
            raise CallbackError("the envelope's data is not an object")
        obj = inner
        if isinstance(payload.get("message"), str) and payload["message"]:
            message = payload["message"]
    kind = _kind_of(obj)
    if kind is None:
        raise CallbackError(
            "cannot tell a mailbox from a comunica_pec request: no known stato or fields"
        )
    try:
        item: Mailbox | ComunicaPec = (
            structure(obj, Mailbox) if kind == "mailbox" else structure(obj, ComunicaPec)
        )
    except Exception as exc:  # the converter is lenient: this is a bug-shaped payload
        raise CallbackError(f"the {kind} cannot be read ({type(exc).__name__})") from None
    if not isinstance(item.id, str) or not item.id.strip():
        # an event about no object in particular cannot be acted on, only misapplied
        raise CallbackError(f"the {kind} has no id")
    callback = item.callback
    data = callback.data if callback is not None else None
    return CallbackEvent(kind=kind, item=item, data=data, message=message, raw=ReadOnlyDict(obj))


def _from_form_value(value: str, field: str) -> CallbackEvent:
    return parse_payload(decode_json(value, f"the form field {field!r}"))


def parse_body(
    body: bytes, content_type: str | None = None, *, field: str = "data"
) -> CallbackEvent:
    """The event for a raw delivery: a JSON body, or a form-urlencoded body whose ``field``
    holds the JSON. Without a (known) ``content_type`` the body is sniffed. Multipart
    forms need :func:`read_request`."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == "multipart/form-data":
        raise CallbackError("multipart bodies are read by read_request(), not parse_body()")
    text = body.strip()
    if not text:
        raise CallbackError("the callback has an empty body")
    looks_json = text[:1] in (b"{", b"[")
    if mime == "application/x-www-form-urlencoded" or (
        mime not in ("application/json",) and not looks_json
    ):
        try:
            form = parse_qs(
                body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=True,
                max_num_fields=MAX_FORM_FIELDS,
            )
        except (ValueError, UnicodeDecodeError):
            raise CallbackError("the callback's form cannot be decoded") from None
        values = form.get(field)
        if not values:
            raise CallbackError(f"the form has no field {field!r} (fields: {field_names(form)})")
        return _from_form_value(values[0], field)
    return parse_payload(decode_json(body, "the callback's body"))


async def read_request(
    request: web.Request, *, field: str = "data", max_body: int = MAX_BODY
) -> CallbackEvent:
    """The event for an aiohttp request: JSON, form-urlencoded or multipart. A body over
    ``max_body`` bytes is a :class:`CallbackTooLargeError`, read no further; a compressed
    one (``Content-Encoding`` other than ``identity``) a :class:`CallbackEncodingError`,
    not read at all."""
    from aiohttp import web

    check_identity(request)
    if request.content_type == "multipart/form-data":
        try:
            value = await read_multipart_field(request, field, max_body)
        except (web.HTTPException, CallbackError):
            raise
        except Exception:  # aiohttp's multipart reader has no error type of its own
            raise CallbackError("the callback's multipart form cannot be decoded") from None
        return _from_form_value(value, field)
    body = await read_body(request, max_body)
    return parse_body(body, request.headers.get("Content-Type"), field=field)


# -- the handler ---------------------------------------------------------------------------


def _answer(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.StreamResponse:
    from aiohttp import web

    body = {"success": status == 200, "message": message}
    return web.json_response(body, status=status, headers=headers)


def _authentic(signer: CallbackSigner, request: web.Request, event: CallbackEvent) -> bool:
    # A function of its own so that the token never sits in the locals of handle(), whose
    # frames end up in the tracebacks logged when on_event fails.
    return signer.verify(signer.token_in(request.query), event.item.casella_pec)


def handler(
    on_event: Callable[[CallbackEvent], Awaitable[object]],
    *,
    field: str = "data",
    verify: CallbackSigner | None = None,
    max_body: int = MAX_BODY,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler that parses each delivery and awaits ``on_event(event)``.

    It answers 200 once ``on_event`` has returned; 400 to a delivery it cannot read, 413
    to one over ``max_body`` bytes and 415 to a compressed one, unread (each with a short
    reason, never a traceback); 403 when ``verify`` is a
    :class:`~pecapi.callbacks.CallbackSigner` and the URL called has no valid signature
    for the object's ``casella_pec``; and 500 if ``on_event`` raised (logged, with its
    traceback, on the ``pecapi`` logger), so that the sender may retry. ``on_event`` is
    called only for deliveries answered 200 or 500. ``field`` is the form field holding
    the JSON (your callback's ``field``, default ``data``).

    aiohttp's server inflates compressed bodies itself unless told not to, and before 3.14
    does so a whole network read at a time, before this handler runs: serve it with
    ``web.AppRunner(app, auto_decompress=False)`` so that no compressed body is inflated.
    """
    if not isinstance(field, str) or not field:
        raise ValueError("field must be a non-empty string")
    if verify is not None and not isinstance(verify, CallbackSigner):
        raise TypeError("verify must be a pecapi.callbacks.CallbackSigner or None")
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
        raise ValueError("max_body must be a positive int")

    async def handle(request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        # Unsigned deliveries are refused before their body is read; a well-shaped
        # signature is checked against the address once the body is.
        if verify is not None and verify.token_in(request.query) is None:
            logger.warning("refused a PEC callback: its URL has no signature")
            return _answer(403, "the callback URL is not signed")
        try:
            event = await read_request(request, field=field, max_body=max_body)
        except CallbackTooLargeError as exc:
            logger.warning("refused a PEC callback: %s", exc)
            return _answer(413, str(exc))
        except CallbackEncodingError as exc:
            logger.warning("refused a PEC callback: %s", exc)
            # RFC 7694: a 415 for a content coding says which codings are accepted
            return _answer(415, str(exc), {"Accept-Encoding": "identity"})
        except CallbackError as exc:
            logger.warning("rejected a malformed PEC callback: %s", exc)
            return _answer(400, str(exc))
        except web.HTTPException:  # aiohttp's own answers (its client_max_size: 413)
            raise
        except Exception as exc:  # a reader's bug is still the sender's bad body: no retry
            logger.warning("rejected an unreadable PEC callback (%s)", type(exc).__name__)
            return _answer(400, "the callback cannot be read")
        if verify is not None and not _authentic(verify, request, event):
            logger.warning("refused a PEC callback: its signature does not match the address")
            return _answer(403, "the callback URL is not signed for this address")
        try:
            await on_event(event)
        except Exception:  # CancelledError is a BaseException: it propagates
            logger.exception(
                "the PEC callback handler failed on a %s event (id %s)", event.kind, event.id
            )
            return _answer(500, "the callback could not be processed")
        return _answer(200, "")

    return handle

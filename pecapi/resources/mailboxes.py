"""``client.mailboxes``: register, activate, change, renew and revoke certified mailboxes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, overload

from pecapi.batch import Batch, BatchProgress
from pecapi.documents import DocumentKind, Documents, prepare_documents
from pecapi.errors import NotAcceptableError, ValidationError
from pecapi.models.converter import unstructure
from pecapi.models.enums import MailboxState, TipoCasella, TipoCasellaLiteral
from pecapi.models.mailbox import (
    CONSERVATION_UNIT,
    Mailbox,
    MailboxRegistration,
    MailboxSummary,
    MailboxUser,
    SpaceChange,
    parse_space,
)
from pecapi.models.rules import check_mailbox_domain
from pecapi.models.wire import require_address
from pecapi.resources._base import Resource, list_of, object_of, require_id
from pecapi.resources.reconcile import (
    ReadBack,
    SpaceTargets,
    count_users,
    expiry,
    expiry_moved,
    has_conservation,
    is_activated,
    is_revoked,
)
from pecapi.transport.download import Destination
from pecapi.transport.endpoint import Effect, Endpoint, Reply, pdf_endpoint
from pecapi.transport.exchange import encode_json, json_body
from pecapi.transport.options import RequestOptions

__all__ = ["Mailboxes"]

# The API answers 406 with this code when an address is taken (see README: assumptions).
CODE_NOT_AVAILABLE = 209


def _available(reply: Reply) -> bool:
    data = reply.data
    if isinstance(data, dict) and isinstance(data.get("available"), bool):
        return bool(data["available"])
    raise TypeError("expected {'available': true|false}")


def _mailbox_endpoint(name: str, method: str, path: str, effect: Effect) -> Endpoint[Mailbox]:
    return Endpoint(name=name, method=method, path=path, effect=effect, decode=object_of(Mailbox))


IS_AVAILABLE = Endpoint(
    name="mailboxes.is_available",
    method="GET",
    path="/verifica_pec/{pec}",
    effect=Effect.READ,
    decode=_available,
)
LIST = Endpoint(
    name="mailboxes.list",
    method="GET",
    path="/pec",
    effect=Effect.READ,
    decode=list_of(MailboxSummary),
    empty_when=frozenset({(404, 200)}),
)
REGISTER = _mailbox_endpoint("mailboxes.register", "POST", "/pec", Effect.PAID)
GET = _mailbox_endpoint("mailboxes.get", "GET", "/pec/{id}", Effect.READ)
REVOKE = _mailbox_endpoint("mailboxes.revoke", "DELETE", "/pec/{id}", Effect.WRITE)
ACTIVATE = _mailbox_endpoint("mailboxes.activate", "PATCH", "/pec/{id}/attivazione", Effect.WRITE)
CHANGE_SPACE = _mailbox_endpoint(
    "mailboxes.change_space", "PATCH", "/pec/{id}/modifica", Effect.PAID
)
ACTIVATE_CONSERVATION = _mailbox_endpoint(
    "mailboxes.activate_conservation", "PATCH", "/pec/{id}/conservazione", Effect.PAID
)
CHANGE_TYPE = _mailbox_endpoint(
    "mailboxes.change_type", "PATCH", "/pec/{id}/trasformazione", Effect.PAID
)
RENEW = _mailbox_endpoint("mailboxes.renew", "GET", "/pec/{id}/rinnovo", Effect.PAID)
ADD_USER = _mailbox_endpoint("mailboxes.add_user", "POST", "/pec/{id}/multiutenza", Effect.PAID)
ACTIVATION_FORM = pdf_endpoint(
    name="mailboxes.activation_form", path="/pec/{id}/modulo_attivazione"
)
CONSERVATION_FORM = pdf_endpoint(
    name="mailboxes.conservation_form", path="/pec/{id}/modulo_conservazione"
)

ENDPOINTS = (
    IS_AVAILABLE,
    LIST,
    REGISTER,
    GET,
    REVOKE,
    ACTIVATE,
    CHANGE_SPACE,
    ACTIVATE_CONSERVATION,
    CHANGE_TYPE,
    RENEW,
    ADD_USER,
    ACTIVATION_FORM,
    CONSERVATION_FORM,
)


def _always(value: object, before: object) -> bool:
    return True


class Mailboxes(Resource):
    """Certified mailboxes of the account (the API's ``/pec`` and ``/verifica_pec``)."""

    __slots__ = ()

    def _read_back(
        self,
        id: str,
        options: RequestOptions | None,
        done: Callable[[Mailbox, Any], bool],
        baseline: Callable[[Mailbox], Any] | None = None,
    ) -> ReadBack[Mailbox]:
        # The call's own options (timeout, extra headers and query) for its reads too.
        async def fetch() -> Mailbox:
            return await self.get(id, options=options)

        return ReadBack(fetch, done, baseline)

    async def is_available(self, pec: str, *, options: RequestOptions | None = None) -> bool:
        """``GET /verifica_pec/{pec}``: whether the address can still be registered.

        The API reports a taken address as an error (406, code 209); that is ``False``
        here. A malformed address raises :class:`ValidationError` before sending.
        """
        require_address(require_id(pec, "pec"), "pec")
        try:
            return await self._requester.call(IS_AVAILABLE, params={"pec": pec}, options=options)
        except NotAcceptableError as exc:
            if exc.code == CODE_NOT_AVAILABLE or "not available" in (exc.api_message or ""):
                return False
            raise

    async def list(self, *, options: RequestOptions | None = None) -> list[MailboxSummary]:
        """``GET /pec``: every mailbox of the account (``[]`` when there is none)."""
        return await self._requester.call(LIST, options=options)

    async def register(
        self, registration: MailboxRegistration, *, options: RequestOptions | None = None
    ) -> Mailbox:
        """``POST /pec``: register a new mailbox (paid). It starts in state ``registrata``."""
        if not isinstance(registration, MailboxRegistration):
            raise ValidationError(None, "registration must be a pecapi.MailboxRegistration")
        check_mailbox_domain(
            registration.casella_pec, registration.tipo_casella, sandbox=self._sandbox
        )
        body = json_body(unstructure(registration))
        address = registration.casella_pec.lower()

        async def find() -> Mailbox | None:
            # Registered by an earlier attempt: pending (registrata) under that address.
            # The cheap availability check first: a free address was not registered.
            failed_at = time.monotonic()
            if await self.is_available(registration.casella_pec, options=options):
                return None
            # One listing shared by the registrations settling at once (with equal
            # options): read after this one failed, with this call's options.
            listing = await self._requester.shared_read(LIST, newer_than=failed_at, options=options)
            for item in listing:
                same = (item.casella_pec or "").lower() == address
                if same and item.id and item.stato is MailboxState.REGISTRATA:
                    return await self.get(item.id, options=options)
            return None

        return await self._requester.call(
            REGISTER,
            body=body,
            options=options,
            reconciler=ReadBack(find, _always),
            target=f"register/{address}",
        )

    def register_many(
        self,
        registrations: Iterable[MailboxRegistration] | AsyncIterable[MailboxRegistration],
        *,
        concurrency: int = 50,
        on_progress: Callable[[BatchProgress], None] | None = None,
        options: RequestOptions | None = None,
    ) -> Batch[MailboxRegistration, Mailbox]:
        """``register`` over many registrations, ``concurrency`` at a time; iterate the
        batch for each (registration, mailbox or error) as it completes."""

        # A partial, not a coroutine function around register: one coroutine less per item.
        one = partial(self.register, options=options)
        return self._map(one, registrations, concurrency=concurrency, on_progress=on_progress)

    async def get(self, id: str, *, options: RequestOptions | None = None) -> Mailbox:
        """``GET /pec/{id}``: one mailbox with all its details."""
        return await self._requester.call(GET, params={"id": id}, options=options)

    async def revoke(self, id: str, *, options: RequestOptions | None = None) -> Mailbox:
        """``DELETE /pec/{id}``: revoke an active mailbox."""
        return await self._requester.call(
            REVOKE,
            params={"id": id},
            options=options,
            reconciler=self._read_back(id, options, is_revoked),
        )

    async def activate(
        self, id: str, documenti: Documents, *, options: RequestOptions | None = None
    ) -> Mailbox:
        """``PATCH /pec/{id}/attivazione``: upload the signed form and identity document (PDFs).

        ``documenti`` is a path, bytes, a binary file object, or a list of them; they are
        checked to be PDFs before anything is sent and streamed from disk.
        """
        docs = prepare_documents(documenti, DocumentKind.PDF)
        return await self._requester.call(
            ACTIVATE,
            params={"id": id},
            body=docs.body,
            options=options,
            reconciler=self._read_back(id, options, is_activated),
        )

    async def change_space(
        self,
        id: str,
        *,
        spazio_disco: int | str | None = None,
        spazio_storico: int | str | None = None,
        spazio_conservazione: int | str | None = None,
        options: RequestOptions | None = None,
    ) -> Mailbox:
        """``PATCH /pec/{id}/modifica``: upgrade space (paid). An int sets, ``"+N"`` adds N MB.

        Disk and archive spaces are multiples of 1024 MB, conservation of 512 MB.
        """
        change = SpaceChange(
            spazio_disco=spazio_disco,
            spazio_storico=spazio_storico,
            spazio_conservazione=spazio_conservazione,
        )
        targets = SpaceTargets(change, lambda: self.get(id, options=options))
        return await self._requester.call(
            CHANGE_SPACE,
            params={"id": id},
            body=lambda: encode_json(targets.body()),
            options=options,
            reconciler=targets,
        )

    async def activate_conservation(
        self,
        id: str,
        documenti: Documents,
        *,
        spazio_conservazione: int | None = None,
        options: RequestOptions | None = None,
    ) -> Mailbox:
        """``PATCH /pec/{id}/conservazione``: turn on conservation by law (paid; PDFs).

        ``spazio_conservazione`` defaults to 512 MB at the API.
        """
        extra: dict[str, object] = {}
        if spazio_conservazione is not None:
            if isinstance(spazio_conservazione, str):
                raise ValidationError("spazio_conservazione", "give an int number of MB")
            extra["spazio_conservazione"] = parse_space(
                spazio_conservazione, "spazio_conservazione", CONSERVATION_UNIT
            )
        docs = prepare_documents(documenti, DocumentKind.PDF)
        return await self._requester.call(
            ACTIVATE_CONSERVATION,
            params={"id": id},
            body=lambda: docs.body(extra),
            options=options,
            reconciler=self._read_back(id, options, has_conservation),
        )

    async def change_type(
        self,
        id: str,
        tipo_casella: TipoCasella | TipoCasellaLiteral,
        *,
        options: RequestOptions | None = None,
    ) -> Mailbox:
        """``PATCH /pec/{id}/trasformazione``: upgrade the mailbox type (paid).

        Only STANDARD, BRONZE, SILVER and GOLD, and only upwards.
        """
        tipo = TipoCasella.parse(tipo_casella, "tipo_casella")
        if not tipo.upgradable:
            raise ValidationError(
                "tipo_casella", f"{tipo.value} is not a target: use STANDARD, BRONZE, SILVER, GOLD"
            )
        body = json_body({"tipo_casella": tipo.value})
        return await self._requester.call(
            CHANGE_TYPE,
            params={"id": id},
            body=body,
            options=options,
            reconciler=self._read_back(id, options, lambda box, _: box.tipo_casella is tipo),
        )

    async def renew(
        self, id: str, *, anni: int = 1, options: RequestOptions | None = None
    ) -> Mailbox:
        """``GET /pec/{id}/rinnovo``: renew (or re-activate) for ``anni`` years (paid)."""
        if isinstance(anni, bool) or not isinstance(anni, int) or anni < 1:
            raise ValidationError("anni", f"must be a whole number of years >= 1, not {anni!r}")
        return await self._requester.call(
            RENEW,
            params={"id": id},
            query={"anni": str(anni)},
            options=options,
            reconciler=self._read_back(id, options, expiry_moved, baseline=expiry),
        )

    async def add_user(
        self, id: str, user: MailboxUser, *, options: RequestOptions | None = None
    ) -> Mailbox:
        """``POST /pec/{id}/multiutenza``: add a user (paid; at most 25 per mailbox)."""
        if not isinstance(user, MailboxUser):
            raise ValidationError(None, "user must be a pecapi.MailboxUser")
        body = json_body(unstructure(user))

        def same_user(box: Mailbox) -> int:
            return count_users(box, user.nome, user.cognome, user.email_gestione_password)

        return await self._requester.call(
            ADD_USER,
            params={"id": id},
            body=body,
            options=options,
            reconciler=self._read_back(
                id, options, lambda box, before: same_user(box) > (before or 0), baseline=same_user
            ),
        )

    @overload
    async def activation_form(
        self, id: str, dest: None = None, *, options: RequestOptions | None = None
    ) -> bytes: ...
    @overload
    async def activation_form(
        self, id: str, dest: Destination, *, options: RequestOptions | None = None
    ) -> Path: ...
    async def activation_form(
        self, id: str, dest: Destination | None = None, *, options: RequestOptions | None = None
    ) -> bytes | Path:
        """``GET /pec/{id}/modulo_attivazione``: the activation form (PDF).

        Its bytes, or with ``dest`` the path it was streamed to.
        """
        return await self._requester.download(
            ACTIVATION_FORM, dest, params={"id": id}, options=options
        )

    @overload
    async def conservation_form(
        self, id: str, dest: None = None, *, options: RequestOptions | None = None
    ) -> bytes: ...
    @overload
    async def conservation_form(
        self, id: str, dest: Destination, *, options: RequestOptions | None = None
    ) -> Path: ...
    async def conservation_form(
        self, id: str, dest: Destination | None = None, *, options: RequestOptions | None = None
    ) -> bytes | Path:
        """``GET /pec/{id}/modulo_conservazione``: the conservation form (PDF)."""
        return await self._requester.download(
            CONSERVATION_FORM, dest, params={"id": id}, options=options
        )

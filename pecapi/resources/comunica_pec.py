"""``client.comunica_pec``: communicate a mailbox to the business register."""

from __future__ import annotations

from pathlib import Path
from typing import overload

from pecapi.documents import DocumentKind, Documents, prepare_documents
from pecapi.errors import ValidationError
from pecapi.models.comunica import ComunicaPec, ComunicaPecRequest, ComunicaPecSummary
from pecapi.models.converter import unstructure
from pecapi.models.enums import ComunicaPecState
from pecapi.resources._base import Resource, list_of, object_of
from pecapi.resources.reconcile import NewItem, ReadBack
from pecapi.transport.download import Destination
from pecapi.transport.endpoint import Effect, Endpoint, pdf_endpoint
from pecapi.transport.exchange import json_body
from pecapi.transport.options import RequestOptions

__all__ = ["ComunicaPecRequests"]

LIST = Endpoint(
    name="comunica_pec.list",
    method="GET",
    path="/comunica_pec",
    effect=Effect.READ,
    decode=list_of(ComunicaPecSummary),
    empty_when=frozenset({(404, 332)}),
)
CREATE = Endpoint(
    name="comunica_pec.create",
    method="POST",
    path="/comunica_pec",
    effect=Effect.PAID,
    decode=object_of(ComunicaPec),
)
GET = Endpoint(
    name="comunica_pec.get",
    method="GET",
    path="/comunica_pec/{id}",
    effect=Effect.READ,
    decode=object_of(ComunicaPec),
)
UPLOAD_DOCUMENTS = Endpoint(
    name="comunica_pec.upload_documents",
    method="PATCH",
    path="/comunica_pec/{id}",
    effect=Effect.WRITE,
    decode=object_of(ComunicaPec),
)
POWER_OF_ATTORNEY = pdf_endpoint(
    name="comunica_pec.power_of_attorney", path="/comunica_pec/{id}/procura_registro_imprese"
)
ENDPOINTS = (LIST, CREATE, GET, UPLOAD_DOCUMENTS, POWER_OF_ATTORNEY)
_UPLOADED = (ComunicaPecState.DOCUMENTI_CARICATI, ComunicaPecState.COMUNICAZIONE_EVASA)


def _uploaded(request: ComunicaPec, _: object) -> bool:
    return request.stato in _UPLOADED


class ComunicaPecRequests(Resource):
    """Communications of certified mailboxes to the business register (``/comunica_pec``)."""

    __slots__ = ()

    async def list(self, *, options: RequestOptions | None = None) -> list[ComunicaPecSummary]:
        """``GET /comunica_pec``: every request of the account (``[]`` when there is none)."""
        return await self._requester.call(LIST, options=options)

    async def create(
        self, request: ComunicaPecRequest, *, options: RequestOptions | None = None
    ) -> ComunicaPec:
        """``POST /comunica_pec``: start a communication (paid)."""
        if not isinstance(request, ComunicaPecRequest):
            raise ValidationError(None, "request must be a pecapi.ComunicaPecRequest")
        address = request.casella_pec.lower()

        async def ids_for_address() -> set[str]:
            return {
                item.id
                for item in await self.list(options=options)
                if item.id and (item.casella_pec or "").lower() == address
            }

        async def fetch(id: str) -> ComunicaPec:
            return await self.get(id, options=options)

        return await self._requester.call(
            CREATE,
            body=json_body(unstructure(request)),
            options=options,
            reconciler=NewItem(ids_for_address, fetch),
            target=f"comunica_pec/new/{address}",
        )

    async def get(self, id: str, *, options: RequestOptions | None = None) -> ComunicaPec:
        """``GET /comunica_pec/{id}``: one request."""
        return await self._requester.call(GET, params={"id": id}, options=options)

    async def upload_documents(
        self, id: str, documenti: Documents, *, options: RequestOptions | None = None
    ) -> ComunicaPec:
        """``PATCH /comunica_pec/{id}``: upload the digitally signed power of attorney (p7m)."""
        docs = prepare_documents(documenti, DocumentKind.P7M)

        async def fetch() -> ComunicaPec:
            return await self.get(id, options=options)

        return await self._requester.call(
            UPLOAD_DOCUMENTS,
            params={"id": id},
            body=docs.body,
            options=options,
            reconciler=ReadBack[ComunicaPec](fetch, _uploaded),
        )

    @overload
    async def power_of_attorney(
        self, id: str, dest: None = None, *, options: RequestOptions | None = None
    ) -> bytes: ...
    @overload
    async def power_of_attorney(
        self, id: str, dest: Destination, *, options: RequestOptions | None = None
    ) -> Path: ...
    async def power_of_attorney(
        self, id: str, dest: Destination | None = None, *, options: RequestOptions | None = None
    ) -> bytes | Path:
        """``GET /comunica_pec/{id}/procura_registro_imprese``: the form to sign (PDF)."""
        return await self._requester.download(
            POWER_OF_ATTORNEY, dest, params={"id": id}, options=options
        )

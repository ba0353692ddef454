"""``client.domains``: whether a domain is certified (can send and receive PEC)."""

from __future__ import annotations

from pecapi.models.common import DomainCheck
from pecapi.resources._base import Resource, require_id
from pecapi.transport.endpoint import Effect, Endpoint, Reply
from pecapi.transport.options import RequestOptions

__all__ = ["Domains"]


def _domain_check(reply: Reply) -> DomainCheck:
    # 200 with success means certified; the API answers 204 (no body) when it is not.
    return DomainCheck(
        dominio=reply.params["dominio"], certified=reply.status == 200, message=reply.message
    )


CHECK = Endpoint(
    name="domains.check",
    method="GET",
    path="/domini_pec/{dominio}",
    effect=Effect.READ,
    decode=_domain_check,
)
ENDPOINTS = (CHECK,)


class Domains(Resource):
    """Certified domains (the API's ``/domini_pec``)."""

    __slots__ = ()

    async def check(self, dominio: str, *, options: RequestOptions | None = None) -> DomainCheck:
        """``GET /domini_pec/{dominio}``: is ``dominio`` a certified (PEC) domain?"""
        require_id(dominio, "dominio")
        return await self._requester.call(
            CHECK, params={"dominio": dominio.strip()}, options=options
        )

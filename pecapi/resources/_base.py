"""What every resource namespace shares: a reference to its client and one way to call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pecapi.errors import ValidationError
from pecapi.models.converter import structure
from pecapi.transport.endpoint import Endpoint, Reply
from pecapi.transport.exchange import no_body
from pecapi.transport.options import RequestOptions
from pecapi.transport.pipeline import BodyFactory
from pecapi.transport.retry import Reconciler

if TYPE_CHECKING:
    from pecapi.client import PecClient

__all__ = ["Resource", "list_of", "object_of"]

T = TypeVar("T")


class Resource:
    """A namespace of operations (``client.mailboxes``...) bound to one client."""

    __slots__ = ("_client",)

    def __init__(self, client: PecClient) -> None:
        self._client = client

    async def _call(
        self,
        endpoint: Endpoint[T],
        *,
        params: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        body: BodyFactory = no_body,
        options: RequestOptions | None = None,
        reconciler: Reconciler[T] | None = None,
        target: str | None = None,
    ) -> T:
        exchange = self._client._exchange(
            endpoint, params=params, query=query, body=body, options=options
        )
        return cast(T, await self._client._pipeline.call(exchange, reconciler, target=target))


def object_of(cls: type[T]) -> Any:
    """A ``decode`` for an envelope whose ``data`` is one ``cls`` object."""

    def decode(reply: Reply) -> T:
        if not isinstance(reply.data, dict):
            raise TypeError(f"expected a {cls.__name__} object, got {type(reply.data).__name__}")
        return structure(reply.data, cls)

    return decode


def list_of(cls: type[T]) -> Any:
    """A ``decode`` for an envelope whose ``data`` is a list of ``cls`` (None: empty)."""

    def decode(reply: Reply) -> list[T]:
        if reply.data is None:
            return []
        if not isinstance(reply.data, list):
            raise TypeError(f"expected a list, got {type(reply.data).__name__}")
        return [structure(item, cls) for item in reply.data]

    return decode


def require_id(value: object, field: str = "id") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string")
    return value

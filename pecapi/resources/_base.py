"""What every resource namespace shares: its client's requester, and the client's
``sandbox`` flag and ``map`` (batches). Resources never see the client itself."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

from pecapi.batch import Batch, BatchProgress
from pecapi.errors import ValidationError
from pecapi.models.converter import structure
from pecapi.transport.endpoint import Reply
from pecapi.transport.requester import Requester

__all__ = ["Mapper", "Resource", "list_of", "object_of"]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 (the input type)
R = TypeVar("R")


class Mapper(Protocol):
    """``PecClient.map``, as resources use it (``register_many``)."""

    def __call__(
        self,
        fn: Callable[[I], Awaitable[R]],
        inputs: Iterable[I] | AsyncIterable[I],
        *,
        concurrency: int = ...,
        on_progress: Callable[[BatchProgress], None] | None = ...,
    ) -> Batch[I, R]: ...


class Resource:
    """A namespace of operations (``client.mailboxes``...) bound to one client's
    :class:`~pecapi.transport.requester.Requester`."""

    __slots__ = ("_map", "_requester", "_sandbox")

    def __init__(self, requester: Requester, *, sandbox: bool, map: Mapper) -> None:
        self._requester = requester
        self._sandbox = sandbox
        self._map = map


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

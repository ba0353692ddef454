"""One call of one endpoint (everything needed to send it again) and one answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp.payload import Payload
from yarl import URL

from pecapi.jsontext import dumps
from pecapi.transport.endpoint import Endpoint
from pecapi.transport.options import RequestOptions

__all__ = [
    "Body",
    "BodyFactory",
    "Exchange",
    "RawResponse",
    "encode_json",
    "json_body",
    "no_body",
    "where",
]

Body = bytes | Payload | None
BodyFactory = Callable[[], Body]


class RawResponse:
    """Status, headers and body of one HTTP answer, read in full."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Exchange:
    """One call of one endpoint: everything needed to send it (again)."""

    __slots__ = ("body", "endpoint", "method", "options", "params", "query", "url")

    def __init__(
        self,
        endpoint: Endpoint[Any],
        url: URL,
        params: Mapping[str, str],
        query: Mapping[str, str] | None,
        body: BodyFactory,
        options: RequestOptions,
    ) -> None:
        self.endpoint = endpoint
        self.method = endpoint.method
        self.url = url
        self.params = params
        self.query = query
        self.body = body
        self.options = options


def no_body() -> Body:
    """The body factory of a request without a body."""
    return None


def encode_json(obj: Any) -> bytes:
    """A request body: compact UTF-8 JSON (orjson's when installed: jsontext.dumps)."""
    return dumps(obj)


def json_body(obj: Any) -> BodyFactory:
    """A body factory for a JSON object, encoded once."""
    encoded = encode_json(obj)
    return lambda: encoded


def where(exchange: Exchange) -> dict[str, Any]:
    return {"method": exchange.method, "url": exchange.url}

"""What a callback delivery may be, and reading one within those bounds: an uncompressed
body of at most ``MAX_BODY`` bytes, JSON without NaN/Infinity nested at most ``MAX_DEPTH``
deep.

Every failure is a :class:`CallbackError`: a sender's bad body must be answered with a 4xx,
never reach the receiver's code as a ``RecursionError`` or a 500 the sender would retry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pecapi.errors import PecError
from pecapi.jsontext import MAX_DEPTH, JsonError, loads

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "MAX_BODY",
    "MAX_DEPTH",
    "CallbackEncodingError",
    "CallbackError",
    "CallbackTooLargeError",
    "check_identity",
    "decode_json",
    "field_names",
    "read_body",
    "read_multipart_field",
]

#: the largest body :func:`handler` and :func:`read_request` read (bytes)
MAX_BODY = 1024 * 1024


class CallbackError(PecError, ValueError):
    """A callback delivery that cannot be read (not JSON, no object, not a known kind...)."""


class CallbackTooLargeError(CallbackError):
    """A callback body over the size limit (``limit``, in bytes); the rest was not read."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the callback's body is larger than {limit} bytes")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.limit,))


class CallbackEncodingError(CallbackError):
    """A callback body sent compressed (a ``Content-Encoding`` other than ``identity``),
    refused unread: ``encoding`` is the first coding named (as sent, at most 40 characters)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        super().__init__(
            f"the callback's body is encoded ({encoding!r}): only an uncompressed body is read"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.encoding,))


def field_names(names: Iterable[str]) -> str:
    """A form's field names for a message: quoted and few, as the sender chose them (a
    name could be a megabyte long, or hold a newline that forges a log line)."""
    shown = sorted(names)
    text = ", ".join(repr(n if len(n) <= 40 else n[:40] + "...") for n in shown[:10])
    more = f" and {len(shown) - 10} more" if len(shown) > 10 else ""
    return (text + more) or "none"


# -- JSON -----------------------------------------------------------------------------------


def decode_json(text: str | bytes, where: str) -> Any:
    """The JSON value of ``text``; ``where`` names it in the :class:`CallbackError`.
    ``MAX_DEPTH`` keeps the converter's and the user's recursive code safe afterwards."""
    try:
        return loads(text, max_depth=MAX_DEPTH, constants=False)
    except JsonError as exc:
        raise CallbackError(f"{where} is not valid JSON: {exc}") from None


# -- bodies within bounds -------------------------------------------------------------------


def check_identity(request: web.BaseRequest) -> None:
    """Raise :class:`CallbackEncodingError` unless the body is sent as is (no
    ``Content-Encoding``, or only ``identity``), before a byte of it is read.

    A compressed body is refused rather than inflated within ``max_body``: a few kilobytes
    of gzip inflate to megabytes, and aiohttp's server before 3.14 inflates each network
    read whole, before any limit of ours sees it (so an app serving the handler should
    also tell aiohttp not to: ``web.AppRunner(app, auto_decompress=False)``). Callbacks
    are small JSON documents: nothing is lost by asking for them as they are."""
    for value in request.headers.getall("Content-Encoding", ()):
        for coding in value.split(","):
            coding = coding.strip()
            if coding and coding.lower() != "identity":
                raise CallbackEncodingError(coding if len(coding) <= 40 else coding[:40] + "...")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request's body, if it is at most ``limit`` bytes (as decoded)."""
    if request.content_length is not None and request.content_length > limit:
        raise CallbackTooLargeError(limit)
    if not request.can_read_body:  # no body, or read already (by a middleware): cached
        body = await request.read()
    else:
        # Read here, not with request.read(): the app's client_max_size may be far larger.
        # Counted as read, not trusted to Content-Length: a chunked body has none.
        buffer = bytearray()
        async for chunk in request.content.iter_any():
            buffer += chunk
            if len(buffer) > limit:
                raise CallbackTooLargeError(limit)
        body = bytes(buffer)
    if len(body) > limit:
        raise CallbackTooLargeError(limit)
    return body


async def read_multipart_field(request: web.Request, field: str, limit: int) -> str:
    """The text of the multipart form's first ``field``; the whole form counts to ``limit``."""
    from aiohttp import BodyPartReader

    if request.content_length is not None and request.content_length > limit:
        raise CallbackTooLargeError(limit)
    reader = await request.multipart()
    total = 0
    value: bytes | None = None
    names: set[str] = set()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise CallbackError("the callback's multipart form nests another one")
        wanted = value is None and part.name == field
        chunks = bytearray()
        while chunk := await part.read_chunk():
            total += len(chunk)  # every part counts, kept or not
            if total > limit:
                raise CallbackTooLargeError(limit)
            if wanted:
                chunks += chunk
        names.add(part.name or "")
        if wanted:
            if part.headers.get("Content-Encoding", "identity").lower() != "identity":
                raise CallbackError(f"the form field {field!r} is compressed")
            # Content-Transfer-Encoding only, which never makes the value grow
            value = bytes(part.decode(bytes(chunks)))
    if value is None:
        raise CallbackError(f"the form has no field {field!r} (fields: {field_names(names)})")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise CallbackError(f"the form field {field!r} is not UTF-8") from None

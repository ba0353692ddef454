"""The request body: a :class:`DocumentSet` of checked documents, and the
:class:`DocumentsPayload` that streams it as base64 inside a JSON object.

The payload has an exact ``size`` (so aiohttp sends ``Content-Length``) and encodes each
document chunk by chunk as it writes, reading files again for every write.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Final

import attrs
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from pecapi.document_kinds import DocumentKind
from pecapi.document_sources import (
    Document,
    FileObjectReader,
    PathReader,
    SizeChangedError,
    os_reason,
    recheck_path,
)
from pecapi.errors import ValidationError

__all__ = ["CHUNK_SIZE", "MAX_IN_MEMORY_BODY", "DocumentSet", "DocumentsPayload"]

#: Bytes of document read and base64-encoded at a time. A multiple of 3, so each chunk
#: encodes to whole base64 quanta with no ``=`` padding: only the last chunk of a
#: document can be padded, exactly as if the whole document had been encoded at once.
CHUNK_SIZE: Final = 3 * 64 * 1024

#: ``decode()`` / ``as_bytes()`` build the whole body in memory: only up to this size.
MAX_IN_MEMORY_BODY: Final = 1024 * 1024


@attrs.frozen
class DocumentSet:
    """Immutable description of checked documents, ready to be sent any number of times."""

    kind: DocumentKind
    documents: tuple[Document, ...]
    field: str = "documenti"

    def __len__(self) -> int:
        return len(self.documents)

    def __iter__(self) -> Iterator[Document]:
        return iter(self.documents)

    @property
    def total_size(self) -> int:
        """Bytes of content over all documents."""
        return sum(d.size for d in self.documents)

    @property
    def encoded_size(self) -> int:
        """Exact length of all documents in base64 (without the JSON around them)."""
        return sum(d.encoded_size for d in self.documents)

    def body(
        self,
        extra: Mapping[str, object] | None = None,
        *,
        field: str | None = None,
        as_list: bool = True,
    ) -> DocumentsPayload:
        """A FRESH payload for one request: ``{**extra, field: ["<b64>", ...]}``.

        ``field`` defaults to the one given to
        :func:`~pecapi.documents.prepare_documents`. With
        ``as_list=False`` a single document is sent as one string, not a list. Files
        given by path are checked again (cheaply, with ``stat``) to still be the size
        they were: a file that changed raises :class:`ValidationError` now rather than
        sending a wrong ``Content-Length``.
        """
        field = self.field if field is None else field
        for doc in self.documents:
            if doc.path is not None:
                recheck_path(doc, field)
        return DocumentsPayload(self, extra, field=field, as_list=as_list)


def _close_when_opened(fut: asyncio.Future[PathReader]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        fut.result().close()


_Write = Callable[[bytes], Awaitable[None]]


class _Collector:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.parts.append(data)


# --- the payload ----------------------------------------------------------------------


class DocumentsPayload(Payload):
    """The JSON body ``{**extra, field: ["<base64>", ...]}``, streamed from the documents.

    ``size`` is exact, so aiohttp sends ``Content-Length`` rather than chunked encoding.
    Each write reads the documents again from the start (files given by path are
    opened for that write and closed when it ends, even if it is cancelled; file
    objects are read from their recorded start position), so aiohttp can write the same
    payload more than once (it does so to follow a 307/308 redirect, and to retry on a
    stale keep-alive connection); ``consumed`` stays False. Nothing is held open between
    writes, so ``close()`` has nothing to do.

    Do not write the same payload (or two payloads of the same set) concurrently from
    file objects given by the caller: each read seeks first, but the file position is
    shared.
    """

    _autoclose = True  # no resources are held between writes

    def __init__(
        self,
        documents: DocumentSet,
        extra: Mapping[str, object] | None = None,
        *,
        field: str | None = None,
        as_list: bool = True,
    ) -> None:
        if not isinstance(documents, DocumentSet):
            raise ValidationError(field, "documents must be a DocumentSet from prepare_documents")
        field = documents.field if field is None else field
        if not isinstance(field, str) or not field:
            raise ValidationError(None, f"the documents field must be a non-empty str: {field!r}")
        count = len(documents.documents)
        if count == 0:
            raise ValidationError(field, "no documents given: at least one is needed")
        if not as_list and count != 1:
            raise ValidationError(
                field, f"{count} documents cannot be sent as a single string (as_list=False)"
            )
        key = _json_bytes(field)
        self._docset = documents
        self._field = field
        self._prefix = b"{" + _encode_extra(extra, field) + key + (b':["' if as_list else b':"')
        self._separator = b'","'
        self._suffix = b'"]}' if as_list else b'"}'
        super().__init__(documents, content_type="application/json", encoding="utf-8")
        self._size = (
            len(self._prefix)
            + documents.encoded_size
            + len(self._separator) * (count - 1)
            + len(self._suffix)
        )

    @property
    def size(self) -> int:
        """Exact number of bytes that a write sends."""
        assert self._size is not None
        return self._size

    @property
    def documents(self) -> DocumentSet:
        return self._docset

    def _pieces(self) -> Iterator[bytes | Document]:
        yield self._prefix
        for i, doc in enumerate(self._docset.documents):
            if i:
                yield self._separator
            yield doc
        yield self._suffix

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        """Write the body (at most ``content_length`` bytes of it), chunk by chunk."""
        await self._write_body(writer.write, content_length)

    async def _write_body(self, write: _Write, content_length: int | None) -> None:
        limit = self.size if content_length is None else max(0, min(content_length, self.size))
        remaining = limit
        for piece in self._pieces():
            if remaining <= 0:
                return
            if isinstance(piece, bytes):
                remaining = await _emit(write, piece, remaining)
            else:
                remaining = await self._write_document(write, piece, remaining)

    async def _write_document(self, write: _Write, doc: Document, remaining: int) -> int:
        if doc.data is not None:
            # Already in memory: encode slices of it (no copy of the whole document).
            view = memoryview(doc.data)
            for offset in range(0, doc.size, CHUNK_SIZE):
                if remaining <= 0:
                    break
                chunk = base64.b64encode(view[offset : offset + CHUNK_SIZE])
                remaining = await _emit(write, chunk, remaining)
            return remaining

        loop = asyncio.get_running_loop()
        reader = await self._open_reader(doc)
        try:
            left = doc.size
            while left > 0 and remaining > 0:
                n = min(CHUNK_SIZE, left)
                # Each chunk is read in the loop's default executor: a read of a
                # regular file can still block for long (cold cache, network
                # filesystem, a slow disk), and one thread hop per 192 KiB costs far
                # less than base64-encoding and sending it. Encoding stays on the loop:
                # it is fast (well under a millisecond per chunk) and holds the GIL
                # anyway.
                raw = await loop.run_in_executor(None, reader.read, n)
                if len(raw) != n:
                    raise ValidationError(
                        self._field,
                        f"{doc.label} changed while it was being sent: it ended "
                        f"{left - len(raw)} bytes early",
                    )
                left -= n
                remaining = await _emit(write, base64.b64encode(raw), remaining)
                del raw
        finally:
            # Runs on cancellation too (CancelledError propagates untouched); never
            # blocks: a read still running in its thread closes the file itself.
            reader.close()
        return remaining

    async def _open_reader(self, doc: Document) -> PathReader | FileObjectReader:
        if doc.file is not None:
            return FileObjectReader(doc)
        assert doc.path is not None
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, PathReader, doc.path, doc.size)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The open goes on in its thread: close the file once it is open.
            fut.add_done_callback(_close_when_opened)
            raise
        except SizeChangedError as exc:
            raise ValidationError(
                self._field,
                f"{doc.label} changed since it was checked: it was {doc.size} bytes, "
                f"now {exc.size}",
            ) from exc
        except OSError as exc:
            raise ValidationError(
                self._field, f"{doc.label} can no longer be read: {os_reason(exc)}"
            ) from exc

    # -- whole-body access: small bodies only ------------------------------------------

    def _check_small(self) -> None:
        if self.size > MAX_IN_MEMORY_BODY:
            raise ValidationError(
                self._field,
                f"the body is {self.size} bytes: too large to build in memory "
                f"(limit {MAX_IN_MEMORY_BODY}); it can only be streamed with write()",
            )

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The whole body as text, for bodies up to :data:`MAX_IN_MEMORY_BODY` bytes.

        Reads the files with blocking I/O (at most about 750 KB of them).
        """
        self._check_small()
        parts: list[bytes] = []
        for piece in self._pieces():
            if isinstance(piece, bytes):
                parts.append(piece)
            elif piece.data is not None:
                parts.append(base64.b64encode(piece.data))
            else:
                parts.append(base64.b64encode(self._read_whole_sync(piece)))
        return b"".join(parts).decode(encoding, errors)

    def _read_whole_sync(self, doc: Document) -> bytes:
        if doc.file is not None:
            data = FileObjectReader(doc).read(doc.size)
        else:
            assert doc.path is not None
            try:
                reader = PathReader(doc.path, doc.size)
            except SizeChangedError as exc:
                raise ValidationError(
                    self._field, f"{doc.label} changed since it was checked"
                ) from exc
            try:
                data = reader.read(doc.size)
            finally:
                reader.close()
        if len(data) != doc.size:
            raise ValidationError(self._field, f"{doc.label} changed since it was checked")
        return data

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """The whole body, for bodies up to :data:`MAX_IN_MEMORY_BODY` bytes."""
        self._check_small()
        collector = _Collector()
        await self._write_body(collector.write, None)
        return b"".join(collector.parts)


async def _emit(write: _Write, data: bytes, remaining: int) -> int:
    if len(data) > remaining:
        data = data[:remaining]
    await write(data)
    return remaining - len(data)


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def _encode_extra(extra: Mapping[str, object] | None, field: str) -> bytes:
    """``"k":v,`` for each extra field, in order (empty when there are none)."""
    if extra is None:
        return b""
    if not isinstance(extra, Mapping):
        raise ValidationError(None, f"extra fields must be a mapping, not {type(extra).__name__}")
    parts: list[bytes] = []
    for key, value in extra.items():
        if not isinstance(key, str):
            raise ValidationError(None, f"extra field names must be str, not {key!r}")
        if key == field:
            raise ValidationError(key, "is the documents field: it cannot be an extra field")
        try:
            parts.append(_json_bytes(key) + b":" + _json_bytes(value) + b",")
        except (TypeError, ValueError) as exc:
            raise ValidationError(key, f"cannot be encoded as JSON: {exc}") from exc
    return b"".join(parts)

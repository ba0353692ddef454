"""Documents to upload: checked before anything is sent, then streamed as base64 in JSON.

Several operations take documents as base64 strings inside a JSON body::

    PATCH /pec/{id}/attivazione      {"documenti": ["<base64 pdf>", ...]}
    PATCH /pec/{id}/conservazione    {"documenti": [...], "spazio_conservazione": 512}
    PATCH /comunica_pec/{id}         {"documenti": ["<base64 p7m>"]}

:func:`prepare_documents` turns what the caller gave (paths, bytes, binary file objects,
or a list of them) into a :class:`DocumentSet`, reading only the head of each file to
check that it is what the API wants (:class:`DocumentKind`). Every bad input raises
:class:`~pecapi.errors.ValidationError` naming the document at fault.

:meth:`DocumentSet.body` then makes a :class:`DocumentsPayload`, an aiohttp payload that
writes the JSON object with an exact ``size`` (so aiohttp sends ``Content-Length``) and
base64-encodes each document chunk by chunk straight from disk: a 100 MB PDF is never
held in memory, the memory used while sending is a few hundred KB whatever the size.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import io
import json
import os
import stat
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, Final, TypeAlias

import attrs
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from pecapi.errors import ValidationError

__all__ = [
    "CHUNK_SIZE",
    "Document",
    "DocumentInput",
    "DocumentKind",
    "DocumentSet",
    "Documents",
    "DocumentsPayload",
    "prepare_documents",
]

#: One document to upload: a ``str`` or path-like is a path, bytes-like is the content,
#: anything with ``read()`` is a binary file object.
DocumentInput: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO
#: One document, or a list/tuple of them (a bare ``str`` or bytes is one document).
Documents: TypeAlias = DocumentInput | Sequence[DocumentInput]

#: Bytes of document read and base64-encoded at a time. A multiple of 3, so each chunk
#: encodes to whole base64 quanta with no ``=`` padding: only the last chunk of a
#: document can be padded, exactly as if the whole document had been encoded at once.
CHUNK_SIZE: Final = 3 * 64 * 1024

#: How much of each document is read to check its kind.
HEAD_SIZE: Final = 1024

#: ``decode()`` / ``as_bytes()`` build the whole body in memory: only up to this size.
MAX_IN_MEMORY_BODY: Final = 1024 * 1024

_PDF_MAGIC: Final = b"%PDF-"
_P7M_OID: Final = bytes.fromhex("06092a864886f70d010702")  # 1.2.840.113549.1.7.2 signedData
_P7M_OID_WINDOW: Final = 64
_PEM_HEADERS: Final = (b"-----BEGIN PKCS7", b"-----BEGIN CMS")
_WHITESPACE: Final = b" \t\r\n\f\v"
#: Characters of base64 text decoded to look for DER signedData (enough for the window).
_B64_PROBE: Final = 128


class DocumentKind(enum.Enum):
    """What an operation accepts, with the check made on each document's first bytes."""

    PDF = "pdf"
    P7M = "p7m"

    @property
    def description(self) -> str:
        return "a PDF" if self is DocumentKind.PDF else "a p7m file (PKCS#7 signed data)"

    @property
    def _expectation(self) -> str:
        if self is DocumentKind.PDF:
            return f"no %PDF- header in its first {HEAD_SIZE} bytes"
        return (
            "neither DER signedData (0x30 and the OID 1.2.840.113549.1.7.2 in the first "
            f"{_P7M_OID_WINDOW} bytes) nor PEM text starting with -----BEGIN PKCS7 "
            "or -----BEGIN CMS"
        )

    def matches(self, head: bytes) -> bool:
        """Whether ``head`` (the first bytes of a document) looks like this kind."""
        head = head[:HEAD_SIZE]
        if self is DocumentKind.PDF:
            # A .p7m wrapping a PDF holds the PDF's header in its first KB: not a PDF.
            return _PDF_MAGIC in head and not _signed_data(head)
        if _is_der_signed_data(head):
            return True
        return head.lstrip(_WHITESPACE).startswith(_PEM_HEADERS)


def _is_der_signed_data(head: bytes) -> bool:
    return head[:1] == b"\x30" and _P7M_OID in head[:_P7M_OID_WINDOW]


def _signed_data(head: bytes) -> bool:
    """Whether ``head`` starts CMS/PKCS#7 signed data (a .p7m): DER, PEM, or the DER in
    base64 (``MII...``: how a .p7m saved as text begins)."""
    if _is_der_signed_data(head):
        return True
    text = head.lstrip(_WHITESPACE)
    if text.startswith(_PEM_HEADERS):
        return True
    if not text.startswith(b"MI"):  # base64 of 0x30 and a length byte
        return False
    chunk = b"".join(text[:_B64_PROBE].split())
    try:
        der = base64.b64decode(chunk[: len(chunk) // 4 * 4], validate=True)
    except (binascii.Error, ValueError):
        return False
    return _is_der_signed_data(der)


@attrs.frozen(eq=False)
class Document:
    """One checked document: where its bytes come from, and how many there are.

    Exactly one of ``path``, ``data`` and ``file`` is set. ``file`` is read from
    ``start`` (its position when it was checked), so a body can be written again.
    Made by :func:`prepare_documents`.
    """

    index: int  #: 1-based position in the set, as used in error messages
    name: str  #: file name, or a short description of in-memory content
    size: int  #: bytes of content (> 0)
    path: Path | None = None
    data: bytes | None = attrs.field(default=None, repr=False)
    file: BinaryIO | None = attrs.field(default=None, repr=False)
    start: int = 0
    # Serialises seek+read on a shared file object, so two writes of the same body
    # (a retry starting while a cancelled write's read is still in its thread) each read
    # from their own position.
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, init=False)

    @property
    def encoded_size(self) -> int:
        """Exact length of this document in base64."""
        return _b64_len(self.size)

    @property
    def label(self) -> str:
        return f"document {self.index} ({self.name})"


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

        ``field`` defaults to the one given to :func:`prepare_documents`. With
        ``as_list=False`` a single document is sent as one string, not a list. Files
        given by path are checked again (cheaply, with ``stat``) to still be the size
        they were: a file that changed raises :class:`ValidationError` now rather than
        sending a wrong ``Content-Length``.
        """
        field = self.field if field is None else field
        for doc in self.documents:
            if doc.path is not None:
                _recheck_path(doc, field)
        return DocumentsPayload(self, extra, field=field, as_list=as_list)


# --- checking the input ---------------------------------------------------------------


def prepare_documents(
    documenti: Documents, kind: DocumentKind, *, field: str = "documenti"
) -> DocumentSet:
    """Check ``documenti`` and describe them, before anything is sent.

    Accepts a path (``str`` or path-like), bytes-like content, a binary file object, or a
    list/tuple of them. Only the first :data:`HEAD_SIZE` bytes of each file are read, to
    check the kind; content is read again when the body is written.

    A file object must be binary; a seekable one is read from its current position,
    which is recorded so the body can be written again. A NON-seekable file object
    (a pipe, a socket...) is read fully into memory, once, here. Mutable bytes-like
    content (bytearray, memoryview) is copied, so changing it later cannot change the
    body or its length.

    Raises :class:`ValidationError` (``field`` set to ``field``) for an empty list, a
    path that does not exist, is a directory or cannot be read, empty content, content
    that is not ``kind``, a text or closed file object, and anything of another type.
    """
    if not isinstance(kind, DocumentKind):
        raise ValidationError(field, f"kind must be a DocumentKind, not {kind!r}")
    items = _as_items(documenti, field)
    docs = tuple(_prepare_one(item, i, kind, field) for i, item in enumerate(items, 1))
    return DocumentSet(kind=kind, documents=docs, field=field)


def _is_single(value: object) -> bool:
    return isinstance(value, (str, bytes, bytearray, memoryview, os.PathLike)) or hasattr(
        value, "read"
    )


def _as_items(documenti: object, field: str) -> list[object]:
    if _is_single(documenti):
        return [documenti]
    if isinstance(documenti, Sequence):
        if not documenti:
            raise ValidationError(field, "no documents given: at least one is needed")
        return list(documenti)
    what = "nothing (None)" if documenti is None else f"a {type(documenti).__name__}"
    raise ValidationError(
        field,
        f"expected a path, bytes, a binary file object or a list of them, got {what}",
    )


def _prepare_one(item: object, index: int, kind: DocumentKind, field: str) -> Document:
    if isinstance(item, (str, os.PathLike)):
        return _prepare_path(item, index, kind, field)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _prepare_bytes(item, index, kind, field, name="bytes in memory")
    if hasattr(item, "read"):
        return _prepare_file(item, index, kind, field)
    raise ValidationError(
        field,
        f"document {index} is a {type(item).__name__}: give a path, bytes or a binary file object",
    )


def _check_content(
    head: bytes, size: int, label: str, kind: DocumentKind, field: str, empty_hint: str = ""
) -> None:
    if size <= 0:
        raise ValidationError(field, f"{label} is empty{empty_hint}")
    if kind is DocumentKind.PDF and _signed_data(head[:HEAD_SIZE]):
        raise ValidationError(
            field,
            f"{label} is a signed .p7m envelope (CMS signed data): the API wants the PDF "
            "itself, not the .p7m",
        )
    if not kind.matches(head):
        raise ValidationError(field, f"{label} is not {kind.description}: {kind._expectation}")


def _prepare_bytes(
    item: bytes | bytearray | memoryview, index: int, kind: DocumentKind, field: str, *, name: str
) -> Document:
    data = item if isinstance(item, bytes) else memoryview(item).tobytes()
    label = f"document {index} ({name})"
    _check_content(data[:HEAD_SIZE], len(data), label, kind, field)
    return Document(index=index, name=name, size=len(data), data=data)


def _prepare_path(
    item: str | os.PathLike[str], index: int, kind: DocumentKind, field: str
) -> Document:
    try:
        raw = os.fspath(item)
    except TypeError as exc:
        raise ValidationError(field, f"document {index} is not a valid path: {exc}") from exc
    text = os.fsdecode(raw)
    if not text:
        raise ValidationError(field, f"document {index} is an empty path")
    name = os.path.basename(text.rstrip("/" + os.sep)) or text
    label = f"document {index} ({name})"
    try:
        path = Path(os.path.abspath(text))
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ValidationError(field, f"{label} does not exist: {text}") from exc
    except PermissionError as exc:
        raise ValidationError(field, f"{label} cannot be accessed: permission denied") from exc
    except (OSError, ValueError) as exc:
        raise ValidationError(field, f"{label} cannot be read: {_os_reason(exc)}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ValidationError(field, f"{label} is a directory, not a file: {text}")
    if not stat.S_ISREG(st.st_mode):
        raise ValidationError(field, f"{label} is not a regular file: {text}")
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = _read_exactly(fh, HEAD_SIZE)
    except PermissionError as exc:
        raise ValidationError(field, f"{label} cannot be read: permission denied") from exc
    except OSError as exc:
        raise ValidationError(field, f"{label} cannot be read: {_os_reason(exc)}") from exc
    _check_content(head, size, label, kind, field)
    return Document(index=index, name=name, size=size, path=path)


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _file_name(obj: object) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, int) and not isinstance(name, bool):
        return f"file descriptor {name}"
    if isinstance(name, (str, bytes, os.PathLike)):
        text = os.fsdecode(name)
        return os.path.basename(text) or text
    return f"{type(obj).__name__} object"


def _prepare_file(obj: Any, index: int, kind: DocumentKind, field: str) -> Document:
    name = _file_name(obj)
    label = f"document {index} ({name})"
    if getattr(obj, "closed", False) is True:
        raise ValidationError(field, f"{label} is a closed file object")
    if isinstance(obj, io.TextIOBase):
        raise ValidationError(
            field, f"{label} is a text file object: open it in binary mode ('rb')"
        )
    try:
        probe = obj.read(0)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ValidationError(field, f"{label} cannot be read: {_os_reason(exc)}") from exc
    if isinstance(probe, str):
        raise ValidationError(
            field, f"{label} is a text file object: open it in binary mode ('rb')"
        )
    if probe is not None and not isinstance(probe, (bytes, bytearray, memoryview)):
        raise ValidationError(
            field,
            f"{label} is not a binary file object: read() returned {type(probe).__name__}",
        )
    try:
        seekable = bool(obj.seekable()) if hasattr(obj, "seekable") else False
    except (OSError, ValueError) as exc:
        raise ValidationError(field, f"{label} cannot be read: {_os_reason(exc)}") from exc
    if not seekable:
        # Cannot be re-read from the start: read it fully into memory, once.
        try:
            data = _read_to_end(obj)
        except (OSError, ValueError, TypeError) as exc:
            raise ValidationError(field, f"{label} cannot be read: {_os_reason(exc)}") from exc
        return _prepare_bytes(data, index, kind, field, name=name)
    try:
        start = int(obj.tell())
        end = int(obj.seek(0, io.SEEK_END))
        obj.seek(start)
        head = _read_exactly(obj, HEAD_SIZE)
        obj.seek(start)
    except (OSError, ValueError, TypeError) as exc:
        raise ValidationError(field, f"{label} cannot be read: {_os_reason(exc)}") from exc
    _check_content(
        head,
        end - start,
        label,
        kind,
        field,
        empty_hint=f" (nothing to read from its position {start})" if start else "",
    )
    return Document(index=index, name=name, size=end - start, file=obj, start=start)


def _read_exactly(fh: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at end of file (raw streams may return short reads)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        part = fh.read(n - got)
        if not part:
            break
        if not isinstance(part, bytes):
            part = bytes(part)
        parts.append(part)
        got += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _read_to_end(fh: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        part = fh.read(1024 * 1024)
        if not part:
            break
        if isinstance(part, str):
            raise TypeError("read() returned text: open it in binary mode ('rb')")
        parts.append(bytes(part))
    return b"".join(parts)


def _recheck_path(doc: Document, field: str) -> None:
    assert doc.path is not None
    try:
        st = os.stat(doc.path)
    except OSError as exc:
        raise ValidationError(
            field, f"{doc.label} can no longer be read: {_os_reason(exc)}"
        ) from exc
    if not stat.S_ISREG(st.st_mode) or st.st_size != doc.size:
        raise ValidationError(
            field,
            f"{doc.label} changed since it was checked: it was {doc.size} bytes, now {st.st_size}",
        )


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)


# --- reading while writing ------------------------------------------------------------


class _SizeChangedError(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _PathReader:
    """A file opened for one write of a body, read sequentially from worker threads.

    ``close()`` is called from the event loop, possibly (on cancellation) while a read
    is still running in a thread: then the file is closed by that read when it ends, so
    it is never closed under a running read, and never left open.
    """

    def __init__(self, path: Path, expected_size: int) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._state = threading.Lock()  # held only to update the flags below, no I/O
        self._busy = False
        self._close_requested = False
        self._closed = False
        try:
            size = os.fstat(self._fh.fileno()).st_size
        except BaseException:
            self._fh.close()
            raise
        if size != expected_size:
            self._fh.close()
            raise _SizeChangedError(size)

    def read(self, n: int) -> bytes:
        with self._state:
            if self._closed or self._close_requested:
                return b""
            self._busy = True
        try:
            return _read_exactly(self._fh, n)
        finally:
            with self._state:
                self._busy = False
                close_now = self._close_requested and not self._closed
                self._closed = self._closed or close_now
            if close_now:
                self._fh.close()

    def close(self) -> None:
        with self._state:
            self._close_requested = True
            close_now = not self._busy and not self._closed
            self._closed = self._closed or close_now
        if close_now:
            self._fh.close()


class _FileObjectReader:
    """Positional reads from a caller's file object (which is never closed by us)."""

    def __init__(self, doc: Document) -> None:
        assert doc.file is not None
        self._doc = doc
        self._file = doc.file
        self._pos = doc.start

    def read(self, n: int) -> bytes:
        with self._doc._lock:
            self._file.seek(self._pos)
            data = _read_exactly(self._file, n)
        self._pos += len(data)
        return data

    def close(self) -> None:
        pass


def _close_when_opened(fut: asyncio.Future[_PathReader]) -> None:
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

    async def _open_reader(self, doc: Document) -> _PathReader | _FileObjectReader:
        if doc.file is not None:
            return _FileObjectReader(doc)
        assert doc.path is not None
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, _PathReader, doc.path, doc.size)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The open goes on in its thread: close the file once it is open.
            fut.add_done_callback(_close_when_opened)
            raise
        except _SizeChangedError as exc:
            raise ValidationError(
                self._field,
                f"{doc.label} changed since it was checked: it was {doc.size} bytes, "
                f"now {exc.size}",
            ) from exc
        except OSError as exc:
            raise ValidationError(
                self._field, f"{doc.label} can no longer be read: {_os_reason(exc)}"
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
            data = _FileObjectReader(doc).read(doc.size)
        else:
            assert doc.path is not None
            try:
                reader = _PathReader(doc.path, doc.size)
            except _SizeChangedError as exc:
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

"""Where a checked document's bytes come from, and reading them again to send them.

A :class:`Document` records one source (a path, bytes, or a caller's file object and its
start position); :class:`PathReader` and :class:`FileObjectReader` read it back, chunk by
chunk, for each write of a body.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import IO, BinaryIO

import attrs

from pecapi.errors import ValidationError

__all__ = [
    "Document",
    "FileObjectReader",
    "PathReader",
    "SizeChangedError",
    "os_reason",
    "read_exactly",
    "recheck_path",
]


@attrs.frozen(eq=False)
class Document:
    """One checked document: where its bytes come from, and how many there are.

    Exactly one of ``path``, ``data`` and ``file`` is set. ``file`` is read from
    ``start`` (its position when it was checked), so a body can be written again.
    Made by :func:`~pecapi.documents.prepare_documents`.
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


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)


def os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def read_exactly(fh: IO[bytes], n: int) -> bytes:
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


def recheck_path(doc: Document, field: str) -> None:
    assert doc.path is not None
    try:
        st = os.stat(doc.path)
    except OSError as exc:
        raise ValidationError(
            field, f"{doc.label} can no longer be read: {os_reason(exc)}"
        ) from exc
    if not stat.S_ISREG(st.st_mode) or st.st_size != doc.size:
        raise ValidationError(
            field,
            f"{doc.label} changed since it was checked: it was {doc.size} bytes, now {st.st_size}",
        )


# --- reading while writing ------------------------------------------------------------


class SizeChangedError(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class PathReader:
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
            raise SizeChangedError(size)

    def read(self, n: int) -> bytes:
        with self._state:
            if self._closed or self._close_requested:
                return b""
            self._busy = True
        try:
            return read_exactly(self._fh, n)
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


class FileObjectReader:
    """Positional reads from a caller's file object (which is never closed by us)."""

    def __init__(self, doc: Document) -> None:
        assert doc.file is not None
        self._doc = doc
        self._file = doc.file
        self._pos = doc.start

    def read(self, n: int) -> bytes:
        with self._doc._lock:
            self._file.seek(self._pos)
            data = read_exactly(self._file, n)
        self._pos += len(data)
        return data

    def close(self) -> None:
        pass

"""What a caller may give as documents, and :func:`prepare_documents`, which checks it.

Paths, bytes-like content and binary file objects (or a list of them) become a
:class:`~pecapi.document_payload.DocumentSet`; only the head of each file is read here,
for :func:`~pecapi.document_kinds.check_kind`.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

from pecapi.document_kinds import HEAD_SIZE, DocumentKind, check_kind
from pecapi.document_payload import DocumentSet
from pecapi.document_sources import Document, os_reason, read_exactly
from pecapi.errors import ValidationError

__all__ = ["DocumentInput", "Documents", "prepare_documents"]

#: One document to upload: a ``str`` or path-like is a path, bytes-like is the content,
#: anything with ``read()`` is a binary file object.
DocumentInput: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO
#: One document, or a list/tuple of them (a bare ``str`` or bytes is one document).
Documents: TypeAlias = DocumentInput | Sequence[DocumentInput]


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
    check_kind(head, kind, label, field)


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
        raise ValidationError(field, f"{label} cannot be read: {os_reason(exc)}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ValidationError(field, f"{label} is a directory, not a file: {text}")
    if not stat.S_ISREG(st.st_mode):
        raise ValidationError(field, f"{label} is not a regular file: {text}")
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = read_exactly(fh, HEAD_SIZE)
    except PermissionError as exc:
        raise ValidationError(field, f"{label} cannot be read: permission denied") from exc
    except OSError as exc:
        raise ValidationError(field, f"{label} cannot be read: {os_reason(exc)}") from exc
    _check_content(head, size, label, kind, field)
    return Document(index=index, name=name, size=size, path=path)


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
        raise ValidationError(field, f"{label} cannot be read: {os_reason(exc)}") from exc
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
        raise ValidationError(field, f"{label} cannot be read: {os_reason(exc)}") from exc
    if not seekable:
        # Cannot be re-read from the start: read it fully into memory, once.
        try:
            data = _read_to_end(obj)
        except (OSError, ValueError, TypeError) as exc:
            raise ValidationError(field, f"{label} cannot be read: {os_reason(exc)}") from exc
        return _prepare_bytes(data, index, kind, field, name=name)
    try:
        start = int(obj.tell())
        end = int(obj.seek(0, io.SEEK_END))
        obj.seek(start)
        head = read_exactly(obj, HEAD_SIZE)
        obj.seek(start)
    except (OSError, ValueError, TypeError) as exc:
        raise ValidationError(field, f"{label} cannot be read: {os_reason(exc)}") from exc
    _check_content(
        head,
        end - start,
        label,
        kind,
        field,
        empty_hint=f" (nothing to read from its position {start})" if start else "",
    )
    return Document(index=index, name=name, size=end - start, file=obj, start=start)


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

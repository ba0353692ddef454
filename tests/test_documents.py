"""pecapi.documents: checking documents up front and streaming them as base64 in JSON."""

from __future__ import annotations

import asyncio
import base64
import builtins
import hashlib
import io
import json
import os
import random
import stat
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.payload import PAYLOAD_REGISTRY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pecapi.document_inputs as inputs_module
import pecapi.document_sources as sources_module
from pecapi.documents import (
    CHUNK_SIZE,
    HEAD_SIZE,
    MAX_IN_MEMORY_BODY,
    Document,
    DocumentKind,
    DocumentSet,
    DocumentsPayload,
    prepare_documents,
)
from pecapi.errors import ValidationError

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
P7M_DER = bytes.fromhex("308006092a864886f70d010702a0803080") + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 100


# --- helpers --------------------------------------------------------------------------


class Collector:
    """A writer keeping what is written (for small and medium bodies)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.calls = 0

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls += 1
        self.parts.append(bytes(data))

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


class CountingSink:
    """A writer that only counts bytes: keeps nothing."""

    def __init__(self) -> None:
        self.count = 0

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.count += len(data)


async def stream(payload: DocumentsPayload) -> bytes:
    sink = Collector()
    await payload.write(cast(Any, sink))
    return sink.data


def expected_body(
    contents: Sequence[bytes], extra: dict[str, Any] | None = None, *, as_list: bool = True
) -> dict[str, Any]:
    encoded = [base64.b64encode(c).decode("ascii") for c in contents]
    return {**(extra or {}), "documenti": encoded if as_list else encoded[0]}


def canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def pdf_of_size(n: int, seed: int = 0) -> bytes:
    assert n >= 5
    return b"%PDF-" + random.Random(seed).randbytes(n - 5)


def raw_set(*contents: bytes) -> DocumentSet:
    """A set made directly, bypassing the kind check (to test 1-, 2-, 3-byte documents)."""
    docs = tuple(
        Document(index=i, name=f"raw{i}", size=len(c), data=c) for i, c in enumerate(contents, 1)
    )
    return DocumentSet(kind=DocumentKind.PDF, documents=docs)


def write_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def fds_open_on(path: Path) -> int:
    """How many of this process's file descriptors point at ``path`` (Linux)."""
    count = 0
    target = str(path.resolve())
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                count += 1
        except OSError:
            continue
    return count


needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to count open files"
)


async def wait_until(predicate: Callable[[], bool], *, attempts: int = 500) -> bool:
    """Let the loop and worker threads run until ``predicate`` holds (bounded)."""
    for _ in range(attempts):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


# --- the kind check ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "ok"),
    [
        (b"%PDF-1.7\n", True),
        (b"\x00" * 1019 + b"%PDF-", True),  # ends exactly at byte 1024
        (b"\x00" * 1020 + b"%PDF-", False),  # straddles the 1024-byte window
        (b"%PDF", False),
        (JPEG, False),
    ],
)
def test_pdf_magic(head: bytes, ok: bool) -> None:
    assert DocumentKind.PDF.matches(head) is ok


@pytest.mark.parametrize(
    ("head", "ok"),
    [
        (P7M_DER, True),
        (b"\x30\x82\x10\x00" + b"\x00" * 49 + bytes.fromhex("06092a864886f70d010702"), True),
        (b"\x30\x82\x10\x00" + b"\x00" * 50 + bytes.fromhex("06092a864886f70d010702"), False),
        (b"\x31" + P7M_DER[1:], False),  # not a SEQUENCE
        (b"\x30\x80" + bytes.fromhex("06092a864886f70d010701"), False),  # data, not signedData
        (b"-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----\n", True),
        (b" \r\n\t-----BEGIN CMS-----\nMIIB\n", True),
        (b"x-----BEGIN PKCS7-----\n", False),
        (base64.encodebytes(P7M_DER), False),  # bare base64 text is not taken as a p7m
        (PDF, False),
    ],
)
def test_p7m_magic(head: bytes, ok: bool) -> None:
    assert DocumentKind.P7M.matches(head) is ok


# --- prepare_documents: accepted inputs -----------------------------------------------


def test_single_and_multiple_inputs(tmp_path: Path) -> None:
    path = write_file(tmp_path / "a.pdf", PDF)
    fobj = io.BytesIO(b"junk" + PDF)
    fobj.seek(4)
    docset = prepare_documents(
        [str(path), path, PDF, bytearray(PDF), memoryview(PDF), fobj], DocumentKind.PDF
    )
    assert len(docset) == 6
    assert [d.index for d in docset] == [1, 2, 3, 4, 5, 6]
    assert docset.documents[0].path == path
    assert docset.documents[0].name == "a.pdf"
    assert docset.documents[5].file is fobj
    assert docset.documents[5].start == 4
    assert fobj.tell() == 4  # the check left the position where it was
    assert docset.total_size == 6 * len(PDF)
    assert docset.encoded_size == 6 * len(base64.b64encode(PDF))
    assert docset.field == "documenti"

    one = prepare_documents(path, DocumentKind.PDF)
    assert len(one) == 1
    one_str = prepare_documents(str(path), DocumentKind.PDF)  # a str is a path, not a list
    assert len(one_str) == 1
    assert len(prepare_documents(PDF, DocumentKind.PDF)) == 1  # bytes are content
    assert len(prepare_documents((PDF, PDF), DocumentKind.PDF)) == 2


def test_p7m_inputs(tmp_path: Path) -> None:
    path = write_file(tmp_path / "procura.pdf.p7m", P7M_DER)
    pem = b"\n-----BEGIN PKCS7-----\nMIIBAA==\n-----END PKCS7-----\n"
    docset = prepare_documents([path, pem], DocumentKind.P7M)
    assert [d.size for d in docset] == [len(P7M_DER), len(pem)]


def test_mutable_buffers_are_copied() -> None:
    buf = bytearray(PDF)
    docset = prepare_documents(buf, DocumentKind.PDF)
    buf[:] = b"x" * len(buf)
    assert docset.documents[0].data == PDF


def test_only_the_head_is_read(tmp_path: Path) -> None:
    class Tracking(io.BytesIO):
        read_sizes: list[int]

        def read(self, size: int | None = -1) -> bytes:
            self.read_sizes.append(-1 if size is None else size)
            return super().read(size)

    fobj = Tracking(pdf_of_size(5 * CHUNK_SIZE))
    fobj.read_sizes = []
    prepare_documents(fobj, DocumentKind.PDF)
    assert all(0 <= n <= HEAD_SIZE for n in fobj.read_sizes)
    assert sum(fobj.read_sizes) <= HEAD_SIZE


# --- prepare_documents: every bad input ------------------------------------------------


def assert_invalid(
    documenti: Any, kind: DocumentKind = DocumentKind.PDF, *, match: str
) -> ValidationError:
    with pytest.raises(ValidationError, match=match) as info:
        prepare_documents(documenti, kind)
    assert info.value.field == "documenti"
    return info.value


@pytest.mark.parametrize("empty", [[], ()])
def test_empty_list(empty: Sequence[Any]) -> None:
    assert_invalid(empty, match="no documents given")


def test_missing_path(tmp_path: Path) -> None:
    err = assert_invalid([PDF, tmp_path / "nope.pdf"], match="document 2 \\(nope.pdf\\)")
    assert "does not exist" in err.message


def test_missing_parent_is_missing(tmp_path: Path) -> None:
    f = write_file(tmp_path / "file", PDF)
    assert_invalid(str(f / "child.pdf"), match=r"document 1 \(child.pdf\) does not exist")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.pdf").mkdir()
    assert_invalid(tmp_path / "dir.pdf", match=r"document 1 \(dir.pdf\) is a directory")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    assert_invalid(fifo, match=r"document 1 \(pipe.pdf\) is not a regular file")


def test_empty_path_string() -> None:
    assert_invalid("", match="document 1 is an empty path")


def test_unreadable_path_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_file(tmp_path / "secret.pdf", PDF)

    def deny(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    # Shadows the builtin open() in pecapi.document_inputs (where paths are checked) only.
    monkeypatch.setattr(inputs_module, "open", deny, raising=False)
    assert_invalid(path, match=r"document 1 \(secret.pdf\) cannot be read: permission denied")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file"
)
def test_unreadable_path_chmod(tmp_path: Path) -> None:
    path = write_file(tmp_path / "secret.pdf", PDF)
    path.chmod(0)
    try:
        assert_invalid(path, match=r"document 1 \(secret.pdf\) cannot be read")
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_empty_contents(tmp_path: Path) -> None:
    assert_invalid(b"", match=r"document 1 \(bytes in memory\) is empty")
    assert_invalid([PDF, bytearray()], match=r"document 2 \(bytes in memory\) is empty")
    assert_invalid(write_file(tmp_path / "e.pdf", b""), match=r"document 1 \(e.pdf\) is empty")
    assert_invalid(io.BytesIO(), match=r"document 1 \(BytesIO object\) is empty")
    at_end = io.BytesIO(PDF)
    at_end.seek(0, io.SEEK_END)
    assert_invalid(at_end, match=r"document 1 \(BytesIO object\) is empty \(nothing to read")


def test_wrong_magic(tmp_path: Path) -> None:
    scan = write_file(tmp_path / "scan.jpg", JPEG)
    err = assert_invalid([PDF, scan], match=r"document 2 \(scan.jpg\) is not a PDF")
    assert "%PDF-" in err.message
    assert_invalid(JPEG, match=r"document 1 \(bytes in memory\) is not a PDF")
    assert_invalid(
        [P7M_DER, PDF], DocumentKind.P7M, match=r"document 2 \(bytes in memory\) is not a p7m"
    )
    with scan.open("rb") as fh:
        assert_invalid(fh, match=r"document 1 \(scan.jpg\) is not a PDF")


def test_text_file_objects(tmp_path: Path) -> None:
    assert_invalid(io.StringIO("%PDF-1.4"), match=r"document 1 \(StringIO object\) is a text file")
    path = write_file(tmp_path / "t.pdf", PDF)
    with path.open("r", encoding="latin-1") as fh:
        assert_invalid([PDF, fh], match=r"document 2 \(t.pdf\) is a text file object")

    class TextLike:
        def read(self, n: int = -1) -> str:
            return "%PDF-"[: max(n, 0)]

    assert_invalid(TextLike(), match=r"document 1 \(TextLike object\) is a text file object")


def test_file_object_returning_garbage() -> None:
    class Odd:
        def read(self, n: int = -1) -> int:
            return 42

    assert_invalid(Odd(), match=r"document 1 \(Odd object\) is not a binary file object")


def test_closed_file_object(tmp_path: Path) -> None:
    fobj = io.BytesIO(PDF)
    fobj.close()
    assert_invalid(fobj, match=r"document 1 \(BytesIO object\) is a closed file object")
    path = write_file(tmp_path / "c.pdf", PDF)
    with path.open("rb") as fh:
        pass
    assert_invalid([fh], match=r"document 1 \(c.pdf\) is a closed file object")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (42, "got a int"),
        (None, "got nothing"),
        (3.5, "got a float"),
        ({"a": 1}, "got a dict"),
        ({PDF}, "got a set"),
        ([PDF, 42], r"document 2 is a int"),
        ([True], r"document 1 is a bool"),
        ([[PDF]], r"document 1 is a list"),
        ([PDF, None], r"document 2 is a NoneType"),
    ],
)
def test_wrong_types_are_validation_errors(value: Any, match: str) -> None:
    assert_invalid(value, match=match)


def test_field_is_reported() -> None:
    with pytest.raises(ValidationError) as info:
        prepare_documents([], DocumentKind.P7M, field="procura")
    assert info.value.field == "procura"


def test_bad_kind() -> None:
    with pytest.raises(ValidationError):
        prepare_documents(PDF, cast(Any, "pdf"))


# --- non-seekable file objects -----------------------------------------------------------


class Unseekable(io.RawIOBase):
    """A readable, non-seekable raw stream that returns short reads."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), 7, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


async def test_unseekable_file_object_is_read_into_memory() -> None:
    content = pdf_of_size(1000, seed=3)
    docset = prepare_documents(cast(Any, Unseekable(content)), DocumentKind.PDF)
    doc = docset.documents[0]
    assert doc.data == content
    assert doc.file is None
    assert doc.name == "Unseekable object"
    first = await stream(docset.body())
    second = await stream(docset.body())
    assert first == second == canonical(expected_body([content]))


async def test_pipe_is_read_into_memory() -> None:
    content = pdf_of_size(3 * CHUNK_SIZE + 11, seed=4)
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as w:
            w.write(content)

    writer = threading.Thread(target=feed)
    writer.start()
    with os.fdopen(read_fd, "rb") as r:
        docset = prepare_documents(r, DocumentKind.PDF)
    writer.join()
    assert json.loads(await stream(docset.body())) == expected_body([content])


def test_unseekable_wrong_content() -> None:
    assert_invalid(Unseekable(JPEG), match=r"document 1 \(Unseekable object\) is not a PDF")
    assert_invalid(Unseekable(b""), match=r"document 1 \(Unseekable object\) is empty")


# --- the streamed body ------------------------------------------------------------------


SIZES = [
    5,
    6,
    7,
    8,
    HEAD_SIZE,
    CHUNK_SIZE - 1,
    CHUNK_SIZE,
    CHUNK_SIZE + 1,
    2 * CHUNK_SIZE - 1,
    2 * CHUNK_SIZE,
    2 * CHUNK_SIZE + 1,
    3 * 1024 * 1024 + 7,
]


@pytest.mark.parametrize("size", [1, 2, 3, 4, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1])
async def test_tiny_and_boundary_sizes_encoding(size: int) -> None:
    content = random.Random(size).randbytes(size)
    payload = raw_set(content).body()
    data = await stream(payload)
    assert data == canonical(expected_body([content]))
    assert payload.size == len(data)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("source", ["path", "bytes", "file"])
async def test_body_matches_json_dumps(tmp_path: Path, size: int, source: str) -> None:
    content = pdf_of_size(size, seed=size)
    item: Any
    if source == "path":
        item = write_file(tmp_path / "doc.pdf", content)
    elif source == "bytes":
        item = content
    else:
        item = io.BytesIO(content)
    docset = prepare_documents(item, DocumentKind.PDF)
    extra = {"spazio_conservazione": 512}
    payload = docset.body(extra)
    sink = Collector()
    await payload.write(cast(Any, sink))
    data = sink.data
    assert json.loads(data) == expected_body([content], extra)
    assert data == canonical(expected_body([content], extra))
    assert payload.size == len(data)
    # No chunk but the last carries base64 padding.
    assert all(b"=" not in part for part in sink.parts[1:-2])


async def test_multiple_documents_mixed_sources(tmp_path: Path) -> None:
    contents = [pdf_of_size(n, seed=n) for n in (5, CHUNK_SIZE + 2, 2 * CHUNK_SIZE, 700_001)]
    fobj = io.BytesIO(b"prefix" + contents[2])
    fobj.seek(6)
    docset = prepare_documents(
        [write_file(tmp_path / "a.pdf", contents[0]), contents[1], fobj, bytearray(contents[3])],
        DocumentKind.PDF,
    )
    extra = {"nota": "città ✓", "n": [1, 2, {"x": None}]}
    payload = docset.body(extra)
    data = await stream(payload)
    assert json.loads(data) == expected_body(contents, extra)
    assert data == canonical(expected_body(contents, extra))
    assert payload.size == len(data)
    assert next(iter(json.loads(data))) == "nota"  # extra fields come first


async def test_single_string_when_not_a_list() -> None:
    payload = prepare_documents(P7M_DER, DocumentKind.P7M).body(as_list=False)
    data = await stream(payload)
    assert json.loads(data) == {"documenti": base64.b64encode(P7M_DER).decode()}
    assert payload.size == len(data)


async def test_custom_field_name() -> None:
    docset = prepare_documents(PDF, DocumentKind.PDF, field="allegati")
    assert json.loads(await stream(docset.body())) == {"allegati": [base64.b64encode(PDF).decode()]}
    other = json.loads(await stream(docset.body(field="documenti")))
    assert list(other) == ["documenti"]


def test_body_argument_errors() -> None:
    docset = prepare_documents([PDF, PDF], DocumentKind.PDF)
    with pytest.raises(ValidationError, match="single string") as info:
        docset.body(as_list=False)
    assert info.value.field == "documenti"
    with pytest.raises(ValidationError, match="documents field") as info:
        docset.body({"documenti": 1})
    assert info.value.field == "documenti"
    with pytest.raises(ValidationError, match="cannot be encoded as JSON") as info:
        docset.body({"when": object()})
    assert info.value.field == "when"
    with pytest.raises(ValidationError, match="cannot be encoded as JSON"):
        docset.body({"x": float("nan")})
    with pytest.raises(ValidationError, match="must be str"):
        docset.body(cast(Any, {1: 2}))


def test_payload_headers_and_registry() -> None:
    payload = prepare_documents(PDF, DocumentKind.PDF).body()
    assert payload.content_type == "application/json"
    assert PAYLOAD_REGISTRY.get(payload) is payload
    assert payload.autoclose
    assert not payload.consumed


async def test_write_with_length_truncates() -> None:
    content = pdf_of_size(2 * CHUNK_SIZE + 5)
    payload = prepare_documents(content, DocumentKind.PDF).body()
    full = await stream(payload)
    for limit in (0, 1, 20, CHUNK_SIZE, len(full) - 1, len(full), len(full) + 10):
        sink = Collector()
        await payload.write_with_length(cast(Any, sink), limit)
        assert sink.data == full[:limit]


async def test_decode_and_as_bytes_small(tmp_path: Path) -> None:
    docset = prepare_documents(
        [write_file(tmp_path / "a.pdf", PDF), io.BytesIO(PDF), PDF], DocumentKind.PDF
    )
    payload = docset.body({"k": 1})
    streamed = await stream(payload)
    assert await payload.as_bytes() == streamed
    assert payload.decode() == streamed.decode()


async def test_decode_and_as_bytes_refuse_large() -> None:
    payload = prepare_documents(pdf_of_size(MAX_IN_MEMORY_BODY), DocumentKind.PDF).body()
    with pytest.raises(ValidationError, match="too large"):
        payload.decode()
    with pytest.raises(ValidationError, match="too large"):
        await payload.as_bytes()


# --- replaying ----------------------------------------------------------------------------


async def test_body_twice_from_file_object_is_identical() -> None:
    content = pdf_of_size(2 * CHUNK_SIZE + 100, seed=9)
    fobj = io.BytesIO(b"xyz" + content)
    fobj.seek(3)
    docset = prepare_documents(fobj, DocumentKind.PDF)
    first_payload = docset.body()
    second_payload = docset.body()
    assert first_payload is not second_payload  # a fresh payload each call
    first = await stream(first_payload)
    fobj.seek(0)  # the caller moves the position: the body is still read from 3
    second = await stream(second_payload)
    third = await stream(first_payload)  # the same payload written again
    assert first == second == third == canonical(expected_body([content]))


async def test_body_twice_from_real_file(tmp_path: Path) -> None:
    content = pdf_of_size(CHUNK_SIZE * 2 + 1, seed=10)
    path = write_file(tmp_path / "r.pdf", content)
    with path.open("rb") as fh:
        docset = prepare_documents(fh, DocumentKind.PDF)
        assert await stream(docset.body()) == await stream(docset.body())


async def test_file_changed_after_check(tmp_path: Path) -> None:
    path = write_file(tmp_path / "grow.pdf", PDF)
    docset = prepare_documents(path, DocumentKind.PDF)
    payload = docset.body()
    with path.open("ab") as fh:
        fh.write(b"more")
    with pytest.raises(ValidationError, match=r"document 1 \(grow.pdf\) changed") as info:
        docset.body()
    assert info.value.field == "documenti"
    # A payload made before the change refuses to send a wrong length too.
    with pytest.raises(ValidationError, match=r"document 1 \(grow.pdf\) changed"):
        await stream(payload)
    path.unlink()
    with pytest.raises(ValidationError, match="can no longer be read"):
        docset.body()
    with pytest.raises(ValidationError, match="can no longer be read"):
        await stream(payload)


async def test_file_object_shrunk_after_check(tmp_path: Path) -> None:
    content = pdf_of_size(CHUNK_SIZE + 10)
    path = write_file(tmp_path / "shrink.pdf", content)
    with path.open("r+b") as fh:
        docset = prepare_documents(fh, DocumentKind.PDF)
        fh.truncate(100)
        with pytest.raises(ValidationError, match=r"document 1 \(shrink.pdf\) changed"):
            await stream(docset.body())


# --- hypothesis ---------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
extras = st.dictionaries(
    st.text(max_size=10).filter(lambda k: k != "documenti"), json_values, max_size=4
)
pdf_contents = st.binary(max_size=3000).map(lambda b: b"%PDF-" + b)


def as_input(content: bytes, form: int, offset: int) -> Any:
    if form == 0:
        return content
    if form == 1:
        return bytearray(content)
    if form == 2:
        return memoryview(content)
    fobj = io.BytesIO(b"\x00" * offset + content)
    fobj.seek(offset)
    return fobj


@settings(max_examples=150, deadline=None)
@given(
    docs=st.lists(
        st.tuples(pdf_contents, st.integers(0, 3), st.integers(0, 5)), min_size=1, max_size=4
    ),
    extra=extras,
)
def test_hypothesis_body_equals_json_dumps(
    docs: list[tuple[bytes, int, int]], extra: dict[str, Any]
) -> None:
    contents = [c for c, _, _ in docs]
    docset = prepare_documents([as_input(c, form, off) for c, form, off in docs], DocumentKind.PDF)
    payload = docset.body(extra)
    data = asyncio.run(stream(payload))
    assert json.loads(data) == expected_body(contents, extra)
    assert data == canonical(expected_body(contents, extra))
    assert payload.size == len(data)
    assert asyncio.run(stream(docset.body(extra))) == data


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.integers(5, 3 * CHUNK_SIZE + 3) | st.sampled_from(SIZES),
    seed=st.integers(0, 2**16),
)
def test_hypothesis_files_at_many_sizes(tmp_path: Path, size: int, seed: int) -> None:
    content = pdf_of_size(size, seed)
    path = write_file(tmp_path / "h.pdf", content)
    payload = prepare_documents(path, DocumentKind.PDF).body()
    data = asyncio.run(stream(payload))
    assert data == canonical(expected_body([content]))
    assert payload.size == len(data)


# --- over real HTTP -------------------------------------------------------------------------


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        parsed = json.loads(body)
        docs = parsed.pop("documenti")
        decoded = [base64.b64decode(d, validate=True) for d in docs]
        return web.json_response(
            {
                "length": len(body),
                "content_length": request.headers.get("Content-Length"),
                "transfer_encoding": request.headers.get("Transfer-Encoding"),
                "content_type": request.content_type,
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "sha256": [hashlib.sha256(d).hexdigest() for d in decoded],
                "extra": parsed,
            }
        )

    async def redirect(request: web.Request) -> web.Response:
        await request.read()
        raise web.HTTPTemporaryRedirect("/echo")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/echo", echo)
    app.router.add_patch("/echo", echo)
    app.router.add_post("/redirect", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_over_real_http(tmp_path: Path, echo_server: str) -> None:
    contents = [pdf_of_size(3 * 1024 * 1024 + 1, seed=1), pdf_of_size(CHUNK_SIZE, seed=2), PDF]
    fobj = io.BytesIO(contents[2])
    docset = prepare_documents(
        [write_file(tmp_path / "big.pdf", contents[0]), contents[1], fobj], DocumentKind.PDF
    )
    payload = docset.body({"spazio_conservazione": 512})
    async with (
        aiohttp.ClientSession() as session,
        session.patch(f"{echo_server}/echo", data=payload) as resp,
    ):
        assert resp.status == 200
        got = await resp.json()
    assert got["content_length"] == str(payload.size)
    assert got["transfer_encoding"] is None
    assert got["length"] == payload.size
    assert got["content_type"] == "application/json"
    assert got["sha256"] == [hashlib.sha256(c).hexdigest() for c in contents]
    assert got["extra"] == {"spazio_conservazione": 512}
    local = await stream(docset.body({"spazio_conservazione": 512}))
    assert got["body_sha256"] == hashlib.sha256(local).hexdigest()


async def test_redirect_resends_the_same_payload(tmp_path: Path, echo_server: str) -> None:
    content = pdf_of_size(CHUNK_SIZE * 4 + 2, seed=5)
    with write_file(tmp_path / "r.pdf", content).open("rb") as fh:
        docset = prepare_documents([fh, tmp_path / "r.pdf"], DocumentKind.PDF)
        payload = docset.body()
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{echo_server}/redirect", data=payload) as resp,
        ):
            assert resp.status == 200
            assert len(resp.history) == 1  # aiohttp wrote the payload twice
            got = await resp.json()
    assert got["content_length"] == str(payload.size)
    assert got["sha256"] == [hashlib.sha256(content).hexdigest()] * 2


# --- memory -------------------------------------------------------------------------------


async def test_streaming_a_large_file_uses_little_memory(tmp_path: Path) -> None:
    path = tmp_path / "large.pdf"
    size = 40 * 1024 * 1024 + 1
    with path.open("wb") as fh:
        fh.write(b"%PDF-1.7\n")
        written = 9
        while written < size:
            block = os.urandom(min(1024 * 1024, size - written))
            fh.write(block)
            written += len(block)
    docset = prepare_documents(path, DocumentKind.PDF)
    payload = docset.body({"spazio_conservazione": 512})
    sink = CountingSink()

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline, _ = tracemalloc.get_traced_memory()
        await payload.write(cast(Any, sink))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    growth = peak - baseline
    sys.stdout.write(f"\npeak traced memory growth streaming {size} bytes: {growth} bytes\n")
    assert sink.count == payload.size
    assert growth < 0.25 * size
    assert growth < 4 * 1024 * 1024  # in practice a few hundred KB


# --- cancellation and failures ----------------------------------------------------------------


class BlockingSink:
    """Accepts ``allowed`` writes, then blocks forever (until cancelled)."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.blocked = asyncio.Event()

    async def write(self, data: bytes) -> None:
        if self.allowed == 0:
            self.blocked.set()
            await asyncio.Event().wait()
        self.allowed -= 1


class FailingSink:
    def __init__(self, allowed: int) -> None:
        self.allowed = allowed

    async def write(self, data: bytes) -> None:
        if self.allowed == 0:
            raise ConnectionResetError("peer went away")
        self.allowed -= 1


@needs_proc
async def test_cancelled_write_closes_the_file(tmp_path: Path) -> None:
    path = write_file(tmp_path / "c.pdf", pdf_of_size(5 * CHUNK_SIZE))
    payload = prepare_documents(path, DocumentKind.PDF).body()
    sink = BlockingSink(allowed=2)
    task = asyncio.create_task(payload.write(cast(Any, sink)))
    await sink.blocked.wait()
    assert fds_open_on(path) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fds_open_on(path) == 0


@needs_proc
async def test_failed_write_closes_the_file(tmp_path: Path) -> None:
    path = write_file(tmp_path / "f.pdf", pdf_of_size(5 * CHUNK_SIZE))
    payload = prepare_documents(path, DocumentKind.PDF).body()
    with pytest.raises(ConnectionResetError):
        await payload.write(cast(Any, FailingSink(allowed=3)))
    assert fds_open_on(path) == 0


class GatedFile:
    """Wraps a real file: its reads wait for a gate, to cancel a write mid-read."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by the code under test
        self.started = threading.Event()
        self.gate = threading.Event()

    def fileno(self) -> int:
        return self._fh.fileno()

    def read(self, n: int = -1) -> bytes:
        self.started.set()
        self.gate.wait(30)
        return self._fh.read(n)

    def close(self) -> None:
        self._fh.close()

    @property
    def closed(self) -> bool:
        return self._fh.closed


async def test_cancel_during_a_read_closes_after_the_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_file(tmp_path / "g.pdf", pdf_of_size(3 * CHUNK_SIZE))
    payload = prepare_documents(path, DocumentKind.PDF).body()
    opened: list[GatedFile] = []

    def gated_open(p: Any, mode: str = "r") -> GatedFile:
        assert mode == "rb"
        opened.append(GatedFile(Path(p)))
        return opened[-1]

    monkeypatch.setattr(sources_module, "open", gated_open, raising=False)
    task = asyncio.create_task(payload.write(cast(Any, Collector())))
    assert await wait_until(lambda: bool(opened) and opened[0].started.is_set())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gated = opened[0]
    assert not gated.closed  # never closed under a running read...
    gated.gate.set()
    assert await wait_until(lambda: gated.closed)  # ...but closed as soon as it ends


async def test_cancel_while_opening_closes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_file(tmp_path / "o.pdf", pdf_of_size(CHUNK_SIZE))
    payload = prepare_documents(path, DocumentKind.PDF).body()
    entered = threading.Event()
    release = threading.Event()
    opened: list[Any] = []

    def slow_open(p: Any, mode: str = "r") -> Any:
        entered.set()
        release.wait(30)
        fh = builtins.open(p, mode)  # noqa: SIM115 - the real open, closed by the code under test
        opened.append(fh)
        return fh

    monkeypatch.setattr(sources_module, "open", slow_open, raising=False)
    task = asyncio.create_task(payload.write(cast(Any, Collector())))
    assert await wait_until(entered.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    assert await wait_until(lambda: bool(opened) and opened[0].closed)

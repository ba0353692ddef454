"""How much of an answer pecapi reads (:class:`ResponseLimits`), and reading within it.

Every answer is read in chunks and its bytes are counted *after* decompression, so that
neither a huge body nor a small compressed one that inflates enormously (a "gzip bomb")
can take the process's memory: past the limit, reading stops with a
:class:`~pecapi.ResponseTooLargeError`.

Decompression: aiohttp 3.12.2 to 3.13.3 (at least) inflate each network read in one go,
however large the result (measured: a 1 MB gzip body gave a single 124 MiB chunk, and
some 250 MB more peak memory, before any limit could look at it); 3.14.5 inflates in
bounded steps. pecapi supports both, so :class:`LimitedBody` inflates gzip and deflate
itself, 64 KiB of output at a time: every request it reads is made with
``auto_decompress=False`` and ``Accept-Encoding: ACCEPT_ENCODING``.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import attrs

from pecapi.errors import ResponseDecodeError, ResponseTooLargeError, ValidationError
from pecapi.transport.exchange import RawResponse

__all__ = [
    "ACCEPT_ENCODING",
    "TOKEN_ANSWER_LIMIT",
    "LimitedBody",
    "ResponseLimits",
    "json_reader",
    "read_error_body",
    "read_head",
    "read_limited",
]

KiB = 1 << 10
MiB = 1 << 20

#: What a request inflated by :class:`LimitedBody` accepts: the encodings it can inflate.
ACCEPT_ENCODING = "gzip, deflate"

#: An OAuth token answer is a few hundred bytes; its provider is not configured with
#: the client's limits.
TOKEN_ANSWER_LIMIT = 1 * MiB

_CHUNK = 64 * KiB


def _positive(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_: Any, __: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(
                f"limits.{name}", f"must be a whole number of bytes >= 1, not {value!r}"
            )

    return check


@attrs.frozen(kw_only=True)
class ResponseLimits:
    """The largest answers a client reads, in bytes after decompression
    (``PecClient(limits=ResponseLimits(...))``). Past one, reading stops with a
    :class:`~pecapi.ResponseTooLargeError` (a read is not retried; a paid write is
    settled like any unreadable answer).

    - ``json``: a JSON answer (64 MiB). The largest real one is the mailbox listing,
      ``GET /pec``, in one page: a mailbox record is 0.3 to 2 KB, so this holds some
      30,000 full records, meant to be several times any real account's listing;
    - ``form``: a PDF form returned as bytes (32 MiB; a form is a few pages);
    - ``form_to_file``: a PDF form streamed to ``dest`` (512 MiB): only the disk holds it;
    - ``json_values``: how many values a JSON answer may parse into (2,000,000, counted
      before parsing): parsed, small values take up to 27 times their size in memory
      (``[],[],...``), so 64 MiB of them would take 1.6 GB; a mailbox record is some 60
      values, so this too holds some 30,000 records;
    - ``error_body``: how much of an error status's body is kept (64 KiB): the rest is
      dropped, not an error, since the status already says what went wrong. The
      ``body`` of a :class:`~pecapi.PecApiError` (and of a
      :class:`~pecapi.ResponseDecodeError`) is at most this long: it is kept as long as
      the error is.
    """

    json: int = attrs.field(default=64 * MiB, validator=_positive("json"))
    json_values: int = attrs.field(default=2_000_000, validator=_positive("json_values"))
    form: int = attrs.field(default=32 * MiB, validator=_positive("form"))
    form_to_file: int = attrs.field(default=512 * MiB, validator=_positive("form_to_file"))
    error_body: int = attrs.field(default=64 * KiB, validator=_positive("error_body"))


class LimitedBody:
    """The body of one answer, read in chunks of at most 64 KiB (when inflating), its
    bytes counted after decompression (the response must come from a request made with
    ``auto_decompress=False``). ``limit`` None: no limit (only for :meth:`head`,
    whose size bounds what is read). ``setting`` names the limit in the error message,
    e.g. ``"ResponseLimits.json"``."""

    __slots__ = (
        "_content",
        "_decoder",
        "_encoding",
        "_fed",
        "_full",
        "_input",
        "_pushed",
        "_response",
        "count",
        "limit",
        "setting",
    )

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        limit: int | None,
        *,
        setting: str = "the limit",
    ) -> None:
        self._response = response
        self._content = response.content
        self.limit = limit
        self.setting = setting
        self.count = 0
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        self._encoding = encoding if encoding not in ("", "identity") else ""
        if self._encoding not in ("", "gzip", "x-gzip", "deflate"):
            raise self._decode_error(f"cannot inflate Content-Encoding {encoding!r}")
        self._decoder: Any = None  # zlib's decompress object has no public type
        self._input = b""  # compressed bytes the decoder has not taken yet
        self._full = False  # the last inflate step stopped at its output cap
        self._fed = False
        self._pushed = b""  # read by head() beyond what it returned
        # Uncompressed and announced too long: refused before reading a byte. (A
        # compressed length says nothing sure about the inflated size.)
        length = response.content_length
        if limit is not None and not encoding and length is not None and length > limit:
            raise self.too_large()

    def _drop(self) -> None:
        # The error's traceback keeps this object (and the readers' frames) alive as
        # long as the error is kept: it must not keep the answer's bytes too.
        self._input = self._pushed = b""
        self._decoder = None

    def too_large(self) -> ResponseTooLargeError:
        self._drop()
        response = self._response
        return ResponseTooLargeError(
            f"the answer is larger than {self.setting} ({self.limit} bytes)",
            limit=self.limit or 0,
            method=response.method,
            url=response.url,
            status=response.status,
            headers=dict(response.headers),
        )

    def _decode_error(self, message: str) -> ResponseDecodeError:
        self._drop()
        response = self._response
        return ResponseDecodeError(
            message,
            method=response.method,
            url=response.url,
            status=response.status,
            headers=dict(response.headers),
        )

    async def chunk(self) -> bytes:
        """The next piece of the body; ``b""`` at its end."""
        if self._pushed:
            piece, self._pushed = self._pushed, b""
            return piece
        piece = await self._produce()
        self.count += len(piece)
        if self.limit is not None and self.count > self.limit:
            piece = b""  # not kept alive by the error's traceback
            raise self.too_large()
        return piece

    async def read(self, first: bytes = b"") -> bytes:
        """The rest of the body, after ``first`` (what the caller read before it): joined
        once, so the whole body is held twice at most, never three times."""
        pieces: list[bytes] = [first] if first else []
        first = b""
        try:
            while piece := await self.chunk():
                pieces.append(piece)
        except BaseException:
            # Up to the limit's worth, else kept as long as the error (its traceback).
            pieces.clear()
            piece = b""
            raise
        return b"".join(pieces)

    async def head(self, size: int) -> bytes:
        """Up to ``size`` more bytes (fewer only at the end of the body)."""
        pieces: list[bytes] = []
        wanted = size
        try:
            while wanted > 0:
                piece = await self.chunk()
                if not piece:
                    break
                if len(piece) > wanted:
                    piece, self._pushed = piece[:wanted], piece[wanted:]
                pieces.append(piece)
                wanted -= len(piece)
        except BaseException:
            pieces.clear()
            piece = b""
            raise
        return b"".join(pieces)

    async def _produce(self) -> bytes:
        if not self._encoding:
            return await self._content.readany()
        while True:
            if self._input or self._full:
                piece = self._inflate()
                if piece:
                    return piece
                continue
            data = await self._content.readany()
            if not data:
                if self._fed and not (self._decoder is not None and self._decoder.eof):
                    raise self._decode_error("the compressed answer ends early")
                return b""
            self._input = data

    def _inflate(self) -> bytes:
        decoder = self._decoder
        if decoder is None or (decoder.eof and self._input):
            if decoder is not None and self._encoding == "deflate":
                raise self._decode_error("data after the end of the deflate stream")
            # A gzip body may hold several members, one after the other.
            decoder = self._decoder = zlib.decompressobj(self._wbits(self._input))
            self._fed = True
        try:
            # max_length is the bound: at most _CHUNK bytes of output per step, the
            # input not yet inflated kept in unconsumed_tail for the next step.
            piece: bytes = decoder.decompress(self._input, _CHUNK)
        except zlib.error:
            raise self._decode_error(f"the answer's {self._encoding} data is corrupt") from None
        self._full = len(piece) == _CHUNK and not decoder.eof
        self._input = decoder.unused_data if decoder.eof else decoder.unconsumed_tail
        return piece

    def _wbits(self, first: bytes) -> int:
        if self._encoding != "deflate":
            return 16 + zlib.MAX_WBITS  # gzip header and trailer
        # "deflate" is meant to be zlib-wrapped (RFC 9110), but some servers send raw
        # deflate: told apart by the compression method in the first byte (8).
        return zlib.MAX_WBITS if first[:1] and first[0] & 0x0F == 8 else -zlib.MAX_WBITS


async def read_limited(
    response: aiohttp.ClientResponse,
    limit: int,
    *,
    setting: str = "the limit",
) -> bytes:
    """The whole body of ``response``, or a :class:`~pecapi.ResponseTooLargeError` as
    soon as it passes ``limit`` bytes (decompressed)."""
    return await LimitedBody(response, limit, setting=setting).read()


async def read_head(response: aiohttp.ClientResponse, size: int) -> bytes:
    """At most ``size`` bytes of the body (decompressed); the rest is left unread."""
    return await LimitedBody(response, None).head(size)


async def read_error_body(response: aiohttp.ClientResponse, limits: ResponseLimits) -> bytes:
    """The head of an error status's body (``limits.error_body`` bytes), or ``b""`` when
    it cannot be read (an encoding pecapi cannot inflate, corrupt gzip): the status
    alone says what went wrong and whether to retry, and must not turn into a
    :class:`~pecapi.ResponseDecodeError` (a 503 would no longer be retried)."""
    try:
        return await read_head(response, limits.error_body)
    except ResponseDecodeError:
        return b""


def json_reader(
    limits: ResponseLimits,
) -> Callable[[aiohttp.ClientResponse], Awaitable[RawResponse]]:
    """The reader of a JSON answer within ``limits``: a success whole (up to
    ``limits.json``), an error's head (``limits.error_body``)."""

    async def read(response: aiohttp.ClientResponse) -> RawResponse:
        if 200 <= response.status < 300:
            length = response.content_length
            if (
                length is not None
                and length <= limits.json
                and "Content-Encoding" not in response.headers
            ):
                # Framed by a length within the limit and not compressed: the parser
                # hands over no more than that length, read in one go.
                body = await response.content.read()
            else:
                body = await read_limited(response, limits.json, setting="ResponseLimits.json")
        else:
            # Cut, not refused: the status says what went wrong (and whether to retry);
            # the body only adds the API's message.
            body = await read_error_body(response, limits)
            # An error keeps its headers: a copy, not aiohttp's (whose proxy keeps its
            # response's whole header block). A success's are not copied (see decode).
            return RawResponse(response.status, dict(response.headers), body)
        return RawResponse(response.status, response.headers, body)

    return read

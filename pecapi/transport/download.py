"""The reader of PDF answers (the forms): how the pipeline reads an endpoint whose
``answer`` is :attr:`Answer.PDF <pecapi.transport.endpoint.Answer.PDF>`. The document is
returned as bytes, or streamed to a file in chunks when a destination is given."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from pecapi.errors import ResponseDecodeError, ValidationError
from pecapi.jsontext import JsonError, loads
from pecapi.transport.decode import api_error
from pecapi.transport.exchange import Exchange, RawResponse
from pecapi.transport.limits import LimitedBody, ResponseLimits, read_error_body

__all__ = ["Destination", "PdfReader"]

Destination = str | os.PathLike[str]

_PDF_MAGIC = b"%PDF-"
_MAGIC_WITHIN = 1024


def _check_destination(dest: Destination | None) -> None:
    if dest is None:
        return
    if not isinstance(dest, (str, os.PathLike)):
        raise ValidationError("dest", f"must be a path, not {type(dest).__name__}")
    path = Path(dest)
    if path.is_dir():
        raise ValidationError("dest", f"{os.fspath(dest)!r} is a directory")
    if not path.parent.is_dir():
        raise ValidationError("dest", f"the folder of {os.fspath(dest)!r} does not exist")


class PdfReader:
    """Reads the PDF answers of one call: :meth:`read` each attempt's response (the
    document, or a failed answer read boundedly), :meth:`finish` it into the result or
    the typed error. ``dest`` None: the document's bytes (``ResponseLimits.form``); else
    the path it was written to (``ResponseLimits.form_to_file``). A bad ``dest`` is
    refused here, before anything is sent."""

    __slots__ = ("_dest", "_exchange", "_limits")

    def __init__(
        self, exchange: Exchange, limits: ResponseLimits, dest: Destination | None
    ) -> None:
        _check_destination(dest)
        self._exchange = exchange
        self._limits = limits
        self._dest = dest

    async def read(self, response: aiohttp.ClientResponse) -> bytes | Path | RawResponse:
        limits, dest = self._limits, self._dest
        if response.status != 200:
            body = await read_error_body(response, limits)
            return RawResponse(response.status, dict(response.headers), body)
        if dest is None:
            limit, setting = limits.form, "ResponseLimits.form"
        else:
            limit, setting = limits.form_to_file, "ResponseLimits.form_to_file"
        stream = LimitedBody(response, limit, setting=setting)
        first = await stream.head(_MAGIC_WITHIN)
        if _PDF_MAGIC not in first:
            rest = await stream.head(limits.error_body - len(first))
            raise ResponseDecodeError(
                "expected a PDF",
                method=self._exchange.method,
                url=self._exchange.url,
                status=response.status,
                headers=dict(response.headers),
                body=(first + rest)[: limits.error_body],
            )
        if dest is None:
            return await stream.read(first)
        return await _to_path(Path(dest), first, stream)

    def finish(self, result: bytes | Path | RawResponse) -> bytes | Path:
        if isinstance(result, RawResponse):
            raise _form_error(self._exchange, result)
        return result


async def _to_path(path: Path, first: bytes, stream: LimitedBody) -> Path:
    # Written beside the target and renamed at the end: a failed or cancelled download
    # never leaves a half PDF under the requested name.
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(first)
            while chunk := await stream.chunk():
                out.write(chunk)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    return path


def _form_error(exchange: Exchange, raw: RawResponse) -> Exception:
    # The form endpoints answer errors as text/plain; a JSON envelope is read too.
    text = raw.body.decode("utf-8", "replace").strip()
    code: int | None = None
    body: Any = text
    message = " ".join(text.split())[:300] or f"HTTP {raw.status}"
    if text.startswith("{"):
        try:
            payload = loads(text)
        except JsonError:
            payload = None
        if isinstance(payload, dict):
            body = payload
            if isinstance(payload.get("message"), str):
                message = payload["message"]
            if isinstance(payload.get("error"), int):
                code = payload["error"]
    return api_error(exchange, raw, message=message, code=code, body=body)

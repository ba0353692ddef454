"""Reading an answer: the ``{data, success, message, error}`` envelope, the typed error of
an error status, and ``Retry-After``."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from pecapi.errors import (
    PecApiError,
    RateLimitError,
    ResponseDecodeError,
    ResponseTooLargeError,
    api_error_class,
)
from pecapi.jsontext import JsonError, TooManyValues, loads, whole_number
from pecapi.transport.endpoint import Reply
from pecapi.transport.exchange import Exchange, RawResponse, where
from pecapi.transport.limits import ResponseLimits
from pecapi.transport.raw import Recorder

__all__ = ["AnswerDecoder", "api_error", "decode_answer", "decode_reply", "retry_after_seconds"]


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return whole_number(value, signed=True) if isinstance(value, str) else None


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The ``Retry-After`` header in seconds, from either of its forms; None if absent/bad."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def api_error(
    exchange: Exchange,
    raw: RawResponse,
    *,
    message: str,
    code: int | None,
    body: Any,
) -> PecApiError:
    """The typed error for an HTTP error status (or ``success: false``)."""
    common: dict[str, Any] = {
        "status": raw.status,
        "code": code,
        "method": exchange.method,
        "url": exchange.url,
        "headers": _headers(raw),
        "body": body,
    }
    if raw.status == 429:
        return RateLimitError(message, retry_after=retry_after_seconds(raw.headers), **common)
    return api_error_class(raw.status)(message, **common)


def _headers(raw: RawResponse) -> Mapping[str, str]:
    # A success's headers are aiohttp's (not copied: most answers are never looked at
    # again); an error keeps a copy of its own.
    headers = raw.headers
    return headers if type(headers) is dict else dict(headers)


def _text_preview(raw: RawResponse) -> str:
    text = raw.body.decode("utf-8", "replace").strip()
    content_type = raw.headers.get("Content-Type", "")
    if "html" in content_type.lower() or text[:1] == "<":
        return f"HTML error page ({' '.join(text.split())[:120]})"
    return " ".join(text.split())[:300] or "(empty body)"


def decode_reply(
    exchange: Exchange, raw: RawResponse, limits: ResponseLimits, *, decode: bool = True
) -> Any:
    """Read the ``{data, success, message, error}`` envelope and hand it to the endpoint
    (``decode`` False: return its ``data`` as parsed, for ``with_raw_json``).

    No frame that raises a :class:`~pecapi.ResponseDecodeError` holds the parsed answer
    (nor the exception of the models, whose frames do): a kept error keeps its traceback's
    frames, and the parsed answer can be a hundred MB. The error keeps at most
    ``limits.error_body`` bytes of the body."""
    endpoint = exchange.endpoint
    status = raw.status
    # Not .strip(): no copy of every answer. No local holds the body: _cut frees it.
    if not raw.body or raw.body.isspace():
        if 200 <= status < 300:
            empty = _structure(exchange, raw, None, None, None, decode)
            return _finish(exchange, raw, limits, empty)
        raise api_error(
            exchange, raw, message=f"HTTP {status} with an empty body", code=None, body=b""
        )
    # Error bodies were cut at limits.error_body: no value count for them (a 503 stays a
    # 503, retried). Parsed by _parse, which returns its error: raised here, outside any
    # handler, it has no __context__ (whose traceback holds the whole body).
    payload = _parse(raw.body, limits.json_values if status < 300 else None)
    if isinstance(payload, TooManyValues):
        # Refused before parsing: parsed, it could take 27 times its size.
        _cut(raw, limits)
        raise ResponseTooLargeError(
            f"the answer holds more JSON values than ResponseLimits.json_values ({payload})",
            limit=limits.json_values,
            **where(exchange),
            status=status,
            headers=_headers(raw),
        )
    if isinstance(payload, JsonError):
        # Nested deeper than the parser's stack ([[[[...]]]]) is as unreadable as broken
        # JSON, and typed like it (a paid write settles).
        if status >= 300:
            text = raw.body.decode("utf-8", "replace")
            raise api_error(exchange, raw, message=_text_preview(raw), code=None, body=text)
        raise _decode_error(exchange, raw, limits, f"the response is not valid JSON: {payload}")
    if not isinstance(payload, dict):
        if status >= 300:
            raise api_error(exchange, raw, message=_text_preview(raw), code=None, body=payload)
        del payload
        raise _decode_error(exchange, raw, limits, "the response is not a JSON object")
    code = _as_int(payload.get("error"))
    message = payload.get("message")
    message = message if isinstance(message, str) else None
    if status >= 300 or payload.get("success") is False:
        if (status, code) in endpoint.empty_when:
            empty = _structure(exchange, raw, None, message, code, decode)
            return _finish(exchange, raw, limits, empty)
        # An error status's body was read up to limits.error_body: small. A 2xx with
        # success: false may be as large as any answer: its envelope fields only.
        body = payload if status >= 300 else _envelope_only(payload)
        del payload
        raise api_error(
            exchange, raw, message=message or f"{endpoint} failed", code=code, body=body
        )
    data = payload.get("data")
    del payload
    result = _structure(exchange, raw, data, message, code, decode)
    del data  # this frame raises in _finish: the error's traceback keeps it
    return _finish(exchange, raw, limits, result)


def decode_answer(
    exchange: Exchange, raw: RawResponse, limits: ResponseLimits, recorder: Recorder | None
) -> Any:
    """The value of a JSON answer: decoded into models, or as parsed for the call's own
    answers under ``with_raw_json`` (``recorder``), whose other answers (a write's
    read-backs) are decoded for its reconciler, their JSON kept beside."""
    if recorder is None:
        return decode_reply(exchange, raw, limits)
    if recorder.undecoded(exchange):
        return decode_reply(exchange, raw, limits, decode=False)
    value = decode_reply(exchange, raw, limits)
    if recorder.json:
        recorder.keep(value, decode_reply(exchange, raw, limits, decode=False))
    return value


class AnswerDecoder:
    """:func:`decode_answer` of one exchange, as the pipeline's ``finish``."""

    __slots__ = ("exchange", "limits", "recorder")

    def __init__(
        self, exchange: Exchange, limits: ResponseLimits, recorder: Recorder | None
    ) -> None:
        self.exchange = exchange
        self.limits = limits
        self.recorder = recorder

    def __call__(self, raw: RawResponse) -> Any:
        return decode_answer(self.exchange, raw, self.limits, self.recorder)


class _Unexpected:
    """Why the endpoint could not decode its data: returned, not raised, so that no
    frame holding the data (or the models' exception) ends up in the error's traceback."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _finish(exchange: Exchange, raw: RawResponse, limits: ResponseLimits, result: Any) -> Any:
    if isinstance(result, _Unexpected):
        raise _decode_error(
            exchange, raw, limits, f"unexpected data for {exchange.endpoint}: {result.reason}"
        )
    return result


def _structure(
    exchange: Exchange,
    raw: RawResponse,
    data: Any,
    message: str | None,
    code: int | None,
    models: bool,
) -> Any:
    if not models:
        return data
    decode = exchange.endpoint.decode
    if decode is None:  # a PDF endpoint: the pipeline reads those with download.PdfReader
        return _Unexpected(f"{exchange.endpoint} answers a PDF, not a JSON envelope")
    reply = Reply(status=raw.status, data=data, message=message, code=code, params=exchange.params)
    try:
        return decode(reply)
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        # RecursionError: data nested just under the parser's limit can still be too deep
        # for the models' structuring.
        return _Unexpected(" ".join(str(exc).split())[:300])


def _parse(body: bytes, max_values: int | None) -> Any:
    """The parsed body, or the :class:`JsonError` (returned, its traceback dropped: the
    frames hold the body)."""
    try:
        return loads(body, max_values=max_values)
    except JsonError as exc:
        exc.__traceback__ = None
        return exc


def _envelope_only(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: payload[k] for k in ("success", "message", "error") if k in payload}


def _cut(raw: RawResponse, limits: ResponseLimits) -> None:
    # Every frame of the error's traceback that holds this answer shares this object:
    # cut here, the whole body is freed with the error still kept (a batch's results).
    raw.body = raw.body[: limits.error_body]


def _decode_error(
    exchange: Exchange, raw: RawResponse, limits: ResponseLimits, message: str
) -> ResponseDecodeError:
    _cut(raw, limits)
    return ResponseDecodeError(
        message,
        **where(exchange),
        status=raw.status,
        headers=_headers(raw),
        body=raw.body[: limits.error_body],
    )

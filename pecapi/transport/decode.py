"""Reading an answer: the ``{data, success, message, error}`` envelope, the typed error of
an error status, and ``Retry-After``."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

from pecapi.errors import (
    PecApiError,
    RateLimitError,
    ResponseDecodeError,
    api_error_class,
)
from pecapi.transport.endpoint import Reply
from pecapi.transport.exchange import Exchange, RawResponse, where

__all__ = ["api_error", "decode_reply", "retry_after_seconds"]


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    digits = text[1:] if text.startswith("-") else text
    # ASCII only: str.isdigit accepts "²", which int() refuses; "--5" is not a number;
    # int() refuses more than 4300 digits, and no error code has 19.
    if digits.isascii() and digits.isdigit() and len(digits) <= 18:
        return int(text)
    return None


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
        "headers": raw.headers,
        "body": body,
    }
    if raw.status == 429:
        return RateLimitError(message, retry_after=retry_after_seconds(raw.headers), **common)
    return api_error_class(raw.status)(message, **common)


def _text_preview(raw: RawResponse) -> str:
    text = raw.body.decode("utf-8", "replace").strip()
    content_type = raw.headers.get("Content-Type", "")
    if "html" in content_type.lower() or text[:1] == "<":
        return f"HTML error page ({' '.join(text.split())[:120]})"
    return " ".join(text.split())[:300] or "(empty body)"


def decode_reply(exchange: Exchange, raw: RawResponse) -> Any:
    """Read the ``{data, success, message, error}`` envelope and hand it to the endpoint."""
    endpoint = exchange.endpoint
    status = raw.status
    if not raw.body.strip():
        if 200 <= status < 300:
            return _decode_data(exchange, raw, None, None, None)
        raise api_error(
            exchange, raw, message=f"HTTP {status} with an empty body", code=None, body=b""
        )
    try:
        payload = json.loads(raw.body)
    except (ValueError, RecursionError):
        # RecursionError: a body nested deeper than the parser's stack ([[[[...]]]]) is
        # as unreadable as broken JSON, and must be typed like it (a paid write settles).
        if status >= 300:
            text = raw.body.decode("utf-8", "replace")
            raise api_error(
                exchange, raw, message=_text_preview(raw), code=None, body=text
            ) from None
        raise ResponseDecodeError(
            "the response is not valid JSON",
            **where(exchange),
            status=status,
            headers=raw.headers,
            body=raw.body,
        ) from None
    if not isinstance(payload, dict):
        if status >= 300:
            raise api_error(exchange, raw, message=_text_preview(raw), code=None, body=payload)
        raise ResponseDecodeError(
            "the response is not a JSON object",
            **where(exchange),
            status=status,
            headers=raw.headers,
            body=raw.body,
        )
    code = _as_int(payload.get("error"))
    message = payload.get("message")
    message = message if isinstance(message, str) else None
    if status >= 300 or payload.get("success") is False:
        if (status, code) in endpoint.empty_when:
            return _decode_data(exchange, raw, None, message, code)
        raise api_error(
            exchange,
            raw,
            message=message or f"{endpoint} failed",
            code=code,
            body=payload,
        )
    return _decode_data(exchange, raw, payload.get("data"), message, code)


def _decode_data(
    exchange: Exchange, raw: RawResponse, data: Any, message: str | None, code: int | None
) -> Any:
    reply = Reply(status=raw.status, data=data, message=message, code=code, params=exchange.params)
    try:
        return exchange.endpoint.decode(reply)
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        # RecursionError: data nested just under the parser's limit can still be too deep
        # for the models' structuring.
        raise ResponseDecodeError(
            f"unexpected data for {exchange.endpoint}: {exc}",
            **where(exchange),
            status=raw.status,
            headers=raw.headers,
            body=raw.body,
        ) from None

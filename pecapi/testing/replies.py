"""Answers as the emulator sends them: ``(status, body, headers)``, and the API's JSON
envelope ``{"data", "success", "message", "error"}``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import ApiError

__all__ = ["JSON_HEADERS", "TEXT_HEADERS", "Reply", "envelope", "fail", "ok", "pdf"]

Reply = tuple[int, bytes, Mapping[str, str]]

JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}
TEXT_HEADERS: Mapping[str, str] = {"Content-Type": "text/plain; charset=utf-8"}

_dumps = json.JSONEncoder(ensure_ascii=False).encode


def envelope(data: Any, message: str = "", error: int | None = None) -> bytes:
    """The API's envelope: ``success`` is whether there is an ``error`` code.

    A success leaves ``error`` out: the response schemas type it as an integer, and the
    ``null`` of the specification's examples is not one (a client reads both the same way).
    """
    if error is None:
        return _dumps({"data": data, "success": True, "message": message}).encode()
    return _dumps({"data": data, "success": False, "message": message, "error": error}).encode()


def ok(data: Any, message: str = "") -> Reply:
    return 200, envelope(data, message), JSON_HEADERS


def fail(err: ApiError, headers: Mapping[str, str] = JSON_HEADERS) -> Reply:
    return err.status, envelope(None, err.message, err.code), headers


def pdf(content: bytes, name: str) -> Reply:
    return (
        200,
        content,
        {"Content-Type": "application/pdf", "Content-Disposition": f'inline; filename="{name}"'},
    )

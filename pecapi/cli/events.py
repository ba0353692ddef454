"""The JSON lines of ``--json``: one schema for every command that streams outcomes
(``provision``, ``demo``), and for the error object every command writes under ``--json``.

Every line is a JSON object whose ``event`` says what it is:

- ``"outcome"`` (stdout): one item is finished: its ``key``, ``status``, ``complete``
  and ``error`` (null, or the error's details), plus fields of the command's own;
- ``"summary"`` (stdout, the last line of a stream that ran to its end or was stopped by
  a signal): ``total``, ``statuses`` (how many of each), ``complete``, ``incomplete``,
  ``remaining``, ``interrupted`` and ``exit_code``, plus fields of the command's own;
- ``"estimate"`` (stdout, alone): ``provision --dry-run``: what the run would do and
  cost against the wallet (pecapi.cli.dry_run builds it);
- ``"error"`` (stderr, the last line): the command failed: ``type``, ``message``,
  ``exit_code``, plus what the error carries (``field``, ``status``, ``code``, ``path``...);
- ``"log"`` (stderr): a note of the library's (a warning; with ``-v`` each retry and
  settling too) or of Python's: ``level``, ``logger``, ``message``, and ``exception``
  (the error details) when the record carries one. Under ``--json`` stderr holds
  nothing else (pecapi.cli.app installs the handler).

docs/guides/cli.md lists every field; tests/cli/test_json_lines.py holds the schema.
Statuses are open-ended strings (a new one may appear): readers count them, they do not
enumerate them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pecapi.errors import (
    OutcomeUnknownError,
    PecApiError,
    ResponseDecodeError,
    TransportError,
    ValidationError,
)

from .exits import InputFileError, UsageError

__all__ = [
    "ERROR",
    "ESTIMATE",
    "LOG",
    "OUTCOME",
    "SUMMARY",
    "error_details",
    "error_event",
    "log_event",
    "outcome",
    "summary",
]

OUTCOME = "outcome"
SUMMARY = "summary"
ESTIMATE = "estimate"
ERROR = "error"
LOG = "log"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_details(exc: BaseException) -> dict[str, Any]:
    """``type`` and ``message`` of ``exc``, and the facts it carries that a script may
    act on: the API field at fault, the HTTP status and API code, whether the request
    was sent, the file. Built from the error's own (secret-free) message and fields."""
    details: dict[str, Any] = {"type": type(exc).__name__, "message": _one_line(str(exc))}
    if isinstance(exc, ValidationError) and exc.field:
        details["field"] = exc.field
    if isinstance(exc, PecApiError):
        details["status"] = exc.status
        details["code"] = exc.code
    if isinstance(exc, ResponseDecodeError) and exc.status is not None:
        details["status"] = exc.status
    sent = getattr(exc, "request_sent", None)  # TransportError, TokenError, NotSentError
    if isinstance(sent, bool):
        details["request_sent"] = sent
    if isinstance(exc, OutcomeUnknownError):
        details["request_sent"] = True
    if isinstance(exc, (PecApiError, TransportError, ResponseDecodeError)) and exc.method:
        details["method"] = exc.method
        details["url"] = str(exc.url)
    if isinstance(exc, InputFileError):
        details["path"] = exc.path
    return details


def error_event(exc: BaseException, message: str, exit_code: int) -> dict[str, Any]:
    """The JSON error object of a failed command: ``message`` is the line a person would
    read (what went wrong and what to do), ``exit_code`` what the command exits with."""
    details = error_details(exc)
    if isinstance(exc, UsageError):
        details["usage"] = _one_line(exc.usage)
    details["message"] = message
    return {"event": ERROR, **details, "exit_code": exit_code}


def log_event(record: logging.LogRecord) -> dict[str, Any]:
    """One log record as a stderr JSON line: its level (``warning``, ``info``...), logger
    and message on one line; ``exception``: the details of the error it carries, if any
    (its type and message only: a traceback is for people, and a frame may hold data)."""
    event: dict[str, Any] = {
        "event": LOG,
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": _one_line(record.getMessage()),
    }
    if record.exc_info and record.exc_info[1] is not None:
        event["exception"] = error_details(record.exc_info[1])
    return event


def outcome(
    key: str, status: str, *, complete: bool, error: BaseException | None, **fields: Any
) -> dict[str, Any]:
    """One finished item. ``fields`` are the command's own (``line``, ``mailbox_id``...)."""
    return {
        "event": OUTCOME,
        "key": key,
        "status": status,
        "complete": complete,
        **fields,
        "error": None if error is None else error_details(error),
    }


def summary(
    *,
    total: int,
    statuses: Mapping[str, int],
    complete: int,
    interrupted: str | None,
    exit_code: int,
    **fields: Any,
) -> dict[str, Any]:
    """The last line of a stream: ``remaining`` items were never finished (a signal
    stopped the run: ``interrupted`` names it)."""
    finished = sum(statuses.values())
    return {
        "event": SUMMARY,
        "total": total,
        "statuses": dict(statuses),
        "complete": complete,
        "incomplete": finished - complete,
        "remaining": max(0, total - finished),
        "interrupted": interrupted,
        **fields,
        "exit_code": exit_code,
    }

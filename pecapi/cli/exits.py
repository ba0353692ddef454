"""Exit codes of the ``pecapi`` command, and the one line printed for each kind of error."""

from __future__ import annotations

import enum

from pecapi.errors import (
    ConfigurationError,
    CoordinationError,
    OutcomeUnknownError,
    PecApiError,
    PecError,
    ResponseDecodeError,
    TokenError,
    TransportError,
    ValidationError,
)

__all__ = [
    "ExitCode",
    "InputFileError",
    "UsageError",
    "error_line",
    "error_text",
    "exit_code_for",
]


class ExitCode(enum.IntEnum):
    """What ``pecapi`` exits with. Stable: scripts may rely on these numbers."""

    OK = 0
    FAILURE = 1  # anything else (e.g. the demo finished with failed mailboxes)
    USAGE = 2  # bad command line: unknown command or flag, missing argument, an option of
    # the command's own that is not a number or out of range (--timeout 0, --retries -1)
    API_ERROR = 3  # the API answered with an error (HTTP status and API code on stderr)
    TRANSPORT_ERROR = 4  # no usable answer (refused, lost, timeout, garbage) or outcome unknown,
    # or the fleet's Redis unreachable (CoordinationError: nothing sent)
    INVALID_INPUT = 5  # a value the API would refuse, found before sending: nothing was sent
    CONFIGURATION = 6  # no token (or the token service refused the credentials), unreadable
    # --token-file, refused --base-url: nothing sent
    INTERRUPTED = 130  # Ctrl-C (SIGINT): 128 + 2, what a shell reports for it
    TERMINATED = 143  # SIGTERM (e.g. `kill`, a container stopping): 128 + 15


class InputFileError(Exception):
    """A file named on the command line that cannot be used (missing, a folder, not UTF-8
    text...): shown as ``pecapi: <path>: <reason>``, before anything is sent."""

    def __init__(self, path: str, reason: str, code: ExitCode = ExitCode.INVALID_INPUT) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.code = code

    def text(self) -> str:
        return _one_line(str(self))


class UsageError(Exception):
    """A bad command line (argparse's ``error``): raised, not printed, so that ``main``
    prints it as text (argparse's usage and message) or, under ``--json``, as JSON."""

    def __init__(self, usage: str, prog: str, message: str) -> None:
        super().__init__(message)
        self.usage = usage
        self.prog = prog
        self.message = message

    def text(self) -> str:
        """What argparse itself would print."""
        return f"{self.usage}{self.prog}: error: {self.message}\n"


def exit_code_for(exc: PecError) -> ExitCode:
    if isinstance(exc, PecApiError):
        return ExitCode.API_ERROR
    if isinstance(exc, TokenError):
        cause = exc.cause
        refused = isinstance(cause, PecApiError) and cause.status in (401, 403)
        return ExitCode.CONFIGURATION if refused else ExitCode.TRANSPORT_ERROR
    # Redis unreachable: nothing was sent, but like a transport error it may pass; retry later.
    if isinstance(
        exc, (TransportError, ResponseDecodeError, OutcomeUnknownError, CoordinationError)
    ):
        return ExitCode.TRANSPORT_ERROR
    if isinstance(exc, ValidationError):
        return ExitCode.INVALID_INPUT
    if isinstance(exc, ConfigurationError):
        return ExitCode.CONFIGURATION
    return ExitCode.FAILURE


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_line(exc: PecError) -> str:
    """The single line shown on stderr for ``exc`` (never carries the token)."""
    return "pecapi: " + error_text(exc)


def error_text(exc: PecError) -> str:
    """What went wrong and what to do, in one line (the ``message`` of a JSON error)."""
    if isinstance(exc, PecApiError):
        code = f", code {exc.code}" if exc.code is not None else ""
        where = f" ({exc.method} {exc.url})" if exc.method else ""
        text = f"API error: HTTP {exc.status}{code}: {exc.api_message}{where}"
    elif isinstance(exc, TransportError):
        text = f"transport error: {exc}"
        if exc.request_sent:
            text += " - the request was sent and may have been processed: check before retrying"
        else:
            text += " - nothing was sent"
    elif isinstance(exc, OutcomeUnknownError):
        text = f"outcome unknown: {exc}"
    elif isinstance(exc, TokenError):
        text = f"token service error: {exc}"
    elif isinstance(exc, ResponseDecodeError):
        text = f"unreadable answer: {exc} - the request may have been processed"
    elif isinstance(exc, ValidationError):
        text = f"invalid input, nothing sent: {exc}"
    elif isinstance(exc, ConfigurationError):
        text = f"configuration error, nothing sent: {exc}"
    else:
        text = f"error: {exc}"
    return _one_line(text)

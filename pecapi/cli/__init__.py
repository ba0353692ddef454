"""The ``pecapi`` command: every operation of the client from a terminal or a script.

``pecapi GROUP COMMAND ...`` (``pecapi mailboxes list``...), ``pecapi demo`` and
``pecapi emulator``; ``pecapi --help`` lists them. Exit codes: :class:`ExitCode`.
"""

from __future__ import annotations

from .app import build_parser, main
from .exits import ExitCode

__all__ = ["ExitCode", "build_parser", "main"]

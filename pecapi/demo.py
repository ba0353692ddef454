"""``python -m pecapi.demo``: the same as ``pecapi demo`` (see :mod:`pecapi.cli.demo`).

Provisions sandbox mailboxes end to end on the embedded emulator: no account, no network.
"""

from __future__ import annotations

from collections.abc import Sequence

from pecapi.cli import main as _cli_main
from pecapi.cli.demo import provision, run

__all__ = ["main", "provision", "run"]


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    return _cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())

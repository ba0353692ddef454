"""``python -m pecapi``: the ``pecapi`` command."""

from __future__ import annotations

from pecapi.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

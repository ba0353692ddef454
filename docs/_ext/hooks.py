"""MkDocs hooks of the documentation build (``hooks:`` in ``mkdocs.yml``).

The API reference must cover the whole public API: every name in ``pecapi.__all__``,
``pecapi.testing.__all__`` and ``pecapi.callbacks.__all__`` is rendered by some
``::: identifier`` of a page under ``reference/``. A name the pages miss is a warning,
so ``mkdocs build --strict`` fails, naming it; adding a name to an ``__all__`` without
documenting it cannot pass CI.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import get_plugin_logger

log = get_plugin_logger("pecapi-reference")

PUBLIC_MODULES = ("pecapi", "pecapi.testing", "pecapi.callbacks")
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)", re.MULTILINE)


def on_pre_build(config: MkDocsConfig, **kwargs: Any) -> None:
    reference = Path(config.docs_dir) / "reference"
    identifiers = {
        match.group(1)
        for page in sorted(reference.glob("*.md"))
        for match in DIRECTIVE.finditer(page.read_text(encoding="utf-8"))
    }
    documented = [_load(identifier) for identifier in sorted(identifiers)]
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if name.startswith("__"):
                continue  # __version__
            if f"{module_name}.{name}" in identifiers:
                continue
            value = getattr(module, name)
            # The same class or function documented under another public path (e.g.
            # pecapi.CallbackEvent on the callbacks page as pecapi.callbacks.CallbackEvent).
            if (callable(value) or isinstance(value, type)) and any(
                value is other for other in documented
            ):
                continue
            log.warning("%s.%s is public but no reference page documents it", module_name, name)


def _load(identifier: str) -> object:
    """The object a ``:::`` identifier names (a module, or an attribute of one)."""
    parts = identifier.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            value = getattr(value, attribute, None)
        return value
    return None


# -- the command line's own help, generated at build time ---------------------------------

HELP_MARKER = re.compile(r"^<!-- help: pecapi(?P<args>[\w\- ]*) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace ``<!-- help: pecapi SUBCOMMAND -->`` with that command's ``--help``, so
    the CLI page never drifts from the parser."""
    return HELP_MARKER.sub(lambda m: _help(m.group("args").split()), markdown)


def _help(args: list[str]) -> str:
    """``pecapi ARGS --help``, from the command's own parser (in-process: one import of
    pecapi for every page, not one interpreter per help text)."""
    from pecapi.cli import build_parser

    out = io.StringIO()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"  # argparse wraps to the terminal's width
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            build_parser().parse_args([*args, "--help"])
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    text = out.getvalue().rstrip()
    if not text:
        log.warning("pecapi %s --help printed nothing", " ".join(args))
    return "```text\n" + text + "\n```"

"""How results are shown: JSON for scripts, rich tables for people.

JSON is the library's own (:func:`pecapi.to_json`): the API's field names and value
forms, enums as their values, dates as ``dd/mm/yyyy`` (as the API writes them),
timestamps as unix seconds, unset fields left out, and the fields the schema does not
know (a model's ``extra``) merged back into their object, so a JSON document shows what
the API said. Human output renders the same data as tables, with
timestamps as UTC date-times; nothing in it is read as rich markup.

rich (the ``cli`` extra) is imported only when a table, a line or a progress bar is
shown: ``--json`` output works without it, and :class:`Output` for people says at once,
before anything is sent, which extra to install.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from pecapi.errors import ConfigurationError
from pecapi.jsonio import JSON_MODELS, to_json
from pecapi.models.wire import format_date, from_unix

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = [
    "RICH_MISSING",
    "Availability",
    "Download",
    "Output",
    "json_value",
]

#: Why the command stops when it must show tables and rich is not installed.
RICH_MISSING = (
    "tables and progress bars need rich, which is not installed: "
    "pip install 'pecapi[cli]' (or use --json)"
)

_PIPE_WIDTH = 160


def _console(file: TextIO) -> Console:
    """A console writing to ``file``; ConfigurationError naming the extra without rich."""
    try:
        from rich.console import Console
    except ImportError:  # the cli extra is not installed
        raise ConfigurationError(RICH_MISSING) from None
    # Styles and live displays only on a terminal (rich also honours NO_COLOR).
    console = Console(file=file, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = _PIPE_WIDTH  # a pipe or file has no width: do not fold at 80
    return console


@attrs.frozen
class Availability:
    """The answer of ``mailboxes available``."""

    casella_pec: str
    available: bool


@attrs.frozen
class Download:
    """A form written to a file (``path`` is None when it went to stdout)."""

    id: str
    path: str | None
    bytes: int


def json_value(value: Any) -> Any:
    """``value`` as plain JSON-ready data: a model in the API's own form by the public
    :func:`pecapi.to_json` (one converter for the library and the command), lists and
    mappings item by item, the command's own records (:class:`Availability`,
    :class:`Download`) field by field."""
    if type(value) in JSON_MODELS:
        return to_json(value)
    if isinstance(value, enum.Enum):
        return value.value
    if attrs.has(type(value)):
        return {f.name: json_value(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    if isinstance(value, dt.date):
        return format_date(value)
    return value


# -- human output ------------------------------------------------------------------------

_TIMESTAMP_FIELDS = frozenset(
    {"registrazione", "ultima_modifica", "evasione", "scadenza", "revoca", "attivazione"}
)


def _when(seconds: int) -> str:
    moment = from_unix(seconds)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (tuple, list, Mapping)) and not value)


def _scalar(name: str, value: Any) -> str:
    """One value as people read it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, dt.date):
        return format_date(value)
    if isinstance(value, int) and (name in _TIMESTAMP_FIELDS or name == "timestamp"):
        return _when(value)
    if isinstance(value, (Mapping, list)):
        return json.dumps(json_value(value), ensure_ascii=False)
    return str(value)


def _rows(prefix: str, value: Any) -> list[tuple[str, str]]:
    """(label, text) rows for one field, nested models flattened with dotted labels."""
    if _is_empty(value):
        return []
    if attrs.has(type(value)):
        rows: list[tuple[str, str]] = []
        for field in attrs.fields(type(value)):
            if field.name == "extra":
                continue
            rows += _rows(f"{prefix}.{field.name}", getattr(value, field.name))
        for key, raw in (getattr(value, "extra", None) or {}).items():
            rows += _rows(f"{prefix}.{key}", raw)
        return rows
    if isinstance(value, tuple) and value and attrs.has(type(value[0])):
        rows = []
        for index, item in enumerate(value):
            rows += _rows(f"{prefix}[{index}]", item)
        return rows
    if isinstance(value, tuple):
        return [(prefix, ", ".join(str(v) for v in value))]
    return [(prefix, _scalar(prefix.rsplit(".", 1)[-1], value))]


def _record_table(obj: Any, title: str | None = None) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE, show_header=False, title=title, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for field in attrs.fields(type(obj)):
        if field.name == "extra":
            continue
        for label, text in _rows(field.name, getattr(obj, field.name)):
            table.add_row(Text(label), Text(text))
    for key, raw in (getattr(obj, "extra", None) or {}).items():
        for label, text in _rows(str(key), raw):
            table.add_row(Text(label), Text(text))
    return table


_KEEP_WHOLE = frozenset({"id", "casella_pec"})


def _list_table(items: Sequence[Any]) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cls = type(items[0])
    names = [
        f.name
        for f in attrs.fields(cls)
        if f.name != "extra"
        and not any(attrs.has(type(getattr(item, f.name))) for item in items)
        and not all(_is_empty(getattr(item, f.name)) for item in items)
    ]
    rows = [[_scalar(name, getattr(item, name)) for name in names] for item in items]
    table = Table(box=box.SIMPLE_HEAD)
    for column, name in enumerate(names):
        if name in _KEEP_WHOLE:  # never cut an id or an address
            widest = max(len(row[column]) for row in rows)
            table.add_column(name, no_wrap=True, min_width=max(widest, len(name)))
        else:
            table.add_column(name, no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


class Output:
    """Where a command's result goes: ``--json`` documents or tables on stdout.

    For people (``json_mode`` false) it needs rich, and raises
    :class:`~pecapi.errors.ConfigurationError` (:data:`RICH_MISSING`) at once without it:
    make it before sending anything.
    """

    def __init__(self, *, json_mode: bool, stdout: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self.stdout = stdout if stdout is not None else sys.stdout
        # Tables for people need rich: without it this fails here, before anything is sent.
        self._console = None if json_mode else _console(self.stdout)

    @property
    def console(self) -> Console:
        """The rich console on ``stdout`` (in ``--json`` mode made on first use, if ever)."""
        if self._console is None:
            self._console = _console(self.stdout)
        return self._console

    def line(self, text: str) -> None:
        """One line of plain text (no markup, not folded)."""
        from rich.text import Text

        self.console.print(Text(text), soft_wrap=True)

    def json(self, value: Any) -> None:
        """One JSON document (or one JSON line of a stream)."""
        self.stdout.write(json.dumps(json_value(value), ensure_ascii=False) + "\n")
        self.stdout.flush()

    def result(self, value: Any, *, title: str | None = None) -> None:
        if self.json_mode:
            self.json(value)
            return
        if isinstance(value, Availability):
            verdict = "available" if value.available else "not available (taken)"
            self.line(f"{value.casella_pec} is {verdict}")
        elif isinstance(value, Download):
            where = value.path if value.path is not None else "stdout"
            self.line(f"wrote {where} ({value.bytes} bytes)")
        elif isinstance(value, list):
            if not value:
                self.line("(none)")
            else:
                self.console.print(_list_table(value))
                self.line(f"{len(value)} in all")
        elif attrs.has(type(value)):
            self.console.print(_record_table(value, title))
        else:
            self.line(str(value))

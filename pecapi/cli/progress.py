"""A live progress display: a rich progress bar on a terminal, a plain line at each
quarter otherwise (so captured output has no control codes), nothing with ``--json``
(whose lines must not mix with a live display)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from .output import Output

__all__ = ["progress"]


@contextlib.contextmanager
def progress(out: Output, label: str, total: int | None) -> Iterator[Callable[[bool], None]]:
    """Yields ``advance(failed)``, to call once per finished item."""
    done = failed = 0
    if not out.json_mode and out.console.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[failed]} failed"),
            console=out.console,
        ) as bar:
            task = bar.add_task(label, total=total, failed=0)

            def advance_bar(item_failed: bool) -> None:
                nonlocal failed
                failed += item_failed
                bar.update(task, advance=1, failed=failed)

            yield advance_bar
        return
    marks = {max(1, (total or 0) * q // 4) for q in (1, 2, 3, 4)} if total else set()

    def advance_lines(item_failed: bool) -> None:
        nonlocal done, failed
        done += 1
        failed += item_failed
        if done in marks:
            out.line(f"  {done}/{total} {label} ({failed} failed)")

    yield advance_lines

"""Where a secret can still be reached from an exception, as an error reporter sees it.

Sentry, Rollbar and ``traceback.TracebackException(capture_locals=True)`` record an
exception's message, its attributes, every exception chained to it (``__cause__`` and
``__context__``, suppressed or not) and the ``repr`` of every local of every frame of
every traceback in that chain, walking into dicts, lists and tuples. :func:`secret_leaks`
looks for canaries in all of that.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The tests' own frames (a canary is a literal there) are not what a user's reporter sees.
_TESTS = str(Path(__file__).parent)

_CONTAINERS = (dict, list, tuple, set, frozenset)


def _texts(value: Any, depth: int = 0) -> Iterator[str]:
    yield repr(value)
    if depth >= 6:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(key, depth + 1)
            yield from _texts(item, depth + 1)
    elif isinstance(value, _CONTAINERS):
        for item in value:
            yield from _texts(item, depth + 1)
    elif isinstance(value, (bytes, bytearray)):
        yield bytes(value).decode("utf-8", "replace")
    elif isinstance(value, str):
        yield value


def _attributes(exc: BaseException) -> dict[str, Any]:
    found = dict(vars(exc))
    for cls in type(exc).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(exc, name):
                found[name] = getattr(exc, name)
    found["args"] = exc.args
    return found


def chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable through causes, contexts and ``.cause``."""
    seen: dict[int, BaseException] = {}
    todo: list[Any] = [error]
    while todo:
        exc = todo.pop()
        if not isinstance(exc, BaseException) or id(exc) in seen:
            continue
        seen[id(exc)] = exc
        todo += [exc.__cause__, exc.__context__, getattr(exc, "cause", None)]
        todo += list(getattr(exc, "exceptions", ()))
    return list(seen.values())


def secret_leaks(error: BaseException, *canaries: str) -> list[str]:
    """Every place a canary shows; ``[]`` when none can be reached."""
    assert canaries and all(canaries)
    found: list[str] = []

    def look(where: str, texts: Iterator[str]) -> None:
        for text in texts:
            for canary in canaries:
                if canary in text:
                    found.append(f"{where}: {text[:120]!r}")

    for exc in chain(error):
        name = type(exc).__name__
        look(f"{name} str/repr", iter([str(exc), repr(exc)]))
        for attr, value in _attributes(exc).items():
            look(f"{name}.{attr}", _texts(value))
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_code.co_filename.startswith(_TESTS):
                tb = tb.tb_next
                continue
            for local, value in frame.f_locals.items():
                look(f"{name} frame {frame.f_code.co_name} local {local}", _texts(value))
            tb = tb.tb_next
    summary = traceback.TracebackException.from_exception(error, capture_locals=True)
    _drop_test_frames(summary, set())
    report = "".join(summary.format())
    look("TracebackException(capture_locals=True)", iter([report]))
    return found


def _drop_test_frames(summary: traceback.TracebackException, seen: set[int]) -> None:
    if id(summary) in seen:
        return
    seen.add(id(summary))
    summary.stack[:] = [f for f in summary.stack if not f.filename.startswith(_TESTS)]
    for linked in (summary.__cause__, summary.__context__):
        if linked is not None:
            _drop_test_frames(linked, seen)

"""Every command's ``--help``: plain text for a terminal (no reStructuredText from the
docstrings), defaults shown, and the same concurrency as the library."""

from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import Iterator

import pytest

from pecapi import Batch, PecClient
from pecapi.cli import build_parser, main
from pecapi.cli.commands import COMMANDS
from pecapi.provision import provision

# ``double backticks``, :mod:`x`, :class:`~x.Y`, :func:, :data:, :meth:, :attr:, :exc:...
REST = re.compile(r"``|:[a-z]+:`")


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


ALL = dict(_parsers(build_parser()))


def test_the_walk_reaches_every_command() -> None:
    commands = {(c.group, c.name) for c in COMMANDS}
    assert commands <= set(ALL)
    assert {("demo",), ("emulator",), ("provision",), ("worker",), ("mailboxes",), ()} <= set(ALL)
    leaves = [p for p, parser in ALL.items() if parser.get_default("handler") is not None]
    assert len(leaves) == len(COMMANDS) + 4  # every command, demo, emulator, provision, worker


def test_rest_pattern_catches_what_it_must() -> None:
    for text in ("``--json``", ":mod:`pecapi.testing`", ":class:`~pecapi.X`", ":data:`Y`"):
        assert REST.search(text)
    assert not REST.search("'documenti' column, --delimiter ';', see docs: cli.md")


@pytest.mark.parametrize("path", sorted(ALL), ids=lambda p: " ".join(p) or "pecapi")
def test_help_has_no_restructuredtext(path: tuple[str, ...], capsys) -> None:
    code = main([*path, "--help"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("usage: pecapi")
    found = REST.findall(out)
    assert not found, f"pecapi {' '.join(path)} --help shows reST markup: {found}\n{out}"


def test_emulator_help_shows_every_default(capsys) -> None:
    parser = ALL[("emulator",)]
    assert main(["emulator", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    with_defaults = [
        a
        for a in parser._actions
        if a.option_strings and a.default not in (None, False, argparse.SUPPRESS) and a.help
    ]
    assert len(with_defaults) >= 5  # --host, --port, --token, --credit, --latency...
    for action in with_defaults:
        assert "default" in (action.help or ""), action.option_strings
    for shown in ("(default: 127.0.0.1)", "(default: 8080)", "(default: 1000)"):
        assert shown in out


def test_the_same_default_concurrency_everywhere(capsys) -> None:
    library = {
        inspect.signature(f).parameters["concurrency"].default
        for f in (provision, Batch, PecClient.map)
    }
    assert len(library) == 1
    [default] = library
    for name in ("provision", "demo"):
        parser = ALL[(name,)]
        [action] = [a for a in parser._actions if "--concurrency" in a.option_strings]
        assert action.default == default, name
        assert main([name, "--help"]) == 0
        assert f"(default {default})" in capsys.readouterr().out

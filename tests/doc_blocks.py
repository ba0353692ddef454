"""The code blocks of the documentation, as examples that are type-checked and run.

A Markdown file's ```python blocks are read as :class:`Block` (with the snippets a docs
page includes, ``--8<-- "path"``, expanded as the docs build expands them). Each block is
claimed by one :class:`Example`: a part of a line (``marker``) that only that block of its
file has, and a *prelude* declaring, with their types, the names the fragment uses without
defining them (``client``, ``box_id``...). A fragment that awaits at top level becomes the
body of ``async def example() -> None``. :func:`check_claims` fails on a block no example
claims and on an example that finds no block, so nothing is silently left out.

:func:`module` is the source the type checkers see; :func:`run_module` executes that same
source with real values for the declared names. Used by ``tests/test_readme.py`` and
``tests/test_docs_examples.py``.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tests.test_typing import Errors

ROOT = Path(__file__).resolve().parent.parent

# An opening fence: ```python, ~~~python, or the attribute form ``` { .python title="x" }.
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,}) *(?:\{ *\.)?(?P<lang>[\w-]*)")
# pymdownx.snippets' one-line form: the line is replaced by the file's text.
_SNIPPET = re.compile(r'^(?P<indent> *)--8<-- +"(?P<path>[^"]+)" *$')


@attrs.frozen
class _Line:
    source: str  # the file it comes from, relative to the repository
    number: int  # 1-based
    text: str


def _lines(path: str, *, snippets: bool) -> list[_Line]:
    lines = []
    text = (ROOT / path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        include = _SNIPPET.match(line) if snippets else None
        if include is None:
            if snippets and line.lstrip().startswith("--8<--"):
                raise ValueError(f"{path}:{number}: a form of snippet these tests do not read")
            lines.append(_Line(path, number, line))
            continue
        for inner in _lines(include["path"], snippets=True):
            lines.append(attrs.evolve(inner, text=include["indent"] + inner.text))
    return lines


@attrs.frozen
class Block:
    """A fenced block. Its code's line ``n`` is line ``line + n`` of ``source``: the file
    that holds its text (an included file's, for a block that is one ``--8<--``)."""

    page: str  # where a reader sees it: README.md, docs/guides/testing.md
    source: str
    line: int  # of the opening fence in ``source`` (0 for a whole included file)
    lang: str
    code: str  # dedented (a block in a list item is indented)

    @property
    def where(self) -> str:
        shown = f"{self.source}:{self.line}"
        return shown if self.source == self.page else f"{shown} (in {self.page})"


def _closes(line: str, fence: str) -> bool:
    """A closing fence: the opening's character, at least as many times, and nothing else."""
    stripped = line.strip()
    return stripped.startswith(fence) and set(stripped) == {fence[0]}


def markdown_blocks(path: str, *, snippets: bool = False) -> list[Block]:
    """The fenced blocks of ``path`` (relative to the repository), in order; ``snippets``:
    with its ``--8<--`` lines replaced by the files they name, as in the docs build."""
    lines = _lines(path, snippets=snippets)
    blocks = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index].text)
        if fence is None:
            index += 1
            continue
        opening, body = lines[index], []
        index += 1
        # An IndexError: a fence never closed.
        while not _closes(lines[index].text, fence["fence"]):
            body.append(lines[index])
            index += 1
        index += 1
        sources = {line.source for line in body} or {opening.source}
        if len(sources) != 1:
            raise ValueError(f"{opening.source}:{opening.number}: a block mixing files")
        [source] = sources
        first = body[0].number - 1 if body and source != opening.source else opening.number
        code = textwrap.dedent("\n".join(line.text for line in body)) + "\n"
        lang = fence["lang"].lower()
        blocks.append(Block(page=path, source=source, line=first, lang=lang, code=code))
    return blocks


@attrs.frozen
class Example:
    """How a block is checked: ``marker`` is a part of a line of the block and of no other
    block of ``source`` (the file holding the block's text);
    ``prelude`` declares (imports, and names with their types, no values) what the block
    uses without defining; ``wrap`` makes it the body of ``async def example()``."""

    marker: str
    prelude: str = ""
    wrap: bool = False
    source: str = "README.md"


def blocks_with(blocks: list[Block], source: str, marker: str, lang: str = "python") -> list[Block]:
    return [
        b
        for b in blocks
        if b.source == source
        and b.lang == lang
        and any(marker in line for line in b.code.splitlines())
    ]


def check_claims(examples: Mapping[str, Example], blocks: list[Block], what: str) -> None:
    """Each example claims exactly one python block, and every python block is claimed.
    ``what`` names the blocks in the messages ("README", "docs")."""
    claimed: dict[Block, str] = {}
    for name, example in examples.items():
        found = blocks_with(blocks, example.source, example.marker)
        assert len(found) == 1, f"{name}: {len(found)} {what} blocks have {example.marker!r}"
        claimed[found[0]] = name
    unclaimed = [b.where for b in blocks if b.lang == "python" and b not in claimed]
    assert not unclaimed, f"{what} python blocks no test runs: {unclaimed}"


@attrs.frozen
class Module:
    source: str
    first: int  # the module's line of the block's first line
    block: Block
    wrapped: bool

    def where(self, line: int) -> str:
        if line < self.first:
            return f"prelude line {line}"
        return f"{self.block.source}:{self.block.line + 1 + line - self.first}"


def module(name: str, example: Example, block: Block) -> Module:
    head = f"# {block.where}: the {name!r} example\n{example.prelude}"
    if example.wrap:
        head += "\n\nasync def example() -> None:\n"
        body = textwrap.indent(block.code, "    ")
    else:
        head += "\n" if example.prelude else ""
        body = block.code
    first = head.count("\n") + 1
    return Module(source=head + body, first=first, block=block, wrapped=example.wrap)


LOCALS = "__example_locals__"


def run_module(code: Module, label: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Execute ``code`` with ``values`` as its declared names; its namespace. A wrapped
    example's ``example()`` leaves its locals in :data:`LOCALS` of the namespace when it
    returns (a line added after the block: the module's lines stay the block's)."""
    source = code.source
    if code.wrapped:
        source += f"    {LOCALS}.update(locals())\n"
    namespace: dict[str, Any] = {"__name__": label, **values, LOCALS: {}}
    exec(compile(source, f"<{code.block.where}: {label}>", "exec"), namespace)
    return namespace


def report(modules: Mapping[str, Module], errors: Errors, checker: str) -> None:
    """Fail with every error, each at its line of the documentation."""
    problems = [
        f"{modules[name].where(line)} ({name}): {checker}: {message}"
        for name, found in errors.items()
        for line, message in found
    ]
    assert not problems, "\n".join(problems)

"""A Griffe extension: pecapi's reST-flavoured docstrings rendered as Markdown.

pecapi's docstrings are written for Sphinx-minded readers: ``double backticks``,
cross-reference roles (:class:`~pecapi.Mailbox`, :meth:`serve`, :data:`...`), literal
blocks introduced by ``::`` and doctest lines (``>>>``). mkdocstrings renders Markdown, so
before rendering this extension rewrites, in every docstring of the package:

- each role into an autorefs cross-reference, the name resolved the way Sphinx does
  (relative to the object, its class, its module, then absolute): a name that resolves
  nowhere is left as a reference to itself, so that ``mkdocs build --strict`` fails on it
  (a broken reference), as it fails on a reference to an object that no page documents;
- a ``::`` literal block into a fenced code block (``python`` when it parses as Python,
  ``pycon`` for doctest lines, else ``text``), and a bare ``>>>`` paragraph into ``pycon``.

Double backticks need nothing: they are a code span in Markdown too.

Only the documentation build loads this file (``mkdocs.yml``); the package never does.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(class|meth|func|mod|attr|exc|data|obj):`([^`]+)`")
CALLABLE_ROLES = {"meth", "func"}
EXTERNAL_MODULES = frozenset(sys.stdlib_module_names) | {"aiohttp", "attrs", "cattrs", "yarl"}


class RestDocstrings(griffe.Extension):
    """Rewrite every docstring of the loaded package once the whole package is known."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name == "pecapi":  # not the dependencies griffe may load to follow aliases
            _convert_tree(pkg, pkg)


def _convert_tree(obj: griffe.Object, root: griffe.Module) -> None:
    if obj.docstring is not None:
        obj.docstring.value = convert(obj.docstring.value, obj, root)
    for member in list(obj.members.values()):
        if not member.is_alias:
            _convert_tree(member, root)  # type: ignore[arg-type]


def convert(text: str, scope: griffe.Object, root: griffe.Module) -> str:
    """``text`` (one docstring) as Markdown, its roles resolved from ``scope``."""
    text = _literal_blocks(text)
    return ROLE.sub(lambda m: _reference(m.group(1), m.group(2), scope, root), text)


# -- cross-references --------------------------------------------------------------------


def _reference(role: str, target: str, scope: griffe.Object, root: griffe.Module) -> str:
    target = target.strip()
    explicit = re.fullmatch(r"(.*?)\s*<(.+)>", target)  # :class:`text <path>`
    if explicit:
        shown, name = explicit.group(1), explicit.group(2)
    else:
        name = target.lstrip("~")
        shown = name.rsplit(".", 1)[-1] if target.startswith("~") else name
    if role in CALLABLE_ROLES and not shown.endswith(")"):
        shown += "()"
    if name.split(".", 1)[0] in EXTERNAL_MODULES and not name.startswith(root.name):
        return f"`{shown}`"  # the standard library or a dependency: no inventory offline
    path = _resolve(name, scope, root)
    return f"[`{shown}`][{path or name}]"


def _resolve(name: str, scope: griffe.Object, root: griffe.Module) -> str | None:
    """The canonical path of ``name`` as seen from ``scope``, or None."""
    head, _, rest = name.partition(".")
    candidates: list[str] = []
    if head == root.name:
        candidates.append(name)
    else:
        place: griffe.Object | None = scope
        while place is not None:  # the object, its class, its module, its package...
            inherited = place.all_members.get(head) if isinstance(place, griffe.Class) else None
            if inherited is not None:  # a method of a base class: the base documents it
                candidates.append(f"{inherited.path}.{rest}" if rest else inherited.path)
                break
            try:
                found = place.resolve(head)
            except (griffe.NameResolutionError, griffe.AliasResolutionError):
                found = None
            if found:
                candidates.append(f"{found}.{rest}" if rest else found)
                break
            place = place.parent
    for candidate in candidates:
        obj = _lookup(candidate, root)
        if obj is not None:
            return obj
    return None


def _lookup(path: str, root: griffe.Module) -> str | None:
    if path == root.path:
        return path
    if not path.startswith(root.path + "."):
        return None
    try:
        obj = root[path[len(root.path) + 1 :]]
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    try:
        return str(obj.canonical_path)
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


# -- literal blocks ----------------------------------------------------------------------


def _literal_blocks(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.rstrip()
        if stripped.endswith("::") and not stripped.endswith(":::"):
            block, end = _indented_block(lines, i + 1)
            if block is not None:
                before = stripped[:-2].rstrip()
                if before:
                    # "text::" reads "text:"; a bare "::" line just opens the block
                    out.append(before + ":")
                out.extend(["", *_fence(block), ""])
                i = end
                continue
        if line.lstrip().startswith(">>>") and (not out or not out[-1].strip()):
            end = i
            while end < len(lines) and lines[end].strip():
                end += 1
            out.extend(_fence(textwrap.dedent("\n".join(lines[i:end]))))
            i = end
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _indented_block(lines: list[str], start: int) -> tuple[str | None, int]:
    """The indented block starting after blank lines at ``start``, and where it ends."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == start or i >= len(lines) or not lines[i][:1].isspace():
        return None, start
    base = len(lines[i]) - len(lines[i].lstrip())
    end = i
    while end < len(lines):
        current = lines[end]
        if current.strip() and len(current) - len(current.lstrip()) < base:
            break
        end += 1
    while end > i and not lines[end - 1].strip():
        end -= 1
    return textwrap.dedent("\n".join(lines[i:end])), end


def _fence(code: str) -> list[str]:
    if code.lstrip().startswith(">>>"):
        language = "pycon"
    else:
        try:
            compile(code, "<docstring>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError:
            language = "text"
        else:
            language = "python"
    return [f"```{language}", *code.splitlines(), "```"]

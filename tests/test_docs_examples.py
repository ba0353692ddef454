"""Every code example of the documentation site is claimed and type-checks.

The site is docs/ (mkdocs.yml): its pages, with the files they include (``--8<--``:
``pecapi/testing/README.md`` in the testing guide, the programs of ``examples/`` in the
examples page). Each ```python block is claimed by one :class:`Example` of ``EXAMPLES``
(see ``tests/doc_blocks.py``): a block no example claims fails the suite, and so does an
example that finds no block. Then every block is

- type-checked, here: one ``mypy --strict`` run and one pyright run (strict, when
  installed: ``tests/test_typing.py``) over all of them, each with its prelude;
- run against the emulator, with real values for the prelude's names, and judged by what
  it did to the emulator's state: ``tests/test_docs_examples_run.py`` (the programs of
  ``examples/``: ``tests/test_examples.py``).

Claiming a new block takes one entry in ``EXAMPLES``: it is then type-checked, and run by
``test_a_claimed_example_runs`` until a test of its own (``@runs(name)``) checks its
effects.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from pathlib import Path

import attrs
import pytest

from tests.doc_blocks import (
    ROOT,
    Block,
    Example,
    Module,
    blocks_with,
    check_claims,
    markdown_blocks,
    module,
    report,
)
from tests.test_typing import Errors, mypy_errors, pyright_errors

ADDRESS = "mario.rossi@testcert.legalmail.it"
HAVE_FASTAPI = all(importlib.util.find_spec(m) is not None for m in ("fastapi", "uvicorn"))
FASTAPI_REQUIRED = os.environ.get("PECAPI_EXAMPLES_REQUIRE_FASTAPI") == "1"

# -- the blocks and the examples ---------------------------------------------------------


def docs_pages() -> list[str]:
    """The pages of the site: every Markdown file of docs/ but the build's helpers."""
    pages = (ROOT / "docs").rglob("*.md")
    return sorted(str(p.relative_to(ROOT)) for p in pages if "_ext" not in p.parts)


@functools.cache
def docs_blocks() -> list[Block]:
    return [b for page in docs_pages() for b in markdown_blocks(page, snippets=True)]


INDEX = "docs/index.md"
CLIENT_GUIDE = "docs/guides/client.md"
ERRORS = "docs/guides/errors.md"
RETRIES = "docs/guides/retries.md"
BATCHES = "docs/guides/batches.md"
CALLBACKS = "docs/guides/callbacks.md"
TOKENS = "docs/guides/tokens.md"
DEPLOYMENT = "docs/guides/deployment.md"
TESTING = "docs/guides/testing.md"
EMULATOR_README = "pecapi/testing/README.md"  # included by docs/guides/testing.md

CLIENT = "import pecapi\n\nclient: pecapi.PecClient\n"
EMU = "from pecapi.testing import Emulator\n\nemu: Emulator\n"


def whole_file(path: str) -> Example:
    """A program of examples/ that a page includes whole: claimed by its first line."""
    first = (ROOT / path).read_text(encoding="utf-8").splitlines()[0]
    return Example(source=path, marker=first)


EXAMPLES: dict[str, Example] = {
    # docs/index.md, docs/guides/client.md
    "index": Example(source=INDEX, marker="for box in await client.mailboxes.list():"),
    "client": Example(
        source=CLIENT_GUIDE, marker="if await client.mailboxes.is_available(address):"
    ),
    "with_options": Example(
        source=CLIENT_GUIDE,
        marker="patient = client.with_options(",
        prelude=CLIENT + "box_id: str\n",
        wrap=True,
    ),
    # docs/guides/errors.md, retries.md
    "error_classes": Example(
        source=ERRORS,
        marker="except pecapi.NotFoundError:",
        prelude=(
            "import logging\n\nimport pecapi\n\n"
            "client: pecapi.PecClient\nbox_id: str\nlog: logging.Logger\n"
        ),
        wrap=True,
    ),
    "outcome_unknown": Example(
        source=RETRIES,
        marker="except pecapi.OutcomeUnknownError as exc:",
        prelude=CLIENT + "box_id: str\n",
        wrap=True,
    ),
    "on_attempt": Example(
        source=RETRIES,
        marker="pecapi.RetryPolicy(on_attempt=",
        prelude=(
            "from typing import Protocol\n\nimport pecapi\n\n\n"
            "class Metrics(Protocol):  # the user's own metrics client\n"
            "    def increment(self, name: str) -> None: ...\n\n\n"
            "metrics: Metrics\n"
        ),
    ),
    # docs/guides/batches.md
    "map": Example(
        source=BATCHES,
        marker="client.map(client.mailboxes.renew, box_ids, concurrency=20)",
        prelude=CLIENT + "box_ids: list[str]\n",
        wrap=True,
    ),
    "collect": Example(
        source=BATCHES,
        marker="client.map(client.mailboxes.get, box_ids, concurrency=10).collect()",
        prelude=CLIENT + "box_ids: list[str]\n",
        wrap=True,
    ),
    "progress": Example(
        source=BATCHES,
        marker="def show(p: pecapi.BatchProgress) -> None:",
        prelude=CLIENT + "rows: list[dict[str, str]]  # read from a file, a database...\n",
        wrap=True,
    ),
    "wallet_empty": Example(
        source=BATCHES,
        marker="if batch.stopped_by is not None:",
        prelude=CLIENT + "registrations: list[pecapi.MailboxRegistration]\n",
        wrap=True,
    ),
    "register_many": Example(
        source=BATCHES,
        marker="client.mailboxes.register_many(registrations, concurrency=100)",
        prelude=CLIENT + "registrations: list[pecapi.MailboxRegistration]\n",
        wrap=True,
    ),
    "provision": Example(
        source=BATCHES,
        marker="from pecapi.provision import provision, read_registrations_csv",
        prelude=CLIENT,
        wrap=True,
    ),
    # docs/guides/callbacks.md
    "callback_handler": Example(
        source=CALLBACKS,
        marker="async def on_event(event: CallbackEvent) -> None:",
        prelude=(
            "from collections.abc import Awaitable, Callable\n\n"
            "mark: Callable[..., Awaitable[None]]  # the user's own code\n"
        ),
    ),
    "signed_callback": Example(
        source=CALLBACKS,
        marker="signer = CallbackSigner(",
        prelude=(
            "from collections.abc import Awaitable, Callable\n"
            "from typing import Any\n\n"
            "from aiohttp import web\n\n"
            "import pecapi\n"
            "from pecapi.callbacks import CallbackEvent\n\n"
            "client: pecapi.PecClient\n"
            "address: str\n"
            "applicant: dict[str, Any]  # the registration's other fields\n"
            "app: web.Application\n"
            "on_event: Callable[[CallbackEvent], Awaitable[None]]\n"
        ),
        wrap=True,
    ),
    # docs/guides/tokens.md
    "static_token": Example(
        source=TOKENS,
        marker="async with pecapi.PecClient(token, sandbox=True) as client:",
        prelude="import pecapi\n\ntoken: str\n",
        wrap=True,
    ),
    "oauth_provider": Example(
        source=TOKENS,
        marker="provider = pecapi.OAuthV2TokenProvider(scopes=scopes, sandbox=True)",
        prelude="box_id: str\n",
        wrap=True,
    ),
    "wallet": Example(
        source=TOKENS,
        marker="wallet = await client.account.wallet()",
        prelude=(
            "import pecapi\n\nclient: pecapi.PecClient\nprovider: pecapi.OAuthV2TokenProvider\n"
        ),
        wrap=True,
    ),
    "estimate": Example(
        source=TOKENS,
        marker='prices = PriceList.load("prices.json")',
        prelude="import pecapi\n\nclient: pecapi.PecClient\n",
        wrap=True,
    ),
    # docs/guides/deployment.md (defines a function: built, not called, without Redis)
    "fleet_client": Example(
        source=DEPLOYMENT, marker="async def make_client() -> pecapi.PecClient:"
    ),
    # docs/guides/testing.md, and pecapi/testing/README.md which it includes
    "conftest": Example(source=TESTING, marker='pytest_plugins = ["pecapi.testing.pytest_plugin"]'),
    "client_tests": Example(
        source=TESTING, marker="async def test_renewal_is_charged_once_when_the_answer_is_lost("
    ),
    "emulator_serve": Example(source=EMULATOR_README, marker="async with emu.serve() as server:"),
    "emulator_conftest": Example(
        source=EMULATOR_README, marker='pytest_plugins = ["pecapi.testing.pytest_plugin"]'
    ),
    "emulator_fixtures": Example(
        source=EMULATOR_README,
        marker='mailbox_id = pec_emulator.seed_mailbox("me@testcert.legalmail.it")',
    ),
    "ledger": Example(
        source=EMULATOR_README,
        marker="assert [c.operation for c in emu.ledger]",
        prelude="from decimal import Decimal\n\n" + EMU + "mailbox_id: str\n",
        wrap=True,
    ),
    "fault_plan": Example(
        source=EMULATOR_README, marker="plan = emu.faults", prelude=EMU, wrap=True
    ),
    "late_commit": Example(
        source=EMULATOR_README,
        marker="await emu.drain_late()",
        prelude=EMU.replace("Emulator\n", "Emulator, Fault\n", 1) + "mailbox_id: str\n",
        wrap=True,
    ),
    "emulator_clock": Example(
        source=EMULATOR_README,
        marker="clock=emu.now,",
        prelude=(
            "from pecapi import OAuthTokenProvider, all_pec_scopes\n"
            "from pecapi.testing import Emulator, OAuthEmulator, RunningOAuth\n\n"
            "emu: Emulator\noauth: OAuthEmulator\nrunning_oauth: RunningOAuth\n"
        ),
        wrap=True,
    ),
    # docs/guides/examples.md: whole programs, run by tests/test_examples.py
    "aiohttp_service": whole_file("examples/aiohttp_service.py"),
    "fastapi_service": whole_file("examples/fastapi_service.py"),
    "provision_batch": whole_file("examples/provision_batch.py"),
    "worker_bot": whole_file("examples/worker_bot.py"),
}
RUN_BY_TEST_EXAMPLES = {"aiohttp_service", "fastapi_service", "provision_batch", "worker_bot"}

# Blocks that fail the type checks in files other work owns, left for it to fix: their
# errors are not reported, but an entry whose block now passes mypy fails the suite, so
# that it is removed (and the block checked again).
AWAITING_FIX: dict[str, str] = {
    "provision": "docs/guides/batches.md: result.value is a ProvisionOutcome | None",
}


def block_of(name: str) -> Block:
    example = EXAMPLES[name]
    [block] = blocks_with(docs_blocks(), example.source, example.marker)
    return block


def module_of(name: str) -> Module:
    return module(name, EXAMPLES[name], block_of(name))


# -- every block is an example ----------------------------------------------------------


def test_every_python_block_of_the_docs_is_an_example() -> None:
    check_claims(EXAMPLES, docs_blocks(), "docs")


def test_the_coverage_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """An example whose block is gone fails; so does a block no example claims."""
    monkeypatch.setitem(EXAMPLES, "index", Example(source=INDEX, marker="no line is this"))
    with pytest.raises(AssertionError, match="index: 0 docs blocks"):
        test_every_python_block_of_the_docs_is_an_example()
    monkeypatch.delitem(EXAMPLES, "index")
    with pytest.raises(AssertionError, match=r"docs python blocks no test runs: \['docs/index"):
        test_every_python_block_of_the_docs_is_an_example()


def test_the_blocks_are_found_where_the_site_shows_them() -> None:
    """Every page of the navigation is searched, the included files with the page that
    includes them, and the attribute form of a fence (``{ .python title=... }``) is a
    python block: nothing the site renders as Python escapes the claims."""
    nav = re.findall(
        r"^\s*- (?:[^:\n]+: )?([\w/.-]+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.M
    )
    assert len(nav) > 10
    assert {f"docs/{page}" for page in nav} <= set(docs_pages())
    where = {(b.page, b.source) for b in docs_blocks() if b.lang == "python"}
    assert (TESTING, EMULATOR_README) in where
    assert ("docs/guides/examples.md", "examples/worker_bot.py") in where
    [block] = blocks_with(docs_blocks(), "examples/worker_bot.py", "asyncio")
    assert (block.line, block.code) == (0, (ROOT / "examples/worker_bot.py").read_text())


# -- type-checked --------------------------------------------------------------------------


def _checked() -> dict[str, Module]:
    """The examples' modules, by module name; the FastAPI program only where FastAPI is
    installed (its imports are unknown otherwise), as in tests/test_examples.py."""
    names = list(EXAMPLES)
    if not HAVE_FASTAPI:
        if FASTAPI_REQUIRED:
            pytest.fail("PECAPI_EXAMPLES_REQUIRE_FASTAPI=1 but fastapi or uvicorn is missing")
        names.remove("fastapi_service")
    modules = {f"docs_{name}": module_of(name) for name in names}
    # A syntax error stops mypy's whole run: test_every_example_compiles names it.
    return {name: m for name, m in modules.items() if _syntax_error(m) is None}


def _syntax_error(code: Module) -> str | None:
    try:
        compile(code.source, "<example>", "exec")
    except SyntaxError as exc:
        return f"{code.where(exc.lineno or 0)}: {exc.msg}"
    return None


def test_every_example_compiles() -> None:
    problems = [f"{p} ({name})" for name in EXAMPLES if (p := _syntax_error(module_of(name)))]
    assert not problems, "\n".join(problems)


def _report(modules: dict[str, Module], errors: Errors, checker: str) -> None:
    awaiting = {f"docs_{name}" for name in AWAITING_FIX}
    report(modules, {k: v for k, v in errors.items() if k not in awaiting}, checker)


def test_the_docs_examples_type_check_under_mypy_strict(tmp_path: Path) -> None:
    modules = _checked()
    errors = mypy_errors({name: m.source for name, m in modules.items()}, tmp_path)
    _report(modules, errors, "mypy")
    fixed = [name for name in AWAITING_FIX if not errors[f"docs_{name}"]]
    assert not fixed, f"these blocks pass now: remove them from AWAITING_FIX: {fixed}"


def test_the_docs_examples_type_check_under_pyright(tmp_path: Path) -> None:
    modules = _checked()
    # A wrapped fragment's variables are a function's locals: one the page sets and does
    # not use again (``box = await ...``) would be module-level in the user's code.
    sources = {name: m.source for name, m in modules.items()}
    errors = pyright_errors(sources, tmp_path, {"reportUnusedVariable": False})
    _report(modules, errors, "pyright")


def test_the_type_check_finds_errors_in_a_block(tmp_path: Path) -> None:
    """A wrong block fails, named at its line of the page."""
    block = attrs.evolve(
        block_of("with_options"), code="box = await client.mailboxes.renw(box_id)\n"
    )
    modules = {"docs_wrong": module("wrong", EXAMPLES["with_options"], block)}
    errors = mypy_errors({"docs_wrong": modules["docs_wrong"].source}, tmp_path)
    with pytest.raises(AssertionError, match=rf"{CLIENT_GUIDE}:{block.line + 1} .*renw"):
        report(modules, errors, "mypy")

"""Every code example of README.md type-checks and runs.

Each ```python block of the README is matched to one :class:`Example` below by a line
only it contains (a block no example claims fails the suite, and so does an example
that finds no block: nothing is silently skipped). Then:

- type-checked: each block becomes a module checked by ``mypy --strict`` (and pyright in
  strict mode, when installed: see ``tests/test_typing.py``). A fragment that uses names
  it does not define (``client``, ``box_id``...) gets a *prelude* declaring them with
  their types, spelt out in its :class:`Example`; a fragment that awaits at top level
  becomes the body of ``async def example() -> None``;
- run: the same module is executed against the project's emulator, the declared names
  given real values (a client on the emulator, a seeded mailbox...), and what it did is
  checked on the emulator's state. The first example is a whole program for the real
  sandbox (``PecClient(sandbox=True)``, token from ``OPENAPI_SANDBOX_TOKEN``): PecClient
  reads no base-URL variable, and none is added for tests, so it runs unchanged with
  ``pecapi.client.SANDBOX_URL`` (and ``pecapi.oauth.OAUTH_SANDBOX_URL`` for the OAuth
  example) pointed at an emulator on loopback;
- the pytest example runs as a real pytest session in a subprocess, with the README's own
  ``pyproject.toml`` block (``asyncio_mode = "auto"``), and fails without it.

The blocks, the claims and the modules are ``tests/doc_blocks.py``'s, shared with
``tests/test_docs_examples.py`` (the documentation site's examples).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from yarl import URL

import pecapi
import pecapi.client
import pecapi.oauth
from pecapi import MailboxState, PecClient, RetryPolicy
from pecapi.callbacks import CallbackEvent
from pecapi.testing import (
    DEFAULT_TOKEN,
    Emulator,
    Fault,
    OAuthEmulator,
    RunningEmulator,
    make_pdf,
    samples,
)
from tests import doc_blocks
from tests.conftest import make_registration, serve_app, wait_until
from tests.doc_blocks import Block, Example, Module, blocks_with, check_claims, report
from tests.test_typing import Errors, mypy_errors, pyright_errors

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ADDRESS = "mario.rossi@testcert.legalmail.it"

# -- the blocks and the examples (tests/doc_blocks.py) -----------------------------------


def readme_blocks() -> list[Block]:
    return doc_blocks.markdown_blocks("README.md")


EXAMPLES: dict[str, Example] = {
    # A whole program: runs as it is (see the module's docstring).
    "use": Example(marker="async def main() -> None:"),
    "outcome_unknown": Example(
        marker="except pecapi.OutcomeUnknownError as exc:",
        prelude="import pecapi\n\nclient: pecapi.PecClient\nbox_id: str\n",
        wrap=True,
    ),
    "register_many": Example(
        marker="client.mailboxes.register_many(registrations, concurrency=100)",
        prelude=(
            "import pecapi\n\n"
            "client: pecapi.PecClient\n"
            "registrations: list[pecapi.MailboxRegistration]\n"
        ),
        wrap=True,
    ),
    "provision": Example(
        marker="pecapi.provision.provision(client, requests,",
        prelude=(
            "import pecapi\n\n"
            "client: pecapi.PecClient\n"
            "registrations: list[pecapi.MailboxRegistration]\n"
        ),
        wrap=True,
    ),
    "json": Example(
        marker="answer = pecapi.to_json(box)",
        prelude=(
            "from typing import Any\n\nimport pecapi\n\n"
            "client: pecapi.PecClient\nbox_id: str\nincoming: dict[str, Any]\n"
        ),
        wrap=True,
    ),
    "raw": Example(
        marker="raw = await pecapi.with_raw_response(",
        prelude="import pecapi\n\nclient: pecapi.PecClient\nbox_id: str\n",
        wrap=True,
    ),
    "raw_json": Example(
        marker="listing = await pecapi.with_raw_json(",
        prelude="import pecapi\n\nclient: pecapi.PecClient\n",
        wrap=True,
    ),
    "oauth": Example(
        marker="provider = pecapi.OAuthTokenProvider(",
        prelude="import pecapi\n\napi_key: str\nbox_id: str\n",
        wrap=True,
    ),
    "callback_handler": Example(
        marker="async def on_event(event: CallbackEvent) -> None:",
        prelude=(
            "from collections.abc import Awaitable, Callable\n\n"
            "mark: Callable[..., Awaitable[None]]  # the user's own code\n"
        ),
    ),
    "signed_callback": Example(
        marker='signer = CallbackSigner(os.environ["PEC_CALLBACK_KEY"])'
        "  # e.g. secrets.token_urlsafe(32)",
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
    # Two files in one block: type-checked as one module, run as two (see below).
    "pytest": Example(marker='pytest_plugins = ["pecapi.testing.pytest_plugin"]'),
}
PYTEST_CONFIG_MARKER = 'asyncio_mode = "auto"'


def _blocks_with(marker: str, lang: str) -> list[Block]:
    return blocks_with(readme_blocks(), "README.md", marker, lang)


def block_of(name: str) -> Block:
    [block] = _blocks_with(EXAMPLES[name].marker, "python")
    return block


def module(name: str) -> Module:
    return doc_blocks.module(name, EXAMPLES[name], block_of(name))


def run_module(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Execute the example's module with ``values`` as its declared names; its namespace."""
    return doc_blocks.run_module(module(name), f"readme_{name}", values)


async def run_example(name: str, **values: Any) -> None:
    """Run a wrapped (top-level ``await``) example in the running loop."""
    assert EXAMPLES[name].wrap
    await run_module(name, values)["example"]()


# -- every block is an example ----------------------------------------------------------


def test_every_python_block_of_the_readme_is_an_example() -> None:
    check_claims(EXAMPLES, readme_blocks(), "README")
    assert len(_blocks_with(PYTEST_CONFIG_MARKER, "toml")) == 1


def test_the_coverage_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """An example whose block is gone fails; so does a block no example claims."""
    monkeypatch.setitem(EXAMPLES, "use", Example(marker="no README line is this"))
    with pytest.raises(AssertionError, match="use: 0 README blocks"):
        test_every_python_block_of_the_readme_is_an_example()
    monkeypatch.delitem(EXAMPLES, "use")
    with pytest.raises(AssertionError, match="python blocks no test runs"):
        test_every_python_block_of_the_readme_is_an_example()


# -- type-checked --------------------------------------------------------------------------


def _report(errors: Errors, checker: str) -> None:
    report({f"readme_{name}": module(name) for name in EXAMPLES}, errors, checker)


def _sources() -> dict[str, str]:
    return {f"readme_{name}": module(name).source for name in EXAMPLES}


def test_the_readme_examples_type_check_under_mypy_strict(tmp_path: Path) -> None:
    _report(mypy_errors(_sources(), tmp_path), "mypy")


def test_the_readme_examples_type_check_under_pyright(tmp_path: Path) -> None:
    # A wrapped fragment's variables are a function's locals: one the README sets and does
    # not use again (``box = await ...``) would be module-level in the user's code.
    _report(pyright_errors(_sources(), tmp_path, {"reportUnusedVariable": False}), "pyright")


def test_the_old_readme_forms_fail_the_type_check(tmp_path: Path) -> None:
    """The issue's failures, as the README had them: each one is an error now too."""
    prelude = (
        "import pecapi\n\n"
        "client: pecapi.PecClient\n"
        "registrations: list[pecapi.MailboxRegistration]\n"
    )
    old = {
        "old_connection_limit": "import pecapi\n\npecapi.PecClient(connection_limit=10)\n",
        "old_ok": prelude
        + textwrap.dedent(
            """
            async def example() -> None:
                async with client.mailboxes.register_many(registrations) as batch:
                    async for result in batch:
                        print(result.value.id)
            """
        ),
        "old_provision_request": prelude
        + "pecapi.provision.ProvisionRequest(registrations[0], ['form.pdf'])\n",
        "old_typo": prelude
        + "async def example() -> None:\n    await client.mailboxes.change_type('x', 'GLOD')\n",
    }
    errors = mypy_errors(old, tmp_path)
    assert all(errors[name] for name in old), errors


def test_the_client_signature_in_the_readme_is_the_real_one() -> None:
    """The README once listed ``connection_limit=``, which PecClient no longer takes."""
    text = README.read_text(encoding="utf-8")
    [line] = [x for x in text.splitlines() if x.startswith("`PecClient(token=")]
    inner = re.sub(r"\([^()]*\)", "", line[line.index("(") + 1 : line.rindex(")")])
    listed = [part.split("=")[0].strip() for part in inner.split(",")]
    real = [p for p in inspect.signature(PecClient).parameters if p != "self"]
    assert [name for name in listed if name != "*"] == real
    assert "connection_limit" not in text


# -- run: the first example, a whole program for the sandbox ----------------------------


@contextmanager
def served_in_a_thread(emulator: Emulator, oauth: OAuthEmulator | None = None) -> Iterator[str]:
    """``emulator`` (and ``oauth``) served by a loop of their own, so that a program can
    ``asyncio.run`` its own; the emulator's URL (``oauth``'s is set as the sandbox's)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    urls: list[str] = []
    stop = asyncio.Event()

    async def serve() -> None:
        async with emulator.serve() as running:
            urls.append(running.url)
            if oauth is None:
                ready.set()
                await stop.wait()
                return
            async with oauth.serve() as running_oauth:
                urls.append(running_oauth.url)
                ready.set()
                await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the emulator did not start"
        yield urls[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def test_the_first_example_runs_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "form-signed.pdf").write_bytes(make_pdf("signed form"))
    (tmp_path / "id-card.pdf").write_bytes(make_pdf("identity card"))
    emulator = Emulator()
    with served_in_a_thread(emulator) as url:
        monkeypatch.setattr(pecapi.client, "SANDBOX_URL", url)
        monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", DEFAULT_TOKEN)
        run_module("use", {})  # asyncio.run(main()) in this thread
    [box] = emulator.mailboxes.values()
    assert (box["casella_pec"], box["tipo_casella"], box["stato"]) == (
        ADDRESS,
        "BRONZE",
        "in_evasione",
    )
    assert (tmp_path / "form.pdf").read_bytes().startswith(b"%PDF")
    assert [c.operation for c in emulator.ledger] == ["register"]
    assert sorted(emulator.documents) == [
        f"{box['id']}_0_attivazione.pdf",
        f"{box['id']}_1_attivazione.pdf",
    ]


# -- run: the fragments ------------------------------------------------------------------


async def test_the_settling_example_runs(client: PecClient, emulator: Emulator) -> None:
    box_id = emulator.seed_mailbox(ADDRESS, stato="evasa")
    await run_example("outcome_unknown", client=client, box_id=box_id)
    assert len(emulator.charges("renewal", box_id)) == 1


async def test_the_settling_example_settles_an_unknown_outcome(
    client: PecClient, emulator: Emulator
) -> None:
    """The ``except`` branch: the renewal's answer is lost (a 504) and the API commits it
    0.3 s later; the call gives up first (deadline), the example reconciles it."""
    box_id = emulator.seed_mailbox(ADDRESS, stato="evasa")
    emulator.faults.once(Fault.late(0.3), method="GET", path="/pec/*/rinnovo")
    hasty = client.with_options(retry=RetryPolicy(deadline=0.1, settle=2, max_attempts=1))
    with pytest.raises(pecapi.OutcomeUnknownError) as seen:  # what the example catches
        await hasty.mailboxes.renew(box_id)
    assert seen.value.pending is not None
    await emulator.drain_late()
    emulator.faults.once(Fault.late(0.3), method="GET", path="/pec/*/rinnovo")
    await run_example("outcome_unknown", client=hasty, box_id=box_id)
    assert len(emulator.charges("renewal", box_id)) == 2  # one per call, never resent
    assert emulator.count("GET", "/pec/*/rinnovo") == 2
    assert not hasty.pending_outcomes()


async def test_the_batch_example_runs(
    client: PecClient, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = "taken@testcert.legalmail.it"
    emulator.seed_mailbox(taken, stato="evasa")
    addresses = [f"user{n}@testcert.legalmail.it" for n in range(3)] + [taken]
    registrations = [samples.registration(address) for address in addresses]
    await run_example("register_many", client=client, registrations=registrations)
    lines = capsys.readouterr().out.splitlines()
    ids = {box["casella_pec"]: box["id"] for box in emulator.mailboxes.values()}
    registered = sorted(line for line in lines if " registered: " in line)
    assert registered == [f"{a} registered: {ids[a]}" for a in addresses[:3]]
    [failed] = [line for line in lines if " registered: " not in line]
    assert failed.startswith(f"{taken} failed: HTTP 406"), failed


async def test_the_provisioning_example_runs(
    client: PecClient,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "form-signed.pdf").write_bytes(make_pdf("signed form"))
    (tmp_path / "id-card.pdf").write_bytes(make_pdf("identity card"))
    addresses = [f"user{n}@testcert.legalmail.it" for n in range(3)]
    registrations = [samples.registration(address) for address in addresses]
    await run_example("provision", client=client, registrations=registrations)
    assert sorted(capsys.readouterr().out.splitlines()) == [f"{a} activated" for a in addresses]
    assert {box["stato"] for box in emulator.mailboxes.values()} == {"in_evasione"}
    # two lines a mailbox: registered (awaiting_activation), then activated
    assert len((tmp_path / "run.jsonl").read_text().splitlines()) == 6


async def test_the_oauth_example_runs(
    pec_server: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = pec_server.emulator
    api_key = "readme-api-key"
    oauth = OAuthEmulator(emulator, email="me@example.org", api_key=api_key)
    box_id = emulator.seed_mailbox(ADDRESS, stato="evasa")
    async with oauth.serve() as running:
        monkeypatch.setattr(pecapi.oauth, "OAUTH_SANDBOX_URL", running.url)
        monkeypatch.setattr(pecapi.client, "SANDBOX_URL", pec_server.url)
        await run_example("oauth", api_key=api_key, box_id=box_id)
    assert len(emulator.charges("renewal", box_id)) == 1
    [issued] = oauth.created  # one token, with the scopes the example asks for
    assert set(issued.scopes) == {"GET:test.pec.openapi.it/pec"}


def serve(app: web.Application) -> AbstractAsyncContextManager[str]:
    """``app`` served as the README says (``auto_decompress=False``); its base URL."""
    return serve_app(app, inflate=False)


async def test_the_callback_example_receives_the_emulators_callback(
    client: PecClient, emulator: Emulator
) -> None:
    marked: list[tuple[Any, ...]] = []

    async def mark(*args: Any, **kwargs: Any) -> None:
        marked.append((*args, kwargs))

    namespace = run_module("callback_handler", {"mark": mark})
    async with serve(namespace["app"]) as url:
        callback = pecapi.Callback(url=f"{url}/pec-callback", data={"order": 42})
        box = await client.mailboxes.register(samples.registration(ADDRESS, callback=callback))
        await wait_until(lambda: bool(marked))
    assert marked == [(box.id, MailboxState.REGISTRATA, {"order": 42})]


async def test_the_signed_callback_example_runs(
    client: PecClient, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEC_CALLBACK_KEY", "k" * 32)
    app = web.Application()
    events: list[CallbackEvent] = []

    async def on_event(event: CallbackEvent) -> None:
        events.append(event)

    body = samples.mailbox_body(ADDRESS)
    applicant = {k: v for k, v in body.items() if k not in ("casella_pec", "callback")}
    await run_example(
        "signed_callback",
        client=client,
        address=ADDRESS,
        applicant=applicant,
        app=app,
        on_event=on_event,
    )
    [box] = emulator.mailboxes.values()
    signed = URL(box["callback"]["url"])
    assert (signed.host, signed.path, box["callback"]["data"]) == (
        "me.example",
        "/pec-callback",
        {"order": 42},
    )
    async with serve(app) as url, ClientSession() as session:
        target = URL(url).with_path(signed.path).with_query(signed.query)
        async with session.post(target.with_query({}), json=box) as unsigned:
            assert unsigned.status == 403
        async with session.post(target, json=box) as delivered:
            assert delivered.status == 200
    [event] = events
    assert (event.id, event.data) == (box["id"], {"order": 42})


# -- run: the pytest example, as a pytest session -----------------------------------------


def _pytest_session(folder: Path, *, auto_mode: bool) -> subprocess.CompletedProcess[str]:
    """The README's two files and its ``pyproject.toml`` block (without its
    ``asyncio_mode`` line unless ``auto_mode``), run by pytest with warnings as errors."""
    code = block_of("pytest").code
    conftest, marker, test = code.partition("# test_mine.py\n")
    assert marker and conftest.startswith("# conftest.py\n")
    folder.mkdir()
    (folder / "conftest.py").write_text(conftest, encoding="utf-8")
    (folder / "test_mine.py").write_text(test, encoding="utf-8")
    [toml] = _blocks_with(PYTEST_CONFIG_MARKER, "toml")
    config = toml.code if auto_mode else toml.code.replace(PYTEST_CONFIG_MARKER, "")
    (folder / "pyproject.toml").write_text(config, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_pytest_example_passes_as_a_pytest_session(tmp_path: Path) -> None:
    done = _pytest_session(tmp_path / "project", auto_mode=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b1 passed\b", done.stdout), done.stdout


def test_the_pytest_example_needs_the_asyncio_mode_the_readme_gives(tmp_path: Path) -> None:
    done = _pytest_session(tmp_path / "project", auto_mode=False)
    assert done.returncode != 0
    assert "1 passed" not in done.stdout, done.stdout
    assert "async def functions are not natively supported" in done.stdout, done.stdout


async def test_the_json_example_round_trips(client: PecClient, emulator: Emulator) -> None:
    box_id = emulator.seed_mailbox(ADDRESS, stato="evasa")
    incoming = pecapi.to_json(make_registration("other@testcert.legalmail.it"))
    namespace = run_module("json", {"client": client, "box_id": box_id, "incoming": incoming})
    await namespace["example"]()
    registration = pecapi.from_json(pecapi.MailboxRegistration, incoming)
    assert registration == make_registration("other@testcert.legalmail.it")
    with pytest.raises(pecapi.ValidationError) as refused:
        pecapi.from_json(pecapi.MailboxRegistration, {**incoming, "casela_pec": "x"})
    assert refused.value.field == "casela_pec"


async def test_the_raw_json_example_runs(
    client: PecClient, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.seed_mailbox(ADDRESS, stato="evasa")
    emulator.seed_mailbox("other@testcert.legalmail.it", stato="registrata")
    await run_example("raw_json", client=client)
    assert capsys.readouterr().out.split() == ["200", "2"]


async def test_the_raw_response_example_runs(
    client: PecClient, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    box_id = emulator.seed_mailbox(ADDRESS, stato="evasa")
    await run_example("raw", client=client, box_id=box_id)
    assert len(emulator.charges("renewal", box_id)) == 1
    printed = capsys.readouterr().out.split()
    assert printed[1:3] == ["200", "application/json"], printed

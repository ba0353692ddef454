"""The public types hold under a type checker, not only at run time.

Snippets of user code are type-checked with ``mypy --strict`` (in process, through
``mypy.api``) and, when it is installed, with pyright in strict mode (set
``PECAPI_PYRIGHT`` to its executable, or have ``pyright`` on the PATH; the test is skipped
otherwise: pyright is not a dependency of the project, it needs node). A snippet line
ending in ``# error`` must be reported as an error, and every reported error must be on
such a line: a snippet proves that the right code passes *and* that the wrong one fails.

The helpers here also type-check the README's examples (``tests/test_readme.py``).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import attrs
import pytest

import pecapi
from pecapi import (
    BatchFailure,
    BatchSkipped,
    BatchSuccess,
    ComunicaPecSummary,
    Mailbox,
    MailboxSummary,
    PecClient,
    ResponseDecodeError,
    ValidationError,
)
from pecapi.models import enums
from pecapi.provision import ProvisionRequest
from pecapi.testing import Emulator, Fault
from tests.conftest import PDF_BYTES, make_registration

ROOT = Path(__file__).resolve().parent.parent

# -- the checkers ------------------------------------------------------------------------

_cache_dir: Path | None = None


def _mypy_cache() -> Path:
    """One mypy cache per test process (the first run reads pecapi and aiohttp: ~10 s)."""
    global _cache_dir
    if _cache_dir is None:
        _cache_dir = Path(tempfile.mkdtemp(prefix="pecapi-mypy-"))
        atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
    return _cache_dir


Errors = dict[str, list[tuple[int, str]]]


def _write(sources: Mapping[str, str], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in sources.items():
        path = folder / f"{name}.py"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def mypy_errors(sources: Mapping[str, str], folder: Path) -> Errors:
    """``mypy --strict`` (Python 3.10, no project config) over ``sources`` (module name ->
    code): the errors of each, as (line, message)."""
    from mypy import api

    paths = _write(sources, folder)
    config = folder / "mypy.ini"
    config.write_text("[mypy]\n", encoding="utf-8")
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--python-version=3.10",
            f"--config-file={config}",
            f"--cache-dir={_mypy_cache()}",
            "--show-error-codes",
            "--no-error-summary",
            "--no-color-output",
            *map(str, paths),
        ]
    )
    assert status in (0, 1), f"mypy did not run ({status}): {stderr}{stdout}"
    errors: Errors = {name: [] for name in sources}
    for line in stdout.splitlines():
        match = re.match(r"^(.*?\.py):(\d+): error: (.*)$", line)
        if match is None:
            continue
        errors[Path(match[1]).stem].append((int(match[2]), match[3]))
    return errors


def _pyright_command() -> list[str] | None:
    explicit = os.environ.get("PECAPI_PYRIGHT")
    if explicit:
        return [explicit]
    found = shutil.which("pyright")
    return [found] if found else None


def pyright_errors(
    sources: Mapping[str, str], folder: Path, settings: Mapping[str, Any] | None = None
) -> Errors:
    """pyright in strict mode (Python 3.10, ``settings`` added to its configuration) over
    ``sources``; skips the test when pyright is not installed or cannot start (it fetches
    its node package on first use)."""
    command = _pyright_command()
    if command is None:
        pytest.skip("pyright is not installed (pip install pyright, or set PECAPI_PYRIGHT)")
    paths = _write(sources, folder)
    config = {
        "include": [p.name for p in paths],
        "extraPaths": [str(ROOT)],
        "pythonVersion": "3.10",
        "typeCheckingMode": "strict",
        **(settings or {}),
    }
    (folder / "pyrightconfig.json").write_text(json.dumps(config), encoding="utf-8")
    try:
        done = subprocess.run(
            [*command, "--outputjson", "--pythonpath", sys.executable, "-p", str(folder)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"pyright could not run: {exc}")
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.skip(f"pyright could not run: {(done.stderr or done.stdout)[-500:]}")
    errors: Errors = {name: [] for name in sources}
    for diagnostic in report.get("generalDiagnostics", []):
        if diagnostic.get("severity") != "error":
            continue
        name = Path(diagnostic["file"]).stem
        line = diagnostic["range"]["start"]["line"] + 1
        errors.setdefault(name, []).append((line, diagnostic["message"].splitlines()[0]))
    return errors


def expected_error_lines(source: str) -> list[int]:
    return [n for n, line in enumerate(source.splitlines(), 1) if line.endswith("# error")]


def check_markers(sources: Mapping[str, str], errors: Errors, checker: str) -> None:
    """Every ``# error`` line has an error, and no other line has one."""
    problems = []
    for name, source in sources.items():
        lines = source.splitlines()
        found = sorted({line for line, _ in errors.get(name, [])})
        expected = expected_error_lines(source)
        for line in sorted(set(expected) - set(found)):
            problems.append(f"{name}:{line}: no {checker} error for: {lines[line - 1].strip()}")
        for line, message in errors.get(name, []):
            if line not in expected:
                problems.append(f"{name}:{line}: unexpected {checker} error: {message}")
    assert not problems, "\n".join(problems)


# -- the snippets ------------------------------------------------------------------------

_HEADER = """\
from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

import pecapi
from pecapi import (
    BatchFailure,
    BatchResult,
    BatchSkipped,
    BatchSuccess,
    ComunicaPec,
    Mailbox,
    MailboxRegistration,
    MailboxSummary,
    PecClient,
    TipoCasella,
)
from pecapi.provision import ProvisionRequest
"""

# Passes both checkers; each ``# error`` line fails both.
SNIPPETS = {
    "ids": _HEADER
    + """
async def ids(client: PecClient, registration: MailboxRegistration) -> None:
    box = await client.mailboxes.register(registration)
    assert_type(box.id, str)
    await client.mailboxes.activation_form(box.id, "form.pdf")  # no `assert box.id`
    request = await client.comunica_pec.get("60ad149c3a7168084f1d2b68")
    assert_type(request.id, str)
    for item in await client.mailboxes.list():
        assert_type(item.id, "str | None")  # a listing stays lenient
        await client.mailboxes.get(item.id)  # error
        if item.id is not None:
            await client.mailboxes.get(item.id)
""",
    "batch": _HEADER
    + """
def narrowing(result: BatchResult[MailboxRegistration, Mailbox]) -> str:
    assert_type(result.value, "Mailbox | None")
    assert_type(result.error, "Exception | None")
    result.value.id  # error
    if result.error is None:
        assert_type(result, BatchSuccess[MailboxRegistration, Mailbox])
        assert_type(result.value, Mailbox)
    else:
        assert_type(result, BatchFailure[MailboxRegistration])
        assert_type(result.error, Exception)
    if result.ok is True:
        assert_type(result.value, Mailbox)
    if isinstance(result, BatchFailure):
        assert_type(result.error, Exception)
    if isinstance(result, BatchSkipped):  # a failure never sent (the batch had stopped)
        assert_type(result.error, pecapi.NotSentError)
        assert_type(result.error.cause, "Exception | None")
        assert_type(result.reason, str)
        result.value.id  # error
    match result:
        case BatchSuccess(value=box):
            assert_type(box, Mailbox)
        case BatchSkipped(reason=reason):
            assert_type(reason, str)
        case BatchFailure(error=error):
            assert_type(error, Exception)
    return result.value.id if result.error is None else str(result.error)


async def batches(client: PecClient, registrations: list[MailboxRegistration]) -> None:
    async with client.mailboxes.register_many(registrations) as batch:
        async for result in batch:
            assert_type(result, BatchResult[MailboxRegistration, Mailbox])
    assert_type(batch.stopped_by, "Exception | None")
    client.map(client.mailboxes.get, ["id"], stop_on_insufficient_credit=False)
    client.map(client.mailboxes.get, ["id"], stop_on_insufficient_credit="no")  # error
""",
    "enums": _HEADER
    + """
def registration(tipo: pecapi.TipoCasellaLiteral, text: str, fields: dict[str, Any]) -> None:
    MailboxRegistration(
        tipo_casella="bronze",
        tipo_cliente="PV",
        sesso_richiedente="m",
        sottotipo_cliente=None,
        tipo_documento="PATENTE",
        **fields,
    )
    MailboxRegistration(
        tipo_casella=TipoCasella.GOLD,
        tipo_cliente=pecapi.TipoCliente.PRIVATO,
        sesso_richiedente=pecapi.Sesso.F,
        **fields,
    )
    MailboxRegistration(
        tipo_casella=tipo,
        tipo_cliente="im",
        sottotipo_cliente="SI",
        sesso_richiedente="F",
        **fields,
    )
    MailboxRegistration(
        tipo_casella="bronz",  # error
        tipo_cliente="PVT",  # error
        sottotipo_cliente="ZZ",  # error
        sesso_richiedente="X",  # error
        tipo_documento="carta",  # error
        **fields,
    )
    MailboxRegistration(
        tipo_casella=text,  # error
        tipo_cliente="PV",
        sesso_richiedente="M",
        **fields,
    )
    MailboxRegistration(  # a str from elsewhere: parse it (a ValidationError if wrong)
        tipo_casella=TipoCasella.parse(text, "tipo_casella"),
        tipo_cliente="PV",
        sesso_richiedente="M",
        **fields,
    )


def comunica(fields: dict[str, Any]) -> None:
    pecapi.ComunicaPecRequest(qualifica="legale_rappresentante", **fields)
    pecapi.ComunicaPecRequest(qualifica="CEO", **fields)  # error


async def change_type(client: PecClient, box: Mailbox) -> None:
    await client.mailboxes.change_type(box.id, "GOLD")
    await client.mailboxes.change_type(box.id, "silver")
    await client.mailboxes.change_type(box.id, TipoCasella.SILVER)
    await client.mailboxes.change_type(box.id, "GLOD")  # error
""",
    "provision": _HEADER
    + """
async def provision(client: PecClient, registration: MailboxRegistration) -> None:
    request = ProvisionRequest(registration, documents=["form-signed.pdf", "id-card.pdf"])
    ProvisionRequest(registration=registration)
    ProvisionRequest(registration, ["form-signed.pdf"])  # error
    async with pecapi.provision.provision(client, [request], journal="run.jsonl") as run:
        async for result in run:
            if result.error is None:
                assert_type(result.value, pecapi.provision.ProvisionOutcome)
    pecapi.provision.read_registrations_csv("people.csv")
""",
}

SNIPPETS["statuses_and_callbacks"] = (
    _HEADER
    + """
from pecapi.callbacks import CallbackEvent, CallbackSigner
from pecapi.provision import ProvisionOutcome, ProvisionStatus


def statuses(outcome: ProvisionOutcome) -> ProvisionStatus:
    assert_type(outcome.status, ProvisionStatus)
    if outcome.status == "activatd":  # error
        pass
    return outcome.status


def callbacks(signer: CallbackSigner, event: CallbackEvent) -> str:
    pecapi.Callback(url="https://me.example/cb", method="JSON")
    pecapi.Callback(url="https://me.example/cb", method=pecapi.CallbackMethod.POST)
    pecapi.Callback(url="https://me.example/cb", method="jsn")  # error
    signer.callback("https://me.example/cb", "a@testcert.legalmail.it", method="post")
    signer.callback("https://me.example/cb", "a@testcert.legalmail.it", method="form")  # error
    return event.id
"""
)

# mypy alone: pyright narrows a union by a boolean tag only by comparison (``is True``,
# ``== True``), never by the tag's truthiness, by design (microsoft/pyright#6113, #8376).
MYPY_ONLY = {
    "batch_ok": _HEADER
    + """
def by_ok(result: BatchResult[MailboxRegistration, Mailbox]) -> str:
    if result.ok:
        assert_type(result.value, Mailbox)
    else:
        assert_type(result.error, Exception)
    if not result.ok:
        assert_type(result, BatchFailure[MailboxRegistration])
    return result.value.id if result.ok else str(result.error)
""",
}


def test_the_snippets_type_check_under_mypy_strict(tmp_path: Path) -> None:
    sources = {**SNIPPETS, **MYPY_ONLY}
    check_markers(sources, mypy_errors(sources, tmp_path), "mypy")


def test_the_snippets_type_check_under_pyright(tmp_path: Path) -> None:
    # The snippets share one import block: names one of them does not use are no error.
    errors = pyright_errors(SNIPPETS, tmp_path, {"reportUnusedImport": False})
    check_markers(SNIPPETS, errors, "pyright")


def test_a_checker_that_finds_nothing_fails_the_markers(tmp_path: Path) -> None:
    """The harness itself can fail: a marked line without an error, an unmarked error."""
    sources = {"wrong": "x: int = 'a'\ny: int = 1  # error\n"}
    errors = mypy_errors(sources, tmp_path)
    assert [line for line, _ in errors["wrong"]] == [1]
    with pytest.raises(AssertionError, match=r"wrong:2: no mypy error") as info:
        check_markers(sources, errors, "mypy")
    assert "wrong:1: unexpected mypy error" in str(info.value)


# -- the types at run time ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "enum"),
    [
        (enums.TipoCasellaLiteral, enums.TipoCasella),
        (enums.TipoClienteLiteral, enums.TipoCliente),
        (enums.SottotipoClienteLiteral, enums.SottotipoCliente),
        (enums.SessoLiteral, enums.Sesso),
        (enums.TipoDocumentoLiteral, enums.TipoDocumento),
        (enums.QualificaLiteral, enums.Qualifica),
        (enums.CallbackMethodLiteral, enums.CallbackMethod),
    ],
)
def test_each_literal_lists_its_enum_in_both_cases(alias: Any, enum: type[enums.ApiEnum]) -> None:
    values = typing.get_args(alias)
    assert len(values) == len(set(values))
    assert set(values) == {m.value.upper() for m in enum} | {m.value.lower() for m in enum}
    for value in values:  # every one is accepted at run time
        assert enum.parse(value, "field").value.upper() == value.upper()


def test_an_outcome_status_is_one_of_the_statuses() -> None:
    assert set(typing.get_args(pecapi.provision.ProvisionStatus)) == set(pecapi.provision.STATUSES)
    with pytest.raises(ValueError, match="status"):
        pecapi.provision.ProvisionOutcome(key="a", status=cast(Any, "activatd"))


def test_a_typo_is_still_refused_at_run_time() -> None:
    with pytest.raises(ValidationError) as info:
        make_registration(tipo_casella=cast(Any, "bronz"))
    assert info.value.field == "tipo_casella"
    assert make_registration(tipo_casella=cast(Any, " Bronze ")).tipo_casella.value == "BRONZE"


def test_a_mailbox_or_request_needs_its_id() -> None:
    for cls in (Mailbox, pecapi.ComunicaPec):
        with pytest.raises(TypeError, match="'id'"):
            cls()  # type: ignore[call-arg]
        for blank in ("", "  "):
            with pytest.raises(ValueError, match="has no id"):
                cls(id=blank)
        assert cls(id="6040e4613a716838dc4eee0e").id == "6040e4613a716838dc4eee0e"
    assert MailboxSummary().id is None
    assert ComunicaPecSummary().id is None


@pytest.mark.parametrize(
    "data",
    [
        {"casella_pec": "a@testcert.legalmail.it", "stato": "evasa"},
        {"id": "", "casella_pec": "a@testcert.legalmail.it", "stato": "evasa"},
        {"id": None, "stato": "evasa"},
        {"id": {"$oid": "6040e4613a716838dc4eee0e"}, "stato": "evasa"},
    ],
)
async def test_an_answer_without_an_id_is_a_decode_error(
    client: PecClient, emulator: Emulator, data: dict[str, Any]
) -> None:
    body = {"data": data, "success": True, "message": "", "error": None}
    emulator.faults.once(Fault.answer(200, body), method="GET", path="/pec/*")
    with pytest.raises(
        ResponseDecodeError, match=r"unexpected data for GET /pec/\{id\}: .*\bid\b"
    ) as info:
        await client.with_options(retry=pecapi.RetryPolicy.never()).mailboxes.get("x")
    assert info.value.status == 200
    emulator.faults.once(Fault.answer(200, body), method="GET", path="/comunica_pec/*")
    with pytest.raises(
        ResponseDecodeError, match=r"unexpected data for GET /comunica_pec/\{id\}: .*\bid\b"
    ):
        await client.with_options(retry=pecapi.RetryPolicy.never()).comunica_pec.get("x")


async def test_a_listing_item_without_an_id_is_kept(client: PecClient, emulator: Emulator) -> None:
    items = [{"id": "m1", "casella_pec": "a@testcert.legalmail.it"}, {"casella_pec": "b@x.it"}]
    body = {"data": items, "success": True, "message": "", "error": None}
    emulator.faults.once(Fault.answer(200, body), method="GET", path="/pec")
    listed = await client.mailboxes.list()
    assert [item.id for item in listed] == ["m1", None]


async def test_batch_results_are_successes_or_failures(client: PecClient) -> None:
    async def half(n: int) -> int:
        if n % 2:
            raise ValueError(n)
        if n == 4:
            raise pecapi.InsufficientCreditError("Insufficient Credit", status=402)
        return n // 2

    results = await client.map(half, range(7), concurrency=1).collect()
    assert [type(r) for r in results[:4]] == [
        BatchSuccess,
        BatchFailure,
        BatchSuccess,
        BatchFailure,
    ]
    assert [type(r) for r in results[4:]] == [BatchFailure, BatchSkipped, BatchSkipped]
    stopped = results[4].error
    assert [
        (r.ok, isinstance(r, BatchSkipped) and r.error.cause is stopped) for r in results[5:]
    ] == [(False, True)] * 2
    ok, failed = results[0], results[1]
    assert (ok.ok, ok.value, ok.error, ok.index, ok.input) == (True, 0, None, 0, 0)
    assert (failed.ok, failed.value, failed.index) == (False, None, 1)
    assert isinstance(failed.error, ValueError)
    # ok and the other outcome's field are fixed: not arguments, not settable
    with pytest.raises(TypeError):
        BatchSuccess(index=0, input=0, value=0, ok=False)  # type: ignore[call-arg]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        failed.ok = True  # type: ignore[misc]
    assert typing.get_args(pecapi.BatchResult[int, str]) == (
        BatchSuccess[int, str],
        BatchFailure[int],
    )
    skipped = results[5]
    assert isinstance(skipped, BatchSkipped) and isinstance(skipped, BatchFailure)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        skipped.ok = True  # type: ignore[misc]


def test_provision_request_takes_the_registration_positionally(tmp_path: Path) -> None:
    registration = make_registration()
    form = tmp_path / "form.pdf"
    form.write_bytes(PDF_BYTES)
    request = ProvisionRequest(registration, documents=[form])
    assert request == ProvisionRequest(registration=registration, documents=[form])
    assert request.key == "mario.rossi@testcert.legalmail.it"
    with pytest.raises(TypeError):
        ProvisionRequest(registration, [form])  # type: ignore[misc]


def test_pecapi_provision_is_the_module_after_import_pecapi() -> None:
    # A fresh interpreter: in this one another test may have imported it already.
    code = textwrap.dedent(
        """
        import pecapi
        assert pecapi.provision.__name__ == "pecapi.provision"
        assert callable(pecapi.provision.provision)
        assert callable(pecapi.provision.read_registrations_csv)
        assert pecapi.provision.ProvisionRequest is not None
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)

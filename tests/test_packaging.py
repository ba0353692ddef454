"""The package as pip installs it: metadata, the files of the wheel and the sdist, the
entry points, and what works without the optional extras (``cli``: rich; ``testing``:
pytest and pytest-asyncio).

The wheel and the sdist are built once for the module, with the dev extra's hatchling,
from this tree. The sdist's own test run is ``.ci/sdist`` (minutes, not part of this).
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from email.message import Message
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pecapi import __version__
from pecapi.cli.output import RICH_MISSING

ROOT = Path(__file__).resolve().parents[1]
DIST_INFO = f"pecapi-{__version__}.dist-info"
PLUGIN = "pecapi.testing.pytest_plugin"

BUILD = """\
import sys
from hatchling.build import build_sdist, build_wheel
print(build_wheel(sys.argv[1]))
print(build_sdist(sys.argv[1]))
"""

# What a module that is not installed raises when imported (see _python's `missing`).
MISSING = """\
raise ModuleNotFoundError("No module named {name!r} (hidden by the test)", name={name!r})
"""


def _python(
    *args: str, cwd: Path = ROOT, missing: tuple[str, ...] = (), stubs: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python *args``; the top-level packages in ``missing`` are hidden, as in an install
    without the extra that brings them, by packages in ``stubs`` first on sys.path that
    raise ModuleNotFoundError (sys.meta_path and sys.modules tricks do not survive pytest's
    assertion-rewriting import hook)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("PYTHONPATH", None)
    if missing:
        assert stubs is not None
        for name in missing:
            (stubs / name).mkdir(parents=True, exist_ok=True)
            (stubs / name / "__init__.py").write_text(MISSING.format(name=name))
        env["PYTHONPATH"] = str(stubs)
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, sdist) built from this tree."""
    out = tmp_path_factory.mktemp("dist")
    built = _python("-c", BUILD, str(out))
    assert built.returncode == 0, built.stderr
    wheel, sdist = (out / name for name in built.stdout.split())
    return wheel, sdist


@pytest.fixture(scope="module")
def wheel_names(dists: tuple[Path, Path]) -> set[str]:
    with zipfile.ZipFile(dists[0]) as zf:
        return set(zf.namelist())


@pytest.fixture(scope="module")
def metadata(dists: tuple[Path, Path]) -> Message:
    with zipfile.ZipFile(dists[0]) as zf:
        return email.parser.Parser().parsestr(zf.read(f"{DIST_INFO}/METADATA").decode())


def _requires(metadata: Message, extra: str | None) -> set[str]:
    """The names of the distributions installed with ``extra`` (None: always)."""
    names = set()
    for line in metadata.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or (extra and req.marker.evaluate({"extra": extra})):
            names.add(req.name)
    return names


# -- metadata ----------------------------------------------------------------------------


def test_the_license_is_an_spdx_expression_with_its_file(metadata: Message) -> None:
    major, minor = map(int, metadata["Metadata-Version"].split(".")[:2])
    assert (major, minor) >= (2, 4)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["License"] is None  # the deprecated free-text field
    assert not [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]


def test_metadata_names_authors_urls_python_and_classifiers(metadata: Message) -> None:
    assert metadata["Version"] == __version__
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Author"]
    assert metadata.get_all("Project-URL")
    classifiers = set(metadata.get_all("Classifier") or [])
    assert {"Typing :: Typed", "Framework :: AsyncIO", "Framework :: Pytest"} <= classifiers
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert str(metadata.get_payload()).startswith("# pecapi\n")  # the README


def test_rich_and_pytest_come_only_with_their_extras(metadata: Message) -> None:
    core = _requires(metadata, None)
    assert core == {"aiohttp", "attrs", "cattrs", "yarl"}
    assert _requires(metadata, "cli") == core | {"rich"}
    assert _requires(metadata, "testing") == core | {"pytest", "pytest-asyncio"}
    # the README's test command installs what both extras bring
    assert _requires(metadata, "dev") >= core | {"rich", "pytest", "pytest-asyncio"}


def test_entry_points(dists: tuple[Path, Path], tmp_path: Path) -> None:
    with zipfile.ZipFile(dists[0]) as zf:
        zf.extractall(tmp_path)
    points = importlib.metadata.Distribution.at(tmp_path / DIST_INFO).entry_points
    assert {(ep.group, ep.name, ep.value) for ep in points} == {
        ("console_scripts", "pecapi", "pecapi.cli:main"),
        # named as the module, so that a `pytest_plugins` line finds it already loaded
        ("pytest11", PLUGIN, PLUGIN),
    }


# -- files -------------------------------------------------------------------------------


def test_the_wheel_ships_the_license_the_typing_marker_and_the_testing_guide(
    wheel_names: set[str],
) -> None:
    assert f"{DIST_INFO}/licenses/LICENSE" in wheel_names
    assert "pecapi/py.typed" in wheel_names
    assert "pecapi/testing/README.md" in wheel_names
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pecapi").rglob("*.py")}
    assert sources <= wheel_names
    assert not [n for n in wheel_names if not n.startswith(("pecapi/", DIST_INFO + "/"))]
    assert not [n for n in wheel_names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_sdist_ships_the_tests_with_their_data_and_the_documents(
    dists: tuple[Path, Path],
) -> None:
    prefix = f"pecapi-{__version__}/"
    with tarfile.open(dists[1]) as tf:
        names = {m.name.removeprefix(prefix) for m in tf.getmembers() if m.isfile()}
    for name in ("pyproject.toml", "LICENSE", "README.md", "CHANGELOG.md", "PKG-INFO"):
        assert name in names
    assert {"tests/conftest.py", "tests/data/pec.openapi.json"} <= names
    tree = {
        p.relative_to(ROOT).as_posix()
        for top in ("pecapi", "tests")
        for p in (ROOT / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert tree - names == set()  # every test, conftest.py and data file; the testing guide
    if (ROOT / ".git").exists():  # a clone (not an unpacked sdist): all it tracks but CI's
        listed = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        tracked = {name for name in listed.stdout.splitlines() if not name.startswith(".ci/")}
        assert tracked - names == set()
    assert not [n for n in names if n.startswith((".venv", ".ci/", ".git/"))]


def test_an_editable_install_is_a_static_path_that_type_checkers_follow() -> None:
    dist = importlib.metadata.distribution("pecapi")
    direct = dist.read_text("direct_url.json")
    if direct is None or not json.loads(direct).get("dir_info", {}).get("editable"):
        pytest.skip("pecapi is not installed in editable mode here")
    pth = [f for f in dist.files or [] if f.suffix == ".pth"]
    assert pth, "no .pth file: an import hook that mypy and pyright cannot follow"
    lines = [line for f in pth for line in (f.read_text() or "").splitlines() if line]
    assert not [line for line in lines if line.startswith("import")]  # an import hook
    assert str(ROOT) in {str(Path(line).resolve()) for line in lines}


# -- without the optional extras ---------------------------------------------------------


def test_importing_pecapi_imports_neither_rich_nor_pytest() -> None:
    script = (
        "import sys, pecapi, pecapi.cli, pecapi.testing;"
        "print(sorted({m.partition('.')[0] for m in sys.modules}"
        " & {'rich', 'pytest', '_pytest', 'pytest_asyncio'}))"
    )
    proc = _python("-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


CLI = "import sys; from pecapi.cli import main; sys.exit(main(sys.argv[1:]))"


def test_without_rich_the_command_says_which_extra_before_doing_anything(tmp_path: Path) -> None:
    proc = _python("-c", CLI, "demo", "--count", "1", missing=("rich",), stubs=tmp_path)
    assert proc.returncode == 6, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == f"pecapi: configuration error, nothing sent: {RICH_MISSING}\n"
    assert "pip install 'pecapi[cli]'" in proc.stderr


def test_without_rich_json_output_help_and_the_emulator_work(tmp_path: Path) -> None:
    proc = _python("-c", CLI, "demo", "--count", "2", "--json", missing=("rich",), stubs=tmp_path)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events] == ["outcome", "outcome", "summary"]
    assert events[-1]["complete"] == 2
    for args in (["--help"], ["emulator", "--help"], ["mailboxes", "list", "--help"]):
        proc = _python("-c", CLI, *args, missing=("rich",), stubs=tmp_path)
        assert proc.returncode == 0, (args, proc.stderr)


def test_without_rich_an_api_command_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("a-sandbox-token")
    # Nothing listens on loopback port 9: a request sent would be a transport error (4).
    args = ("--sandbox", "--base-url", "http://127.0.0.1:9", "--token-file", str(token))
    proc = _python("-c", CLI, *args, "mailboxes", "list", missing=("rich",), stubs=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        6,
        f"pecapi: configuration error, nothing sent: {RICH_MISSING}\n",
    )


def test_the_plugin_without_pytest_names_the_extra(tmp_path: Path) -> None:
    proc = _python("-c", f"import {PLUGIN}", missing=("pytest", "_pytest"), stubs=tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f"ImportError: {PLUGIN} needs pytest and pytest-asyncio: pip install 'pecapi[testing]'"
    )


USER_TESTS = """\
import aiohttp
import pytest

from pecapi.testing import Emulator, RunningEmulator


def test_emulator(pec_emulator):
    assert isinstance(pec_emulator, Emulator)


@pytest.mark.asyncio
async def test_server(pec_server):
    assert isinstance(pec_server, RunningEmulator)
    async with aiohttp.ClientSession() as s, s.get(pec_server.url + "/pec") as r:
        assert r.status == 401
"""


def _pytest_in(
    tmp_path: Path, tests: str, *args: str, conftest: str = "", missing: str = ""
) -> str:
    """pytest's output on a user's project of one test file (and a conftest.py)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(conftest)
    (project / "test_user.py").write_text(tests)
    options = ("-q", "-p", "no:cacheprovider", "-W", "error", "-rE", *args)
    hidden = (missing,) if missing else ()
    proc = _python("-m", "pytest", *options, cwd=project, missing=hidden, stubs=tmp_path / "stubs")
    return f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize(
    "conftest", ["", f"pytest_plugins = [{PLUGIN!r}]\n"], ids=["entry-point", "and-conftest"]
)
def test_pytest_loads_the_fixtures_by_itself(tmp_path: Path, conftest: str) -> None:
    """No conftest line needed; one left from before is no second registration."""
    loop_scope = "asyncio_default_fixture_loop_scope=function"
    out = _pytest_in(tmp_path, USER_TESTS, "-o", loop_scope, conftest=conftest)
    assert out.startswith("exit 0\n"), out
    assert "2 passed" in out


def test_without_pytest_asyncio_only_the_async_fixtures_fail(tmp_path: Path) -> None:
    """Installed pecapi must not break the pytest run of a project without pytest-asyncio."""
    tests = textwrap.dedent("""\
        def test_emulator(pec_emulator):
            assert pec_emulator.wallet > 0

        def test_server(pec_server):
            pass
    """)
    out = _pytest_in(tmp_path, tests, "-p", "no:asyncio", missing="pytest_asyncio")
    assert out.startswith("exit 1\n"), out
    assert "1 passed, 1 error" in out
    assert "pec_server needs pytest-asyncio: pip install 'pecapi[testing]'" in out

"""``import pecapi`` loads the client and what it needs, nothing more: the command line,
rich, the emulator, the retry library, callbacks, OAuth and CSV provisioning load when
first used, and every public name still resolves (``pecapi.X``, ``from pecapi import X``).

Each check runs in a fresh interpreter: in this one, other tests have imported them all.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pecapi.testing import DEFAULT_TOKEN, RunningEmulator

ROOT = Path(__file__).resolve().parents[1]

#: Modules (and packages, with everything under them) that ``import pecapi`` must not load.
NOT_AT_IMPORT = (
    "pecapi.cli",
    "pecapi.testing",
    "pecapi.callbacks",
    "pecapi.callback_signing",
    "pecapi.oauth",
    "pecapi.oauth_choice",
    "pecapi.oauth_v2",
    "pecapi.oauth_service",
    "pecapi.provision",
    "pecapi.provision_input",
    "pecapi.provision_run",
    "pecapi.journal",
    "pecapi.pricing",
    "rich",
    "tenacity",
    "pytest",
    "aiohttp.web",
    "csv",
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("PYTHONPATH", None)
    return env


def _python(code: str) -> Any:
    """Run ``code`` in a fresh interpreter; what it printed last, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


#: Prints the watched modules loaded so far, as a JSON list.
REPORT = (
    f"watched = {NOT_AT_IMPORT!r}\n"
    "print(json.dumps(sorted(m for m in sys.modules "
    "if any(m == w or m.startswith(w + '.') for w in watched))))\n"
)


def test_import_pecapi_loads_none_of_the_modules_used_only_on_demand() -> None:
    assert _python("import json, sys\nimport pecapi\n" + REPORT) == []


def test_the_check_sees_a_module_loaded_on_demand() -> None:
    loaded = _python("import json, sys\nimport pecapi\npecapi.CallbackSigner\n" + REPORT)
    assert "pecapi.callbacks" in loaded


async def test_a_client_making_calls_loads_none_of_them_either(
    pec_server: RunningEmulator,
) -> None:
    box = pec_server.emulator.seed_mailbox("lazy.import@testcert.legalmail.it", stato="evasa")
    code = f"""
import asyncio, json, sys
import pecapi

async def main():
    async with pecapi.PecClient({DEFAULT_TOKEN!r}, sandbox=True, base_url={pec_server.url!r}) as c:
        assert (await c.mailboxes.get({box!r})).id == {box!r}
        assert await c.mailboxes.list()
        try:
            await c.mailboxes.get("0" * 24)
        except pecapi.NotFoundError:
            pass

asyncio.run(main())
{REPORT}"""
    # Not subprocess.run: the emulator answers from this process's event loop.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        cwd=ROOT,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out.decode().strip().splitlines()[-1]) == []


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("CallbackSigner", "pecapi.callbacks"),
        ("OAuthTokenProvider", "pecapi.oauth"),
        ("OAuthV2TokenProvider", "pecapi.oauth_v2"),
        ("oauth_provider", "pecapi.oauth_choice"),
        ("provision", "pecapi.provision"),
    ],
)
def test_a_lazy_name_loads_its_module_on_first_use(name: str, module: str) -> None:
    code = (
        "import json, sys, pecapi; "
        f"before = {module!r} in sys.modules; "
        f"from pecapi import {name}; "
        f"print(json.dumps([before, {module!r} in sys.modules, "
        f"pecapi.{name} is {name}]))"
    )
    assert _python(code) == [False, True, True]


def test_every_public_name_resolves_and_is_the_object_of_its_module() -> None:
    code = """
import importlib, json, sys, types
import pecapi
names = list(pecapi.__all__)
missing = [n for n in names if not hasattr(pecapi, n)]
namespace = {}
exec("from pecapi import *", namespace)
star_missing = [n for n in names if n not in namespace]
# the lazy names are the very objects of the modules that define them
same = [
    pecapi.CallbackSigner is importlib.import_module("pecapi.callbacks").CallbackSigner,
    pecapi.pec_scopes is importlib.import_module("pecapi.oauth").pec_scopes,
    isinstance(pecapi.provision, types.ModuleType),
    pecapi.provision.__name__ == "pecapi.provision",
]
print(json.dumps([missing, star_missing, same, sorted(set(names) - set(dir(pecapi)))]))
"""
    missing, star_missing, same, not_in_dir = _python(code)
    assert missing == []
    assert star_missing == []
    assert same == [True, True, True, True]
    assert not_in_dir == []


def test_submodules_loaded_by_import_pecapi_before_stay_reachable_as_attributes() -> None:
    code = (
        "import json, pecapi; "
        "print(json.dumps([pecapi.oauth.OAUTH_SANDBOX_URL.startswith('https://'), "
        "pecapi.oauth_v2.__name__, pecapi.journal.__name__]))"
    )
    assert _python(code) == [True, "pecapi.oauth_v2", "pecapi.journal"]


def test_an_unknown_attribute_is_still_an_attribute_error() -> None:
    code = (
        "import json, pecapi\n"
        "try:\n    pecapi.no_such_name\nexcept AttributeError as exc:\n"
        "    print(json.dumps(str(exc)))\n"
    )
    assert "no_such_name" in _python(code)


def test_type_checkers_see_the_lazy_names_and_still_catch_a_misspelt_one(tmp_path: Path) -> None:
    # The module __getattr__ is hidden from type checkers: were it visible, mypy would
    # type every unknown ``pecapi.X`` as Any and a misspelt name would pass.
    code = (
        "import pecapi\n"
        "from pecapi import CallbackSigner, provision\n"
        "signer: type[CallbackSigner] = pecapi.CallbackSigner\n"
        "scopes: list[str] = pecapi.pec_scopes('mailboxes.get', sandbox=True)\n"
        "run = provision.provision\n"
        "pecapi.PecClinet\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), "-c", code],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, done.stdout
    assert 'no attribute "PecClinet"' in errors[0]

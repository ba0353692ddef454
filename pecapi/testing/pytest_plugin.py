"""pytest fixtures for code that talks to the PEC API.

With the ``testing`` extra (``pip install 'pecapi[testing]'``: pytest and pytest-asyncio),
pytest loads them by itself through the ``pytest11`` entry point: no ``conftest.py``
line is needed. Where plugin autoloading is off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``),
name them in the top-level ``conftest.py``, which is harmless where it is on::

    pytest_plugins = ["pecapi.testing.pytest_plugin"]

- ``pec_emulator``: a fresh sandbox :class:`~pecapi.testing.Emulator` accepting
  :data:`~pecapi.testing.DEFAULT_TOKEN` (every scope);
- ``pec_server``: a :class:`~pecapi.testing.RunningEmulator` serving ``pec_emulator`` on a free
  loopback port for the duration of the test (async fixture, function-scoped loop);
- ``pec_oauth_server``: a :class:`~pecapi.testing.RunningOAuth` serving an
  :class:`~pecapi.testing.OAuthEmulator` that issues tokens for ``pec_emulator``
  (account ``mail@domain.com`` / ``pecapi-emulator-api-key``);
- ``pec_oauthv2_server``: a :class:`~pecapi.testing.RunningOAuthV2` serving an
  :class:`~pecapi.testing.OAuthV2Emulator` (the v2 token service, refresh tokens and
  wallet) for ``pec_emulator``, with the same account.

Since pytest loads this module in every run of a project where pecapi is installed, it
imports the emulator only when a test asks for a fixture, and without pytest-asyncio the
two async fixtures fail the tests that ask for them (naming the extra) rather than pytest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

try:
    import pytest
except ImportError as exc:
    raise ImportError(
        "pecapi.testing.pytest_plugin needs pytest and pytest-asyncio: "
        "pip install 'pecapi[testing]'",
        name=exc.name,
    ) from exc

try:
    import pytest_asyncio
except ImportError:
    pytest_asyncio = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .emulator import Emulator, RunningEmulator
    from .oauth import RunningOAuth
    from .oauth_v2 import RunningOAuthV2

__all__ = ["pec_emulator", "pec_oauth_server", "pec_oauthv2_server", "pec_server"]

#: What a test asking for an async fixture is told when pytest-asyncio is not installed.
NO_PYTEST_ASYNCIO = "{} needs pytest-asyncio: pip install 'pecapi[testing]'"

_T = TypeVar("_T")


def _async_fixture(func: Callable[..., AsyncIterator[_T]]) -> Any:
    """``func`` as a pytest-asyncio fixture, or without pytest-asyncio one that fails."""
    if pytest_asyncio is not None:
        return pytest_asyncio.fixture(func)

    def missing() -> NoReturn:
        pytest.fail(NO_PYTEST_ASYNCIO.format(func.__name__), pytrace=False)

    return pytest.fixture(name=func.__name__)(missing)


@pytest.fixture
def pec_emulator() -> Emulator:
    """A fresh sandbox emulator (seed 0, credit 1000, DEFAULT_TOKEN)."""
    from .emulator import Emulator

    return Emulator()


@_async_fixture
async def pec_server(pec_emulator: Emulator) -> AsyncIterator[RunningEmulator]:
    """``pec_emulator`` served on 127.0.0.1 (a free port) while the test runs."""
    async with pec_emulator.serve() as running:
        yield running


@_async_fixture
async def pec_oauth_server(pec_emulator: Emulator) -> AsyncIterator[RunningOAuth]:
    """An OAuth emulator issuing tokens for ``pec_emulator``, served while the test runs."""
    from .oauth import OAuthEmulator

    async with OAuthEmulator(pec_emulator).serve() as running:
        yield running


@_async_fixture
async def pec_oauthv2_server(pec_emulator: Emulator) -> AsyncIterator[RunningOAuthV2]:
    """An OAuth v2 emulator issuing tokens for ``pec_emulator``, served while the test runs."""
    from .oauth_v2 import OAuthV2Emulator

    async with OAuthV2Emulator(pec_emulator).serve() as running:
        yield running

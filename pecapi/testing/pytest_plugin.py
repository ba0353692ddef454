"""pytest fixtures for code that talks to the PEC API.

Enable them in your top-level ``conftest.py``::

    pytest_plugins = ["pecapi.testing.pytest_plugin"]

- ``pec_emulator``: a fresh sandbox :class:`~pecapi.testing.Emulator` accepting
  :data:`~pecapi.testing.DEFAULT_TOKEN` (every scope);
- ``pec_server``: a :class:`~pecapi.testing.RunningEmulator` serving ``pec_emulator`` on a free
  loopback port for the duration of the test (async fixture, function-scoped loop);
- ``pec_oauth_server``: a :class:`~pecapi.testing.RunningOAuth` serving an
  :class:`~pecapi.testing.OAuthEmulator` that issues tokens for ``pec_emulator``
  (account ``mail@domain.com`` / ``pecapi-emulator-api-key``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from .emulator import Emulator, RunningEmulator
from .oauth import OAuthEmulator, RunningOAuth

__all__ = ["pec_emulator", "pec_oauth_server", "pec_server"]


@pytest.fixture
def pec_emulator() -> Emulator:
    """A fresh sandbox emulator (seed 0, credit 1000, DEFAULT_TOKEN)."""
    return Emulator()


@pytest_asyncio.fixture
async def pec_server(pec_emulator: Emulator) -> AsyncIterator[RunningEmulator]:
    """``pec_emulator`` served on 127.0.0.1 (a free port) while the test runs."""
    async with pec_emulator.serve() as running:
        yield running


@pytest_asyncio.fixture
async def pec_oauth_server(pec_emulator: Emulator) -> AsyncIterator[RunningOAuth]:
    """An OAuth emulator issuing tokens for ``pec_emulator``, served while the test runs."""
    async with OAuthEmulator(pec_emulator).serve() as running:
        yield running

"""Which OAuth service makes the tokens: :func:`oauth_provider` picks v2
(:class:`~pecapi.OAuthV2TokenProvider`, ``oauth.openapi.com``: accounts made on
openapi.com) or v1 (:class:`~pecapi.OAuthTokenProvider`, ``oauth.openapi.it``: the older
accounts) by a version given, else ``OPENAPI_OAUTH_VERSION``, else v2."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from pecapi.errors import ConfigurationError
from pecapi.oauth import OAuthTokenProvider
from pecapi.oauth_v2 import OAuthV2TokenProvider
from pecapi.secret import Secret

__all__ = ["OAUTH_VERSION_ENV", "oauth_provider"]

#: The environment variable :func:`oauth_provider` reads when no version is given.
OAUTH_VERSION_ENV = "OPENAPI_OAUTH_VERSION"


def _version(version: int | str | None) -> int:
    source = "version"
    if version is None:
        version = os.environ.get(OAUTH_VERSION_ENV, "").strip() or "2"
        source = OAUTH_VERSION_ENV
    if not isinstance(version, bool) and isinstance(version, (int, str)):
        text = str(version).strip().lower().removeprefix("v")
        if text in ("1", "2"):
            return int(text)
    raise ConfigurationError(f"{source} must be 1 or 2 (the OAuth service's version)")


def oauth_provider(
    email: str | None = None,
    api_key: str | None = None,
    *,
    scopes: Iterable[str],
    sandbox: bool = False,
    version: int | str | None = None,
    **options: Any,
) -> OAuthTokenProvider | OAuthV2TokenProvider:
    """An OAuth token provider for the account's service version.

    ``version`` 2 (the default) is :class:`~pecapi.OAuthV2TokenProvider` (``oauth.openapi.com``:
    the accounts made on openapi.com); 1 is :class:`~pecapi.OAuthTokenProvider`
    (``oauth.openapi.it``: the older accounts). When ``version`` is None it comes from
    ``OPENAPI_OAUTH_VERSION`` (``1``/``2``, ``v1``/``v2``), else 2. Both read the same
    credentials: ``email``/``api_key``, else ``OPENAPI_EMAIL`` and
    ``OPENAPI_SANDBOX_API_KEY``/``OPENAPI_API_KEY``. ``options`` are the class's other
    arguments (``ttl``, ``renew_before``, ``base_url``, ``session``, ``timeout``...).
    """
    key = None if api_key is None else Secret(api_key)  # wrapped first, as in the classes
    del api_key
    chosen = OAuthV2TokenProvider if _version(version) == 2 else OAuthTokenProvider
    # The key is plain text only inside the call (no local of this frame holds it),
    # and the constructor wraps it before anything can raise.
    return chosen(
        email, None if key is None else key.reveal(), scopes=scopes, sandbox=sandbox, **options
    )

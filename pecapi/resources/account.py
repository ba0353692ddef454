"""``client.account``: what the account has, as the token service shows it.

The PEC API does not show the wallet its paid operations are charged to; the token
service does, to the account's e-mail and API key. So ``client.account.wallet()`` asks
the client's token provider, which holds them (:class:`~pecapi.OAuthTokenProvider`: v1
``GET /credit``; :class:`~pecapi.OAuthV2TokenProvider`: v2 ``GET /wallet``). A client
given a fixed token has no credentials to ask with.
"""

from __future__ import annotations

from pecapi.errors import ConfigurationError
from pecapi.wallet import Wallet, WalletSource

__all__ = ["Account"]


class Account:
    """The account of a client's token provider (``client.account``).

    ``source`` is the client's token provider, or None for a fixed token."""

    __slots__ = ("_source",)

    def __init__(self, source: object) -> None:
        self._source = source

    async def wallet(self) -> Wallet:
        """The account's wallet (credit in EUR) through the token provider's credentials:
        OAuth v1 ``GET /credit``, OAuth v2 ``GET /wallet``.

        Raises :class:`~pecapi.ConfigurationError`, nothing sent, when the client's
        token is a fixed one (or a provider that cannot read the wallet); the token
        service's errors otherwise (a wrong API key is an
        :class:`~pecapi.AuthenticationError`)."""
        source = self._source
        if not isinstance(source, WalletSource):
            what = "a fixed token" if source is None else f"a {type(source).__name__}"
            raise ConfigurationError(
                f"this client has {what}, which cannot read the wallet: the token service "
                "shows it to the account's e-mail and API key; give the client an OAuth "
                "provider (pecapi.oauth_provider(...), OAuthV2TokenProvider or "
                "OAuthTokenProvider), or call wallet() on one"
            )
        return await source.wallet()

    def __repr__(self) -> str:
        return f"Account({type(self._source).__name__ if self._source is not None else None})"

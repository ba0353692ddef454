"""One OAuth token per account and scope set for the whole fleet.

:class:`FleetToken` wraps the user's provider (:class:`~pecapi.OAuthTokenProvider`, v2, or
any :class:`~pecapi.TokenProvider`). The token lives in one Redis hash,
``<ns>:token:<sha256 of the provider's kind, account, scopes and service>``: the key names
no credential, and the token is stored there and in the processes' memory (as a
:class:`~pecapi.secret.Secret`) only, never logged. Its Redis key expires with the token.

- a process with a fresh token uses it without asking Redis;
- past its renewal time (``renew_before`` the expiry, as the provider's), one process takes
  the ``mint`` lease and makes the next token with its provider; the others keep using the
  current one meanwhile, or wait for the new one when there is none;
- on a 401 the token is deleted from Redis only if it is still the current one (compared by
  digest in a script), so a hundred processes refused at once replace it once, and the
  others pick up the replacement.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable

from pecapi.errors import ConfigurationError, CoordinationError
from pecapi.fleet.leases import Leases
from pecapi.fleet.store import Store, digest
from pecapi.secret import Secret
from pecapi.transport.auth import TokenProvider

__all__ = ["FleetToken", "provider_identity"]

logger = logging.getLogger("pecapi")

#: How long a provider that says nothing of its tokens' expiry has its token shared.
UNKNOWN_LIFETIME = 300.0
#: The longest a process waits for another one's new token before it gives up.
WAIT_FOR_MINT = 60.0

# KEYS[1] the token hash; ARGV[1] digest of the refused token. Deleted if still current.
REJECT = """
if redis.call('HGET', KEYS[1], 'digest') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def provider_identity(provider: TokenProvider) -> str:
    """What names a provider's tokens: its kind, account, scopes and service (of a
    :class:`~pecapi.oauth_provider_base.RenewingProvider`); hashed into the key."""
    email = getattr(provider, "_email", None)
    scopes = getattr(provider, "scopes", None)
    service = getattr(provider, "_service", None)
    if not isinstance(email, str) or scopes is None or service is None:
        raise ConfigurationError(
            f"pecapi.fleet cannot tell which account a {type(provider).__name__} is for: "
            "pass token_identity= to RedisCoordination"
        )
    base = str(getattr(service, "base_url", ""))
    return "\x1e".join((type(provider).__qualname__, email.lower(), base, " ".join(sorted(scopes))))


class _Held:
    __slots__ = ("expires_at", "refresh_at", "token")

    def __init__(self, token: Secret, expires_at: float, refresh_at: float) -> None:
        self.token = token
        self.expires_at = expires_at
        self.refresh_at = refresh_at


class FleetToken:
    """A :class:`~pecapi.TokenProvider` sharing ``provider``'s token through Redis."""

    __slots__ = ("_clock", "_flight", "_held", "_key", "_leases", "_provider", "_store")

    def __init__(
        self,
        provider: TokenProvider,
        *,
        store: Store,
        leases: Leases,
        identity: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._provider = provider
        self._store = store
        self._leases = leases
        self._key = store.key("token", digest(identity or provider_identity(provider)))
        self._clock = clock
        self._held: _Held | None = None
        self._flight: asyncio.Lock | None = None

    @property
    def wrapped(self) -> TokenProvider:
        """The wrapped provider (the client reads the wallet with its credentials)."""
        return self._provider

    def __repr__(self) -> str:
        return f"FleetToken({type(self._provider).__name__})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("token providers are not picklable")

    # -- the TokenProvider protocol ----------------------------------------------------------

    async def get_token(self) -> str:
        held = self._held
        if held is not None and self._clock() < held.refresh_at:
            return held.token.reveal()
        if self._flight is None:
            self._flight = asyncio.Lock()
        async with self._flight:  # one process asks Redis once for all its callers
            held = self._held
            if held is not None and self._clock() < held.refresh_at:
                return held.token.reveal()
            try:
                self._held = await self._from_fleet()
            except CoordinationError as exc:
                self._store.fallback(exc, "the token")
                return await self._provider.get_token()
            return self._held.token.reveal()

    async def token_rejected(self, token: str) -> None:
        """The API refused ``token``: forget it here and in Redis (if still current)."""
        held = self._held
        if held is not None and held.token.reveal() == token:
            self._held = None
        rejected = getattr(self._provider, "token_rejected", None)
        if rejected is not None:
            await rejected(token)
        script = self._store.script("token-reject", REJECT)
        key, seen = self._key, _sha(token)
        del token
        try:
            await self._store.run("dropping the token", lambda _: script([key], [seen]))
        except CoordinationError as exc:
            self._store.fallback(exc, "the token")

    # -- internals -------------------------------------------------------------------------

    async def _read(self) -> _Held | None:
        key = self._key
        found = await self._store.hgetall("reading the token", key)
        if not found or "token" not in found:
            return None
        try:
            held = _Held(
                Secret(found["token"]), float(found["expires_at"]), float(found["refresh_at"])
            )
        except (KeyError, ValueError):
            return None
        return held if self._clock() < held.expires_at else None

    async def _from_fleet(self) -> _Held:
        give_up = time.monotonic() + WAIT_FOR_MINT + self._leases.ttl
        pause = 0.01
        while True:
            current = await self._read()
            if current is not None and self._clock() < current.refresh_at:
                return current
            lease = await self._leases.try_acquire(self._key + ":mint")
            if lease is not None:
                try:
                    again = await self._read()  # made by another process just now?
                    if again is not None and self._clock() < again.refresh_at:
                        return again
                    return await self._mint(again or current)
                finally:
                    await self._leases.release(lease)
            if current is not None:
                return current  # another process is renewing it; this one still works
            if time.monotonic() >= give_up:
                raise CoordinationError(
                    "no token: another process holds the lease to make one and none came"
                )
            await asyncio.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 0.25)

    async def _mint(self, previous: _Held | None) -> _Held:
        rejected = getattr(self._provider, "token_rejected", None)
        if previous is not None and rejected is not None:
            # The provider may hold this very token: make it create the next one.
            await rejected(previous.token.reveal())
        token = Secret(await self._provider.get_token())
        now = self._clock()
        expires = getattr(self._provider, "expires_at", None)
        if not isinstance(expires, (int, float)) or expires <= now:
            expires = now + UNKNOWN_LIFETIME
        renew_before = getattr(self._provider, "_renew_before", 300.0)
        if not isinstance(renew_before, (int, float)):
            renew_before = 300.0
        held = _Held(token, float(expires), float(expires - min(renew_before, (expires - now) / 2)))
        key = self._key
        fields = {
            "token": token.reveal(),
            "digest": _sha(token.reveal()),
            "expires_at": repr(held.expires_at),
            "refresh_at": repr(held.refresh_at),
        }

        async def store(r: object) -> None:
            pipe = self._store.client().pipeline(transaction=True)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.pexpireat(key, int(held.expires_at * 1000))
            await pipe.execute()

        try:
            await self._store.run("storing the token", store)
        finally:
            fields.clear()  # no frame keeps the plain token
        logger.info("pecapi.fleet: a new token for the fleet (expires in %.0fs)", expires - now)
        return held

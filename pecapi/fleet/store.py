"""The Redis connection of a fleet: created lazily in the loop that uses it, its keys
namespaced, and every failure of it turned into one typed error.

Every operation of :mod:`pecapi.fleet` goes through :meth:`Store.run`: a Redis error (down,
refused, timed out, a script error) becomes a :class:`~pecapi.CoordinationError` carrying a
scrubbed copy of it, raised unchained (redis-py's exceptions and frames hold connection
objects). With ``on_unavailable="local"`` a failure also opens a short "down" period in
which the fleet's parts do not try Redis again and fall back to local limits at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pecapi.errors import ConfigurationError, CoordinationError, ScrubbedCause
from pecapi.transport.transport_errors import raise_unchained

__all__ = ["OnUnavailable", "Store", "digest", "text"]

T = TypeVar("T")

logger = logging.getLogger("pecapi")

OnUnavailable = Literal["fail", "local"]

#: After a failure with ``on_unavailable="local"``: seconds during which Redis is not tried
#: again (every request would otherwise wait for a connection timeout first).
DOWN_FOR = 5.0


def digest(*parts: str) -> str:
    """A key part naming ``parts`` without showing them (an address, an account, scopes)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def text(value: object) -> str:
    """A Redis answer as text."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


class Store:
    """One Redis client (``redis.asyncio``) for one event loop, and the namespace."""

    __slots__ = (
        "_client",
        "_down_until",
        "_given",
        "_loop",
        "_pool",
        "_scripts",
        "_url",
        "_warned",
        "max_connections",
        "namespace",
        "on_unavailable",
        "timeout",
    )

    def __init__(
        self,
        url: str | aioredis.Redis,
        *,
        namespace: str,
        on_unavailable: OnUnavailable,
        timeout: float,
        max_connections: int = 50,
    ) -> None:
        if not isinstance(namespace, str) or not namespace or any(c.isspace() for c in namespace):
            raise ConfigurationError("namespace must be a non-empty string without spaces")
        if on_unavailable not in ("fail", "local"):
            raise ConfigurationError('on_unavailable must be "fail" or "local"')
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        if isinstance(url, aioredis.Redis):
            self._given: aioredis.Redis | None = url
            self._url = ""
        elif isinstance(url, str) and url.startswith(("redis://", "rediss://", "unix://")):
            self._given = None
            self._url = url
        else:
            raise ConfigurationError(
                "url must be a redis://, rediss:// or unix:// URL or a redis.asyncio.Redis"
            )
        self.namespace: str = namespace
        self.on_unavailable: OnUnavailable = on_unavailable
        self.timeout: float = float(timeout)
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ConfigurationError("max_connections must be an int")
        if max_connections < 1:
            raise ConfigurationError("max_connections must be at least 1")
        self.max_connections: int = max_connections
        self._pool: aioredis.BlockingConnectionPool | None = None
        self._client: aioredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}
        self._down_until = 0.0
        self._warned = 0.0

    def key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    def client(self) -> aioredis.Redis:
        """The Redis client, made on first use in the running loop."""
        loop = asyncio.get_running_loop()
        if self._given is not None:
            return self._given
        if self._client is None or self._loop is not loop:
            if self._client is not None and self._loop is not None and not self._loop.is_closed():
                raise ConfigurationError(
                    "a RedisCoordination is used in one event loop: make one per loop"
                )
            # Short timeouts: an unreachable Redis must fail the call quickly (nothing is
            # sent then), not hold it for redis-py's defaults. One quick retry on a
            # connection error: every script below may safely run twice.
            # A blocking pool: a burst of calls waits for one of ``max_connections``
            # (up to ``timeout``) instead of failing with "too many connections".
            self._pool = aioredis.BlockingConnectionPool.from_url(
                self._url,
                max_connections=self.max_connections,
                timeout=self.timeout,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), 1),
                retry_on_error=[RedisConnectionError, RedisTimeoutError],
                decode_responses=True,
            )
            self._client = aioredis.Redis(connection_pool=self._pool)
            self._loop = loop
            self._scripts = {}
        return self._client

    def script(self, name: str, lua: str) -> Any:
        """The registered script ``name`` (EVALSHA, loaded again on NOSCRIPT)."""
        client = self.client()
        found = self._scripts.get(name)
        if found is None:
            found = self._scripts[name] = client.register_script(lua)
        return found

    @property
    def down(self) -> bool:
        """Redis failed a moment ago and the fleet falls back to local limits."""
        return self.on_unavailable == "local" and time.monotonic() < self._down_until

    async def run(self, what: str, operation: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """``operation(client)``, its Redis errors as a :class:`CoordinationError`."""
        if self.down:
            raise CoordinationError(f"{what}: Redis was unavailable a moment ago")
        try:
            return await operation(self.client())
        except (RedisError, OSError) as exc:
            # redis-py's pipelines put the failed command, with its arguments (a token
            # being stored), in the message: kept only when it is Redis's own.
            cause = ScrubbedCause.of(exc, keep_message=not str(exc).startswith("Command #"))
            error = CoordinationError(
                f"{what}: Redis is unavailable ({type(exc).__name__}); nothing was sent",
                cause=cause,
            )
            error.__cause__ = cause  # a copy: redis-py's own holds connections and frames
        if self.on_unavailable == "local":
            self._down_until = time.monotonic() + DOWN_FOR
        raise_unchained(error)

    def fallback(self, error: CoordinationError, what: str) -> None:
        """Raise ``error`` unless the fleet falls back to local limits (then warn, at most
        once per down period)."""
        if self.on_unavailable != "local":
            raise error
        now = time.monotonic()
        if now >= self._warned:
            self._warned = now + DOWN_FOR
            logger.warning("pecapi.fleet: Redis is unavailable; %s falls back to local", what)

    async def hgetall(self, what: str, key: str) -> dict[str, str]:
        """A hash as text (a client given with ``decode_responses=False`` answers bytes)."""
        found = await self.run(what, lambda r: r.hgetall(key))
        return {text(k): text(v) for k, v in found.items()}

    async def smembers(self, what: str, key: str) -> set[str]:
        found = await self.run(what, lambda r: r.smembers(key))
        return {text(v) for v in found}

    async def now(self) -> float:
        """Redis's clock, unix seconds: one clock for every process."""
        seconds, micros = await self.run("reading Redis's clock", lambda r: r.time())
        return float(seconds) + float(micros) / 1e6

    async def aclose(self) -> None:
        """Close the client this store made (not one it was given)."""
        client, self._client = self._client, None
        pool, self._pool = self._pool, None
        self._scripts = {}
        if client is not None:
            await client.aclose()
        if pool is not None:
            await pool.disconnect()

    def __repr__(self) -> str:
        return f"Store(namespace={self.namespace!r}, on_unavailable={self.on_unavailable!r})"

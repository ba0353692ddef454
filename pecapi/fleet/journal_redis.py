"""The provisioning journal in Redis, shared by every process of a job queue, and the
claims that keep one request in one process at a time.

Behind :class:`pecapi.journal.ProvisionJournal`, like the JSON-lines file: the latest
record per request (a hash ``<ns>:provision:journal:<name>``, one JSON record per key),
and the same statuses. Two things more, because other processes read it:

- **intents**: a registration is journaled ``registering`` just before it is sent, so a
  process killed while it was in flight leaves the truth behind; whoever takes the
  request over waits out the settle window from that record, then reads the account;
- **claims**: a request is worked on only by the process holding its claim (a Redis key
  per address, ``<ns>:provision:claim:<address>``, holding the owner's random token, with
  a time to live the holder keeps extending). Every write of a claimed request checks
  the claim in the same Lua script (a fence): a process that lost its claim (paused past
  the lease) writes nothing, and learns it (:class:`ClaimLost`).

Bound to a job (``job=``, by the queue's workers), each final outcome is also counted
once in the job's ``done`` hash (by input line) and appended to the job's event stream,
atomically with the record: the follower's progress comes from there.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from pecapi.errors import ConfigurationError, CoordinationError, PecError
from pecapi.fleet.lua import ACQUIRE, EXTEND, RELEASE
from pecapi.journal import UNSETTLED, ProvisionJournal, ProvisionOutcome
from pecapi.jsontext import JsonError, loads

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ClaimLost", "FleetKeys", "RedisError", "RedisJournal", "connect", "unreachable"]

try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - the fleet extra is missing: connect() says so

    class RedisError(Exception):  # type: ignore[no-redef]
        """Stands for redis.exceptions.RedisError when the package is missing."""


def unreachable(what: str, exc: BaseException) -> CoordinationError:
    """The error of a Redis that cannot be used: its type and message only (no URL,
    which may carry a password)."""
    return CoordinationError(f"cannot reach {what}: {type(exc).__name__}: {exc}")


#: The namespace of every key when none is given.
DEFAULT_NAMESPACE = "pecapi"
#: Seconds a finished job's keys (its counts and events, not the journal) stay in Redis.
JOB_TTL = 7 * 24 * 3600

# KEYS: record hash, claim, job done hash, job events stream, job meta hash
# ARGV: request key, record JSON ("" for none), claim token ("" for none), final ("1"/"0"),
#       row id (the input line), status, event JSON, job total, seconds the job's keys stay
#       once it is finished
# Returns -1 when the claim is not the caller's (nothing written), else the rows done.
_WRITE = """
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return -1
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
if ARGV[4] == '1' and KEYS[3] ~= '' then
  if redis.call('HSETNX', KEYS[3], ARGV[5], ARGV[6]) == 1 then
    redis.call('XADD', KEYS[4], '*', 'outcome', ARGV[7])
  end
  local done = redis.call('HLEN', KEYS[3])
  if done >= tonumber(ARGV[8]) then
    redis.call('HSET', KEYS[5], 'finished', '1')
    for i = 3, 5 do redis.call('EXPIRE', KEYS[i], ARGV[9]) end
  end
  return done
end
return 0
"""

# Outcomes that change no record: ``skipped`` (the record is complete already) and those
# about the input, not the account: written under the key of another row with the same
# address, they would hide that row's ``registering`` from whoever takes it over.
_NOT_STORED = frozenset({"skipped", "duplicate", "invalid"})


class ClaimLost(PecError):
    """This process no longer holds the claim of a request (it was paused longer than the
    lease, and another process may have taken the request over): nothing was written."""


class FleetKeys:
    """The Redis keys of provisioning in one namespace."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        if not namespace or any(c.isspace() for c in namespace):
            raise ConfigurationError("namespace must be a non-empty string without spaces")
        self.namespace: str = namespace

    def key(self, *parts: str) -> str:
        return ":".join([self.namespace, "provision", *parts])

    def journal(self, name: str) -> str:
        return self.key("journal", name)

    def claim(self, address: str) -> str:
        return self.key("claim", address)

    def job(self, job_id: str) -> str:
        return self.key("job", job_id)

    def done(self, job_id: str) -> str:
        return self.key("job", job_id, "done")

    def events(self, job_id: str) -> str:
        return self.key("job", job_id, "events")

    def current(self, journal: str) -> str:
        return self.key("current", journal)


def connect(url: str) -> Any:
    """A ``redis.asyncio.Redis`` client of ``url`` (the fleet extra must be installed).
    Typed ``Any``: the ``redis`` package's own types change between its versions."""
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - the fleet extra is missing
        raise ConfigurationError(
            "pecapi.fleet needs the fleet extra: pip install 'pecapi[fleet]'"
        ) from exc
    return aioredis.from_url(url)


def _record_key(outcome: ProvisionOutcome) -> str:
    return outcome.key


def _row_id(outcome: ProvisionOutcome) -> str:
    return str(outcome.line) if outcome.line is not None else outcome.key


class RedisJournal(ProvisionJournal):
    """A provisioning journal in Redis: ``RedisJournal("redis://...", "people")``.

    ``redis`` is a URL (the journal makes and closes its own client) or a
    ``redis.asyncio.Redis`` (left open). ``name`` picks the journal: running again with
    the same name skips what is complete. ``job`` and ``total`` bind it to a queued job
    (the queue's workers do; see the module doc).
    """

    intents = True

    def __init__(
        self,
        redis: str | Redis,
        name: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        job: str | None = None,
        total: int = 0,
    ) -> None:
        if not name:
            raise ConfigurationError("a Redis journal needs a name")
        self.keys: FleetKeys = FleetKeys(namespace)
        self._url = redis if isinstance(redis, str) else None
        self._redis: Any = None if isinstance(redis, str) else redis
        self._name = name
        self.job: str | None = job
        self.total: int = total
        #: the claim token of each request this journal's process holds (the fence)
        self.tokens: dict[str, str] = {}

    @property
    def name(self) -> str:
        return f"redis journal {self._name!r}"

    @property
    def redis(self) -> Any:
        """The ``redis.asyncio.Redis`` client."""
        if self._redis is None:
            assert self._url is not None
            self._redis = connect(self._url)
        return self._redis

    async def start(self) -> None:
        try:
            await self.redis.ping()
        except (OSError, RedisError) as exc:
            raise unreachable(f"the {self.name}", exc) from None

    async def read(self, keys: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
        where = self.keys.journal(self._name)
        if keys is None:
            found = await self.redis.hgetall(where)
            pairs: Iterable[tuple[Any, Any]] = found.items()
        else:
            wanted = list(keys)
            if not wanted:
                return {}
            pairs = zip(wanted, await self.redis.hmget(where, wanted), strict=True)
        records: dict[str, dict[str, Any]] = {}
        for key, raw in pairs:
            if raw is None:
                continue
            try:
                record = loads(raw)
            except JsonError:
                continue
            if isinstance(record, dict):
                name = key.decode() if isinstance(key, bytes) else str(key)
                records[name] = record
        return records

    async def now(self) -> dt.datetime:
        """Redis's clock: the one clock of every worker, whatever machine it runs on."""
        seconds, micros = await self.redis.time()
        return dt.datetime.fromtimestamp(int(seconds) + int(micros) / 1e6, dt.timezone.utc)

    async def write(self, outcome: ProvisionOutcome, *, final: bool) -> None:
        record = outcome.record()
        if outcome.status in UNSETTLED:
            # The settle window of a registration that may be in flight runs from this
            # time, read by a worker on another machine: on Redis's clock, not this one's.
            record["at"] = (await self.now()).isoformat(timespec="milliseconds")
        stored = "" if outcome.status in _NOT_STORED else json.dumps(record, ensure_ascii=False)
        job = self.job
        keys = [
            self.keys.journal(self._name),
            self.keys.claim(outcome.key),
            self.keys.done(job) if job else "",
            self.keys.events(job) if job else "",
            self.keys.job(job) if job else "",
        ]
        token = self.tokens.get(outcome.key, "")
        args = [
            _record_key(outcome),
            stored,
            token,
            "1" if final else "0",
            _row_id(outcome),
            outcome.status,
            json.dumps(record, ensure_ascii=False),
            str(self.total),
            str(JOB_TTL),
        ]
        done = await self.redis.eval(_WRITE, len(keys), *keys, *args)
        if int(done) < 0:
            raise ClaimLost(f"{outcome.key}: the claim was lost; nothing written")

    async def finish(self) -> None:
        if self._url is not None and self._redis is not None:
            redis, self._redis = self._redis, None
            await redis.aclose()

    # -- claims ---------------------------------------------------------------------------

    async def claim(self, key: str, lease: float) -> bool:
        """Take the claim of ``key`` for ``lease`` seconds; False: another process holds it."""
        token = self.tokens.get(key, "lost")
        if token == "lost":
            token = secrets.token_hex(16)
        # A claim is a lease (pecapi.fleet.lua): taken, or already ours and extended.
        taken = await self.redis.eval(
            ACQUIRE, 1, self.keys.claim(key), token, str(int(lease * 1000))
        )
        if int(taken[0]):
            self.tokens[key] = token
            return True
        return False

    async def extend(self, lease: float) -> list[str]:
        """Extend every claim held for ``lease`` seconds more; the keys whose claim was lost
        (they are dropped: writes for them now raise :class:`ClaimLost`)."""
        held = list(self.tokens.items())
        if not held:
            return []
        keys = [self.keys.claim(key) for key, _ in held]
        kept = await self.redis.eval(
            EXTEND, len(keys), *keys, str(int(lease * 1000)), *(t for _, t in held)
        )
        lost = [key for (key, _), ok in zip(held, kept, strict=True) if not int(ok)]
        for key in lost:
            self.tokens[key] = "lost"  # never a real token: every write is refused
        return lost

    async def still_holds(self, key: str, lease: float) -> bool:
        """Whether the claim of ``key`` is still this process's (extended if so): checked
        just before a registration is sent."""
        token = self.tokens.get(key)
        if token is None:
            return True  # not claimed: a journal used without claims (one process)
        kept = await self.redis.eval(EXTEND, 1, self.keys.claim(key), str(int(lease * 1000)), token)
        return bool(int(kept[0]))

    async def release(self, key: str) -> None:
        token = self.tokens.pop(key, None)
        if token is not None and token != "lost":
            await self.redis.eval(RELEASE, 1, self.keys.claim(key), token)

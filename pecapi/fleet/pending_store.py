"""Outcomes not settled yet, recorded in Redis so that every process sees them.

A client's :class:`~pecapi.transport.pending.PendingBook` holds the writes its calls gave
up on. :class:`FleetPendingBook` is that book, and also writes each unsettled outcome to
``<ns>:pending:<hash of the target>`` when the process lets go of the target's lease
(and deletes it once settled, keeping its verdict: :mod:`pecapi.fleet.verdicts`). What is
recorded is what another process needs to settle it and nothing more: the operation, the
target, the error's type, when it failed (Redis's clock) and its settle window, and how to
check it (:mod:`pecapi.fleet.checks`). No token, no request body.

Under a target's lease, before a write is sent, the outcomes other processes recorded on
that target are *adopted*: rebuilt with a reconciler of this client and put in this book,
where the pipeline settles them first, as it does its own (it reads the account; it never
sends them again). An outcome that cannot be checked from another process (a lambda's
test: ``change_type``, ``add_user``, comunica_pec uploads) is waited out instead: after its
settle window it can no longer take effect, and the write goes on; its record stays for
the process that made it.

An outcome of this process (or one it adopted or listed) that another process settled
meanwhile is gone from the target's records: under the lease, its verdict is taken from
Redis before anything else (:mod:`pecapi.fleet.verdicts`), never this process's own check
again, which could take the other process's later write for this one.

Each holder of a target's lease also marks its write in flight there (``flight:<owner>``),
in the same step as it reads the target's records, and deletes the mark when it lets go.
A mark found by the next holder is a write whose process died (or could not let go) while
it may have been on the wire, with no record: it is waited out like an outcome that cannot
be checked, its window counted from when it is found.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from pecapi.errors import CoordinationError, PecError, PecTimeoutError
from pecapi.fleet.checks import Unchecked, check_of, rebuild
from pecapi.fleet.store import Store, digest, text
from pecapi.fleet.verdicts import APPLIED, NOT_APPLIED, Applied, verdict_of
from pecapi.transport.pending import PendingBook, PendingOutcome

if TYPE_CHECKING:
    from pecapi.client import PecClient

__all__ = ["FleetPendingBook", "RecordedCause"]

logger = logging.getLogger("pecapi")

#: How long a record outlives its settle window, unsettled, before Redis forgets it.
KEEP_FOR = 7 * 24 * 3600

# KEYS[1] the target's hash, KEYS[2] the index of targets, KEYS[3..] the verdicts to keep.
# ARGV[1] the target's hash name, ARGV[2] ttl s, ARGV[3] n, ARGV[4] m: then n (field, value)
# pairs to write, m (verdict, ttl s) pairs (one per verdict key), then fields to delete.
SYNC = """
local i = 5
for _ = 1, tonumber(ARGV[3]) do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for k = 1, tonumber(ARGV[4]) do
  redis.call('SET', KEYS[2 + k], ARGV[i], 'EX', ARGV[i + 1])
  i = i + 2
end
for j = i, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[j])
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""

#: The field of a holder's write in flight: ``flight:<lease owner>``.
FLIGHT = "flight:"

# KEYS[1] the target's hash. ARGV[1] this holder's field, ARGV[2] its settle window (s),
# ARGV[3] ttl s. Reads the hash and marks this holder's write in flight, in one step:
# answers {Redis's TIME seconds, microseconds, the hash as it was}.
ENTER = """
local t = redis.call('TIME')
local found = redis.call('HGETALL', KEYS[1])
local at = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
redis.call('HSET', KEYS[1], ARGV[1], '{"at": ' .. at .. ', "window": ' .. ARGV[2] .. '}')
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {t[1], t[2], found}
"""


class RecordedCause(PecError):
    """The error of a write recorded by another process (only its type is recorded)."""


class FleetPendingBook(PendingBook):
    """A client's book of pending outcomes (``PendingBook``) whose unsettled outcomes
    every process of the fleet can see and settle."""

    __slots__ = ("_client", "_gone", "_ids", "_listed", "_objects", "_recorded", "_store")

    def __init__(self, store: Store) -> None:
        super().__init__()
        self._store = store
        self._client: PecClient | None = None
        self._ids: dict[int, str] = {}  # id(outcome) -> its record's id
        self._objects: dict[str, PendingOutcome[Any]] = {}  # record id -> own/adopted outcome
        self._listed: dict[str, PendingOutcome[Any]] = {}  # rebuilt by outcomes(), not adopted
        self._recorded: dict[str, set[str]] = {}  # target -> ids in Redis, written here
        # target -> record id settled, to delete -> (verdict, ttl s) to keep, or None
        self._gone: dict[str, dict[str, tuple[str, int] | None]] = {}

    def attach(self, client: PecClient) -> None:
        """The client whose reads settle other processes' outcomes."""
        self._client = client

    def record_id(self, pending: PendingOutcome[Any]) -> str:
        found = self._ids.get(id(pending))
        if found is None:
            found = self._ids[id(pending)] = secrets.token_hex(12)
            self._objects[found] = pending
        return found

    def add(self, pending: PendingOutcome[Any]) -> None:
        super().add(pending)
        self.record_id(pending)

    def discard(self, pending: PendingOutcome[Any]) -> None:
        super().discard(pending)
        rid = self._ids.pop(id(pending), None)
        if rid is None:
            return
        self._objects.pop(rid, None)
        listed = self._listed.pop(rid, None) is not None
        target = pending.target
        if target is None:
            return
        verdict = verdict_of(pending)
        # A record in Redis (written or adopted here, or listed): another process may
        # hold it too, and takes this verdict (a record never written is nobody else's).
        known = listed or rid in self._recorded.get(target, ())
        keep = (verdict, int(pending.window) + KEEP_FOR) if verdict and known else None
        self._gone.setdefault(target, {})[rid] = keep

    def _key(self, target: str) -> tuple[str, str]:
        name = digest(target)
        return self._store.key("pending", name), name

    # -- under the target's lease -----------------------------------------------------------

    async def sync(self, target: str, holder: str | None = None) -> None:
        """Write this process's unsettled outcomes on ``target``; delete settled ones, and
        the in-flight mark of ``holder`` (the lease's owner), in the same step."""
        recorded = self._recorded.setdefault(target, set())
        fresh = [p for p in self.for_target(target) if self.record_id(p) not in recorded]
        gone = self._gone.pop(target, {})
        if holder is not None:
            gone[FLIGHT + holder] = None
        if not fresh and not gone:
            if not recorded:
                self._recorded.pop(target, None)
            return
        redis_now = await self._now()
        pairs: list[str] = []
        for pending in fresh:
            pairs += [self.record_id(pending), json.dumps(_record(pending, redis_now))]
        kept = sorted((rid, keep) for rid, keep in gone.items() if keep is not None)
        for _, (verdict, keep_for) in kept:
            pairs += [verdict, str(keep_for)]
        key, name = self._key(target)
        keys = [key, self._store.key("pending"), *(self._verdict_key(rid) for rid, _ in kept)]
        ttl = max([KEEP_FOR] + [int(p.window) + KEEP_FOR for p in fresh])
        script = self._store.script("pending-sync", SYNC)
        args = [name, str(ttl), str(len(fresh)), str(len(kept)), *pairs, *sorted(gone)]
        try:
            await self._store.run("recording pending outcomes", lambda _: script(keys, args))
        except CoordinationError:
            # Kept for the next release on this target (the verdicts above all).
            holder_mark = None if holder is None else FLIGHT + holder
            again = self._gone.setdefault(target, {})
            again.update((k, v) for k, v in gone.items() if k != holder_mark)
            raise
        recorded.update(self.record_id(p) for p in fresh)
        recorded.difference_update(gone)
        if not recorded:
            self._recorded.pop(target, None)

    async def settle_foreign(
        self, target: str, timeout: float | None, holder: str | None = None
    ) -> None:
        """Adopt the outcomes other processes recorded on ``target`` (the pipeline then
        settles them before the write); wait out those that cannot be checked here.

        With ``holder`` (the lease's owner), this holder's write is marked in flight on
        the target in the same step (deleted by :meth:`sync` at release): a process killed
        while its write is on the wire leaves that mark, and the next holder waits out its
        settle window instead of taking a late commit of it for its own write's.
        """
        key, _ = self._key(target)
        redis_now: float | None = None
        if holder is None:
            found = await self._store.hgetall("reading pending outcomes", key)
        else:
            found, redis_now = await self._enter(key, holder)
        await self._take_verdicts(target, found)
        foreign = {rid: raw for rid, raw in found.items() if rid not in self._objects}
        if not foreign:
            return
        if redis_now is None:
            redis_now = await self._now()
        started = time.monotonic()
        for rid, raw in sorted(foreign.items()):
            flight = rid.startswith(FLIGHT)
            pending = (
                None
                if flight
                else self._listed.pop(rid, None) or self._rebuild(rid, raw, redis_now)
            )
            if pending is None or isinstance(pending.reconciler, Unchecked):
                record = _load(raw)
                # A mark left in flight: its holder let go without releasing (killed, or
                # its release failed), and the write it had on the wire may be committed
                # up to a window after its request arrived, before now: counted from now.
                failed_at = redis_now if flight else record.get("failed_at", 0.0)
                left = (failed_at + record.get("window", 0.0)) - redis_now
                left -= time.monotonic() - started
                if left > 0:
                    if timeout is not None and left > timeout - (time.monotonic() - started):
                        raise PecTimeoutError(
                            "the deadline passed while another process's write on the same "
                            "target could still take effect",
                            request_sent=False,
                        )
                    logger.info("pecapi.fleet: waiting %.1fs for another process's write", left)
                    await asyncio.sleep(left)
                if flight:
                    # Waited out (not before: a holder cut short leaves it for the next).
                    self._gone.setdefault(target, {})[rid] = None
                continue
            # Now this process's: the pipeline settles it before the write.
            self._objects[rid] = pending
            self.add(pending)
            self._recorded.setdefault(target, set()).add(rid)

    async def outcomes(self, client: PecClient) -> list[PendingOutcome[Any]]:
        """Every outcome any process recorded (this one's as they are), and this
        process's own not recorded yet."""
        index = self._store.key("pending")
        names = await self._store.smembers("listing pending outcomes", index)
        redis_now = await self._now()
        result: dict[str, PendingOutcome[Any]] = {}
        for name in sorted(names):
            key = self._store.key("pending", name)
            found = await self._store.hgetall("reading pending outcomes", key)
            for rid, raw in found.items():
                found_here = self._objects.get(rid) or self._listed.get(rid)
                if found_here is None:
                    found_here = self._rebuild(rid, raw, redis_now, client=client, listing=True)
                    if found_here is not None:
                        self._listed[rid] = found_here
                if found_here is not None:
                    result[rid] = found_here
        for pending in self.items():
            result.setdefault(self.record_id(pending), pending)
        return list(result.values())

    # -- internals -------------------------------------------------------------------------

    async def _now(self) -> float:
        return await self._store.now()

    def _verdict_key(self, rid: str) -> str:
        return self._store.key("settled", rid)

    async def _take_verdicts(self, target: str, found: dict[str, str]) -> None:
        """This process's outcomes on ``target`` whose records are gone: settled by
        another process, whose verdict they take (its later writes are not theirs)."""
        recorded = self._recorded.get(target, set())
        held = {rid: p for rid, p in self._objects.items() if rid in recorded}
        held.update((rid, p) for rid, p in self._listed.items() if p.target == target)
        missing = sorted(rid for rid, p in held.items() if rid not in found and not p.settled)
        if not missing:
            return
        keys = [self._verdict_key(rid) for rid in missing]
        answer = await self._store.run("reading settled outcomes", lambda r: r.mget(keys))
        for rid, raw in zip(missing, answer, strict=True):
            verdict = None if raw is None else text(raw)
            pending = held[rid]
            if verdict == NOT_APPLIED:
                logger.info("%s: settled by another process: not applied", pending.operation)
                recorded.discard(rid)  # nothing of it left in Redis to keep or delete
                self._listed.pop(rid, None)
                pending.resolve_not_applied()
                self._gone.get(target, {}).pop(rid, None)
            elif (
                verdict == APPLIED
                and self._client is not None
                and not isinstance(pending.reconciler, Applied)
            ):
                # Settled when next checked, with the result read again (still recorded:
                # it is not written again, and its verdict is kept again once settled).
                pending.reconciler = Applied(self._client, pending.reconciler, target)
            # No verdict kept (it expired): this process's own check, as before.

    async def _enter(self, key: str, holder: str) -> tuple[dict[str, str], float]:
        """The target's hash and Redis's clock; this holder's write marked in flight."""
        window = 0.0 if self._client is None else float(self._client.retry_policy.settle)
        script = self._store.script("pending-enter", ENTER)
        args = [FLIGHT + holder, repr(window), str(int(window) + KEEP_FOR)]
        seconds, micros, flat = await self._store.run(
            "reading pending outcomes", lambda _: script([key], args)
        )
        found = {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return found, float(text(seconds)) + float(text(micros)) / 1e6

    def _rebuild(
        self,
        rid: str,
        raw: str,
        redis_now: float,
        *,
        client: PecClient | None = None,
        listing: bool = False,
    ) -> PendingOutcome[Any] | None:
        client = client or self._client
        record = _load(raw)
        target = record.get("target")
        if client is None or not isinstance(target, str):
            return None
        reconciler = rebuild(client, record.get("check"), target, listing=listing)
        if reconciler is None:
            return None
        cause = (
            None
            if record.get("cancelled")
            else RecordedCause(f"{record.get('cause') or 'an error'} in another process")
        )
        pending: PendingOutcome[Any] = PendingOutcome(
            operation=str(record.get("operation", "?")),
            target=target,
            cause=cause,
            reconciler=reconciler,
            policy=client.retry_policy,
            book=self,
        )
        # The window as recorded, on this process's clock.
        age = max(0.0, redis_now - float(record.get("failed_at", redis_now)))
        pending.failed_at = pending.policy.clock() - age
        pending.window = float(record.get("window", pending.window))
        pending.cancelled = bool(record.get("cancelled"))
        self._ids[id(pending)] = rid
        return pending


def _record(pending: PendingOutcome[Any], redis_now: float) -> dict[str, Any]:
    age = max(0.0, pending.policy.clock() - pending.failed_at)
    cause = pending.cause
    return {
        "v": 1,
        "operation": pending.operation,
        "target": pending.target,
        "cause": None if cause is None else type(cause).__name__,
        "cancelled": pending.cancelled,
        "failed_at": redis_now - age,
        "window": pending.window,
        "check": check_of(pending),
    }


def _load(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

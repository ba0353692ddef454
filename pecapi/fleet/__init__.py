"""``pecapi.fleet``: one Openapi account used by many processes, coordinated through Redis.

Install with ``pip install 'pecapi[fleet]'``. Give every client the same coordination::

    fleet = pecapi.fleet.RedisCoordination(url, namespace="pecapi:acme", rate_limit=10)
    client = PecClient(provider, coordination=fleet)

and the processes share one OAuth token per account and scope set, one rate limit and
in-flight cap for the account, one paid write per mailbox (or address) at a time with a
lease that expires if its holder dies, and the outcomes not settled yet. Without Redis,
``on_unavailable="fail"`` (default) sends nothing and raises
:class:`~pecapi.CoordinationError`; ``"local"`` falls back to per-process limits. See the
deployment guide.

Provisioning over many workers: :class:`ProvisionQueue` (``pecapi provision --queue``)
puts a CSV's rows on a saq queue in Redis, :class:`ProvisionWorker` (``pecapi worker``)
does them, and :class:`RedisJournal` is the journal they share.
"""

from __future__ import annotations

from pecapi.errors import CoordinationError
from pecapi.fleet.coordination import FleetParts, RedisCoordination
from pecapi.fleet.journal_redis import ClaimLost, RedisJournal
from pecapi.fleet.leases import FleetLocks, Lease
from pecapi.fleet.pending_store import FleetPendingBook
from pecapi.fleet.queue import CsvSource, JobInfo, JobState, ProvisionQueue
from pecapi.fleet.ratelimit import FleetThrottle
from pecapi.fleet.store import OnUnavailable
from pecapi.fleet.tokens import FleetToken
from pecapi.fleet.worker import ProvisionWorker

__all__ = [
    "ClaimLost",
    "CoordinationError",
    "CsvSource",
    "FleetLocks",
    "FleetParts",
    "FleetPendingBook",
    "FleetThrottle",
    "FleetToken",
    "JobInfo",
    "JobState",
    "Lease",
    "OnUnavailable",
    "ProvisionQueue",
    "ProvisionWorker",
    "RedisCoordination",
    "RedisJournal",
]

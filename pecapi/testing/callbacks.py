"""Callback deliveries of the emulator: the API calling back the ``callback.url`` of a
registration or comunica_pec request when its state changes.

Each delivery is a background task the emulator tracks: deliveries about the same object go
out in order, the others concurrently; :meth:`CallbackDeliverer.settled` waits for all of
them and :meth:`CallbackDeliverer.aclose` cancels the rest (the emulator does it on shutdown).

Deliveries go only to loopback hosts unless other hosts are allowed: a request names any URL
it likes (the specification's examples name real domains), and an emulator run under a fuzzer
or a test suite must not send traffic off the machine because of it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import aiohttp
from yarl import URL

from pecapi.transport.urls import is_loopback

__all__ = ["REFUSED", "CallbackDeliverer", "Delivery"]

Json = dict[str, Any]

#: ``Delivery.error`` of a callback whose host is not allowed: no request was made.
REFUSED = "refused"

logger = logging.getLogger("pecapi.testing")


@dataclass
class Delivery:
    """One callback: where it went, what it said, and how it went.

    ``method`` is the callback's method: ``POST`` (a form whose ``field`` holds the JSON) or
    ``JSON`` (the JSON as the body). ``status`` is the last HTTP status answered (None: no
    answer), ``error`` the last failure without an answer (an exception's type name,
    ``"cancelled"``, or ``"refused"``: the host is not allowed and nothing was sent),
    ``attempts`` how many requests were made.
    """

    url: str
    method: str
    field: str
    kind: str  # "mailbox" | "comunica_pec"
    target_id: str
    stato: str
    body: bytes = dc_field(repr=False)
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    delivered: bool = False


def _normal_host(host: str) -> str:
    # one spelling per host, as URL.host gives it: names in lower case, addresses in their
    # short form without brackets ("[0:0::1]" and "::1" are the same host)
    host = host.strip().strip("[]").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class CallbackDeliverer:
    """Sends the emulator's callbacks (see the module docstring).

    A delivery is retried, ``retry_delay`` seconds apart, up to ``attempts`` requests in all,
    while the receiver answers 5xx or no answer; a 2xx is delivered, a 4xx is final.
    ``envelope`` wraps the object as the API's answers do (``{data, success, message,
    error}``); False sends the object bare.

    Only loopback hosts (127.0.0.0/8, ::1, ``localhost``) are called, plus the host names or
    addresses in ``hosts``, or every host with ``allow_external``. The host is judged by
    the URL as written, never looked up: a DNS query is traffic too, and a name that merely
    resolves to loopback today may not tomorrow. A refused delivery is recorded with
    ``error="refused"`` and no attempt, and logged once per host.
    """

    def __init__(
        self,
        *,
        attempts: int = 3,
        retry_delay: float = 0.0,
        envelope: bool = True,
        timeout: float = 10.0,
        hosts: Iterable[str] = (),
        allow_external: bool = False,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.envelope = envelope
        self.timeout = timeout
        self.hosts = frozenset(_normal_host(h) for h in hosts)
        self.allow_external = allow_external
        self.deliveries: list[Delivery] = []
        self._queued: list[Delivery] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._refused_hosts: set[str] = set()

    def allows(self, url: str) -> bool:
        """Whether a callback to ``url`` would be sent (see the class docstring)."""
        if self.allow_external:
            return True
        try:
            host = URL(url).host
        except (TypeError, ValueError):
            return False
        if not host:
            return False
        return is_loopback(host) or _normal_host(host) in self.hosts

    @property
    def pending(self) -> int:
        """Deliveries not finished yet (queued or in flight)."""
        return len(self._queued) + len(self._tasks)

    def schedule(self, kind: str, record: Json) -> Delivery:
        """Deliver ``record`` (a mailbox or request wire dict, as it is now) to its callback."""
        callback = record["callback"]
        payload: Any = json.loads(_dumps(record))  # a snapshot: the record changes later
        if self.envelope:
            payload = {"data": payload, "success": True, "message": "", "error": None}
        delivery = Delivery(
            url=str(callback["url"]),
            method=str(callback.get("method") or "POST"),
            field=str(callback.get("field") or "data"),
            kind=kind,
            target_id=str(record.get("id", "")),
            stato=str(record.get("stato", "")),
            body=_dumps(payload),
        )
        self.deliveries.append(delivery)
        if not self.allows(delivery.url):
            self._refuse(delivery)
            return delivery
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a state change made outside any event loop: send it later
            self._queued.append(delivery)
        else:
            self._start_queued()
            self._start(delivery)
        return delivery

    async def settled(self) -> None:
        """Wait until every delivery scheduled so far (and any they led to) has finished."""
        self._start_queued()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel the deliveries in flight, forget the queued ones, close the session."""
        for delivery in self._queued:
            delivery.error = "cancelled"
        self._queued.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # --- internals --------------------------------------------------------------------------

    def _refuse(self, delivery: Delivery) -> None:
        delivery.error = REFUSED
        try:
            host = URL(delivery.url).host or delivery.url
        except (TypeError, ValueError):
            host = delivery.url
        if host not in self._refused_hosts:  # once per host: a busy run would flood the log
            self._refused_hosts.add(host)
            logger.warning(
                "pecapi.testing: callbacks to %s refused: not a loopback host (allow it with "
                "--callback-host or Emulator(callback_hosts=[...]))",
                host,
            )

    def _start_queued(self) -> None:
        queued, self._queued = self._queued, []
        for delivery in queued:
            self._start(delivery)

    def _start(self, delivery: Delivery) -> None:
        previous = self._last.get(delivery.target_id)
        task = asyncio.ensure_future(self._run(delivery, previous))
        self._tasks.add(task)
        self._last[delivery.target_id] = task

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._last.get(delivery.target_id) is t:
                del self._last[delivery.target_id]
            if not t.cancelled():
                t.exception()

        task.add_done_callback(done)

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "pecapi-emulator-callbacks"}
            )
        return self._session

    async def _run(self, delivery: Delivery, previous: asyncio.Task[None] | None) -> None:
        try:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])  # same object: keep the order of the changes
            for attempt in range(1, self.attempts + 1):
                if attempt > 1 and self.retry_delay > 0:
                    await asyncio.sleep(self.retry_delay)
                delivery.attempts = attempt
                if await self._send(delivery):
                    return
        except asyncio.CancelledError:
            if not delivery.delivered:
                delivery.error = "cancelled"
            raise

    async def _send(self, delivery: Delivery) -> bool:
        """One attempt; True when finished (delivered, or refused for good)."""
        session = self._session_now()
        if delivery.method == "JSON":
            data: Any = delivery.body
            headers = {"Content-Type": "application/json"}
        else:
            data = {delivery.field: delivery.body.decode("utf-8")}  # form-urlencoded
            headers = {}
        try:
            async with session.post(
                delivery.url,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as response:
                await response.read()
                delivery.status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # not TimeoutError on 3.10
            delivery.status = None
            delivery.error = type(exc).__name__
            return False
        delivery.error = None
        if 200 <= delivery.status < 300:
            delivery.delivered = True
            return True
        return delivery.status < 500

"""The fault plan: seeded, deterministic network and server faults injected by the emulator."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

__all__ = [
    "FAULT_KINDS",
    "LATE_REPLIES",
    "TRANSIENT_FAULTS",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "LateReply",
]

FaultKind = Literal[
    "latency",
    "status",
    "drop_before",
    "drop_after",
    "slow_body",
    "truncated_body",
    "malformed_json",
    "answer",
    "late",
]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "latency",
    "status",
    "drop_before",
    "drop_after",
    "slow_body",
    "truncated_body",
    "malformed_json",
    "answer",
    "late",
)
BodyKind = Literal["json", "html", "empty"]
LateReply = Literal["504", "drop", "hang"]
LATE_REPLIES: tuple[LateReply, ...] = ("504", "drop", "hang")


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault. Build it with the class methods, e.g. ``Fault.drop_after()``.

    - ``latency(seconds | (lo, hi))``: delay, then process normally;
    - ``status(code, body="json"|"html"|"empty", retry_after=None)``: answer ``code`` without
      processing (``retry_after``: int seconds, ``"http-date"`` for an HTTP-date one second
      ahead of the real clock, or any other string sent verbatim);
    - ``drop_before()``: close the connection without processing or answering;
    - ``drop_after()``: process and commit, then close the connection before answering;
    - ``slow_body(delay, chunks=4)``: process, send headers, then the body in ``chunks`` parts
      with ``delay`` seconds between them;
    - ``truncated_body(fraction=0.5)``: process, announce the full Content-Length, send only
      that fraction of the body and close the connection;
    - ``malformed_json()``: process, answer 200 ``application/json`` with a broken JSON body;
    - ``answer(status, body, content_type)``: do not process, answer exactly this (e.g. an
      error example of the specification, or a response shape to test a client against);
    - ``late(after, reply="504"|"drop"|"hang")``: read the request, answer at once without
      processing (``"504"``: a gateway 504 with an nginx HTML page; ``"drop"``: close the
      connection; ``"hang"``: no answer, the connection is held open until the commit, then
      closed), and process and commit it ``after`` seconds after it was received, as a normal
      request, whatever the client did meanwhile (``after`` is kept in ``delay``).
    """

    kind: FaultKind
    delay: float = 0.0
    delay_max: float | None = None
    code: int = 0
    body: BodyKind = "json"
    retry_after: int | str | None = None
    chunks: int = 4
    fraction: float = 0.5
    payload: bytes = b""
    content_type: str = ""
    reply: LateReply = "504"

    @classmethod
    def latency(cls, seconds: float | tuple[float, float]) -> Fault:
        if isinstance(seconds, tuple):
            lo, hi = (float(seconds[0]), float(seconds[1]))
            if lo < 0 or hi < lo:
                raise ValueError("latency range must be (lo, hi) with 0 <= lo <= hi")
            return cls("latency", delay=lo, delay_max=hi)
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        return cls("latency", delay=float(seconds))

    @classmethod
    def status(
        cls, code: int, body: BodyKind = "json", retry_after: int | str | None = None
    ) -> Fault:
        if not 100 <= code <= 599:
            raise ValueError(f"not an HTTP status: {code}")
        if body not in ("json", "html", "empty"):
            raise ValueError("body must be 'json', 'html' or 'empty'")
        return cls("status", code=code, body=body, retry_after=retry_after)

    @classmethod
    def drop_before(cls) -> Fault:
        return cls("drop_before")

    @classmethod
    def drop_after(cls) -> Fault:
        return cls("drop_after")

    @classmethod
    def slow_body(cls, delay: float, chunks: int = 4) -> Fault:
        if delay < 0 or chunks < 1:
            raise ValueError("slow_body needs delay >= 0 and chunks >= 1")
        return cls("slow_body", delay=float(delay), chunks=chunks)

    @classmethod
    def truncated_body(cls, fraction: float = 0.5) -> Fault:
        if not 0.0 <= fraction < 1.0:
            raise ValueError("fraction must be in [0, 1)")
        return cls("truncated_body", fraction=fraction)

    @classmethod
    def malformed_json(cls) -> Fault:
        return cls("malformed_json")

    @classmethod
    def answer(
        cls,
        status: int,
        body: bytes | str | Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Fault:
        if not 100 <= status <= 599:
            raise ValueError(f"not an HTTP status: {status}")
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = json.dumps(body).encode()
        return cls("answer", code=status, payload=payload, content_type=content_type)

    @classmethod
    def late(cls, after: float, reply: LateReply = "504") -> Fault:
        if after < 0:
            raise ValueError("late needs after >= 0")
        if reply not in LATE_REPLIES:
            raise ValueError("reply must be '504', 'drop' or 'hang'")
        return cls("late", delay=float(after), reply=reply)


#: The faults of ``Emulator(fault_rate=p)`` (``--fault-rate``), one picked at random: those a
#: client meets in production and should recover from. Two are not processed (a JSON 503 as
#: the API sends it, an nginx 502 page), one is not processed and not answered
#: (``drop_before``), one is committed and not answered (``drop_after``: the client cannot
#: know it succeeded, and must check before resending a write).
TRANSIENT_FAULTS: tuple[Fault, ...] = (
    Fault.status(503),
    Fault.status(502, body="html"),
    Fault.drop_before(),
    Fault.drop_after(),
)


@dataclass(slots=True)
class FaultRule:
    """A rule of the plan: which requests it matches and what it does to them.

    A queued rule (``once``/``next``/``nth``) lets ``skip`` matching requests pass, then
    faults the next ``remaining`` ones; a rate rule (``rng`` set) faults each matching
    request with ``probability``. ``id`` names it in :attr:`FaultPlan.rules` and
    :meth:`FaultPlan.remove`; ``seed`` is a rate rule's seed.
    """

    faults: tuple[Fault, ...]
    method: str | None
    path: str | None
    remaining: int | None = None  # queued rules: how many more requests it faults
    probability: float = 1.0  # rate rules
    rng: random.Random | None = None
    skip: int = 0  # queued rules: matching requests still to let pass before faulting
    id: int = 0
    seed: int | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != "*" and self.method != method:
            return False
        return self.path is None or fnmatchcase(path, self.path)


class FaultPlan:
    """Which requests are faulted, and how. Consulted once per request: first the queued
    rules (``once``/``next``/``nth``) in the order they were added, then the rate rules.

    A queued rule counts every matching request, whatever other rules do with it: an
    ``nth(3, ...)`` rule faults the third matching request from now. One fault per request:
    when two queued rules are due on the same request, the first added applies and the
    other waits for the next matching one.

    ``path`` is an :func:`fnmatch.fnmatchcase` glob on the request path (``*`` also matches
    ``/``), ``method`` an HTTP method (case-insensitive; ``None`` or ``"*"``: any).
    Every applied fault is counted by kind in :attr:`counts`.
    """

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        self._queued: list[FaultRule] = []
        self._rates: list[FaultRule] = []
        self._rate_rules_made = 0
        self._rules_made = 0
        self.counts: Counter[str] = Counter()

    def once(
        self, fault: Fault, *, method: str | None = None, path: str | None = None
    ) -> FaultRule:
        """Fault the next matching request."""
        return self.nth(1, fault, method=method, path=path)

    def next(
        self, n: int, fault: Fault, *, method: str | None = None, path: str | None = None
    ) -> FaultRule:
        """Fault the next ``n`` matching requests."""
        if n < 1:
            raise ValueError("n must be >= 1")
        return self.nth(1, fault, times=n, method=method, path=path)

    def nth(
        self,
        n: int,
        fault: Fault,
        *,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> FaultRule:
        """Fault the ``n``-th matching request from now (``times``: and the ones after it,
        ``times`` in all); the ``n - 1`` before it pass (this rule does not touch them)."""
        if n < 1:
            raise ValueError("n must be >= 1")
        if times < 1:
            raise ValueError("times must be >= 1")
        rule = FaultRule((fault,), _method(method), path, remaining=times, skip=n - 1)
        self._queued.append(self._numbered(rule))
        return rule

    def rate(
        self,
        probability: float,
        faults: Fault | Sequence[Fault],
        *,
        method: str | None = None,
        path: str | None = None,
        seed: int | None = None,
    ) -> FaultRule:
        """Fault each matching request with ``probability``, the kind picked at random from
        ``faults``. The draws come from ``seed`` (by default derived from the plan's seed and
        the rule's position), so the same requests get the same faults on every run."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be in [0, 1]")
        kinds = (faults,) if isinstance(faults, Fault) else tuple(faults)
        if not kinds:
            raise ValueError("at least one fault is required")
        self._rate_rules_made += 1
        rule_seed = seed if seed is not None else self._seed * 1_000_003 + self._rate_rules_made
        rule = FaultRule(
            kinds,
            _method(method),
            path,
            probability=probability,
            rng=random.Random(rule_seed),
            seed=rule_seed,
        )
        self._rates.append(self._numbered(rule))
        return rule

    def clear(self) -> None:
        """Remove every rule (:attr:`counts` is kept; ``counts.clear()`` resets it)."""
        self._queued.clear()
        self._rates.clear()

    def remove(self, rule_id: int) -> bool:
        """Remove the rule with this :attr:`FaultRule.id`; False if there is none (a
        queued rule is gone once it has faulted all its requests)."""
        for rules in (self._queued, self._rates):
            for i, rule in enumerate(rules):
                if rule.id == rule_id:
                    del rules[i]
                    return True
        return False

    def reset(self) -> None:
        """Back to a new plan with the same seed: no rule, no count, the draws anew."""
        self.clear()
        self.counts.clear()
        self._rng = random.Random(self._seed)
        self._rate_rules_made = 0
        self._rules_made = 0

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        """The rules in force, in the order they are consulted (queued, then rate)."""
        return (*self._queued, *self._rates)

    @property
    def pending(self) -> int:
        """How many requests the queued rules will still fault."""
        return sum(rule.remaining or 0 for rule in self._queued)

    @property
    def active(self) -> bool:
        return bool(self._queued or self._rates)

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault for this request (counting it for the queued rules), or ``None``."""
        if not self._queued and not self._rates:
            return None
        method = method.upper()
        chosen: Fault | None = None
        spent: FaultRule | None = None
        # Every queued rule sees the request, even after one applied: an nth rule counts
        # matching requests whatever the others do with them.
        for rule in self._queued:
            if not rule.matches(method, path):
                continue
            if rule.skip > 0:
                rule.skip -= 1
            elif chosen is None:
                chosen = rule.faults[0]
                rule.remaining = (rule.remaining or 1) - 1
                if rule.remaining <= 0:
                    spent = rule
        if spent is not None:
            self._queued.remove(spent)
        if chosen is not None:
            return self._applied(chosen)
        for rule in self._rates:
            if rule.matches(method, path):
                assert rule.rng is not None
                if rule.rng.random() < rule.probability:
                    fault = rule.faults[0]
                    if len(rule.faults) > 1:
                        fault = rule.faults[rule.rng.randrange(len(rule.faults))]
                    return self._applied(fault)
        return None

    def latency_of(self, fault: Fault) -> float:
        """The delay of a latency fault (drawn from the plan's seeded generator for a range)."""
        if fault.delay_max is None:
            return fault.delay
        return self._rng.uniform(fault.delay, fault.delay_max)

    def _numbered(self, rule: FaultRule) -> FaultRule:
        self._rules_made += 1
        rule.id = self._rules_made
        return rule

    def _applied(self, fault: Fault) -> Fault:
        self.counts[fault.kind] += 1
        return fault


def _method(method: str | None) -> str | None:
    return None if method is None else method.upper()

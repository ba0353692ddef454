"""How calls are retried: the policy (:class:`RetryPolicy`), what a failed attempt
allows (:func:`classify`), and how long to wait before trying again. The loop that acts
on them, settling writes whose outcome is unknown, is in :mod:`pecapi.transport.retry`."""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from pecapi.errors import (
    PecApiError,
    PecError,
    RateLimitError,
    ResponseDecodeError,
    ResponseTooLargeError,
    ServerError,
    TokenError,
    TransportError,
    UnexpectedStatusError,
    ValidationError,
)
from pecapi.transport.endpoint import Effect

__all__ = [
    "DEFAULT_SETTLE",
    "Attempt",
    "Decision",
    "RetryPolicy",
    "classify",
    "notify",
    "wait_before_retry",
]

logger = logging.getLogger("pecapi")

_READ_STATUSES = frozenset({429, 500, 502, 503, 504})


@attrs.frozen(kw_only=True)
class Attempt:
    """What the ``on_attempt`` hook is told about each failed attempt before pecapi acts
    on it: ``reconcile`` is True when the outcome is unknown and pecapi settles it
    (``wait`` is then the settle window) instead of waiting to resend."""

    operation: str
    attempt: int
    error: BaseException
    reason: str
    wait: float
    reconcile: bool


def _at_least(name: str, low: float, *, inclusive: bool) -> Callable[[Any, Any, Any], None]:
    def check(_: Any, __: Any, value: Any) -> None:
        if value is None:
            return
        bad = isinstance(value, bool) or not isinstance(value, (int, float))
        if bad or value < low or (value == low and not inclusive):
            relation = ">=" if inclusive else ">"
            raise ValidationError(
                f"retry.{name}", f"must be a number {relation} {low}, not {value!r}"
            )

    return check


def _full_jitter(cap: float) -> float:
    return random.uniform(0.0, cap)


#: The default settle window. Gateways in front of web APIs commonly give up on a
#: backend after 60 s (nginx's and most load balancers' default read timeout) and the
#: backend goes on; a write unseen a minute after its answer was lost is taken as not
#: done.
DEFAULT_SETTLE = 60.0


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How calls are retried. Set on the client (``PecClient(retry=...)``) and overridable
    per call (``options=RequestOptions(retry=...)``) or per copy (``with_options``).

    - ``max_attempts``: attempts in all, the first included (1 = never resend);
    - waits grow exponentially from ``backoff`` seconds, capped at ``backoff_max``, with
      full jitter (a random wait between 0 and the cap);
    - ``deadline``: seconds for the whole call, attempts, waits and settling included; no
      wait is begun that would end past it, and the timeout of each attempt is shortened
      to what is left. None: no deadline;
    - ``Retry-After`` (seconds or an HTTP-date) is obeyed; when it asks for more than the
      deadline leaves (without a deadline: more than ``backoff_max``), the
      :class:`~pecapi.RateLimitError` is raised at once;
    - ``settle``: how long, in seconds after a write's answer was lost, the account is
      watched for the write's effect before the write may be sent again (see the module
      doc). 0 checks once and resends at once: only for servers that commit before they
      answer;
    - ``reconcile``: False never checks nor resends a write whose outcome is unknown: it
      raises :class:`~pecapi.OutcomeUnknownError` at once (and saves the reads);
    - ``on_attempt``: called with an :class:`Attempt` for each failed attempt acted on;
    - ``sleep``, ``clock``, ``jitter``: injectable for tests (``clock`` must be
      monotonic and agree with ``sleep``).
    """

    max_attempts: int = attrs.field(
        default=4, validator=_at_least("max_attempts", 1, inclusive=True)
    )
    backoff: float = attrs.field(default=0.5, validator=_at_least("backoff", 0, inclusive=False))
    backoff_max: float = attrs.field(
        default=20.0, validator=_at_least("backoff_max", 0, inclusive=False)
    )
    deadline: float | None = attrs.field(
        default=180.0, validator=_at_least("deadline", 0, inclusive=False)
    )
    settle: float = attrs.field(
        default=DEFAULT_SETTLE, validator=_at_least("settle", 0, inclusive=True)
    )
    reconcile: bool = True
    on_attempt: Callable[[Attempt], None] | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[float], float] = _full_jitter

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that tries each call once and never checks an unknown outcome."""
        return cls(max_attempts=1, reconcile=False)

    def backoff_for(self, attempt: int) -> float:
        """The jittered wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.backoff_max, self.backoff * (2 ** (attempt - 1)))
        return max(0.0, self.jitter(cap))


class Decision(enum.Enum):
    """What a failed attempt allows."""

    FAIL = "fail"  # raise it
    RETRY = "retry"  # nothing happened (or it is a read): send again after a wait
    SETTLE = "settle"  # a write that may have happened: settle before anything else


def classify(error: BaseException, effect: Effect) -> Decision:
    """What ``error``, raised by one attempt of an operation with ``effect``, allows."""
    if not isinstance(error, PecError):
        return Decision.FAIL
    if isinstance(error, TokenError):
        return Decision.RETRY if error.retryable else Decision.FAIL
    if isinstance(error, RateLimitError):
        return Decision.RETRY
    if effect is Effect.READ:
        if isinstance(error, ResponseTooLargeError):
            return Decision.FAIL  # the next answer would be as large
        if isinstance(error, (TransportError, ResponseDecodeError)):
            return Decision.RETRY
        if isinstance(error, PecApiError) and error.status in _READ_STATUSES:
            return Decision.RETRY
        return Decision.FAIL
    if isinstance(error, TransportError):
        return Decision.SETTLE if error.request_sent else Decision.RETRY
    if isinstance(error, ResponseDecodeError):
        return Decision.SETTLE
    if isinstance(error, (ServerError, UnexpectedStatusError)):
        return Decision.SETTLE  # a 5xx, or a status the API never sends: may have happened
    return Decision.FAIL


def notify(
    policy: RetryPolicy, operation: str, attempt: int, error: PecError, wait: float, settling: bool
) -> None:
    info = Attempt(
        operation=operation,
        attempt=attempt,
        error=error,
        reason=type(error).__name__,
        wait=wait,
        reconcile=settling,
    )
    if settling:
        logger.info(
            "%s: attempt %d failed (%s: %s); settling for up to %.1fs before any resend",
            operation, attempt, info.reason, error, wait,
        )  # fmt: skip
    else:
        logger.info(
            "retrying %s after attempt %d failed (%s: %s); waiting %.2fs",
            operation, attempt, info.reason, error, wait,
        )  # fmt: skip
    if policy.on_attempt is not None:
        policy.on_attempt(info)


def wait_before_retry(
    policy: RetryPolicy, error: PecError, attempt: int, deadline: float | None
) -> float | None:
    """Seconds to wait before resending, or None when no retry may start."""
    if attempt >= policy.max_attempts:
        return None
    delay = policy.backoff_for(attempt)
    limited = error.cause if isinstance(error, TokenError) else error  # the token service's 429
    if isinstance(limited, RateLimitError) and limited.retry_after is not None:
        delay = limited.retry_after
        if deadline is None and delay > policy.backoff_max:
            return None  # a wait beyond what the policy allows: fail now, not in a day
    if deadline is not None and policy.clock() + delay >= deadline:
        return None
    return delay

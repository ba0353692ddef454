"""When to try a call again, how long to wait, and how a write whose outcome is unknown
is *settled* instead of being sent blindly a second time.

The PEC API has no idempotency keys, most writes cost money, and a gateway's 504 or a
client's timeout does not stop its backend: a write may be committed seconds after its
answer was lost. So:

- a *read* is retried on connection errors, timeouts, undecodable answers, 429, 500,
  502, 503 and 504;
- a *write* is resent directly only when it certainly did not reach the API (the
  connection could not be opened, no token could be had, or 429: refused before
  anything was done);
- a *write* whose outcome is unknown (timeout, connection lost after sending, any 5xx, a
  status the API does not send, an unreadable 2xx) is *settled*: its reconciler reads
  the account at once and then at growing intervals for ``RetryPolicy.settle`` seconds;
  as soon as the change shows, the call returns it. Only when a read made after the
  whole window still shows no change is the write sent again. If the deadline ends
  first, or the reads fail, the call raises
  :class:`~pecapi.OutcomeUnknownError` carrying the write's own error and a
  :class:`PendingOutcome` the caller can settle later (``client.reconcile(...)``);
- nothing else is retried (400, 401, 402, 403, 404, 406, 428...).

The loop is written out rather than built on a retry library: its states (settling, a
pending outcome, a write that must not be resent) are the point of it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import attrs

from pecapi.errors import (
    ClientClosedError,
    ConfigurationError,
    OutcomeUnknownError,
    PecApiError,
    PecError,
    PecTimeoutError,
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
from pecapi.transport.pending import (
    NotApplied,
    PendingBook,
    PendingOutcome,
    Reconciler,
    TargetGuard,
    TargetLocks,
    outer_deadline,
)

__all__ = [
    "Attempt",
    "Decision",
    "Reconciler",
    "RetryPolicy",
    "call_deadline",
    "cancelled_in_flight",
    "classify",
    "first_read_retry",
    "prepared",
    "resume_read",
    "resume_write",
    "run_with_policy",
    "settle_earlier",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

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


def _notify(
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


def _wait_before_retry(
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


class Call(Generic[T]):
    """One operation under its policy: what :func:`run_with_policy` needs besides it."""

    __slots__ = ("book", "effect", "locks", "operation", "reconciler", "target")

    def __init__(
        self,
        operation: str,
        effect: Effect,
        *,
        reconciler: Reconciler[T] | None = None,
        book: PendingBook | None = None,
        locks: TargetLocks | None = None,
        target: str | None = None,
    ) -> None:
        self.operation = operation
        self.effect = effect
        self.reconciler = reconciler
        self.book = book
        self.locks = locks
        self.target = target


def call_deadline(policy: RetryPolicy) -> float | None:
    """This call's deadline: its own, or sooner that of the call it serves (a settle read)."""
    own = None if policy.deadline is None else policy.clock() + policy.deadline
    outer = outer_deadline(policy.clock)
    if outer is None:
        return own
    return outer if own is None else min(own, outer)


async def run_with_policy(
    call: Call[T], policy: RetryPolicy, once: Callable[[float | None], Awaitable[T]]
) -> T:
    """Run ``once(time_left)`` under ``policy``; ``time_left`` caps the attempt's timeout.

    A write with a target holds the target's lock for the whole call (see
    :class:`TargetLocks`), and first settles what an earlier call on the target left
    pending: its own reconciliation could otherwise take that write's change for its own.
    The lock's guard is checked before each attempt (a fleet's lease may have been lost).
    """
    deadline = call_deadline(policy)
    if call.locks is None or call.target is None:
        return await _run(call, policy, once, deadline)
    left = None if deadline is None else deadline - policy.clock()
    async with call.locks.hold(call.target, left) as guard:
        await settle_earlier(call, policy, deadline)
        return await _run(call, policy, once, deadline, guard=guard)


async def settle_earlier(call: Call[Any], policy: RetryPolicy, deadline: float | None) -> None:
    """Settle what earlier calls on ``call``'s target left pending (under its lock)."""
    if call.book is not None and call.target is not None:
        for earlier in call.book.for_target(call.target):
            await earlier.settle(deadline if earlier.policy.clock is policy.clock else None)


def first_read_retry(
    policy: RetryPolicy, operation: str, error: PecError, deadline: float | None
) -> float | None:
    """How long to wait after the first attempt of a read failed with ``error``, or None
    when it is final: what :func:`run_with_policy` decides, for a caller that made the
    first attempt itself (the pipeline's path of a read, without the loop's objects).
    The caller then sleeps and goes on with :func:`resume_read`."""
    if classify(error, Effect.READ) is not Decision.RETRY:
        return None
    delay = _wait_before_retry(policy, error, 1, deadline)
    if delay is not None:
        _notify(policy, operation, 1, error, delay, settling=False)
    return delay


async def resume_read(
    operation: str,
    policy: RetryPolicy,
    once: Callable[[float | None], Awaitable[T]],
    deadline: float | None,
    attempts: int,
) -> T:
    """:func:`run_with_policy` for a read of which ``attempts`` were made already, under
    the ``deadline`` they were made under (:func:`call_deadline`)."""
    return await _run(Call(operation, Effect.READ), policy, once, deadline, attempts)


async def prepared(call: Call[T], policy: RetryPolicy) -> Reconciler[T] | None:
    """``call``'s reconciler, prepared for its first attempt; None when an unknown outcome
    will not be checked (``policy.reconcile`` off, a read, or the preparation failed)."""
    reconciler = call.reconciler if call.effect is not Effect.READ and policy.reconcile else None
    if reconciler is None:
        return None
    try:
        await reconciler.prepare()
    except (ClientClosedError, ConfigurationError):
        raise
    except PecError as exc:
        # The write goes out all the same and the API answers it (a wrong id gets the
        # operation's own error), but an unknown outcome can then not be checked.
        logger.info("%s: cannot prepare reconciliation (%s); no resend", call.operation, exc)
        return None
    return reconciler


def cancelled_in_flight(
    call: Call[T], policy: RetryPolicy, reconciler: Reconciler[T] | None
) -> None:
    """An attempt was cancelled: the request may be on its way, and what it did is for
    ``client.reconcile()`` (a write whose outcome can be checked)."""
    if reconciler is not None:
        _pending(call, policy, reconciler, None).give_up(cancelled=True)


async def resume_write(
    call: Call[T],
    policy: RetryPolicy,
    once: Callable[[float | None], Awaitable[T]],
    deadline: float | None,
    reconciler: Reconciler[T] | None,
    error: PecError,
) -> T:
    """:func:`run_with_policy` for a write whose first attempt, made by the caller under
    the target's lock with ``reconciler`` :func:`prepared`, failed with ``error``: the
    decisions are the loop's own from there (settle, resend, raise)."""
    return await _loop(call, policy, once, deadline, reconciler, 1, None, error)


async def _run(
    call: Call[T],
    policy: RetryPolicy,
    once: Callable[[float | None], Awaitable[T]],
    deadline: float | None,
    attempts: int = 0,
    guard: TargetGuard | None = None,
) -> T:
    reconciler = await prepared(call, policy)
    return await _loop(call, policy, once, deadline, reconciler, attempts, guard, None)


async def _loop(
    call: Call[T],
    policy: RetryPolicy,
    once: Callable[[float | None], Awaitable[T]],
    deadline: float | None,
    reconciler: Reconciler[T] | None,
    attempts: int,
    guard: TargetGuard | None,
    failed: PecError | None,
) -> T:
    """The attempts of one call from attempt ``attempts + 1`` on; ``failed``: the error of
    attempt ``attempts``, made by the caller, to act on first."""
    clock = policy.clock
    operation, effect = call.operation, call.effect
    attempt = attempts
    resent = False  # sent again after a window that showed no change
    while True:
        if failed is None:
            attempt += 1
            left = None if deadline is None else deadline - clock()
            if left is not None and left <= 0:
                raise PecTimeoutError(f"{operation}: the deadline has passed", request_sent=False)
            if guard is not None:
                guard.check()  # raises (nothing sent) when the target is no longer ours
            try:
                return await once(left)
            except asyncio.CancelledError:
                cancelled_in_flight(call, policy, reconciler)
                raise
            except PecError as exc:
                error = exc
        else:
            error, failed = failed, None
        decision = classify(error, effect)
        if decision is Decision.FAIL:
            if resent and reconciler is not None:
                # Refused (say "taken"): the first write may have landed after all.
                done = await _check_once(reconciler)
                if done is not None:
                    return done
            raise error
        if decision is Decision.RETRY:
            delay = _wait_before_retry(policy, error, attempt, deadline)
            if delay is None:
                raise error
            _notify(policy, operation, attempt, error, delay, settling=False)
            await policy.sleep(delay)
            continue
        if reconciler is None:
            why = "reconciliation is off" if not policy.reconcile else "it cannot be checked"
            raise OutcomeUnknownError(
                f"{operation}: outcome unknown: the request may have been processed "
                f"({type(error).__name__}: {error}), and {why}; check the account before "
                "sending it again",
                cause=error,
            ) from error
        pending = _pending(call, policy, reconciler, error)
        window = pending.window
        if deadline is not None:
            window = max(0.0, min(window, deadline - clock()))
        _notify(policy, operation, attempt, error, window, settling=True)
        try:
            result = await pending.settle(deadline)
        except OutcomeUnknownError:
            pending.give_up()
            raise
        except asyncio.CancelledError:
            pending.give_up(cancelled=True)
            raise
        if not isinstance(result, NotApplied):
            return result
        # Settled: the write did not take effect. Send it again if the policy allows.
        if attempt >= policy.max_attempts or (deadline is not None and clock() >= deadline):
            raise error
        logger.info("%s: no change after the settle window; sending again", operation)
        resent = True


async def _check_once(reconciler: Reconciler[T]) -> T | None:
    try:
        return await reconciler.check()
    except PecError:
        return None


def _pending(
    call: Call[T], policy: RetryPolicy, reconciler: Reconciler[T], cause: PecError | None
) -> PendingOutcome[T]:
    return PendingOutcome(
        operation=call.operation,
        target=call.target,
        cause=cause,
        reconciler=reconciler,
        policy=policy,
        book=call.book,
    )

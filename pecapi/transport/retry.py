"""The retry loop: how a call is tried again, and how a write whose outcome is unknown
is *settled* instead of being sent blindly a second time (the policy and what each
error allows: :mod:`pecapi.transport.policy`).

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
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from pecapi.errors import (
    ClientClosedError,
    ConfigurationError,
    OutcomeUnknownError,
    PecError,
    PecTimeoutError,
)
from pecapi.transport.endpoint import Effect
from pecapi.transport.pending import (
    ACTIVE_GUARD,
    NotApplied,
    PendingBook,
    PendingOutcome,
    Reconciler,
    TargetGuard,
    TargetLocks,
    check_guard,
    outer_deadline,
)
from pecapi.transport.policy import (
    DEFAULT_SETTLE,
    Attempt,
    Decision,
    RetryPolicy,
    classify,
    notify,
    wait_before_retry,
)
from pecapi.transport.transport_errors import raise_again

__all__ = [
    "DEFAULT_SETTLE",
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
    delay = wait_before_retry(policy, error, 1, deadline)
    if delay is not None:
        notify(policy, operation, 1, error, delay, settling=False)
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
    if reconciler is None or not getattr(reconciler, "prepares", True):
        return reconciler
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


def resume_write(
    call: Call[T],
    policy: RetryPolicy,
    once: Callable[[float | None], Awaitable[T]],
    deadline: float | None,
    reconciler: Reconciler[T] | None,
    error: PecError,
) -> Coroutine[Any, Any, T]:
    """:func:`run_with_policy` for a write whose first attempt, made by the caller under
    the target's lock with ``reconciler`` :func:`prepared`, failed with ``error``: the
    decisions are the loop's own from there (settle, resend, raise). Not a coroutine
    function: no frame of its own holds ``error`` (which, raised, holds the frames)."""
    return _loop(call, policy, once, deadline, reconciler, 1, None, error)


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
    error: PecError | None = None
    pending: PendingOutcome[T] | None = None
    try:
        while True:
            if failed is None:
                attempt += 1
                left = None if deadline is None else deadline - clock()
                if left is not None and left <= 0:
                    raise_again(
                        PecTimeoutError(f"{operation}: the deadline has passed", request_sent=False)
                    )
                token = None
                if guard is not None:
                    check_guard(guard)  # raises (nothing sent): the target is no longer ours
                    # ... and again just before the request leaves (attempt.send_once).
                    token = ACTIVE_GUARD.set((guard, asyncio.current_task()))
                try:
                    return await once(left)
                except asyncio.CancelledError:
                    cancelled_in_flight(call, policy, reconciler)
                    raise
                except PecError as exc:
                    error = exc
                finally:
                    if token is not None:
                        ACTIVE_GUARD.reset(token)
            else:
                error, failed = failed, None
            decision = classify(error, effect)
            if decision is Decision.FAIL:
                if resent and reconciler is not None:
                    # Refused (say "taken"): the first write may have landed after all.
                    done = await _check_once(reconciler)
                    if done is not None:
                        return done
                raise_again(error)
            if decision is Decision.RETRY:
                delay = wait_before_retry(policy, error, attempt, deadline)
                if delay is None:
                    raise_again(error)
                notify(policy, operation, attempt, error, delay, settling=False)
                await policy.sleep(delay)
                continue
            if reconciler is None:
                raise_again(_unchecked(operation, error, policy))
            pending = _pending(call, policy, reconciler, error)
            window = pending.window
            if deadline is not None:
                window = max(0.0, min(window, deadline - clock()))
            notify(policy, operation, attempt, error, window, settling=True)
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
                raise_again(error)
            logger.info("%s: no change after the settle window; sending again", operation)
            resent = True
    finally:
        # The error raised from here holds this frame in its traceback: no local of the
        # frame may hold the error (or the pending outcome holding it), or the two stay
        # alive until a garbage collection, with the request's frames.
        error = failed = pending = None


def _unchecked(operation: str, error: PecError, policy: RetryPolicy) -> OutcomeUnknownError:
    """The error of a write whose unknown outcome will not be checked, caused by ``error``
    (built here, raised by the loop with raise_again: no implicit context)."""
    why = "reconciliation is off" if not policy.reconcile else "it cannot be checked"
    unknown = OutcomeUnknownError(
        f"{operation}: outcome unknown: the request may have been processed "
        f"({type(error).__name__}: {error}), and {why}; check the account before "
        "sending it again",
        cause=error,
    )
    unknown.__cause__ = error
    return unknown


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

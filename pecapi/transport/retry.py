"""When to try a call again, how long to wait, and how a write whose outcome is unknown
is reconciled instead of being sent blindly a second time.

The PEC API has no idempotency keys and most writes cost money, so the rule is:

- a *read* is retried on connection errors, timeouts, undecodable answers, 429, 500,
  502, 503 and 504;
- a *write* is resent directly only when it certainly did not take effect (the
  connection could not be opened, or 429: the API refused it before doing anything);
- a *write* whose outcome is unknown (timeout, connection lost after sending, a 5xx, an
  unreadable 2xx) is first *reconciled*: the operation's reconciler reads the account
  to see whether the change happened; if it did, its result is returned, and only if
  it did not is the write sent again;
- nothing else is retried (400, 401, 402, 403, 404, 406, 428...).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

import attrs
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from pecapi.errors import (
    OutcomeUnknownError,
    PecApiError,
    PecError,
    PecTimeoutError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    TransportError,
    ValidationError,
)
from pecapi.transport.endpoint import Effect

__all__ = ["Attempt", "Reconciler", "RetryPolicy", "run_with_policy"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

logger = logging.getLogger("pecapi")

_READ_STATUSES = frozenset({429, 500, 502, 503, 504})
_WRITE_UNKNOWN_STATUSES = frozenset({500, 502, 503, 504})


@attrs.frozen(kw_only=True)
class Attempt:
    """What the ``on_attempt`` hook is told about each failed attempt that will be retried."""

    operation: str
    attempt: int
    error: BaseException
    reason: str
    wait: float
    reconcile: bool


def _positive(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_: Any, __: Any, value: Any) -> None:
        if value is not None and (isinstance(value, bool) or value <= 0):
            raise ValidationError(f"retry.{name}", f"must be positive, not {value!r}")

    return check


def _full_jitter(cap: float) -> float:
    return random.uniform(0.0, cap)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How calls are retried. Set on the client (``PecClient(retry=...)``) and overridable
    per call (``options=RequestOptions(retry=...)``) or per copy (``with_options``).

    - ``max_attempts``: attempts in all, the first included (1 = never retry);
    - waits grow exponentially from ``backoff`` seconds, capped at ``backoff_max``, with
      full jitter (a random wait between 0 and the cap);
    - ``deadline``: seconds for the whole call, every attempt and wait included; no
      attempt starts, and no wait is begun, that would end past it, and the timeout of
      each attempt is shortened to what is left;
    - ``Retry-After`` (seconds or an HTTP-date) is obeyed; when it asks for more than the
      deadline leaves, the :class:`~pecapi.RateLimitError` is raised at once;
    - ``reconcile``: reconcile writes whose outcome is unknown (see the module doc);
      False means such writes are never retried and raise;
    - ``on_attempt``: called with an :class:`Attempt` before each retry;
    - ``sleep``, ``clock``, ``jitter``: injectable for tests.
    """

    max_attempts: int = attrs.field(default=4, validator=_positive("max_attempts"))
    backoff: float = attrs.field(default=0.5, validator=_positive("backoff"))
    backoff_max: float = attrs.field(default=20.0, validator=_positive("backoff_max"))
    deadline: float | None = attrs.field(default=120.0, validator=_positive("deadline"))
    reconcile: bool = True
    on_attempt: Callable[[Attempt], None] | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[float], float] = _full_jitter

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that tries each call once."""
        return cls(max_attempts=1, reconcile=False)

    def backoff_for(self, attempt: int) -> float:
        """The jittered wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.backoff_max, self.backoff * (2 ** (attempt - 1)))
        return max(0.0, self.jitter(cap))


class Reconciler(Protocol[T_co]):
    """Finds out whether a write whose outcome is unknown took effect.

    ``prepare`` runs before the first attempt (e.g. to note the current expiry before a
    renewal); ``check`` returns the operation's result if the change is there, else None.
    """

    async def prepare(self) -> None: ...

    async def check(self) -> T_co | None: ...


def classify(error: BaseException, effect: Effect) -> str | None:
    """Why ``error`` may be retried: "retry", "unknown" (writes: reconcile first) or None."""
    if not isinstance(error, PecError):
        return None
    if isinstance(error, RateLimitError):
        return "retry"
    if effect is Effect.READ:
        if isinstance(error, (TransportError, ResponseDecodeError)):
            return "retry"
        if isinstance(error, PecApiError) and error.status in _READ_STATUSES:
            return "retry"
        return None
    if isinstance(error, TransportError):
        return "unknown" if error.request_sent else "retry"
    if isinstance(error, ResponseDecodeError):
        return "unknown"
    if isinstance(error, ServerError) and error.status in _WRITE_UNKNOWN_STATUSES:
        return "unknown"
    return None


class _CallState(Generic[T]):
    __slots__ = ("outcome_unknown", "reconciled")

    def __init__(self) -> None:
        self.outcome_unknown = False
        self.reconciled: T | None = None


async def run_with_policy(
    operation: str,
    effect: Effect,
    policy: RetryPolicy,
    once: Callable[[float | None], Awaitable[T]],
    reconciler: Reconciler[T] | None = None,
) -> T:
    """Run ``once(time_left)`` under ``policy``; ``time_left`` caps the attempt's timeout."""
    start = policy.clock()
    if effect is Effect.READ or not policy.reconcile or policy.max_attempts == 1:
        reconciler = None
    elif reconciler is not None:
        try:
            await reconciler.prepare()
        except PecError as exc:
            # The write goes out all the same and the API answers it (a wrong id gets the
            # operation's own error), but an unknown outcome can then not be reconciled.
            logger.info("%s: cannot prepare reconciliation (%s); no resend", operation, exc)
            reconciler = None
    can_reconcile = effect is Effect.READ or reconciler is not None
    state: _CallState[T] = _CallState()

    def time_left() -> float | None:
        if policy.deadline is None:
            return None
        return policy.deadline - (policy.clock() - start)

    def should_retry(error: BaseException) -> bool:
        kind = classify(error, effect)
        if kind == "unknown":
            state.outcome_unknown = True
            return can_reconcile
        return kind == "retry"

    def wait(retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        delay = policy.backoff_for(retry_state.attempt_number)
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            delay = error.retry_after
        return delay

    def stop(retry_state: RetryCallState) -> bool:
        if retry_state.attempt_number >= policy.max_attempts:
            return True
        left = time_left()
        return left is not None and retry_state.upcoming_sleep >= left

    def before_sleep(retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        assert error is not None
        info = Attempt(
            operation=operation,
            attempt=retry_state.attempt_number,
            error=error,
            reason=type(error).__name__,
            wait=retry_state.upcoming_sleep,
            reconcile=state.outcome_unknown,
        )
        logger.info(
            "retrying %s after attempt %d failed (%s: %s); waiting %.2fs%s",
            operation,
            info.attempt,
            info.reason,
            error,
            info.wait,
            ", then reconciling" if info.reconcile else "",
        )
        if policy.on_attempt is not None:
            policy.on_attempt(info)

    # The first attempt runs without the retry machinery: most calls succeed at once,
    # and building it per call is a third of the client's CPU per request.
    try:
        return await once(time_left())
    except PecError as error:
        if policy.max_attempts == 1 or not should_retry(error):
            raise
        first_error: PecError | None = error

    retrying = AsyncRetrying(
        retry=retry_if_exception(should_retry),
        wait=wait,
        stop=stop,
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                if first_error is not None:  # replay attempt 1's failure into tenacity
                    replay, first_error = first_error, None
                    raise replay
                if state.outcome_unknown and reconciler is not None:
                    done = await _reconcile(operation, reconciler)
                    if done is not None:
                        return done
                    state.outcome_unknown = False
                left = time_left()
                if left is not None and left <= 0:
                    raise PecTimeoutError(f"{operation}: the retry deadline has passed")
                return await once(left)
    except asyncio.CancelledError:
        raise
    except PecError as error:
        if state.outcome_unknown and reconciler is not None:
            done = await _reconcile(operation, reconciler, last_error=error)
            if done is not None:
                return done
        raise
    raise AssertionError("unreachable: tenacity ends with a result or an exception")


async def _reconcile(
    operation: str, reconciler: Reconciler[T], last_error: PecError | None = None
) -> T | None:
    try:
        done = await reconciler.check()
    except PecError as exc:
        raise OutcomeUnknownError(
            f"{operation}: the outcome of the request is unknown and could not be checked "
            f"({type(exc).__name__}: {exc})",
            cause=last_error,
        ) from exc
    if done is not None:
        logger.info("%s: reconciled, the change had taken effect", operation)
    return done

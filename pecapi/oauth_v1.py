"""The OAuth API v1's operations and answers (``oauth.openapi.it``): ``POST /token``.

``POST /token`` with HTTP Basic authentication (the account's e-mail and API key) and
the body ``{"scopes": [...], "ttl": seconds}`` answers ``{"token", "expire", "scopes",
"success", "message", "error"}``; sent by :class:`~pecapi.oauth_service.TokenService`.
"""

from __future__ import annotations

from typing import Any

from pecapi.oauth_service import UnusableAnswer
from pecapi.secret import Secret
from pecapi.transport.endpoint import Effect, Endpoint, Reply

__all__ = ["CREATE_TOKEN", "TokenAnswer", "number", "token_object", "valid_token"]


class TokenAnswer:
    """A token the service created, as its answer says: the token (wrapped at once) and
    its ``expire`` (unix seconds; None when missing or not a number)."""

    __slots__ = ("expire", "token")

    def __init__(self, token: Secret, expire: float | None) -> None:
        self.token = token
        self.expire = expire

    def __repr__(self) -> str:
        return f"TokenAnswer(<redacted>, expire={self.expire})"


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def token_object(payload: Any) -> dict[str, Any] | None:
    """The object holding ``token``: the answer itself (v1), or its ``data``."""
    if not isinstance(payload, dict):
        return None
    candidates: list[Any] = [payload]
    data = payload.get("data")
    if isinstance(data, dict):
        candidates.append(data)
    elif isinstance(data, list) and len(data) == 1:
        candidates.append(data[0])
    for candidate in candidates:
        if isinstance(candidate, dict) and isinstance(candidate.get("token"), str):
            return candidate
    return None


def valid_token(value: str) -> bool:
    return bool(value) and not any(ch.isspace() or not ch.isprintable() for ch in value)


def _token_answer(reply: Reply) -> TokenAnswer:
    found = token_object(reply.data)
    if found is None or not valid_token(found["token"]):
        raise UnusableAnswer("has no usable token")
    return TokenAnswer(Secret(found["token"]), number(found.get("expire")))


#: ``POST /token``: creates a token with the body's scopes and ttl.
#:
#: Declared a READ for how it may be resent, not for what it does: a resend can only
#: create a second token, which nothing charges for and which expires by itself, so a
#: lost answer never needs settling (a WRITE without a reconciler would end in
#: OutcomeUnknownError). It is sent once per creation all the same (``ONE_ATTEMPT``):
#: its callers retry it, and a loop here would multiply theirs. A PEC call whose token
#: could not be had resends under its own RetryPolicy and deadline when the failure is a
#: transport error, a 429 or a 5xx (TokenError.retryable); a failed renewal keeps the
#: current token and tries again within 30 s. A 4xx (wrong key, refused scope) is
#: retried by nobody: only a change of configuration can make it pass.
CREATE_TOKEN: Endpoint[TokenAnswer] = Endpoint(
    name="oauth.create_token",
    method="POST",
    path="/token",
    effect=Effect.READ,
    decode=_token_answer,
)

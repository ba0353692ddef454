"""How the ``pecapi-raw`` client of the request benchmarks asks pecapi for the answer of
``GET /pec/{id}`` without (or beside) the decoded model: one entry per way, by name, so
that ``--raw-call NAME`` switches and a new escape hatch is one more entry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pecapi

__all__ = ["DEFAULT_RAW_CALL", "RAW_CALLS", "OneCall", "raw_json_wrapper"]

OneCall = Callable[[], Awaitable[Any]]


def _with_raw_json(client: pecapi.PecClient, mailbox_id: str) -> OneCall:
    # The answer's JSON instead of the model: nothing decoded.
    with_raw_json: Callable[[Awaitable[Any]], Awaitable[Any]] = raw_json_wrapper()

    async def one() -> Any:
        return await with_raw_json(client.mailboxes.get(mailbox_id))

    return one


def raw_json_wrapper() -> Any:
    """``with_raw_json`` where this pecapi has it (None where it has not)."""
    from pecapi.transport import raw

    return getattr(pecapi, "with_raw_json", None) or getattr(raw, "with_raw_json", None)


def _with_raw_response(client: pecapi.PecClient, mailbox_id: str) -> OneCall:
    # The HTTP answer beside the decoded value: decodes too, so costs more than ``get``.
    async def one() -> Any:
        return await pecapi.with_raw_response(client.mailboxes.get(mailbox_id))

    return one


#: The ways of asking pecapi for the raw answer of ``GET /pec/{id}``, by name: each takes
#: the client and the mailbox id and returns the call to repeat. Add one here when
#: pecapi gains a cheaper one; ``--raw-call NAME`` picks it.
RAW_CALLS: dict[str, Callable[[pecapi.PecClient, str], OneCall]] = {
    "with_raw_json": _with_raw_json,
    "with_raw_response": _with_raw_response,
}
#: The undecoded answer where pecapi offers one, else the raw response beside the value.
DEFAULT_RAW_CALL = "with_raw_json" if raw_json_wrapper() is not None else "with_raw_response"

"""The aiohttp session a pipeline sends over: the one pecapi creates for it, and the guard
every session gets, pecapi's or a user's (no silent re-send of a request)."""

from __future__ import annotations

import aiohttp

from pecapi.errors import ConfigurationError
from pecapi.transport.auth import StaticAuth
from pecapi.transport.extras import session_headers

__all__ = ["CAN_STOP_RESEND", "OLD_AIOHTTP", "disable_silent_resend", "new_session"]

OLD_AIOHTTP = (
    f"aiohttp {aiohttp.__version__} silently re-sends dropped GET requests (a paid renewal "
    "among them) and cannot be told not to: pecapi needs aiohttp >= 3.11"
)
#: aiohttp 3.11 added the switch, as an attribute every session sets in __init__.
CAN_STOP_RESEND = "_retry_connection" in getattr(aiohttp.ClientSession, "ATTRS", ())


def new_session(max_in_flight: int, static: StaticAuth | None) -> aiohttp.ClientSession:
    """A session of pecapi's own, made in the running loop (it binds to it). Sized to the
    throttle: a request past the gate never waits for a connection. ``static``: a fixed
    ``Authorization``, set once as a header of this session (never of a user's)."""
    connector = aiohttp.TCPConnector(limit=max_in_flight, limit_per_host=max_in_flight)
    session = aiohttp.ClientSession(
        connector=connector,
        # Built in the call: no local of this frame holds the plain credential.
        headers=session_headers(static),
        auto_decompress=False,
    )
    disable_silent_resend(session)  # before it is handed out: never used unguarded
    return session


def disable_silent_resend(session: aiohttp.ClientSession) -> None:
    # aiohttp re-sends a GET/HEAD/DELETE/... once when a kept-alive connection turns out
    # to be dead. The PEC API renews (and charges) on GET /pec/{id}/rinnovo, so that hidden
    # second request could charge twice: pecapi decides about every resend itself. An
    # aiohttp without the switch (before 3.11) cannot be made safe: refuse it.
    if not isinstance(getattr(session, "_retry_connection", None), bool):
        raise ConfigurationError(OLD_AIOHTTP)
    session._retry_connection = False

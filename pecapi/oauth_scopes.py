"""OAuth scopes for the PEC API: which scope each operation of the client needs.

A scope is ``METHOD:host/segment``, e.g. ``GET:test.pec.openapi.it/pec``, where the
segment is the first segment of the path. The same for every version of the token
service (v1 ``POST /token``, v2 ``POST /tokens``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from pecapi.errors import ConfigurationError
from pecapi.resources import comunica_pec as _comunica_pec
from pecapi.resources import domains as _domains
from pecapi.resources import mailboxes as _mailboxes
from pecapi.transport.endpoint import Endpoint

__all__ = [
    "PEC_HOSTS",
    "PEC_OPERATIONS",
    "PEC_SEGMENTS",
    "all_pec_scopes",
    "check_scopes",
    "pec_scopes",
]

#: The host of the PEC API as it appears in scopes: production and sandbox.
PEC_HOSTS: Mapping[bool, str] = MappingProxyType(
    {False: "pec.openapi.it", True: "test.pec.openapi.it"}
)
#: The first path segments of the PEC API: the ``segment`` of its scopes.
PEC_SEGMENTS = ("pec", "verifica_pec", "domini_pec", "comunica_pec")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "*"})


def _operations() -> Mapping[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for module in (_mailboxes, _comunica_pec, _domains):
        for value in vars(module).values():
            if isinstance(value, Endpoint):
                segment = value.path.strip("/").split("/", 1)[0]
                found[value.name] = (value.method, segment)
    return MappingProxyType(dict(sorted(found.items())))


#: Every operation of the client -> the (method, segment) of the scope it needs,
#: e.g. ``"mailboxes.renew": ("GET", "pec")``.
PEC_OPERATIONS: Mapping[str, tuple[str, str]] = _operations()


def _scope_pair(item: object) -> tuple[str, str]:
    if isinstance(item, str):
        pair = PEC_OPERATIONS.get(item.strip())
        if pair is None:
            known = ", ".join(PEC_OPERATIONS)
            raise ConfigurationError(f"unknown PEC operation {item!r}; known: {known}")
        return pair
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
        method, segment = item[0].strip().upper(), item[1].strip().strip("/")
        if method not in _METHODS:
            raise ConfigurationError(f"{item[0]!r} is not an HTTP method (or '*')")
        if segment not in PEC_SEGMENTS:
            raise ConfigurationError(
                f"{item[1]!r} is not a segment of the PEC API ({', '.join(PEC_SEGMENTS)})"
            )
        return method, segment
    raise ConfigurationError(
        f"an operation is a name like 'mailboxes.renew' or a (method, segment) pair, not {item!r}"
    )


def pec_scopes(*operations: str | tuple[str, str], sandbox: bool) -> list[str]:
    """The OAuth scopes that allow ``operations`` on the PEC API, without duplicates.

    An operation is a client method name (``"mailboxes.renew"``, ``"comunica_pec.create"``,
    ``"domains.check"``: see :data:`PEC_OPERATIONS`) or a ``(method, segment)`` pair such as
    ``("GET", "pec")``. The scopes name ``test.pec.openapi.it`` when ``sandbox`` is true,
    ``pec.openapi.it`` otherwise::

        >>> pec_scopes("mailboxes.renew", "mailboxes.get", ("POST", "pec"), sandbox=True)
        ['GET:test.pec.openapi.it/pec', 'POST:test.pec.openapi.it/pec']
    """
    if not operations:
        raise ConfigurationError("pec_scopes() needs at least one operation")
    host = PEC_HOSTS[bool(sandbox)]
    scopes: dict[str, None] = {}
    for item in operations:
        method, segment = _scope_pair(item)
        scopes[f"{method}:{host}/{segment}"] = None
    return list(scopes)


def all_pec_scopes(*, sandbox: bool) -> list[str]:
    """Every scope the client's operations can need: one per (method, segment) in use."""
    order = {segment: i for i, segment in enumerate(PEC_SEGMENTS)}
    pairs = sorted(set(PEC_OPERATIONS.values()), key=lambda p: (order.get(p[1], 99), p[0]))
    return pec_scopes(*pairs, sandbox=sandbox)


def check_scopes(scopes: Iterable[str], sandbox: bool) -> tuple[str, ...]:
    if isinstance(scopes, str):
        raise ConfigurationError("scopes must be a list of scopes, not one string")
    out: dict[str, None] = {}
    other_host = PEC_HOSTS[not sandbox]
    for scope in scopes:
        if not isinstance(scope, str) or ":" not in scope or "/" not in scope:
            raise ConfigurationError(f"{scope!r} is not a scope like 'GET:pec.openapi.it/pec'")
        if any(ch.isspace() or not ch.isprintable() for ch in scope):
            raise ConfigurationError(f"the scope {scope!r} contains whitespace")
        if scope.split(":", 1)[1].startswith(f"{other_host}/"):
            env = "the sandbox" if sandbox else "production"
            raise ConfigurationError(f"the scope {scope!r} is not for {env}: see pec_scopes()")
        out[scope] = None
    if not out:
        raise ConfigurationError("at least one scope is required (see pec_scopes())")
    return tuple(out)

"""The route table: every operation of the API, as ``(method, path template) -> handler``.

A handler gets the emulator's :class:`Resources` and the :class:`Call` (path parameters,
query, JSON body) and returns a :data:`~pecapi.testing.replies.Reply`; it raises
:class:`~pecapi.testing.errors.ApiError` / ``PlainError`` for an error answer. Adding an
operation is a method on its resource, a row here, and a test.

Authentication, scopes, bodies and faults are the HTTP layer's (:mod:`pecapi.testing.app`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .account import Account, Tokens
from .comunica import ComunicaRequests
from .domains import Domains
from .forms import Forms
from .mailbox_changes import MailboxChanges
from .mailboxes import Mailboxes
from .records import Json
from .replies import Reply, ok, pdf

if TYPE_CHECKING:
    from multidict import MultiMapping

__all__ = ["ROUTES", "Call", "Match", "Resources", "Route", "RouteTable"]


@dataclass(frozen=True, slots=True)
class Resources:
    """Everything the handlers reach: the account, its tokens and each resource."""

    account: Account
    tokens: Tokens
    domains: Domains
    mailboxes: Mailboxes
    changes: MailboxChanges
    comunica: ComunicaRequests
    forms: Forms


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler gets of a request: path parameters by name, query, JSON body
    (``{}`` unless the route reads one)."""

    params: Mapping[str, str]
    query: MultiMapping[str]
    body: Json


Handler = Callable[[Resources, Call], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: ``path`` is a template of the specification (``/pec/{id}/rinnovo``);
    ``body``: the handler reads a JSON object (anything else is refused 400 before it)."""

    method: str
    path: str
    handler: Handler
    body: bool = False
    # The template split: a literal segment, or None for a parameter.
    parts: tuple[str | None, ...] = field(init=False, repr=False)
    names: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        segments = self.path.strip("/").split("/")
        parts = tuple(None if s.startswith("{") else s for s in segments)
        names = tuple(s[1:-1] for s in segments if s.startswith("{"))
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "names", names)

    @property
    def segment(self) -> str:
        """The first path segment: what scopes name (``METHOD:host/segment``)."""
        return self.parts[0] or ""


def _domini(res: Resources, call: Call) -> Reply:
    dominio = call.params.get("dominio", "")
    found = res.domains.check(dominio)
    if found is None:
        return 204, b"", {}
    return ok(found, f"{dominio} found!")


def _renew(res: Resources, call: Call) -> Reply:
    return ok(res.changes.renew(call.params["id"], call.query.get("anni")).wire())


def _form(name: str, make: Callable[[Resources, str], bytes]) -> Handler:
    return lambda res, call: pdf(make(res, call.params["id"]), f"{name}_{call.params['id']}.pdf")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/domini_pec/{dominio}", _domini),
    # no domain at all: the spec's 428 "domain required" (and the same for an address)
    Route("GET", "/domini_pec", _domini),
    Route("GET", "/verifica_pec/{pec}", lambda r, c: ok(r.mailboxes.check_pec(c.params["pec"]))),
    Route("GET", "/verifica_pec", lambda r, c: ok(r.mailboxes.check_pec(""))),
    Route("GET", "/pec", lambda r, c: ok(r.mailboxes.list())),
    Route("POST", "/pec", lambda r, c: ok(r.mailboxes.register(c.body).wire()), body=True),
    Route("GET", "/pec/{id}", lambda r, c: ok(r.mailboxes.get(c.params["id"]).wire())),
    Route("DELETE", "/pec/{id}", lambda r, c: ok(r.mailboxes.revoke(c.params["id"]).wire())),
    Route(
        "PATCH",
        "/pec/{id}/attivazione",
        lambda r, c: ok(r.mailboxes.upload_activation(c.params["id"], c.body).wire()),
        body=True,
    ),
    Route(
        "PATCH",
        "/pec/{id}/modifica",
        lambda r, c: ok(r.changes.modify_space(c.params["id"], c.body).wire()),
        body=True,
    ),
    Route(
        "PATCH",
        "/pec/{id}/conservazione",
        lambda r, c: ok(r.changes.activate_conservation(c.params["id"], c.body).wire()),
        body=True,
    ),
    Route(
        "PATCH",
        "/pec/{id}/trasformazione",
        lambda r, c: ok(r.changes.change_type(c.params["id"], c.body).wire()),
        body=True,
    ),
    Route("GET", "/pec/{id}/rinnovo", _renew),
    Route(
        "POST",
        "/pec/{id}/multiutenza",
        lambda r, c: ok(r.changes.add_user(c.params["id"], c.body).wire()),
        body=True,
    ),
    Route(
        "GET",
        "/pec/{id}/modulo_attivazione",
        _form("modulo_attivazione", lambda r, i: r.forms.activation(i)),
    ),
    Route(
        "GET",
        "/pec/{id}/modulo_conservazione",
        _form("modulo_conservazione", lambda r, i: r.forms.conservation(i)),
    ),
    Route("GET", "/comunica_pec", lambda r, c: ok(r.comunica.list())),
    Route("POST", "/comunica_pec", lambda r, c: ok(r.comunica.create(c.body).wire()), body=True),
    Route("GET", "/comunica_pec/{id}", lambda r, c: ok(r.comunica.get(c.params["id"]).wire())),
    Route(
        "PATCH",
        "/comunica_pec/{id}",
        lambda r, c: ok(r.comunica.upload(c.params["id"], c.body).wire()),
        body=True,
    ),
    Route(
        "GET",
        "/comunica_pec/{id}/procura_registro_imprese",
        _form("procura_registro_imprese", lambda r, i: r.forms.procura(i)),
    ),
)


@dataclass(frozen=True, slots=True)
class Match:
    """A path that names an operation: its routes by method, and the path parameters."""

    methods: Mapping[str, Route]
    params: Mapping[str, str]
    allow: str  # the Allow header of a 405


class RouteTable:
    """Finds the routes of a path (its segments, percent-decoded)."""

    def __init__(self, routes: Sequence[Route] = ROUTES) -> None:
        by_template: dict[tuple[str | None, ...], dict[str, Route]] = {}
        for route in routes:
            by_template.setdefault(route.parts, {})[route.method] = route
        # (first segment, number of segments) -> the templates of that shape, each as
        # (its literal segments by position, the positions of its parameters, their names,
        # its routes by method, its Allow header)
        self._index: dict[tuple[str, int], list[_Template]] = {}
        for parts, methods in by_template.items():
            literals = tuple((i, p) for i, p in enumerate(parts) if p is not None)
            positions = tuple(i for i, p in enumerate(parts) if p is None)
            names = next(iter(methods.values())).names
            template = _Template(literals, positions, names, methods, ", ".join(sorted(methods)))
            self._index.setdefault((parts[0] or "", len(parts)), []).append(template)

    def match(self, segments: Sequence[str]) -> Match | None:
        for t in self._index.get((segments[0], len(segments)), ()):
            if all(segments[i] == literal for i, literal in t.literals):
                params = {name: segments[i] for name, i in zip(t.names, t.positions, strict=True)}
                return Match(t.methods, params, t.allow)
        return None


@dataclass(frozen=True, slots=True)
class _Template:
    """A path template of the table, ready to match (see ``RouteTable.__init__``)."""

    literals: tuple[tuple[int, str], ...]
    positions: tuple[int, ...]
    names: tuple[str, ...]
    methods: Mapping[str, Route]
    allow: str

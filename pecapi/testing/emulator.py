"""The :class:`Emulator` facade: one object a test builds, serves and drives.

It wires the parts together (the account, the resources, the route table's handlers, the
fault plan, the late commits, the callbacks) and gives tests one place to inspect and drive
the state. The operations live in the resource modules (:mod:`~pecapi.testing.mailboxes`,
:mod:`~pecapi.testing.mailbox_changes`, :mod:`~pecapi.testing.comunica`,
:mod:`~pecapi.testing.forms`, :mod:`~pecapi.testing.domains`), the HTTP layer in
:mod:`~pecapi.testing.app`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

from aiohttp import web

from .account import DEFAULT_TOKEN, HOSTS, Account, Environment, Tokens
from .admin import AdminSurface, admin_surface
from .app import build_app, serve_app
from .callbacks import CallbackDeliverer, Delivery
from .comunica import ComunicaRequests
from .domains import Domains
from .faults import TRANSIENT_FAULTS, FaultPlan
from .forms import Forms
from .late import LateCommits
from .ledger import OPERATIONS, Charge, PriceList, RequestRecord
from .mailbox_changes import MailboxChanges
from .mailboxes import Mailboxes
from .records import Json
from .routes import Resources

__all__ = ["Emulator", "RunningEmulator"]


@dataclass(frozen=True, slots=True)
class RunningEmulator:
    """An emulator being served: ``url`` is the base URL, without a trailing slash."""

    url: str
    host: str
    port: int
    emulator: Emulator


class Emulator:
    """A stateful, in-memory emulator of the Openapi.it PEC API (one account).

    See ``pecapi/testing/README.md``. Serve it with :meth:`serve` (or mount :meth:`app`).
    """

    def __init__(
        self,
        environment: Environment = "sandbox",
        tokens: Mapping[str, Iterable[str] | None] | None = None,
        credit: Decimal | int | str = Decimal("1000"),
        prices: PriceList | None = None,
        own_domains: Iterable[str] = (),
        certified_domains: Iterable[str] | None = None,
        auto_process: bool = False,
        latency: float = 0.0,
        seed: int = 0,
        owner: str = "mail@domain.com",
        token_expiry: Mapping[str, float] | None = None,
        callback_attempts: int = 3,
        callback_retry_delay: float = 0.0,
        callback_envelope: bool = True,
        callback_hosts: Iterable[str] = (),
        allow_external_callbacks: bool = False,
        admin_token: str | None = None,
        fault_rate: float = 0.0,
    ) -> None:
        if environment not in HOSTS:
            raise ValueError("environment must be 'sandbox' or 'production'")
        if admin_token is not None and (not admin_token or admin_token.split() != [admin_token]):
            raise ValueError("admin_token must be a non-empty string without spaces")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("fault_rate must be in [0, 1]")
        # What reset() goes back to; iterables are read once (an iterator would be empty
        # the second time).
        self._initial = _Initial(
            environment=environment,
            owner=owner,
            credit=Decimal(credit),
            prices=prices if prices is not None else PriceList(),
            own_domains=tuple(own_domains),
            certified_domains=None if certified_domains is None else tuple(certified_domains),
            auto_process=auto_process,
            latency=latency,
            fault_rate=fault_rate,
        )
        token_scopes = {DEFAULT_TOKEN: None} if tokens is None else dict(tokens)
        self._admin_token = admin_token
        # Without an admin token of its own, on loopback the admin surface takes the tokens
        # built with every scope: a token limited to some scopes must not drive the account.
        self._api_admin_tokens = tuple(t for t, s in token_scopes.items() if s is None)
        #: delivers callbacks to the URLs of registrations and requests (see README); only
        #: to loopback hosts, those in ``callback_hosts``, or any with allow_external_callbacks
        self.callbacks = CallbackDeliverer(
            attempts=callback_attempts,
            retry_delay=callback_retry_delay,
            envelope=callback_envelope,
            hosts=callback_hosts,
            allow_external=allow_external_callbacks,
        )
        self.environment: Environment = environment
        self.host = HOSTS[environment]
        self.latency = latency
        self.seed = seed
        self.faults = FaultPlan(seed)
        #: the requests of ``Fault.late`` faults waiting to be processed (see README)
        self.late_commits = LateCommits()
        self.requests: list[RequestRecord] = []
        self._build(token_scopes, token_expiry or {})

    def _build(
        self, scopes: Mapping[str, Iterable[str] | None], expiry: Mapping[str, float]
    ) -> None:
        """The account and its resources as built (or reset), and the fault_rate rule."""
        initial = self._initial
        account = Account(
            environment=initial.environment,
            owner=initial.owner,
            credit=initial.credit,
            prices=initial.prices,
            seed=self.seed,
            auto_process=initial.auto_process,
            callbacks=self.callbacks,
        )
        tokens_ = Tokens(scopes, expiry, account.clock, account.host)
        domains = Domains(account, initial.own_domains, initial.certified_domains)
        mailboxes = Mailboxes(account, domains)
        comunica = ComunicaRequests(account)
        #: the account, its tokens and every resource: what the route table's handlers use
        self.resources = Resources(
            account=account,
            tokens=tokens_,
            domains=domains,
            mailboxes=mailboxes,
            changes=MailboxChanges(account, mailboxes),
            comunica=comunica,
            forms=Forms(mailboxes, comunica),
        )
        self._account = account
        if initial.fault_rate > 0:
            self.faults.rate(initial.fault_rate, TRANSIENT_FAULTS)

    async def reset(self) -> None:
        """Back to the state it was built in, with the same seed and options: wallet, ledger,
        mailboxes, comunica_pec requests, documents, ids, the clock (real time), latency,
        auto_process, prices, the request log, the fault plan (its rules and counts; the
        ``fault_rate`` rule again). Late commits still waiting and callbacks in flight are
        cancelled, the deliveries forgotten. The tokens are kept as they are (added,
        revoked, expiries): they are access, not state, and a client holding one (from an
        :class:`~pecapi.testing.OAuthEmulator` too) must not be logged out by a reset.
        """
        await self.late_commits.aclose()
        await self.callbacks.aclose()
        self.callbacks.deliveries.clear()
        self.requests.clear()
        self.latency = self._initial.latency
        self.faults.reset()
        tokens = self.resources.tokens
        self._build(tokens.scopes, tokens.expiry)

    @property
    def admin_token(self) -> str | None:
        """The admin surface's own token (``None``: see :meth:`serve`)."""
        return self._admin_token

    # --- the account ------------------------------------------------------------------------

    @property
    def wallet(self) -> Decimal:
        return self._account.wallet

    @wallet.setter
    def wallet(self, value: Decimal) -> None:
        self._account.wallet = Decimal(value)

    @property
    def prices(self) -> PriceList:
        return self._account.prices

    @prices.setter
    def prices(self, value: PriceList) -> None:
        self._account.prices = value

    @property
    def auto_process(self) -> bool:
        return self._account.auto_process

    @auto_process.setter
    def auto_process(self, value: bool) -> None:
        self._account.auto_process = value

    @property
    def owner(self) -> str:
        return self._account.owner

    @property
    def ledger(self) -> list[Charge]:
        return self._account.ledger

    @property
    def documents(self) -> dict[str, bytes]:
        """The decoded files uploaded, by the name the API gives them
        ("<id>_0_attivazione.pdf", "<id>_0_registro_imprese.p7m"...)."""
        return self._account.documents

    @property
    def own_domains(self) -> frozenset[str]:
        return self.resources.domains.own

    @property
    def certified_domains(self) -> frozenset[str]:
        return self.resources.domains.certified

    @property
    def mailboxes(self) -> Mapping[str, Json]:
        """id -> the Casella, as GET /pec/{id} returns it (read-only view)."""
        return self.resources.mailboxes.view

    @property
    def comunica_requests(self) -> Mapping[str, Json]:
        """id -> the RichiestaComunicazionePec, as the API returns it (read-only view)."""
        return self.resources.comunica.view

    def now(self) -> float:
        """The emulator's clock: real time unless :meth:`set_time` fixed it."""
        return self._account.clock.now()

    def set_time(self, ts: float) -> None:
        """Stop the clock at unix time ``ts``."""
        self._account.clock.set(ts)

    def advance_time(self, seconds: float) -> None:
        """Move the clock forward (it stays fixed from then on)."""
        self._account.clock.advance(seconds)

    def charges(self, operation: str | None = None, target_id: str | None = None) -> list[Charge]:
        """The ledger filtered by operation and/or target id.

        An ``operation`` that is none of :data:`~pecapi.testing.ledger.OPERATIONS` is a
        ValueError: filtering by a misspelt name would always give ``[]``, and a test
        asserting that nothing was charged would check nothing.
        """
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(
                f"no operation is called {operation!r}: one of {', '.join(OPERATIONS)}"
            )
        return [
            c
            for c in self.ledger
            if (operation is None or c.operation == operation)
            and (target_id is None or c.target_id == target_id)
        ]

    # --- tokens -----------------------------------------------------------------------------

    @property
    def tokens(self) -> dict[str, frozenset[str] | None]:
        """token -> None (every scope) or the set of scopes "METHOD:host/segment"."""
        return self.resources.tokens.scopes

    @property
    def token_expiry(self) -> dict[str, float]:
        """token -> unix time (emulator clock) from which it is answered 401 "Token
        expired"; tokens not listed never expire."""
        return self.resources.tokens.expiry

    def add_token(
        self, token: str, scopes: Iterable[str] | None = None, *, expires: float | None = None
    ) -> None:
        """Accept ``token`` (``scopes`` None: every scope) until ``expires`` (emulator clock)."""
        self.resources.tokens.add(token, scopes, expires)

    def revoke_token(self, token: str) -> bool:
        """Stop accepting ``token`` (answered 401 from now on); False if it was unknown."""
        return self.resources.tokens.revoke(token)

    def token_expired(self, token: str) -> bool:
        """True when ``token`` has an expiry and the emulator clock has reached it."""
        return self.resources.tokens.expired(token)

    # --- requests, callbacks, late commits ----------------------------------------------------

    def count(self, method: str = "*", path_glob: str = "*") -> int:
        """How many requests matched ``method`` ("*": any) and the fnmatch ``path_glob``."""
        method = method.upper()
        return sum(
            1
            for r in self.requests
            if (method == "*" or r.method == method) and fnmatchcase(r.path, path_glob)
        )

    @property
    def deliveries(self) -> list[Delivery]:
        """Every callback scheduled so far, in order: url, stato, attempts, status..."""
        return self.callbacks.deliveries

    async def deliveries_settled(self) -> list[Delivery]:
        """Wait until every scheduled callback was delivered or gave up; the deliveries."""
        await self.callbacks.settled()
        return self.callbacks.deliveries

    @property
    def late_pending(self) -> int:
        """Late commits not made yet."""
        return self.late_commits.pending

    async def drain_late(self) -> None:
        """Wait until every late commit scheduled so far has been made."""
        await self.late_commits.drain()

    async def aclose(self) -> None:
        """Cancel the late commits still waiting (those requests are never processed), then
        the callbacks still being delivered, and close their HTTP session.

        Called when :meth:`serve` ends or the :meth:`app` is cleaned up.
        """
        await self.late_commits.aclose()
        await self.callbacks.aclose()

    # --- driving the state ------------------------------------------------------------------

    def seed_mailbox(
        self,
        casella_pec: str,
        *,
        tipo_casella: str = "BRONZE",
        stato: str = "evasa",
        **fields: Any,
    ) -> str:
        """Insert a mailbox directly (no validation of domain rules, no charge); its id.

        ``fields`` override any Casella field (``timestamp`` is merged; ``id`` picks the id;
        unknown names are kept and answered as they are). An ``evasa``/``revocata`` mailbox
        is activated (expiry one year from now, default spaces).
        """
        return self.resources.mailboxes.seed(casella_pec, tipo_casella, stato, fields)

    def seed_comunica(
        self, casella_pec: str, *, stato: str = "codice_in_richiesta", **fields: Any
    ) -> str:
        """Insert a comunica_pec request directly (no charge); its id."""
        return self.resources.comunica.seed(casella_pec, stato, fields)

    def complete_activation(self, mailbox_id: str) -> None:
        """``in_evasione`` -> ``evasa``: activation date, expiry one year ahead, spaces."""
        self.resources.mailboxes.complete_activation(mailbox_id)

    def reject_documents(self, mailbox_id: str) -> None:
        """``in_evasione`` -> ``documenti_errati`` (the documents must be uploaded again)."""
        self.resources.mailboxes.reject_documents(mailbox_id)

    def advance_comunica(self, request_id: str) -> None:
        """``codice_in_richiesta`` -> ``in_attesa_di_documenti``;
        ``documenti_caricati`` -> ``comunicazione_evasa``."""
        self.resources.comunica.advance(request_id)

    def process_all(self) -> int:
        """Complete every pending transition; how many were made."""
        return (
            self.resources.mailboxes.process_pending() + self.resources.comunica.process_pending()
        )

    # --- serving ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application serving this emulator. Where it will listen is unknown
        here: its admin surface is on only with an ``admin_token``."""
        return build_app(self, self._admin(None))

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[RunningEmulator]:
        """Serve over HTTP on ``host:port`` (0: a free port) while the context is open.

        The admin surface (``/_emulator/...``) takes the ``admin_token``; without one, on a
        loopback ``host`` the tokens built with every scope, on any other it is off (403).
        """
        async with serve_app(self, host, port, self._admin(host)) as (bound_host, bound_port):
            url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
            yield RunningEmulator(f"http://{url_host}:{bound_port}", bound_host, bound_port, self)

    def _admin(self, host: str | None) -> AdminSurface:
        return admin_surface(self, host, self._admin_token, self._api_admin_tokens)


@dataclass(frozen=True, slots=True)
class _Initial:
    """The options an emulator was built with (what :meth:`Emulator.reset` goes back to)."""

    environment: Environment
    owner: str
    credit: Decimal
    prices: PriceList
    own_domains: tuple[str, ...]
    certified_domains: tuple[str, ...] | None
    auto_process: bool
    latency: float
    fault_rate: float

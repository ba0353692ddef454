"""The account every resource shares: its clock, wallet and ledger, the ids of its records,
the files uploaded, the callbacks of its changes; and the bearer tokens that reach it.

Resources (mailboxes, comunica_pec, forms...) take an :class:`Account` rather than the
:class:`~pecapi.testing.Emulator`: they need these, not the HTTP layer or the fault plan, and
the facade stays the only module that knows every part.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Literal, Protocol

from . import errors as E
from .callbacks import CallbackDeliverer
from .errors import ErrorCode
from .ledger import Charge, PriceList
from .records import Callback, Json

__all__ = [
    "DEFAULT_TOKEN",
    "HOSTS",
    "Account",
    "Clock",
    "Environment",
    "Tokens",
    "seeded_random",
]

Environment = Literal["sandbox", "production"]

#: The bearer token every emulator accepts by default (all scopes).
DEFAULT_TOKEN = "pecapi-emulator-token"

HOSTS: Mapping[str, str] = {"sandbox": "test.pec.openapi.it", "production": "pec.openapi.it"}


def seeded_random(seed: int, stream: str) -> random.Random:
    """A generator for one ``stream`` of draws of an emulator seeded with ``seed``.

    Each stream has its own derived seed: two generators seeded alike draw the same
    numbers, and the OAuth emulator's first token was the first mailbox id.
    """
    # A str seed is hashed with SHA-512 (not hash()): the same on every run and platform.
    return random.Random(f"pecapi.testing/{stream}/{seed}")


class Clock:
    """The emulator's clock: real time until :meth:`set` stops it."""

    def __init__(self) -> None:
        self._fixed: float | None = None

    def now(self) -> float:
        return time.time() if self._fixed is None else self._fixed

    def set(self, ts: float) -> None:
        self._fixed = float(ts)

    def advance(self, seconds: float) -> None:
        self._fixed = self.now() + seconds


class _Notified(Protocol):
    """A record that may have a callback: a mailbox or a comunica_pec request."""

    @property
    def callback(self) -> Callback | None: ...

    def wire(self) -> Json: ...


class Account:
    """One account of the API (see the module docstring)."""

    def __init__(
        self,
        *,
        environment: Environment,
        owner: str,
        credit: Decimal,
        prices: PriceList,
        seed: int,
        auto_process: bool,
        callbacks: CallbackDeliverer,
    ) -> None:
        self.environment: Environment = environment
        self.host = HOSTS[environment]
        self.owner = owner
        self.wallet = credit
        self.prices = prices
        self.auto_process = auto_process
        self.callbacks = callbacks
        self.clock = Clock()
        self.ledger: list[Charge] = []
        #: the decoded files uploaded, by the name the API gives them
        self.documents: dict[str, bytes] = {}
        #: every random choice about records (ids, codes): seeded, so runs repeat
        self.rng = seeded_random(seed, "records")
        self._ids: set[str] = set()

    def now(self) -> float:
        return self.clock.now()

    def new_id(self) -> str:
        """A fresh 24-hex-digit id, unique across mailboxes and comunica_pec requests."""
        while True:
            candidate = f"{self.rng.getrandbits(96):024x}"
            if candidate not in self._ids:
                self._ids.add(candidate)
                return candidate

    def claim_id(self, record_id: str) -> None:
        """Reserve an id a test chose; a ValueError if a record already has it."""
        if record_id in self._ids:
            raise ValueError(f"duplicate id {record_id!r}")
        self._ids.add(record_id)

    def check_funds(self, amount: Decimal, err: ErrorCode) -> None:
        if amount > self.wallet:
            raise err.error(amount=f"{self.wallet:.2f}")

    def pay(
        self, amount: Decimal, err: ErrorCode, operation: str, target_id: str, detail: str
    ) -> None:
        """Debit the wallet and append the charge; ``err`` (nothing debited) when short."""
        self.check_funds(amount, err)
        self.wallet -= amount
        self.ledger.append(Charge(operation, amount, target_id, detail, self.now()))

    def store(self, names: Iterable[str], files: Iterable[bytes]) -> None:
        self.documents.update(zip(names, files, strict=True))

    def notify(self, kind: str, record: _Notified) -> None:
        """A record changed state: call its callback back, if it has one."""
        callback = record.callback
        if callback is not None and callback.url:
            self.callbacks.schedule(kind, record.wire())


class Tokens:
    """The bearer tokens the API accepts, their scopes (``None``: every scope) and expiry
    (unix time on the account's clock; a token not listed never expires)."""

    def __init__(
        self,
        scopes: Mapping[str, Iterable[str] | None],
        expiry: Mapping[str, float],
        clock: Clock,
        host: str,
    ) -> None:
        self.scopes: dict[str, frozenset[str] | None] = {
            t: (None if s is None else frozenset(s)) for t, s in scopes.items()
        }
        self.expiry: dict[str, float] = dict(expiry)
        self._clock = clock
        self._host = host

    def add(self, token: str, scopes: Iterable[str] | None, expires: float | None) -> None:
        self.scopes[token] = None if scopes is None else frozenset(scopes)
        if expires is None:
            self.expiry.pop(token, None)
        else:
            self.expiry[token] = float(expires)

    def revoke(self, token: str) -> bool:
        self.expiry.pop(token, None)
        return self.scopes.pop(token, False) is not False

    def expired(self, token: str) -> bool:
        expiry = self.expiry.get(token)
        return expiry is not None and self._clock.now() >= expiry

    def authenticate(self, authorization: str) -> str:
        """The token of an ``Authorization`` header; a 401 ApiError when there is none, it
        is unknown or it expired."""
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise E.AUTH_MISSING.error()
        if token not in self.scopes:
            raise E.AUTH_INVALID.error()
        if self.expired(token):
            raise E.AUTH_EXPIRED.error()
        return token

    def authorize(self, token: str, method: str, segment: str) -> None:
        """A 403 ApiError unless ``token`` has the scope ``METHOD:host/segment``."""
        scopes = self.scopes[token]
        if scopes is None:
            return
        scope = f"{method}:{self._host}/{segment}"
        if scope not in scopes and f"*:{self._host}/{segment}" not in scopes:
            raise E.SCOPE_MISSING.error(scope=scope)

"""Money: the price list, the charges of the ledger; and the record of served requests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["DEFAULT_REGISTER_PRICES", "OPERATIONS", "Charge", "PriceList", "RequestRecord"]

#: The ``operation`` of each kind of charge.
OPERATIONS = (
    "register",
    "renewal",
    "space",
    "conservazione",
    "trasformazione",
    "multiutenza",
    "comunica_pec",
    "verifica_dominio",
)

#: Yearly price of each mailbox type (EUR). The emulator's own figures, not Openapi's tariff.
DEFAULT_REGISTER_PRICES: Mapping[str, Decimal] = {
    "STANDARD": Decimal("5.00"),
    "BRONZE": Decimal("8.00"),
    "SILVER": Decimal("15.00"),
    "GOLD": Decimal("25.00"),
    "DOMICILIODIGITALE": Decimal("6.00"),
    "PECMASSIVA": Decimal("30.00"),
}


def _register_prices() -> dict[str, Decimal]:
    return dict(DEFAULT_REGISTER_PRICES)


@dataclass(frozen=True)
class PriceList:
    """What each paid operation costs (EUR). Every figure can be overridden, e.g.
    ``PriceList(register={**DEFAULT_REGISTER_PRICES, "GOLD": Decimal("99")})``."""

    #: registration (first year included), per ``tipo_casella``
    register: Mapping[str, Decimal] = field(default_factory=_register_prices)
    #: renewal, per ``tipo_casella`` and per year (``anni``)
    renewal: Mapping[str, Decimal] = field(default_factory=_register_prices)
    #: extra mailbox space, per 1024 MB added
    spazio_disco: Decimal = Decimal("5.00")
    #: extra security-archive space, per 1024 MB added
    spazio_storico: Decimal = Decimal("5.00")
    #: extra storage (conservazione) space, per 512 MB added (also when activating it)
    spazio_conservazione: Decimal = Decimal("10.00")
    #: activation of the conservazione service (plus its space, per 512 MB)
    conservazione: Decimal = Decimal("20.00")
    #: change of ``tipo_casella`` (flat)
    trasformazione: Decimal = Decimal("10.00")
    #: each user added to a mailbox (multiutenza)
    multiutenza: Decimal = Decimal("3.00")
    #: each request of communication to the business register
    comunica_pec: Decimal = Decimal("10.00")
    #: GET /domini_pec (the spec documents a 402 for it); 0 = free, and then never charged
    verifica_dominio: Decimal = Decimal("0")

    def register_price(self, tipo_casella: str) -> Decimal:
        return self.register[tipo_casella]

    def renewal_price(self, tipo_casella: str, anni: int = 1) -> Decimal:
        return self.renewal[tipo_casella] * anni


@dataclass(frozen=True, slots=True)
class Charge:
    """One debit of the wallet: appended to the ledger only when the operation succeeded."""

    operation: str  # one of OPERATIONS
    amount: Decimal
    target_id: str  # the mailbox or comunica_pec request id ("" for verifica_dominio)
    detail: str
    at: float  # the emulator's clock


@dataclass(slots=True)
class RequestRecord:
    """One request received by the emulator. ``status`` is ``None`` when no answer was sent
    (a dropped connection); ``fault`` is the kind of fault applied, or ``None``."""

    method: str
    path: str
    status: int | None
    fault: str | None

"""What a batch of paid operations will cost, and whether the wallet can pay for it.

::

    prices = PriceList.load("prices.json")            # your tariff: pecapi ships none
    wallet = await client.account.wallet()
    cost = estimate(read_registrations_csv("boxes.csv"), prices, wallet)
    print(cost.total, cost.per_operation, cost.enough)

Openapi's prices depend on the account's contract and are published nowhere the client
could read them (neither the PEC API's specification nor its reference states one), so
pecapi has no built-in figures: the price list is the user's, in EUR, from a JSON file

.. code-block:: json

    {"currency": "EUR",
     "register": {"STANDARD": "5.00", "GOLD": "25.00"},
     "comunica_pec": 10}

(an operation maps to one price for every mailbox type, or to a price per type) or a CSV
file with the columns ``operation``, ``mailbox_type`` (may be empty: every type) and
``price``. The operations are the PEC API's paid ones: ``register`` (a registration, the
first year included), ``renewal`` (per year), ``upgrade`` (a change of type), ``space``,
``conservazione``, ``multiutenza``, ``comunica_pec``; any other name made of lowercase
letters and ``_`` is accepted too.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from pecapi.errors import ConfigurationError, ValidationError
from pecapi.jsontext import JsonError, loads
from pecapi.models.mailbox import MailboxRegistration
from pecapi.provision import InvalidRow, ProvisionRequest
from pecapi.wallet import Wallet, amount

__all__ = ["CostEstimate", "CostItem", "CostLine", "PriceList", "estimate"]

_OPERATION = re.compile(r"[a-z][a-z_]*")
_TYPE = re.compile(r"[A-Z][A-Z_]*")
# A price list is a handful of lines; a file far larger is not one.
_MAX_FILE = 1 << 20
_CURRENCY = "EUR"


def _operation(value: object, field: str = "operation") -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if _OPERATION.fullmatch(text) is None:
        raise ValidationError(field, f"{value!r} is not an operation name like 'register'")
    return text


def _mailbox_type(value: object, field: str = "mailbox_type") -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(getattr(value, "value", value)).strip().upper()
    if _TYPE.fullmatch(text) is None:
        raise ValidationError(field, f"{value!r} is not a mailbox type like 'STANDARD'")
    return text


def _describe(operation: str, mailbox_type: str | None) -> str:
    return operation if mailbox_type is None else f"{operation} of a {mailbox_type} mailbox"


def _frozen_prices(
    prices: Mapping[tuple[str, str | None], Decimal],
) -> Mapping[tuple[str, str | None], Decimal]:
    return MappingProxyType(dict(prices))


@attrs.frozen
class PriceList:
    """Prices in EUR: ``(operation, mailbox_type)`` -> price, where a mailbox type of None
    is the price for every type without one of its own. Build one from a mapping
    (:meth:`from_mapping`, the JSON file's shape) or a file (:meth:`load`)."""

    prices: Mapping[tuple[str, str | None], Decimal] = attrs.field(converter=_frozen_prices)

    def price(self, operation: str, mailbox_type: str | None = None) -> Decimal:
        """The price of one ``operation`` (of a ``mailbox_type`` mailbox): its own, else
        the operation's price for every type. A :class:`~pecapi.ConfigurationError`
        names what the list lacks."""
        op, kind = _operation(operation), _mailbox_type(mailbox_type)
        found = self.prices.get((op, kind))
        if found is None:
            found = self.prices.get((op, None))
        if found is None:
            raise ConfigurationError(f"the price list has no price for {_describe(op, kind)}")
        return found

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "the price list") -> PriceList:
        """``{"register": {"GOLD": "25.00", ...}, "comunica_pec": 10, "currency": "EUR"}``:
        an operation's price, or its price per mailbox type (numbers or strings)."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{source} must be a JSON object of operations")
        currency = data.get("currency", _CURRENCY)
        if currency != _CURRENCY:
            raise ConfigurationError(f"{source}: prices must be in EUR, not {currency!r}")
        prices: dict[tuple[str, str | None], Decimal] = {}
        for key, value in data.items():
            if key == "currency":
                continue
            op = _checked(_operation, key, source)
            if isinstance(value, Mapping):
                for kind, figure in value.items():
                    where = f"{source}: {op}.{kind}"
                    prices[(op, _checked(_mailbox_type, kind, where))] = _price(figure, where)
            else:
                prices[(op, None)] = _price(value, f"{source}: {op}")
        if not prices:
            raise ConfigurationError(f"{source} lists no price")
        return cls(prices)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PriceList:
        """The price list of a ``.json`` or ``.csv`` file (see the module's docs).
        Unreadable, malformed or without prices: a :class:`~pecapi.ConfigurationError`
        naming the file (and the line, for a CSV file)."""
        source = Path(path)
        try:
            if source.stat().st_size > _MAX_FILE:
                raise ConfigurationError(f"{source} is too large for a price list")
            text = source.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read the price list {source}: {exc}") from None
        if source.suffix.lower() == ".csv":
            return cls._from_csv(text, str(source))
        try:
            data = loads(text, constants=False, max_depth=8)
        except JsonError as exc:
            raise ConfigurationError(f"{source} is not a JSON price list: {exc}") from None
        return cls.from_mapping(data, source=str(source))

    @classmethod
    def _from_csv(cls, text: str, source: str) -> PriceList:
        reader = csv.DictReader(text.splitlines())
        header = {(name or "").strip().lower() for name in reader.fieldnames or []}
        missing = {"operation", "price"} - header
        if missing:
            raise ConfigurationError(f"{source}: no column {sorted(missing)[0]!r}")
        prices: dict[tuple[str, str | None], Decimal] = {}
        for row in reader:
            cells = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            where = f"{source}, line {reader.line_num}"
            op = _checked(_operation, cells.get("operation"), where)
            kind = _checked(_mailbox_type, cells.get("mailbox_type"), where)
            if (op, kind) in prices:
                raise ConfigurationError(f"{where}: a second price for {_describe(op, kind)}")
            prices[(op, kind)] = _price(cells.get("price"), where)
        if not prices:
            raise ConfigurationError(f"{source} lists no price")
        return cls(prices)


def _checked(check: Any, value: object, where: str) -> Any:
    try:
        return check(value)
    except ValidationError as exc:
        raise ConfigurationError(f"{where}: {exc.message}") from None


def _price(value: object, where: str) -> Decimal:
    try:
        found = amount(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where}: {value!r} is not a price in EUR") from None
    if found < 0:
        raise ConfigurationError(f"{where}: a price cannot be negative")
    return found


@attrs.frozen
class CostItem:
    """``quantity`` times ``operation`` (on a ``mailbox_type`` mailbox, if its price
    depends on it): ``CostItem("register", "GOLD")``, ``CostItem("renewal", "STANDARD", 3)``."""

    operation: str = attrs.field(converter=_operation)
    mailbox_type: str | None = attrs.field(default=None, converter=_mailbox_type)
    quantity: int = 1

    def __attrs_post_init__(self) -> None:
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int):
            raise ValidationError("quantity", "must be an int")
        if self.quantity < 0:
            raise ValidationError("quantity", "cannot be negative")


@attrs.frozen
class CostLine:
    """One (operation, mailbox type) of an estimate: how many, at what unit price."""

    operation: str
    mailbox_type: str | None
    quantity: int
    unit_price: Decimal

    @property
    def subtotal(self) -> Decimal:
        return self.unit_price * self.quantity


@attrs.frozen
class CostEstimate:
    """What a batch will cost (EUR): ``total``, ``per_operation`` (``{"register":
    Decimal("55.00")}``), the ``lines`` it adds up, and against the wallet's ``credit``
    (None when not given) whether it is ``enough`` and the ``shortfall``. ``skipped``
    counts the inputs that cost nothing (invalid rows, which are never sent)."""

    total: Decimal
    per_operation: Mapping[str, Decimal]
    lines: tuple[CostLine, ...]
    credit: Decimal | None
    skipped: int = 0

    @property
    def enough(self) -> bool | None:
        """Whether the credit covers the total; None when the credit is not known."""
        return None if self.credit is None else self.credit >= self.total

    @property
    def shortfall(self) -> Decimal:
        """How much credit is missing (0 when enough, or when the credit is not known)."""
        if self.credit is None or self.credit >= self.total:
            return Decimal(0)
        return self.total - self.credit


Item = CostItem | ProvisionRequest | MailboxRegistration | InvalidRow


def _as_item(item: object) -> CostItem | None:
    if isinstance(item, CostItem):
        return item
    if isinstance(item, ProvisionRequest):
        item = item.registration
    if isinstance(item, MailboxRegistration):
        return CostItem("register", item.tipo_casella)
    if isinstance(item, InvalidRow):
        return None
    raise ValidationError(
        "items",
        "each item must be a CostItem, a ProvisionRequest, a MailboxRegistration or an "
        f"InvalidRow, not {type(item).__name__}",
    )


def estimate(
    items: Iterable[Item], prices: PriceList, wallet: Wallet | Decimal | None = None
) -> CostEstimate:
    """The cost of ``items`` at ``prices``, against ``wallet`` (a :class:`~pecapi.Wallet`,
    its credit as a Decimal, or None).

    An item is a :class:`CostItem`, or what a provisioning run sends: a
    :class:`~pecapi.provision.ProvisionRequest` or a
    :class:`~pecapi.MailboxRegistration` costs one ``register`` of its ``tipo_casella``
    (an activation is free); an :class:`~pecapi.provision.InvalidRow` is never sent and
    costs nothing. A price the list lacks is a :class:`~pecapi.ConfigurationError`,
    naming it: an estimate never leaves out what it cannot price.

    It counts every item: a run skips the addresses its journal completed or the account
    already has, so the real charge can only be lower.
    """
    if not isinstance(prices, PriceList):
        raise ValidationError("prices", "must be a pecapi.pricing.PriceList")
    if isinstance(wallet, Wallet):
        credit: Decimal | None = wallet.credit
    elif wallet is None or isinstance(wallet, Decimal):
        credit = wallet
    else:
        raise ValidationError("wallet", "must be a Wallet, a Decimal or None")
    counts: dict[tuple[str, str | None], int] = {}
    skipped = 0
    for raw in items:
        item = _as_item(raw)
        if item is None:
            skipped += 1
            continue
        key = (item.operation, item.mailbox_type)
        counts[key] = counts.get(key, 0) + item.quantity
    lines = tuple(CostLine(op, kind, n, prices.price(op, kind)) for (op, kind), n in counts.items())
    per_operation: dict[str, Decimal] = {}
    for line in lines:
        per_operation[line.operation] = per_operation.get(line.operation, Decimal(0)) + (
            line.subtotal
        )
    total = sum((line.subtotal for line in lines), Decimal(0))
    return CostEstimate(
        total=total,
        per_operation=MappingProxyType(per_operation),
        lines=lines,
        credit=credit,
        skipped=skipped,
    )

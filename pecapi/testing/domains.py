"""Domains: which ones are certified (GET /domini_pec/{dominio}) and which domain a mailbox
of each type must use when it is registered (sandbox and production rules)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import errors as E
from .account import Account
from .rules import UPGRADABLE, valid_domain

__all__ = ["DEFAULT_CERTIFIED_DOMAINS", "SYSTEM_DOMAINS", "Domains"]

#: The domain of each mailbox type, per environment.
SYSTEM_DOMAINS: Mapping[str, Mapping[str, str]] = {
    "sandbox": {
        "STANDARD": "testcert.legalmail.it",
        "BRONZE": "testcert.legalmail.it",
        "SILVER": "testcert.legalmail.it",
        "GOLD": "testcert.legalmail.it",
        "DOMICILIODIGITALE": "test.domiciliodigitale.com",
        "PECMASSIVA": "testcert.legalmail.it",
    },
    "production": {
        "STANDARD": "legalmail.it",
        "BRONZE": "legalmail.it",
        "SILVER": "legalmail.it",
        "GOLD": "legalmail.it",
        "DOMICILIODIGITALE": "domiciliodigitale.com",
        "PECMASSIVA": "pecmassiva.com",
    },
}
DEFAULT_CERTIFIED_DOMAINS = (
    "legalmail.it",
    "pec.it",
    "domiciliodigitale.com",
    "pecmassiva.com",
    "testcert.legalmail.it",
    "test.domiciliodigitale.com",
)


class Domains:
    """The account's domain rules: its ``own`` certified domains (usable by
    STANDARD–GOLD mailboxes) and every domain GET /domini_pec reports as ``certified``."""

    def __init__(
        self, account: Account, own: Iterable[str], certified: Iterable[str] | None
    ) -> None:
        self._account = account
        self.own = frozenset(d.lower() for d in own)
        self.certified = frozenset(
            d.lower() for d in (*DEFAULT_CERTIFIED_DOMAINS, *self.own, *(certified or ()))
        )

    def check(self, dominio: str) -> list[Any] | None:
        """GET /domini_pec/{dominio}: ``[]`` when certified, ``None`` (204) otherwise."""
        if not dominio:
            raise E.DOM_REQUIRED.error()
        if not valid_domain(dominio):
            raise E.DOM_INVALID.error()
        price = self._account.prices.verifica_dominio
        if price > 0:  # free by default, and then never in the ledger
            self._account.pay(price, E.DOM_CREDIT, "verifica_dominio", "", dominio)
        return [] if dominio.lower() in self.certified else None

    def check_registration(self, address: str, tipo: str) -> None:
        """Refuse (404/326, 406/327) an address whose domain a ``tipo`` mailbox cannot use."""
        system = SYSTEM_DOMAINS[self._account.environment]
        dominio = address.rpartition("@")[2]
        expected = system[tipo]
        if dominio == expected or (dominio in self.own and tipo in UPGRADABLE):
            return
        if dominio in system.values() or dominio in self.own:
            raise E.REG_DOMAIN_WRONG_TYPE.error(tipo=tipo, expected=expected)
        raise E.REG_DOMAIN_UNKNOWN.error(dominio=dominio)

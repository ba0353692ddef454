"""Rules of the API that pecapi checks before sending, so a doomed request costs nothing."""

from __future__ import annotations

from pecapi.errors import ValidationError
from pecapi.models.enums import TipoCasella
from pecapi.models.wire import split_address

__all__ = ["PRODUCTION_DOMAINS", "SANDBOX_DOMAINS", "check_mailbox_domain"]

# Without an own certified domain, the provider's domain for each mailbox type.
PRODUCTION_DOMAINS: dict[str, frozenset[TipoCasella]] = {
    "legalmail.it": frozenset(
        {TipoCasella.STANDARD, TipoCasella.BRONZE, TipoCasella.SILVER, TipoCasella.GOLD}
    ),
    "domiciliodigitale.com": frozenset({TipoCasella.DOMICILIODIGITALE}),
    "pecmassiva.com": frozenset({TipoCasella.PECMASSIVA}),
}
SANDBOX_DOMAINS: dict[str, frozenset[TipoCasella]] = {
    "testcert.legalmail.it": frozenset(TipoCasella) - {TipoCasella.DOMICILIODIGITALE},
    "test.domiciliodigitale.com": frozenset({TipoCasella.DOMICILIODIGITALE}),
}


def _expected(domains: dict[str, frozenset[TipoCasella]], tipo: TipoCasella) -> str:
    return " or ".join(f"@{d}" for d, types in domains.items() if tipo in types)


def check_mailbox_domain(casella_pec: str, tipo_casella: TipoCasella, *, sandbox: bool) -> None:
    """Raise ValidationError("casella_pec") if the address cannot work in this environment.

    Sandbox: only the test domains. Production: a provider domain must match the
    mailbox type; any other domain is taken to be the account's own certified domain
    (the API itself answers 404/326 if it is not).
    """
    parts = split_address(casella_pec)
    if parts is None:
        raise ValidationError("casella_pec", f"{casella_pec!r} is not a valid e-mail address")
    domain = parts[1]
    if sandbox:
        if tipo_casella not in SANDBOX_DOMAINS.get(domain, frozenset()):
            raise ValidationError(
                "casella_pec",
                f"in the sandbox a {tipo_casella.value} mailbox must be "
                f"{_expected(SANDBOX_DOMAINS, tipo_casella)}, not @{domain}",
            )
        return
    if domain in SANDBOX_DOMAINS:
        raise ValidationError(
            "casella_pec", f"@{domain} is a sandbox domain; this client talks to production"
        )
    types = PRODUCTION_DOMAINS.get(domain)
    if types is not None and tipo_casella not in types:
        raise ValidationError(
            "casella_pec",
            f"a {tipo_casella.value} mailbox must be {_expected(PRODUCTION_DOMAINS, tipo_casella)}"
            f" (or on your own certified domain), not @{domain}",
        )

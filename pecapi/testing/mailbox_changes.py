"""The paid changes to a mailbox: more space (PATCH /pec/{id}/modifica), the conservazione
service (PATCH /pec/{id}/conservazione), a type change (PATCH /pec/{id}/trasformazione),
renewal (GET /pec/{id}/rinnovo) and users (POST /pec/{id}/multiutenza).

Each checks everything first and charges last: a refused request changes and costs nothing.
"""

from __future__ import annotations

from decimal import Decimal

from pecapi.jsontext import whole_number

from . import errors as E
from .account import Account
from .errors import ApiError
from .mailboxes import Mailboxes, apply_default_spaces
from .records import Json, Mailbox, User
from .rules import (
    MAX_USERS,
    SPECIAL,
    UPGRADABLE,
    add_years,
    decode_documents,
    fmt_date,
    is_pdf,
    parse_space,
    read_string,
    valid_email,
)

__all__ = ["MailboxChanges"]


class MailboxChanges:
    """The paid operations on the mailboxes of ``mailboxes``."""

    def __init__(self, account: Account, mailboxes: Mailboxes) -> None:
        self._account = account
        self._mailboxes = mailboxes

    def modify_space(self, mailbox_id: str, body: Json) -> Mailbox:
        """PATCH /pec/{id}/modifica."""
        box = self._mailboxes.lookup(mailbox_id, E.MOD_WRONG_ID, E.MOD_NOT_FOUND)
        if box.tipo_casella in SPECIAL:
            raise E.MOD_NOT_ON.error()
        if box.stato != "evasa":
            raise E.MOD_STATE.error()
        prices = self._account.prices
        changes: list[tuple[str, int]] = []
        amount = Decimal(0)
        for name, unit, price in (
            ("spazio_disco", 1024, prices.spazio_disco),
            ("spazio_storico", 1024, prices.spazio_storico),
            ("spazio_conservazione", 512, prices.spazio_conservazione),
        ):
            raw = body.get(name)
            if raw is None or raw == "":
                continue
            if name == "spazio_conservazione" and not box.conservazione:
                raise E.MOD_NO_CONSERVAZIONE.error()
            add, number = parse_space(raw, E.MOD_INVALID.error(field=name))
            if number % unit:
                raise E.MOD_MULTIPLE.error(unit=unit)
            current = int(getattr(box, name))
            target = current + number if add else number
            if target <= current:
                raise E.MOD_DOWNGRADE.error(field=name)
            changes.append((name, target))
            amount += price * ((target - current) // unit)
        if not changes:
            raise E.MOD_REQUIRED.error()
        detail = ", ".join(f"{name} {getattr(box, name)}->{target}" for name, target in changes)
        self._account.pay(amount, E.MOD_CREDIT, "space", mailbox_id, detail)
        for name, target in changes:
            setattr(box, name, target)
        box.storico = box.spazio_storico > 0
        self._mailboxes.touch(box)
        return box

    def activate_conservation(self, mailbox_id: str, body: Json) -> Mailbox:
        """PATCH /pec/{id}/conservazione."""
        box = self._mailboxes.lookup(mailbox_id, E.CONS_WRONG_ID, E.CONS_NOT_FOUND)
        if box.tipo_casella in SPECIAL:
            raise E.CONS_NOT_ON.error()
        if box.stato != "evasa":
            raise E.CONS_STATE.error()
        if box.conservazione:
            raise E.CONS_ACTIVE.error()
        documenti = body.get("documenti")
        if documenti is None or documenti == "" or documenti == []:
            raise E.CONS_DOCS_REQUIRED.error()
        raw_space = body.get("spazio_conservazione")
        space = 512
        if raw_space is not None and raw_space != "":
            add, space = parse_space(raw_space, E.CONS_MULTIPLE.error())
            if add or space <= 0 or space % 512:
                raise E.CONS_MULTIPLE.error()
        files = decode_documents(documenti, E.CONS_DOCS_REQUIRED, E.CONS_NOT_PDF)
        if not all(is_pdf(f) for f in files):
            raise E.CONS_NOT_PDF.error()
        prices = self._account.prices
        amount = prices.conservazione + prices.spazio_conservazione * (space // 512)
        self._account.pay(amount, E.CONS_CREDIT, "conservazione", mailbox_id, f"spazio {space}")
        names = [f"{mailbox_id}_{i}_conservazione.pdf" for i in range(len(files))]
        self._account.store(names, files)
        box.conservazione = True
        box.spazio_conservazione = space
        box.documenti_conservazione = names
        self._mailboxes.touch(box)
        return box

    def change_type(self, mailbox_id: str, body: Json) -> Mailbox:
        """PATCH /pec/{id}/trasformazione."""
        box = self._mailboxes.lookup(mailbox_id, E.TRA_WRONG_ID, E.TRA_NOT_FOUND)
        current = box.tipo_casella
        if current in SPECIAL:
            raise E.TRA_NOT_ON.error()
        if box.stato != "evasa":
            raise E.TRA_STATE.error()
        target = body.get("tipo_casella")
        if target is None or target == "":
            raise E.TRA_REQUIRED.error()
        if target not in UPGRADABLE:
            raise E.TRA_INVALID.error()
        rank = UPGRADABLE.index(current)
        if UPGRADABLE.index(target) <= rank:
            higher = UPGRADABLE[rank + 1 :]
            if not higher:
                raise ApiError(
                    E.TRA_DOWNGRADE.status,
                    E.TRA_DOWNGRADE.code,
                    "a downgrade of the 'tipo_casella' is not allowed; GOLD is the highest type",
                )
            allowed = " or ".join(higher) if len(higher) < 3 else "BRONZE, SILVER or GOLD"
            raise E.TRA_DOWNGRADE.error(allowed=allowed)
        self._account.pay(
            self._account.prices.trasformazione,
            E.TRA_CREDIT,
            "trasformazione",
            mailbox_id,
            f"{current}->{target}",
        )
        box.tipo_casella = target
        apply_default_spaces(box)
        self._mailboxes.touch(box)
        return box

    def renew(self, mailbox_id: str, anni_raw: str | None) -> Mailbox:
        """GET /pec/{id}/rinnovo?anni=N."""
        box = self._mailboxes.lookup(mailbox_id, E.REN_WRONG_ID, E.REN_NOT_FOUND)
        anni = 1
        if anni_raw is not None:
            number = whole_number(anni_raw)
            if number is None or not 1 <= number <= 10:
                raise E.REN_ANNI.error()
            anni = number
        stato = box.stato
        if stato not in ("evasa", "revocata"):
            raise E.REN_STATE.error()
        if stato == "revocata" and self._mailboxes.taken(box.casella_pec, except_id=mailbox_id):
            raise E.REN_TAKEN.error()
        tipo = box.tipo_casella
        price = self._account.prices.renewal_price(tipo, anni)
        self._account.pay(price, E.REN_CREDIT, "renewal", mailbox_id, f"{tipo} anni={anni}")
        now = self._mailboxes.touch(box)
        expiry = int(box.timestamp.scadenza or 0)
        box.timestamp.scadenza = add_years(expiry if expiry > now else now, anni)
        box.data_scadenza = fmt_date(box.timestamp.scadenza)
        if stato == "revocata":
            box.stato = "evasa"
            box.timestamp.revoca = None
            self._mailboxes.hold(box)
        self._account.notify("mailbox", box)
        return box

    def add_user(self, mailbox_id: str, body: Json) -> Mailbox:
        """POST /pec/{id}/multiutenza."""
        box = self._mailboxes.lookup(mailbox_id, E.USR_WRONG_ID, E.USR_NOT_FOUND)
        if box.tipo_casella in SPECIAL:
            raise E.USR_NOT_ON.error()
        if box.stato != "evasa":
            raise E.USR_STATE.error()
        values = {
            name: read_string(body, name, required, required)
            for name, required in E.USR_REQUIRED.items()
        }
        if not valid_email(values["email_gestione_password"]):
            raise E.USR_EMAIL_INVALID.error()
        users = box.multiutenza or []
        if len(users) >= MAX_USERS:
            raise E.USR_MAX.error()
        self._account.pay(
            self._account.prices.multiutenza,
            E.USR_CREDIT,
            "multiutenza",
            mailbox_id,
            values["email_gestione_password"],
        )
        now = self._mailboxes.touch(box)
        userid = f"MA{self._account.rng.randrange(100_000, 1_000_000)}"
        users.append(
            User(
                nome=values["nome"],
                cognome=values["cognome"],
                descrizione=values["descrizione"],
                email_gestione_password=values["email_gestione_password"],
                id_utenza=f"{mailbox_id}_{len(users)}",
                attivazione=now,
                userid=userid,
            )
        )
        box.multiutenza = users
        return box

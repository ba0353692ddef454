"""The command table: every API subcommand, declared in one place.

Each :class:`Command` names its group and subcommand, its arguments, the endpoint it
calls (for the help text) and ``call``, which maps the parsed arguments to one client
call. ``app.py`` builds the parser and runs commands from :data:`COMMANDS` alone; adding
an operation of the client is adding one entry here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from pecapi.client import PecClient
from pecapi.errors import ValidationError
from pecapi.models.comunica import ComunicaPecRequest
from pecapi.models.mailbox import MailboxRegistration, MailboxUser
from pecapi.resources import comunica_pec, domains, mailboxes
from pecapi.transport.endpoint import Effect, Endpoint

from .connection import whole_number
from .fields import build_model
from .output import Availability, Download

__all__ = ["COMMANDS", "GROUPS", "Arg", "Command"]

Call = Callable[[PecClient, argparse.Namespace], Awaitable[Any]]


@attrs.frozen
class Arg:
    """One ``add_argument`` call: its flags (or positional name) and keyword options."""

    flags: tuple[str, ...]
    options: Mapping[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@attrs.frozen(kw_only=True)
class Command:
    group: str
    name: str
    help: str
    call: Call
    endpoint: Endpoint[Any]
    args: tuple[Arg, ...] = ()
    model: tuple[type[Any], str] | None = None  # request body flags: (model, what)

    @property
    def paid(self) -> bool:
        return self.endpoint.effect is Effect.PAID


GROUPS: Mapping[str, str] = {
    "domains": "certified domains (/domini_pec)",
    "mailboxes": "certified mailboxes (/pec, /verifica_pec)",
    "comunica-pec": "communications to the business register (/comunica_pec)",
}

# -- arguments shared by several commands ------------------------------------------------

MAILBOX_ID = arg("id", help="mailbox id (as listed by 'pecapi mailboxes list')")
REQUEST_ID = arg("id", help="comunica_pec request id")


def _documents(kind: str) -> Arg:
    return arg(
        "--document",
        dest="documents",
        action="append",
        required=True,
        metavar="FILE",
        help=f"a {kind} to upload; repeat for several (checked before sending)",
    )


OUTPUT = arg(
    "-o", "--output", required=True, metavar="FILE", help="where to write the PDF ('-': stdout)"
)


async def _available(client: PecClient, args: argparse.Namespace) -> Availability:
    return Availability(args.address, await client.mailboxes.is_available(args.address))


Fetch = Callable[[PecClient, str, "str | None"], Awaitable["bytes | Path"]]


def _download(fetch: Fetch) -> Call:
    """A call that writes a PDF form to ``--output`` (a file, or ``-`` for stdout)."""

    async def call(client: PecClient, args: argparse.Namespace) -> Download:
        if args.output == "-":
            if sys.stdout.isatty():
                raise ValidationError("output", "will not write a PDF to a terminal: redirect it")
            data = await fetch(client, args.id, None)
            assert isinstance(data, bytes)
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return Download(args.id, None, len(data))
        path = await fetch(client, args.id, args.output)
        assert isinstance(path, Path)
        return Download(args.id, str(path), path.stat().st_size)

    return call


COMMANDS: tuple[Command, ...] = (
    Command(
        group="domains",
        name="check",
        help="is a domain certified (can it send and receive PEC)?",
        endpoint=domains.CHECK,
        args=(arg("dominio", help="e.g. legalmail.it"),),
        call=lambda c, a: c.domains.check(a.dominio),
    ),
    Command(
        group="mailboxes",
        name="available",
        help="can this address still be registered?",
        endpoint=mailboxes.IS_AVAILABLE,
        args=(arg("address", metavar="ADDRESS", help="e.g. mario.rossi@legalmail.it"),),
        call=_available,
    ),
    Command(
        group="mailboxes",
        name="list",
        help="every mailbox of the account",
        endpoint=mailboxes.LIST,
        call=lambda c, a: c.mailboxes.list(),
    ),
    Command(
        group="mailboxes",
        name="get",
        help="one mailbox with all its details",
        endpoint=mailboxes.GET,
        args=(MAILBOX_ID,),
        call=lambda c, a: c.mailboxes.get(a.id),
    ),
    Command(
        group="mailboxes",
        name="register",
        help="register a new mailbox",
        endpoint=mailboxes.REGISTER,
        model=(MailboxRegistration, "POST /pec"),
        call=lambda c, a: c.mailboxes.register(build_model(MailboxRegistration, a, "POST /pec")),
    ),
    Command(
        group="mailboxes",
        name="revoke",
        help="revoke an active mailbox",
        endpoint=mailboxes.REVOKE,
        args=(MAILBOX_ID,),
        call=lambda c, a: c.mailboxes.revoke(a.id),
    ),
    Command(
        group="mailboxes",
        name="activate",
        help="upload the signed activation form and an identity document (PDFs)",
        endpoint=mailboxes.ACTIVATE,
        args=(MAILBOX_ID, _documents("PDF")),
        call=lambda c, a: c.mailboxes.activate(a.id, a.documents),
    ),
    Command(
        group="mailboxes",
        name="change-space",
        help="upgrade disk, archive or conservation space (MB: N sets, +N adds)",
        endpoint=mailboxes.CHANGE_SPACE,
        args=(
            MAILBOX_ID,
            arg("--spazio-disco", metavar="MB", help="multiple of 1024; N sets, +N adds"),
            arg("--spazio-storico", metavar="MB", help="multiple of 1024; N sets, +N adds"),
            arg("--spazio-conservazione", metavar="MB", help="multiple of 512; N sets, +N adds"),
        ),
        call=lambda c, a: c.mailboxes.change_space(
            a.id,
            spazio_disco=a.spazio_disco,
            spazio_storico=a.spazio_storico,
            spazio_conservazione=a.spazio_conservazione,
        ),
    ),
    Command(
        group="mailboxes",
        name="activate-conservation",
        help="turn on conservation by law, uploading the signed form (PDFs)",
        endpoint=mailboxes.ACTIVATE_CONSERVATION,
        args=(
            MAILBOX_ID,
            _documents("PDF"),
            arg("--spazio-conservazione", type=whole_number, metavar="MB", help="multiple of 512"),
        ),
        call=lambda c, a: c.mailboxes.activate_conservation(
            a.id, a.documents, spazio_conservazione=a.spazio_conservazione
        ),
    ),
    Command(
        group="mailboxes",
        name="change-type",
        help="upgrade the mailbox type (STANDARD < BRONZE < SILVER < GOLD)",
        endpoint=mailboxes.CHANGE_TYPE,
        args=(MAILBOX_ID, arg("tipo_casella", metavar="TIPO_CASELLA", help="e.g. GOLD")),
        call=lambda c, a: c.mailboxes.change_type(a.id, a.tipo_casella),
    ),
    Command(
        group="mailboxes",
        name="renew",
        help="renew (or re-activate) a mailbox",
        endpoint=mailboxes.RENEW,
        args=(MAILBOX_ID, arg("--anni", type=whole_number, default=1, help="years (default 1)")),
        call=lambda c, a: c.mailboxes.renew(a.id, anni=a.anni),
    ),
    Command(
        group="mailboxes",
        name="add-user",
        help="add a user to a mailbox (at most 25)",
        endpoint=mailboxes.ADD_USER,
        args=(MAILBOX_ID,),
        model=(MailboxUser, "POST /pec/{id}/multiutenza"),
        call=lambda c, a: c.mailboxes.add_user(
            a.id, build_model(MailboxUser, a, "POST /pec/{id}/multiutenza")
        ),
    ),
    Command(
        group="mailboxes",
        name="activation-form",
        help="download the activation form to sign (PDF)",
        endpoint=mailboxes.ACTIVATION_FORM,
        args=(MAILBOX_ID, OUTPUT),
        call=_download(lambda c, id, dest: c.mailboxes.activation_form(id, dest)),
    ),
    Command(
        group="mailboxes",
        name="conservation-form",
        help="download the conservation form to sign (PDF)",
        endpoint=mailboxes.CONSERVATION_FORM,
        args=(MAILBOX_ID, OUTPUT),
        call=_download(lambda c, id, dest: c.mailboxes.conservation_form(id, dest)),
    ),
    Command(
        group="comunica-pec",
        name="list",
        help="every comunica_pec request of the account",
        endpoint=comunica_pec.LIST,
        call=lambda c, a: c.comunica_pec.list(),
    ),
    Command(
        group="comunica-pec",
        name="create",
        help="communicate a mailbox to the business register",
        endpoint=comunica_pec.CREATE,
        model=(ComunicaPecRequest, "POST /comunica_pec"),
        call=lambda c, a: c.comunica_pec.create(
            build_model(ComunicaPecRequest, a, "POST /comunica_pec")
        ),
    ),
    Command(
        group="comunica-pec",
        name="get",
        help="one comunica_pec request",
        endpoint=comunica_pec.GET,
        args=(REQUEST_ID,),
        call=lambda c, a: c.comunica_pec.get(a.id),
    ),
    Command(
        group="comunica-pec",
        name="upload-documents",
        help="upload the digitally signed power of attorney (p7m)",
        endpoint=comunica_pec.UPLOAD_DOCUMENTS,
        args=(REQUEST_ID, _documents("p7m file")),
        call=lambda c, a: c.comunica_pec.upload_documents(a.id, a.documents),
    ),
    Command(
        group="comunica-pec",
        name="power-of-attorney",
        help="download the power of attorney to sign (PDF)",
        endpoint=comunica_pec.POWER_OF_ATTORNEY,
        args=(REQUEST_ID, OUTPUT),
        call=_download(lambda c, id, dest: c.comunica_pec.power_of_attorney(id, dest)),
    ),
)

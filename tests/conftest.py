"""Shared fixtures: the emulator on loopback and a client pointed at it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pecapi import ComunicaPecRequest, MailboxRegistration, PecClient, RetryPolicy
from pecapi.testing import DEFAULT_TOKEN, Emulator, RunningEmulator

pytest_plugins = ["pecapi.testing.pytest_plugin"]

SPEC_PATH = Path(__file__).parent / "data" / "pec.openapi.json"

PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
# DER PKCS#7 signedData header: SEQUENCE, then the OID 1.2.840.113549.1.7.2.
P7M_BYTES = bytes.fromhex("308006092a864886f70d010702a0803080") + b"\x00" * 32


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


async def no_sleep(seconds: float) -> None:
    """Retry waits in tests: yield to the loop, never sleep real seconds."""
    await asyncio.sleep(0)


FAST_RETRY = RetryPolicy(max_attempts=4, sleep=no_sleep)


@pytest.fixture
async def client(pec_server: RunningEmulator) -> AsyncIterator[PecClient]:
    async with PecClient(
        DEFAULT_TOKEN, sandbox=True, base_url=pec_server.url, retry=FAST_RETRY
    ) as c:
        yield c


@pytest.fixture
def raw_client(client: PecClient) -> PecClient:
    """The same client trying every call exactly once: faults surface as errors."""
    return client.with_options(retry=RetryPolicy.never())


@pytest.fixture
def emulator(pec_server: RunningEmulator) -> Emulator:
    return pec_server.emulator


def make_registration(
    casella_pec: str = "mario.rossi@testcert.legalmail.it", **overrides: Any
) -> MailboxRegistration:
    fields: dict[str, Any] = {
        "casella_pec": casella_pec,
        "tipo_casella": "BRONZE",
        "tipo_cliente": "PV",
        "nome_richiedente": "mario",
        "cognome_richiedente": "rossi",
        "email": "mail@domain.com",
        "telefono": "0548798569",
        "codice_fiscale_richiedente": "RSSMRA82D11H501X",
        "data_nascita_richiedente": dt.date(1982, 4, 11),
        "sesso_richiedente": "M",
        "nazione_nascita_richiedente": "IT",
        "indirizzo_titolare": "via verdi 20",
        "comune_titolare": "roma",
        "cap_titolare": "00042",
        "nazione_titolare": "IT",
        "provincia_titolare": "RM",
    }
    fields.update(overrides)
    return MailboxRegistration(**fields)


def make_comunica_request(**overrides: Any) -> ComunicaPecRequest:
    fields: dict[str, Any] = {
        "casella_pec": "mypec@pec.com",
        "cf": "RSSMRA80A01L117D",
        "nome": "mario",
        "cognome": "rossi",
        "qualifica": "LEGALE_RAPPRESENTANTE",
        "email": "mail@domain.com",
        "cellulare": "3400000018",
        "ragione_sociale": "azienda test",
        "cf_piva": "12345678910",
        "comune": "roma",
        "provincia": "RM",
    }
    fields.update(overrides)
    return ComunicaPecRequest(**fields)


@pytest.fixture
def registration() -> Callable[..., MailboxRegistration]:
    return make_registration

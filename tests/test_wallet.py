"""The account's wallet (OAuth v1 ``GET /credit``, v2 ``GET /wallet`` and its
transactions), ``client.account.wallet()``, and the cost estimates of
:mod:`pecapi.pricing`: over HTTP against the emulators, and the lenient decoding."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pecapi import (
    AuthenticationError,
    ConfigurationError,
    OAuthTokenProvider,
    OAuthV2TokenProvider,
    PecClient,
    ResponseDecodeError,
    ValidationError,
    Wallet,
    WalletTransaction,
    all_pec_scopes,
)
from pecapi.pricing import CostItem, PriceList, estimate
from pecapi.provision import InvalidRow, ProvisionRequest
from pecapi.testing import DEFAULT_TOKEN, Emulator, OAuthEmulator
from pecapi.wallet import decode_transaction, decode_wallet
from tests.conftest import make_registration, serve_app
from tests.test_oauth_v2 import EMAIL, KEY, T0, oauth_env

UTC = dt.timezone.utc


# -- reading the wallet ------------------------------------------------------------------


async def test_the_v2_wallet_follows_the_paid_operations() -> None:
    async with oauth_env() as env:
        env.emu.wallet = Decimal("100.50")
        async with env.provider() as p, env.client(p) as client:
            before = await client.account.wallet()
            assert before == await p.wallet()
            assert before.credit == Decimal("100.5")
            assert before.created_at == dt.datetime.fromtimestamp(T0, UTC)
            assert before.updated_at is not None and before.updated_at.tzinfo is not None
            assert await p.wallet_transactions() == []
            env.emu.advance_time(60)
            await client.mailboxes.register(make_registration())
            after = await client.account.wallet()
            [charge] = env.emu.ledger
            assert after.credit == Decimal("100.5") - charge.amount < before.credit
            assert after.updated_at == dt.datetime.fromtimestamp(T0 + 60, UTC)
            [txn] = await p.wallet_transactions(limit=10)
            assert isinstance(txn, WalletTransaction)
            assert txn.amount == -charge.amount
            assert txn.id.startswith("txn_") and txn.description
            assert await p.wallet_transactions(skip=1) == []
        assert env.oauth.count("GET", "/wallet") == 3


async def test_the_v1_wallet_is_get_credit() -> None:
    emu = Emulator(tokens={})
    emu.wallet = Decimal("423.38")
    oauth = OAuthEmulator(emu, email=EMAIL, api_key=KEY)
    async with emu.serve() as pec, oauth.serve() as auth:
        provider = OAuthTokenProvider(
            EMAIL, KEY, scopes=all_pec_scopes(sandbox=True), sandbox=True, base_url=auth.url
        )
        async with provider, PecClient(provider, sandbox=True, base_url=pec.url) as client:
            wallet = await client.account.wallet()
            assert wallet == Wallet(credit=Decimal("423.38"))
            assert wallet.created_at is None and wallet.updated_at is None
        assert oauth.count("GET", "/credit") == 1


async def test_a_client_with_a_fixed_token_cannot_read_the_wallet() -> None:
    emu = Emulator()
    async with emu.serve() as pec:
        async with PecClient(DEFAULT_TOKEN, sandbox=True, base_url=pec.url) as client:
            with pytest.raises(ConfigurationError, match="OAuth provider") as info:
                await client.account.wallet()
            assert "fixed token" in str(info.value)
        assert emu.count() == 0  # nothing sent


async def test_a_provider_that_cannot_read_the_wallet_is_a_configuration_error() -> None:
    class Plain:
        async def get_token(self) -> str:
            return DEFAULT_TOKEN

    async with PecClient(Plain(), sandbox=True) as client:
        with pytest.raises(ConfigurationError, match="a Plain, which cannot read the wallet"):
            await client.account.wallet()


async def test_a_wrong_api_key_cannot_read_the_wallet() -> None:
    async with oauth_env() as env, env.provider(api_key=KEY + "-wrong") as p:
        with pytest.raises(AuthenticationError):
            await p.wallet()


async def test_bad_transaction_pages_are_refused_before_sending() -> None:
    async with oauth_env() as env, env.provider() as p:
        for kwargs in ({"skip": -1}, {"limit": 0}, {"limit": 101}, {"skip": True}):
            with pytest.raises(ConfigurationError):
                await p.wallet_transactions(**kwargs)
        assert env.oauth.count("GET", "/wallet/transactions") == 0


@pytest.mark.parametrize(
    "answer",
    [{"data": {"credit": "abc"}}, {"data": {}}, {"data": {"credit": True}}, {"credit": None}],
)
async def test_an_answer_without_a_credit_is_a_decode_error(answer: dict[str, Any]) -> None:
    async def wallet(request: web.Request) -> web.Response:
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get("/wallet", wallet)
    async with serve_app(app) as url:
        provider = OAuthV2TokenProvider(EMAIL, KEY, scopes=["GET:x/pec"], base_url=url)
        async with provider:
            with pytest.raises(ResponseDecodeError, match="GET /wallet"):
                await provider.wallet()


# -- lenient decoding ------------------------------------------------------------------------


def test_the_wallet_is_read_leniently() -> None:
    wallet = decode_wallet(
        {
            "data": {
                "credit": "12,50",
                "createdAt": 1_700_000_000,
                "updatedAt": "2026-02-12T08:30:00",  # no offset: UTC
                "currency": "EUR",
            }
        }
    )
    assert wallet.credit == Decimal("12.50")
    assert wallet.created_at == dt.datetime.fromtimestamp(1_700_000_000, UTC)
    assert wallet.updated_at == dt.datetime(2026, 2, 12, 8, 30, tzinfo=UTC)
    assert wallet.extra == {"currency": "EUR"}
    exact = decode_wallet({"data": {"credit": 125.1, "updatedAt": "2026-02-12T08:30:00Z"}})
    assert exact.credit == Decimal("125.1")  # the figures written, not the float's expansion
    assert exact.updated_at == dt.datetime(2026, 2, 12, 8, 30, tzinfo=UTC)
    odd = decode_wallet({"credit": 3, "createdAt": "yesterday", "updatedAt": ""})
    assert odd == Wallet(credit=Decimal(3))
    assert odd.extra == {"createdAt": "yesterday"}
    bad: Any
    for bad in ({"data": {"credit": "NaN"}}, {"data": {"credit": 1e400}}, [], None):
        with pytest.raises((TypeError, ValueError)):
            decode_wallet(bad)


def test_transactions_are_read_leniently() -> None:
    txn = decode_transaction(
        {"id": 7, "amount": "-5.25", "createdAt": "2026-02-09T11:20:00+01:00", "extra": 1}
    )
    assert txn.id == "7" and txn.amount == Decimal("-5.25") and txn.description is None
    assert txn.created_at == dt.datetime(2026, 2, 9, 10, 20, tzinfo=UTC)
    assert txn.extra == {"extra": 1}
    with pytest.raises(ValueError, match="without an id"):
        decode_transaction({"amount": 1})


# -- prices and estimates ----------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_price_list_from_json_and_from_csv(tmp_path: Path) -> None:
    data = {"currency": "EUR", "register": {"STANDARD": "5.00", "gold": 25.1}, "upgrade": 10}
    from_json = PriceList.load(write(tmp_path, "p.json", json.dumps(data)))
    csv_text = "operation,mailbox_type,price\nregister,STANDARD,5.00\nregister,GOLD,25.1\n"
    from_csv = PriceList.load(write(tmp_path, "p.csv", csv_text + "upgrade,,10\n"))
    for prices in (from_json, from_csv):
        assert prices.price("register", "STANDARD") == Decimal("5.00")
        assert prices.price("REGISTER", "gold") == Decimal("25.1")
        assert prices.price("upgrade", "SILVER") == Decimal(10)  # one price for every type
        with pytest.raises(ConfigurationError, match="register of a SILVER mailbox"):
            prices.price("register", "SILVER")
    assert from_json == from_csv


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("p.json", "{", "not a JSON price list"),
        ("p.json", "[]", "JSON object"),
        ("p.json", "{}", "no price"),
        ("p.json", '{"currency": "USD", "register": 1}', "EUR"),
        ("p.json", '{"register": -1}', "negative"),
        ("p.json", '{"register": {"GOLD": "cheap"}}', "register.GOLD"),
        ("p.json", '{"register": NaN}', "not a JSON price list"),
        ("p.json", '{"Register!": 1}', "operation"),
        ("p.csv", "operation,cost\nregister,1\n", "price"),
        ("p.csv", "operation,price\nregister,1\nregister,2\n", "line 3: a second price"),
        ("p.csv", "operation,mailbox_type,price\nregister,GO LD,1\n", "line 2"),
        ("p.csv", "operation,price\n", "no price"),
    ],
)
def test_a_bad_price_list_names_the_file(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigurationError, match=match) as info:
        PriceList.load(path)
    assert str(path) in str(info.value)


def test_a_missing_price_list_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the price list"):
        PriceList.load(tmp_path / "missing.json")


PRICES = PriceList.from_mapping({"register": {"STANDARD": "5.00", "GOLD": "25.00"}, "renewal": 4})


def test_an_estimate_of_a_provisioning_run() -> None:
    items: list[Any] = [
        ProvisionRequest(make_registration("a@testcert.legalmail.it", tipo_casella="STANDARD")),
        ProvisionRequest(make_registration("b@testcert.legalmail.it", tipo_casella="GOLD")),
        make_registration("c@testcert.legalmail.it", tipo_casella="STANDARD"),
        InvalidRow(line=4, error=ValidationError("email", "is required")),
        CostItem("renewal", "STANDARD", 3),
    ]
    cost = estimate(items, PRICES, Wallet(credit=Decimal("40")))
    assert cost.total == Decimal("47.00")
    assert cost.per_operation == {"register": Decimal("35.00"), "renewal": Decimal("12")}
    assert {(line.operation, line.mailbox_type, line.quantity) for line in cost.lines} == {
        ("register", "STANDARD", 2),
        ("register", "GOLD", 1),
        ("renewal", "STANDARD", 3),
    }
    assert cost.skipped == 1
    assert cost.credit == Decimal("40")
    assert cost.enough is False and cost.shortfall == Decimal("7.00")
    rich = estimate(items, PRICES, Decimal("47"))
    assert rich.enough is True and rich.shortfall == 0
    unknown = estimate(items, PRICES)
    assert unknown.enough is None and unknown.shortfall == 0
    empty = estimate([], PRICES, Decimal("0"))
    assert empty.total == 0 and empty.enough is True


def test_an_estimate_refuses_what_it_cannot_price() -> None:
    with pytest.raises(ConfigurationError, match="register of a SILVER mailbox"):
        estimate([CostItem("register", "SILVER")], PRICES)
    with pytest.raises(ValidationError, match="items"):
        estimate(["register"], PRICES)  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="wallet"):
        estimate([], PRICES, 10)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="quantity"):
        CostItem("register", "GOLD", -1)


async def test_an_estimate_against_the_emulators_wallet() -> None:
    async with oauth_env() as env:
        env.emu.wallet = Decimal("9.99")
        async with env.provider() as p, env.client(p) as client:
            wallet = await client.account.wallet()
        cost = estimate(
            [CostItem("register", "STANDARD"), CostItem("register", "standard")], PRICES, wallet
        )
        assert cost.total == Decimal("10.00") and cost.shortfall == Decimal("0.01")

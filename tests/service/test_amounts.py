"""Exact money: parsing refuses anything but plain decimal strings, conversions never round."""

from decimal import Decimal

import orjson
import pytest

from service.amounts import (
    format_amount,
    format_token_value,
    from_minor_units,
    parse_amount,
    parse_drops,
    parse_minor_units,
    parse_token_value,
    to_minor_units,
)
from service.errors import InvalidPayment
from service.networks import Network

BTC = Network.BITCOIN
DOGE = Network.DOGECOIN
XRPL = Network.RIPPLE


@pytest.mark.parametrize(
    ("value", "network", "expected"),
    [
        ("0.0015", BTC, Decimal("0.0015")),
        ("0.00150000", BTC, Decimal("0.0015")),
        ("21000000", BTC, Decimal(21_000_000)),
        ("0.00000001", DOGE, Decimal("0.00000001")),
        ("250", DOGE, Decimal(250)),
        ("20.000001", XRPL, Decimal("20.000001")),
    ],
)
def test_parse_amount_accepts_plain_decimal(value: str, network: Network, expected: Decimal) -> None:
    assert parse_amount(value, network, "amount") == expected


@pytest.mark.parametrize(
    "value",
    [
        "1e-3",
        "1E3",
        "+1",
        "-1",
        "0",
        "0.00000000",
        "NaN",
        "Infinity",
        "-Infinity",
        "",
        " 1",
        "1 ",
        ".5",
        "5.",
        "01.5",
        "1,5",
        "0.000000001",
        "21000000.00000001",
        "\u0661",  # ARABIC-INDIC DIGIT ONE, which Decimal() would accept
    ],
)
def test_parse_amount_refuses_non_plain_string(value: str) -> None:
    with pytest.raises(InvalidPayment) as caught:
        parse_amount(value, BTC, "outputs[1].value")
    assert caught.value.field == "outputs[1].value"


@pytest.mark.parametrize("value", [0.0015, 1, True, None, [], {}, Decimal("0.1")])
def test_parse_amount_refuses_non_string(value: object) -> None:
    with pytest.raises(InvalidPayment, match="must be a decimal string") as caught:
        parse_amount(value, BTC, "amount")
    assert caught.value.field == "amount"


def test_parse_amount_refuses_float_from_json_body() -> None:
    body = orjson.loads(b'{"amount": 0.0015}')
    with pytest.raises(InvalidPayment, match="not a JSON number"):
        parse_amount(body["amount"], BTC, "amount")


def test_parse_amount_refuses_seventh_xrp_decimal() -> None:
    with pytest.raises(InvalidPayment, match="more than 6 decimal places"):
        parse_amount("1.0000001", XRPL, "amount")


def test_format_amount_pads_to_network_places() -> None:
    assert format_amount(Decimal("0.0015"), BTC) == "0.00150000"
    assert format_amount(Decimal(250), DOGE) == "250.00000000"
    assert format_amount(Decimal("20"), XRPL) == "20.000000"


def test_to_minor_units_converts_exactly() -> None:
    assert to_minor_units(Decimal("0.0015"), BTC) == 150_000
    assert to_minor_units(Decimal("21000000"), BTC) == 2_100_000_000_000_000
    assert to_minor_units(Decimal("20"), XRPL) == 20_000_000
    # The float pitfall: 0.1 + 0.2 in Decimal is exactly 0.3.
    assert to_minor_units(Decimal("0.1") + Decimal("0.2"), BTC) == 30_000_000


def test_to_minor_units_refuses_sub_unit_amount() -> None:
    with pytest.raises(ValueError, match="finer than"):
        to_minor_units(Decimal("0.000000001"), BTC)


def test_from_minor_units_round_trips() -> None:
    assert from_minor_units(100_000, BTC) == Decimal("0.001")
    assert to_minor_units(from_minor_units(624_780_000, DOGE), DOGE) == 624_780_000


def test_parse_minor_units_accepts_blockcypher_integer() -> None:
    assert parse_minor_units(100_000, BTC, "outputs[0].value") == Decimal("0.001")


@pytest.mark.parametrize("value", [100000.0, "100000", True, 0, -5, 10**30])
def test_parse_minor_units_refuses_bad_value(value: object) -> None:
    with pytest.raises(InvalidPayment) as caught:
        parse_minor_units(value, BTC, "outputs[1].value")
    assert caught.value.field == "outputs[1].value"


def test_parse_drops_converts_string_of_drops() -> None:
    assert parse_drops("20000000", "meta.delivered_amount") == Decimal(20)
    assert parse_drops("1", "meta.delivered_amount") == Decimal("0.000001")


@pytest.mark.parametrize("value", [20000000, "20.5", "-1", "0", "1e6", "", "100000000000000001"])
def test_parse_drops_refuses_bad_value(value: object) -> None:
    with pytest.raises(InvalidPayment) as caught:
        parse_drops(value, "meta.delivered_amount")
    assert caught.value.field == "meta.delivered_amount"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.01", "0.01"),
        ("1000", "1000"),
        ("1.23e11", "123000000000"),
        ("1.5E-3", "0.0015"),
        ("0.0100", "0.01"),
        ("123456789012345", "123456789012345"),
        ("1e-81", "0." + "0" * 80 + "1"),
    ],
)
def test_parse_token_value_normalises_to_plain_decimal(value: str, expected: str) -> None:
    assert format_token_value(parse_token_value(value, "value")) == expected


@pytest.mark.parametrize(
    "value",
    [
        "1234567890123456",
        "1.0000000000000000000000000000001",
        "0",
        "-1",
        "1e81",
        "1e-97",
        "1e999999999999",
        "NaN",
        "inf",
        "1.2.3",
        "",
        1.5,
        10,
    ],
)
def test_parse_token_value_refuses_bad_value(value: object) -> None:
    with pytest.raises(InvalidPayment) as caught:
        parse_token_value(value, "meta.delivered_amount.value")
    assert caught.value.field == "meta.delivered_amount.value"

"""The Payment model: the job argument's exact shape, its invariants, and the confirmation policy."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from service.errors import InvalidPayment
from service.networks import Network
from service.payments import Payment, PaymentPolicy, utxo_payment, validate_currency_code, xrpl_payment

TXID = "1075db55d416d3ca199f55b6084e2115b9345e16c5cf302fc80e9d5fbf5d48d0"
XRPL_HASH = "6489E52A909208E371ACE82E19CAE59896C7F8BA40E7C36C5B8AA3C451914BED"
XRPL_ACCOUNT = "rfdGuuVnq9juqWDV4W3LoLiNcW8g2hAXhN"
USD_ISSUER = "rf1BiGeXwwQoi8Z2ueFYTEXSwuJYfV2Jpn"
RECEIVED_AT = datetime(2026, 12, 3, 15, 40, 37, 654321, tzinfo=UTC)


def make_bitcoin(confirmations: int = 3, **overrides: object) -> Payment:
    payment = utxo_payment(
        Network.BITCOIN,
        txid=TXID,
        output_index=1,
        address="bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        amount=Decimal("0.0015"),
        confirmations=confirmations,
        source="webhook",
        received_at=RECEIVED_AT,
    )
    return payment.model_copy(update=overrides) if overrides else payment


def make_xrp(validated: bool = True) -> Payment:
    return xrpl_payment(
        tx_hash=XRPL_HASH.lower(),
        address=XRPL_ACCOUNT,
        destination_tag=42,
        amount=Decimal(20),
        currency="XRP",
        issuer=None,
        validated=validated,
        source="poller",
        received_at=RECEIVED_AT,
        request_id="req-1",
    )


def test_to_job_arg_matches_design_example_for_bitcoin() -> None:
    arg = make_bitcoin().to_job_arg()

    assert orjson.dumps(arg) == (
        b'{"id":"bitcoin:' + TXID.encode() + b':1","network":"bitcoin","txid":"' + TXID.encode() + b'",'
        b'"output_index":1,"address":"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq","amount":"0.00150000",'
        b'"currency":"BTC","minor_units":150000,"confirmations":3,"source":"webhook",'
        b'"received_at":"2026-12-03T15:40:37Z"}'
    )


def test_to_job_arg_carries_xrp_drops_and_tag() -> None:
    arg = make_xrp().to_job_arg()

    assert arg == {
        "id": f"ripple:{XRPL_HASH}",
        "network": "ripple",
        "tx_hash": XRPL_HASH,
        "address": XRPL_ACCOUNT,
        "destination_tag": 42,
        "amount": "20.000000",
        "currency": "XRP",
        "minor_units": 20_000_000,
        "confirmations": 1,
        "source": "poller",
        "received_at": "2026-12-03T15:40:37Z",
        "request_id": "req-1",
    }


def test_to_job_arg_gives_token_issuer_and_no_minor_units() -> None:
    payment = xrpl_payment(
        tx_hash=XRPL_HASH,
        address=XRPL_ACCOUNT,
        destination_tag=None,
        amount=Decimal("1.23E+11"),
        currency="USD",
        issuer=USD_ISSUER,
        validated=True,
        source="webhook",
        received_at=RECEIVED_AT,
    )
    arg = payment.to_job_arg()

    assert arg["amount"] == "123000000000"
    assert arg["issuer"] == USD_ISSUER
    assert "minor_units" not in arg
    assert "destination_tag" not in arg


def test_validate_payment_round_trips_job_arg() -> None:
    for payment in (make_bitcoin(), make_xrp()):
        assert Payment.model_validate(orjson.loads(orjson.dumps(payment.to_job_arg()))) == payment


def test_validate_payment_converts_received_at_to_utc_seconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    payment = Payment.model_validate(
        {**make_bitcoin().to_job_arg(), "received_at": datetime(2026, 12, 3, 17, 40, 37, 999, tzinfo=plus_two)}
    )
    assert payment.to_job_arg()["received_at"] == "2026-12-03T15:40:37Z"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "bitcoin:other:1"}, "id must be"),
        ({"amount": "0.0015"}, "exactly 8 decimals"),
        ({"amount": 0.0015}, "amount"),
        ({"minor_units": 150001}, "minor_units must equal"),
        ({"currency": "DOGE"}, "currency must be BTC"),
        ({"txid": TXID.upper()}, "64 lowercase hex"),
        ({"confirmations": -1}, "confirmations"),
        ({"confirmations": "3"}, "confirmations"),
        ({"issuer": USD_ISSUER}, "XRP Ledger only"),
        ({"source": "email"}, "source"),
        ({"received_at": "2026-12-03T15:40:37"}, "timezone"),
        ({"extra": 1}, "extra"),
    ],
)
def test_validate_payment_refuses_inconsistent_bitcoin(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Payment.model_validate({**make_bitcoin().to_job_arg(), **change})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tx_hash": XRPL_HASH.lower(), "id": f"ripple:{XRPL_HASH.lower()}"}, "64 uppercase hex"),
        ({"output_index": 0}, "UTXO networks only"),
        ({"issuer": USD_ISSUER}, "XRP has no issuer"),
        ({"currency": "USD", "issuer": USD_ISSUER}, "tokens have no minor units"),
        ({"currency": "USD"}, "needs its issuer"),
        ({"currency": "USDX"}, "currency code"),
        ({"destination_tag": 2**32}, "destination_tag"),
    ],
)
def test_validate_payment_refuses_inconsistent_ripple(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Payment.model_validate({**make_xrp().to_job_arg(), **change})


def test_validate_payment_refuses_token_amount_with_trailing_zeros() -> None:
    arg = {**make_xrp().to_job_arg(), "currency": "USD", "issuer": USD_ISSUER, "amount": "0.010"}
    del arg["minor_units"]
    with pytest.raises(ValidationError, match="trailing zeros"):
        Payment.model_validate(arg)


def test_payment_is_frozen() -> None:
    payment = make_bitcoin()
    with pytest.raises(ValidationError):
        payment.confirmations = 9  # type: ignore[misc]
    assert payment.confirmations == 3


def test_validate_currency_code_accepts_standard_and_hex() -> None:
    assert validate_currency_code("USD", "currency") == "USD"
    assert validate_currency_code("0158415500000000c1f76ff6ecb0bac600000000", "c") == (
        "0158415500000000C1F76FF6ECB0BAC600000000"
    )


@pytest.mark.parametrize("code", ["XRP", "US", "USDC", "", 5, None, "0158415500000000c1f76ff6ecb0bac60000000g"])
def test_validate_currency_code_refuses_bad_code(code: object) -> None:
    with pytest.raises(InvalidPayment) as caught:
        validate_currency_code(code, "meta.delivered_amount.currency")
    assert caught.value.field == "meta.delivered_amount.currency"


def test_is_confirmed_uses_default_thresholds() -> None:
    policy = PaymentPolicy()
    doge = utxo_payment(
        Network.DOGECOIN,
        txid=TXID,
        output_index=0,
        address="DH9fPpKHLiP5eaAD3pXxxUZmPktGNGTFp6",
        amount=Decimal(250),
        confirmations=5,
        source="poller",
        received_at=RECEIVED_AT,
    )

    assert policy.is_confirmed(make_bitcoin(confirmations=1))
    assert not policy.is_confirmed(make_bitcoin(confirmations=0))
    assert not policy.is_confirmed(doge)
    assert policy.is_confirmed(doge.model_copy(update={"confirmations": 6}))
    assert policy.is_confirmed(make_xrp(validated=True))
    assert not policy.is_confirmed(make_xrp(validated=False))


def test_is_confirmed_honours_configured_threshold() -> None:
    policy = PaymentPolicy(bitcoin=3)
    assert policy.required_confirmations(Network.BITCOIN) == 3
    assert not policy.is_confirmed(make_bitcoin(confirmations=2))
    assert policy.is_confirmed(make_bitcoin(confirmations=3))


@pytest.mark.parametrize("kwargs", [{"bitcoin": -1}, {"dogecoin": True}, {"ripple": 2}, {"ripple": 0}])
def test_create_policy_refuses_bad_threshold(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="confirmations"):
        PaymentPolicy(**kwargs)

"""Webhook bodies: payq's payment shape, BlockCypher TX objects and XRP Ledger transactions."""

from datetime import UTC, datetime

import orjson
import pytest
from xrpl.core import addresscodec

from service.bodies import Observation, Status, parse_body
from service.errors import InvalidPayment
from service.networks import Chain, Network
from service.payments import Payment, PaymentPolicy
from tests.service.fixtures import (
    BCY_CHANGE_ADDRESS,
    BCY_FIRST_ADDRESS,
    BCY_TXID,
    PARTIAL_HASH,
    RECEIVED_AT_ISO,
    USD_ISSUER,
    XRPL_ACCOUNT,
    XRPL_HASH,
    XRPL_SENDER,
    XRPL_STREAM_1,
    blockcypher_tx,
    xrpl_acctx_entry,
    xrpl_partial_payment,
)

RECEIVED_AT = datetime(2026, 12, 3, 15, 40, 37, tzinfo=UTC)
TXID = "aa00000000000000000000000000000000000000000000000000000000000001"
BTC_ADDRESS = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
DOGE_ADDRESS = "DH9fPpKHLiP5eaAD3pXxxUZmPktGNGTFp6"
NOBODY: frozenset[str] = frozenset()


def parse(
    network: Network,
    raw: bytes,
    watched: frozenset[str] = NOBODY,
    chain: Chain = Chain.MAIN,
) -> list[Observation]:
    return parse_body(
        network,
        chain,
        orjson.loads(raw),
        watched,
        source="webhook",
        received_at=RECEIVED_AT,
        request_id="req-7",
    )


def only_payment(observations: list[Observation]) -> Payment:
    assert [o.status for o in observations] == [Status.PAYMENT]
    payment = observations[0].payment
    assert payment is not None
    return payment


def btc_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "txid": TXID,
        "output_index": 1,
        "address": BTC_ADDRESS,
        "amount": "0.0015",
        "confirmations": 3,
    }
    body.update(changes)
    return body


def field_of(network: Network, raw: bytes, watched: frozenset[str] = NOBODY, chain: Chain = Chain.MAIN) -> str:
    with pytest.raises(InvalidPayment) as caught:
        parse(network, raw, watched, chain)
    return caught.value.field


# --- payq's own shape, Bitcoin and Dogecoin ----------------------------------------------------------------


def test_parse_body_reads_payq_bitcoin_payment() -> None:
    payment = only_payment(parse(Network.BITCOIN, orjson.dumps(btc_body()), frozenset({BTC_ADDRESS})))

    assert payment.to_job_arg() == {
        "id": f"bitcoin:{TXID}:1",
        "network": "bitcoin",
        "txid": TXID,
        "output_index": 1,
        "address": BTC_ADDRESS,
        "amount": "0.00150000",
        "currency": "BTC",
        "minor_units": 150_000,
        "confirmations": 3,
        "source": "webhook",
        "received_at": RECEIVED_AT_ISO,
        "request_id": "req-7",
    }


def test_parse_body_reads_payq_dogecoin_payment() -> None:
    raw = orjson.dumps(btc_body(address=DOGE_ADDRESS, amount="250", network="dogecoin", currency="DOGE"))
    payment = only_payment(parse(Network.DOGECOIN, raw))

    assert (payment.id, payment.amount, payment.minor_units) == (f"dogecoin:{TXID}:1", "250.00000000", 25 * 10**9)
    assert not PaymentPolicy().is_confirmed(payment)


def test_parse_body_normalises_uppercase_segwit_and_txid() -> None:
    raw = orjson.dumps(btc_body(address=BTC_ADDRESS.upper(), txid=TXID.upper()))
    payment = only_payment(parse(Network.BITCOIN, raw, frozenset({BTC_ADDRESS})))
    assert (payment.address, payment.txid) == (BTC_ADDRESS, TXID)


def test_parse_body_reads_array_and_payments_object() -> None:
    items = [btc_body(), btc_body(output_index=2, amount="1")]
    for raw in (orjson.dumps(items), orjson.dumps({"payments": items})):
        observations = parse(Network.BITCOIN, raw)
        assert [o.ref for o in observations] == [f"bitcoin:{TXID}:1", f"bitcoin:{TXID}:2"]
        assert [o.payment.amount for o in observations if o.payment] == ["0.00150000", "1.00000000"]


def test_parse_body_ignores_unwatched_address() -> None:
    observations = parse(Network.BITCOIN, orjson.dumps(btc_body()), frozenset({"1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"}))
    assert [(o.status, o.payment) for o in observations] == [(Status.IGNORED, None)]
    assert BTC_ADDRESS in observations[0].reason


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (
            b'{"txid":"%s","output_index":1,"address":"%s","amount":0.0015,"confirmations":3}'
            % (TXID.encode(), BTC_ADDRESS.encode()),
            "amount",
        ),
        (orjson.dumps(btc_body(amount="1e-3")), "amount"),
        (orjson.dumps(btc_body(amount="0.000000001")), "amount"),
        (orjson.dumps(btc_body(amount="-1")), "amount"),
        (orjson.dumps([btc_body(), btc_body(amount=1)]), "[1].amount"),
        (orjson.dumps({"payments": [btc_body(), btc_body(amount=True)]}), "payments[1].amount"),
        (orjson.dumps(btc_body(vout=1)), "vout"),
        (orjson.dumps(btc_body(network="dogecoin")), "network"),
        (orjson.dumps(btc_body(currency="DOGE")), "currency"),
        (orjson.dumps(btc_body(txid="abc")), "txid"),
        (orjson.dumps(btc_body(output_index=-1)), "output_index"),
        (orjson.dumps(btc_body(output_index=1.0)), "output_index"),
        (orjson.dumps(btc_body(confirmations=None)), "confirmations"),
        (orjson.dumps(btc_body(address=DOGE_ADDRESS)), "address"),
        (orjson.dumps(btc_body(address="tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7")), "address"),
        (b"[]", "body"),
        (b'{"payments":{}}', "payments"),
        (b'{"payments":[],"extra":1}', "body"),
        (b"[[]]", "[0]"),
        (b'"hello"', "body"),
        (b'{"hello":1}', "body"),
    ],
)
def test_parse_body_refuses_malformed_payq_payment(raw: bytes, field: str) -> None:
    assert field_of(Network.BITCOIN, raw) == field


# --- BlockCypher TX objects (BCY-HOOK-1) ----------------------------------------------------------------------


def test_parse_body_reads_blockcypher_output_to_watched_address() -> None:
    observations = parse(Network.BITCOIN, blockcypher_tx(), frozenset({BCY_FIRST_ADDRESS}), Chain.TEST)
    payment = only_payment(observations)

    assert payment.id == f"bitcoin:{BCY_TXID}:0"
    assert (payment.address, payment.amount, payment.minor_units) == (BCY_FIRST_ADDRESS, "0.00100000", 100_000)
    assert payment.confirmations == 0
    assert not PaymentPolicy().is_confirmed(payment)


def test_parse_body_reads_every_watched_blockcypher_output() -> None:
    watched = frozenset({BCY_FIRST_ADDRESS, BCY_CHANGE_ADDRESS})
    observations = parse(Network.BITCOIN, blockcypher_tx(confirmations=3, block_height=2_430_001), watched, Chain.TEST)

    assert [o.ref for o in observations] == [f"bitcoin:{BCY_TXID}:0", f"bitcoin:{BCY_TXID}:1"]
    amounts = [(o.payment.output_index, o.payment.amount, o.payment.confirmations) for o in observations if o.payment]
    assert amounts == [(0, "0.00100000", 3), (1, "6.24780000", 3)]


def test_parse_body_yields_no_payment_for_unwatched_blockcypher_tx() -> None:
    observations = parse(
        Network.BITCOIN, blockcypher_tx(), frozenset({"mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef"}), Chain.TEST
    )

    assert [o.payment for o in observations] == [None]
    assert observations[0].status is Status.IGNORED
    assert observations[0].ref == f"bitcoin:{BCY_TXID}"


def test_parse_body_treats_missing_confirmations_of_mempool_tx_as_zero() -> None:
    payment = only_payment(
        parse(Network.BITCOIN, blockcypher_tx(confirmations=None), frozenset({BCY_FIRST_ADDRESS}), Chain.TEST)
    )
    assert payment.confirmations == 0


def test_parse_body_holds_blockcypher_double_spend_pending() -> None:
    observations = parse(Network.BITCOIN, blockcypher_tx(double_spend=True), frozenset({BCY_FIRST_ADDRESS}), Chain.TEST)
    assert [o.status for o in observations] == [Status.PENDING]
    assert "double spend" in observations[0].reason


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (blockcypher_tx(change_value=624_780_000.0), "outputs[1].value"),
        (blockcypher_tx(change_value="624780000"), "outputs[1].value"),
        (blockcypher_tx(change_value=0), "outputs[1].value"),
        (blockcypher_tx(change_value=None), "outputs[1].value"),
        (blockcypher_tx(confirmations=None, block_height=2_430_001), "confirmations"),
        (blockcypher_tx(confirmations=-1), "confirmations"),
    ],
)
def test_parse_body_refuses_malformed_blockcypher_tx(raw: bytes, field: str) -> None:
    assert field_of(Network.BITCOIN, raw, frozenset({BCY_CHANGE_ADDRESS}), Chain.TEST) == field


def test_parse_body_refuses_blockcypher_tx_for_other_chain() -> None:
    # With no watched set every output counts, so a testnet TX sent to a mainnet route is malformed.
    assert field_of(Network.BITCOIN, blockcypher_tx()) == "outputs[0].addresses[0]"


# --- XRP Ledger transactions -----------------------------------------------------------------------------------

RIPPLE_WATCHED = frozenset({XRPL_ACCOUNT})


def test_parse_body_reads_xrpl_stream_message() -> None:
    payment = only_payment(parse(Network.RIPPLE, XRPL_STREAM_1, RIPPLE_WATCHED))

    assert payment.to_job_arg() == {
        "id": f"ripple:{XRPL_HASH}",
        "network": "ripple",
        "tx_hash": XRPL_HASH,
        "address": XRPL_ACCOUNT,
        "amount": "20.000000",
        "currency": "XRP",
        "minor_units": 20_000_000,
        "confirmations": 1,
        "source": "webhook",
        "received_at": RECEIVED_AT_ISO,
        "request_id": "req-7",
    }
    assert PaymentPolicy().is_confirmed(payment)


@pytest.mark.parametrize("api_v1", [False, True])
def test_parse_body_reads_account_tx_entry_with_tag(api_v1: bool) -> None:
    payment = only_payment(parse(Network.RIPPLE, xrpl_acctx_entry(api_v1=api_v1), RIPPLE_WATCHED))

    assert (payment.id, payment.destination_tag, payment.minor_units) == (f"ripple:{XRPL_HASH}", 42, 20_000_000)


def test_parse_body_credits_partial_payment_delivered_amount_only() -> None:
    payment = only_payment(parse(Network.RIPPLE, xrpl_partial_payment(), RIPPLE_WATCHED))

    assert payment.to_job_arg() == {
        "id": f"ripple:{PARTIAL_HASH}",
        "network": "ripple",
        "tx_hash": PARTIAL_HASH,
        "address": XRPL_ACCOUNT,
        "destination_tag": 7,
        "amount": "0.01",
        "currency": "USD",
        "issuer": USD_ISSUER,
        "confirmations": 1,
        "source": "webhook",
        "received_at": RECEIVED_AT_ISO,
        "request_id": "req-7",
    }


def test_parse_body_normalises_exponent_token_value() -> None:
    delivered = {"currency": "USD", "issuer": USD_ISSUER, "value": "1.23e11"}
    payment = only_payment(parse(Network.RIPPLE, xrpl_partial_payment(delivered=delivered)))
    assert payment.amount == "123000000000"


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (xrpl_partial_payment(delivered="unavailable"), Status.REJECTED, "unavailable"),
        (xrpl_partial_payment(result="tecPATH_DRY"), Status.REJECTED, "tecPATH_DRY"),
        (xrpl_partial_payment(validated=False), Status.PENDING, "validated"),
        (xrpl_partial_payment(transaction_type="TrustSet"), Status.REJECTED, "TrustSet is not a Payment"),
        (xrpl_partial_payment(destination=XRPL_SENDER), Status.IGNORED, "not watched"),
        (
            xrpl_partial_payment(
                delivered={"mpt_issuance_id": "00000001A407AF5856CECE4281FED12B7B179B49A4AEF506", "value": "5"}
            ),
            Status.REJECTED,
            "multi-purpose",
        ),
    ],
)
def test_parse_body_withholds_uncreditable_xrpl_transaction(raw: bytes, status: Status, reason: str) -> None:
    observations = parse(Network.RIPPLE, raw, RIPPLE_WATCHED)

    assert [(o.status, o.payment, o.ref) for o in observations] == [(status, None, f"ripple:{PARTIAL_HASH}")]
    assert reason in observations[0].reason


def test_parse_body_rejects_xrpl_self_payment() -> None:
    raw = xrpl_partial_payment(destination=XRPL_SENDER)
    observations = parse(Network.RIPPLE, raw, frozenset({XRPL_SENDER}))
    assert [o.status for o in observations] == [Status.REJECTED]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (xrpl_partial_payment(delivered="20.5"), "meta.delivered_amount"),
        (xrpl_partial_payment(delivered=20000000), "meta.delivered_amount"),
        (
            xrpl_partial_payment(delivered={"currency": "USD", "issuer": USD_ISSUER, "value": 0.01}),
            "meta.delivered_amount.value",
        ),
        (xrpl_partial_payment(delivered={"currency": "USD", "value": "0.01"}), "meta.delivered_amount.issuer"),
        (
            xrpl_partial_payment(delivered={"currency": "XRP", "issuer": USD_ISSUER, "value": "1"}),
            "meta.delivered_amount.currency",
        ),
        (xrpl_partial_payment(delivered=None), "meta.delivered_amount"),
        (xrpl_partial_payment(destination_tag=2**32), "tx_json.DestinationTag"),
        (xrpl_partial_payment(destination="rNotAnAddress"), "tx_json.Destination"),
        (
            orjson.dumps([orjson.loads(XRPL_STREAM_1), orjson.loads(xrpl_partial_payment(delivered="1.5"))]),
            "[1].meta.delivered_amount",
        ),
        (orjson.dumps({"tx_json": "x", "hash": XRPL_HASH}), "tx_json"),
        (orjson.dumps({"tx_json": {}, "hash": "zz"}), "hash"),
        (orjson.dumps({"type": "ledgerClosed", "ledger_index": 5}), "body"),
    ],
)
def test_parse_body_refuses_malformed_xrpl_transaction(raw: bytes, field: str) -> None:
    assert field_of(Network.RIPPLE, raw) == field


def test_parse_body_refuses_xrpl_transaction_on_bitcoin_route() -> None:
    assert field_of(Network.BITCOIN, XRPL_STREAM_1) == "body"


# --- payq's own shape, XRP Ledger -----------------------------------------------------------------------------


def xrpl_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "tx_hash": XRPL_HASH.lower(),
        "address": XRPL_ACCOUNT,
        "destination_tag": 42,
        "amount": "20",
    }
    body.update(changes)
    return body


def test_parse_body_reads_payq_xrp_payment() -> None:
    payment = only_payment(parse(Network.RIPPLE, orjson.dumps(xrpl_body()), RIPPLE_WATCHED))

    assert (payment.id, payment.tx_hash, payment.destination_tag) == (f"ripple:{XRPL_HASH}", XRPL_HASH, 42)
    assert (payment.amount, payment.minor_units, payment.confirmations) == ("20.000000", 20_000_000, 1)


def test_parse_body_takes_tag_from_xaddress() -> None:
    xaddress = addresscodec.classic_address_to_xaddress(XRPL_ACCOUNT, 42, False)
    raw = orjson.dumps({"hash": XRPL_HASH, "address": xaddress, "amount": "20"})
    payment = only_payment(parse(Network.RIPPLE, raw, RIPPLE_WATCHED))

    assert (payment.address, payment.destination_tag) == (XRPL_ACCOUNT, 42)


def test_parse_body_reads_payq_token_payment() -> None:
    raw = orjson.dumps(xrpl_body(amount="0.0100", currency="USD", issuer=USD_ISSUER))
    payment = only_payment(parse(Network.RIPPLE, raw))

    assert (payment.amount, payment.currency, payment.issuer, payment.minor_units) == ("0.01", "USD", USD_ISSUER, None)


@pytest.mark.parametrize(
    ("changes", "status"),
    [({"validated": False}, Status.PENDING), ({"result": "tecUNFUNDED_PAYMENT"}, Status.REJECTED)],
)
def test_parse_body_withholds_unfinished_payq_xrp_payment(changes: dict[str, object], status: Status) -> None:
    observations = parse(Network.RIPPLE, orjson.dumps(xrpl_body(**changes)))
    assert [(o.status, o.payment) for o in observations] == [(status, None)]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 20.0}, "amount"),
        ({"amount": "20.0000001"}, "amount"),
        (
            {"address": addresscodec.classic_address_to_xaddress(XRPL_ACCOUNT, 42, False), "destination_tag": 43},
            "destination_tag",
        ),
        ({"address": addresscodec.classic_address_to_xaddress(XRPL_ACCOUNT, 42, True)}, "address"),
        ({"destination_tag": -1}, "destination_tag"),
        ({"hash": XRPL_HASH}, "tx_hash"),
        ({"currency": "USD"}, "issuer"),
        ({"issuer": USD_ISSUER}, "issuer"),
        ({"currency": "USD", "issuer": USD_ISSUER, "amount": "1234567890123456"}, "amount"),
        ({"validated": "yes"}, "validated"),
        ({"txid": TXID}, "txid"),
    ],
)
def test_parse_body_refuses_malformed_payq_xrp_payment(changes: dict[str, object], field: str) -> None:
    assert field_of(Network.RIPPLE, orjson.dumps(xrpl_body(**changes))) == field

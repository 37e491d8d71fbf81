"""Turn a parsed webhook body into observations: payments to consider, or transactions payq will not credit.

Three body shapes are recognised by their structure:

* payq's own payment shape (one object, a JSON array of them, or ``{"payments": [...]}``);
* a BlockCypher TX object (one payment per output that pays a watched address);
* an XRP Ledger transaction as ``account_tx`` (API v1 or v2) or the ``subscribe`` stream sends it.

Malformed input raises InvalidPayment naming the offending field (e.g. ``outputs[1].value``). A
well-formed transaction that will never be credited, is not final yet, or is for nobody payq watches
becomes an Observation with the matching status, so the caller can acknowledge it and say why.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from service.addresses import split_xrpl_address, validate_address, validate_tag
from service.amounts import parse_amount, parse_drops, parse_minor_units, parse_token_value
from service.errors import InvalidPayment
from service.networks import Chain, Network, network_facts
from service.payments import Payment, Source, utxo_payment, validate_currency_code, xrpl_payment

_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
_MAX_ITEMS = 1000
_MAX_UINT32 = 2**32 - 1
_SEGWIT_PREFIXES = ("bc1", "tb1", "bcrt1")
_SUCCESS = "tesSUCCESS"
_UTXO_KEYS = frozenset({"txid", "output_index", "address", "amount", "confirmations", "network", "currency"})
_XRPL_KEYS = frozenset(
    {"tx_hash", "hash", "address", "destination_tag", "amount", "currency", "issuer", "validated", "result", "network"}
)


class Status(StrEnum):
    """What a body says about one payment or transaction."""

    PAYMENT = "payment"  # a payment; PaymentPolicy decides whether it has enough confirmations
    PENDING = "pending"  # not final yet (unvalidated ledger, reported double spend); acknowledge only
    REJECTED = "rejected"  # will never be credited (failed, not a payment, amount unavailable)
    IGNORED = "ignored"  # pays no watched address


@dataclass(frozen=True)
class Observation:
    """One thing a body reported, with the payment when there is one to credit or to wait for."""

    status: Status
    ref: str
    payment: Payment | None = None
    reason: str = ""


@dataclass(frozen=True)
class _Context:
    network: Network
    chain: Chain
    watched: frozenset[str]
    source: Source
    received_at: datetime
    request_id: str | None


def parse_body(
    network: Network,
    chain: Chain,
    body: object,
    watched: frozenset[str],
    *,
    source: Source,
    received_at: datetime,
    request_id: str | None = None,
) -> list[Observation]:
    """Read a webhook body into observations; raise InvalidPayment for malformed input.

    `watched` holds normalised addresses (see validate_address); when empty, every address counts.
    """
    context = _Context(network, chain, watched, source, received_at, request_id)
    items = _items(body)
    observations: list[Observation] = []
    for prefix, item in items:
        observations.extend(_parse_item(context, prefix, item))
    return observations


def _items(body: object) -> list[tuple[str, object]]:
    if isinstance(body, dict) and "payments" in body:
        if set(body) != {"payments"}:
            raise InvalidPayment("body", "an object with payments must hold nothing else")
        return _listed(body["payments"], "payments")
    if isinstance(body, list):
        return _listed(body, "")
    return [("", body)]


def _listed(value: object, path: str) -> list[tuple[str, object]]:
    if not isinstance(value, list):
        raise InvalidPayment(path, "must be a JSON array")
    if not value:
        raise InvalidPayment(path or "body", "holds no payment")
    if len(value) > _MAX_ITEMS:
        raise InvalidPayment(path or "body", f"holds more than {_MAX_ITEMS} payments")
    return [(f"{path}[{index}]", item) for index, item in enumerate(value)]


def _parse_item(context: _Context, prefix: str, item: object) -> list[Observation]:
    if not isinstance(item, dict):
        raise InvalidPayment(prefix or "body", "must be a JSON object")
    if context.network is Network.RIPPLE:
        if "tx_json" in item or "tx" in item:
            return [_parse_xrpl_transaction(context, prefix, item)]
        if "amount" in item:
            return [_parse_xrpl_payment(context, prefix, item)]
    else:
        if "outputs" in item:
            return _parse_blockcypher(context, prefix, item)
        if "amount" in item:
            return [_parse_utxo_payment(context, prefix, item)]
    raise InvalidPayment(prefix or "body", f"is not a {context.network} payment or transaction payq knows")


# --- field readers ---------------------------------------------------------------------------------------


def _at(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _require(obj: Mapping[str, object], key: str, prefix: str) -> object:
    if key not in obj or obj[key] is None:
        raise InvalidPayment(_at(prefix, key), "is required")
    return obj[key]


def _read_count(value: object, path: str, maximum: int = _MAX_UINT32) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise InvalidPayment(path, f"must be an integer from 0 to {maximum}")
    return value


def _read_hash(value: object, path: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise InvalidPayment(path, "must be 64 hex digits")
    return value


def _check_keys(obj: Mapping[str, object], allowed: frozenset[str], prefix: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise InvalidPayment(_at(prefix, unknown[0]), "is not a field of a payq payment")


def _check_network(context: _Context, obj: Mapping[str, object], prefix: str) -> None:
    if "network" in obj and obj["network"] != context.network:
        raise InvalidPayment(_at(prefix, "network"), f"must be {context.network!s} for this route")


def _is_watched(context: _Context, address: str) -> bool:
    return not context.watched or address in context.watched


# --- payq's own shape --------------------------------------------------------------------------------------


def _parse_utxo_payment(context: _Context, prefix: str, item: Mapping[str, object]) -> Observation:
    _check_keys(item, _UTXO_KEYS, prefix)
    _check_network(context, item, prefix)
    currency = network_facts(context.network).currency
    if "currency" in item and item["currency"] != currency:
        raise InvalidPayment(_at(prefix, "currency"), f"must be {currency} on {context.network}")
    txid = _read_hash(_require(item, "txid", prefix), _at(prefix, "txid"))
    output_index = _read_count(_require(item, "output_index", prefix), _at(prefix, "output_index"))
    address = validate_address(
        context.network, context.chain, _require(item, "address", prefix), field=_at(prefix, "address")
    )
    amount = parse_amount(_require(item, "amount", prefix), context.network, _at(prefix, "amount"))
    confirmations = _read_count(_require(item, "confirmations", prefix), _at(prefix, "confirmations"))

    payment = _utxo(context, txid, output_index, address, amount, confirmations)
    if not _is_watched(context, address):
        return Observation(Status.IGNORED, payment.id, reason=f"address {address} is not watched")
    return Observation(Status.PAYMENT, payment.id, payment)


def _parse_xrpl_payment(context: _Context, prefix: str, item: Mapping[str, object]) -> Observation:
    _check_keys(item, _XRPL_KEYS, prefix)
    _check_network(context, item, prefix)
    if ("tx_hash" in item) == ("hash" in item):
        raise InvalidPayment(_at(prefix, "tx_hash"), "is required (or hash), but not both")
    key = "tx_hash" if "tx_hash" in item else "hash"
    tx_hash = _read_hash(item[key], _at(prefix, key)).upper()
    raw_address = validate_address(
        Network.RIPPLE, context.chain, _require(item, "address", prefix), field=_at(prefix, "address")
    )
    try:
        address, tag = split_xrpl_address(raw_address, item.get("destination_tag"))
    except InvalidPayment as exc:
        raise InvalidPayment(_at(prefix, exc.field), exc.message) from exc
    currency, issuer = _read_xrpl_currency(context, prefix, item)
    amount_path = _at(prefix, "amount")
    raw_amount = _require(item, "amount", prefix)
    amount = (
        parse_amount(raw_amount, Network.RIPPLE, amount_path)
        if issuer is None
        else parse_token_value(raw_amount, amount_path)
    )
    validated = item.get("validated", True)
    result = item.get("result", _SUCCESS)
    if not isinstance(validated, bool):
        raise InvalidPayment(_at(prefix, "validated"), "must be true or false")
    if not isinstance(result, str):
        raise InvalidPayment(_at(prefix, "result"), "must be a transaction result code such as tesSUCCESS")

    ref = f"{Network.RIPPLE}:{tx_hash}"
    if not _is_watched(context, address):
        return Observation(Status.IGNORED, ref, reason=f"account {address} is not watched")
    if result != _SUCCESS:
        return Observation(Status.REJECTED, ref, reason=f"transaction result is {result}")
    if not validated:
        return Observation(Status.PENDING, ref, reason="not yet in a validated ledger")
    return _credit_xrpl(context, ref, tx_hash, address, tag, (amount, currency, issuer))


def _utxo(
    context: _Context, txid: str, output_index: int, address: str, amount: Decimal, confirmations: int
) -> Payment:
    """A Bitcoin or Dogecoin payment observed in ``context``."""
    return utxo_payment(
        context.network,
        txid=txid,
        output_index=output_index,
        address=address,
        amount=amount,
        confirmations=confirmations,
        source=context.source,
        received_at=context.received_at,
        request_id=context.request_id,
    )


def _credit_xrpl(
    context: _Context,
    ref: str,
    tx_hash: str,
    address: str,
    tag: int | None,
    delivered: tuple[Decimal, str, str | None],
) -> Observation:
    """A validated, successful XRP Ledger payment of ``delivered`` (amount, currency, issuer)."""
    amount, currency, issuer = delivered
    payment = xrpl_payment(
        tx_hash=tx_hash,
        address=address,
        destination_tag=tag,
        amount=amount,
        currency=currency,
        issuer=issuer,
        validated=True,
        source=context.source,
        received_at=context.received_at,
        request_id=context.request_id,
    )
    return Observation(Status.PAYMENT, ref, payment)


def _read_xrpl_currency(context: _Context, prefix: str, item: Mapping[str, object]) -> tuple[str, str | None]:
    currency = item.get("currency", "XRP")
    if currency == "XRP":
        if item.get("issuer") is not None:
            raise InvalidPayment(_at(prefix, "issuer"), "must be absent for XRP")
        return "XRP", None
    code = validate_currency_code(currency, _at(prefix, "currency"))
    return code, _read_classic(context, _require(item, "issuer", prefix), _at(prefix, "issuer"))


def _read_classic(context: _Context, value: object, path: str) -> str:
    account = validate_address(Network.RIPPLE, context.chain, value, field=path)
    if not account.startswith("r"):
        raise InvalidPayment(path, "must be a classic address")
    return account


# --- BlockCypher TX object ---------------------------------------------------------------------------------


def _parse_blockcypher(context: _Context, prefix: str, tx: Mapping[str, object]) -> list[Observation]:
    txid = _read_hash(_require(tx, "hash", prefix), _at(prefix, "hash")).lower()
    confirmations = _blockcypher_confirmations(tx, prefix)
    outputs = _require(tx, "outputs", prefix)
    if not isinstance(outputs, list):
        raise InvalidPayment(_at(prefix, "outputs"), "must be a JSON array")

    observations: list[Observation] = []
    for index, output in enumerate(outputs):
        path = _at(prefix, f"outputs[{index}]")
        observation = _parse_blockcypher_output(context, path, output, txid, index, confirmations)
        if observation is not None:
            observations.append(observation)
    ref = f"{context.network}:{txid}"
    if not observations:
        return [Observation(Status.IGNORED, ref, reason="no output pays a watched address")]
    if tx.get("double_spend") is True:
        # The sender flags a competing spend; wait for a later report that shows which one won.
        return [
            Observation(Status.PENDING, o.ref, o.payment, "BlockCypher reports a double spend") for o in observations
        ]
    return observations


def _blockcypher_confirmations(tx: Mapping[str, object], prefix: str) -> int:
    if tx.get("confirmations") is not None:
        return _read_count(tx["confirmations"], _at(prefix, "confirmations"))
    if tx.get("block_height") == -1:
        return 0
    raise InvalidPayment(_at(prefix, "confirmations"), "is required for a confirmed transaction")


def _parse_blockcypher_output(
    context: _Context, path: str, output: object, txid: str, index: int, confirmations: int
) -> Observation | None:
    if not isinstance(output, dict):
        raise InvalidPayment(path, "must be a JSON object")
    addresses = output.get("addresses")
    if addresses is None:
        return None  # OP_RETURN and other outputs that pay no address
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise InvalidPayment(f"{path}.addresses", "must be an array of strings")
    # BlockCypher prints segwit addresses in lower case already; lowering keeps the match exact anyway.
    matched = [a.lower() if a.lower().startswith(_SEGWIT_PREFIXES) else a for a in addresses]
    if not any(_is_watched(context, a) for a in matched):
        return None
    if len(addresses) != 1:
        ref = f"{context.network}:{txid}:{index}"
        return Observation(Status.REJECTED, ref, reason="output pays several addresses (bare multisig)")

    address = validate_address(context.network, context.chain, addresses[0], field=f"{path}.addresses[0]")
    amount = parse_minor_units(output.get("value"), context.network, f"{path}.value")
    payment = _utxo(context, txid, index, address, amount, confirmations)
    return Observation(Status.PAYMENT, payment.id, payment)


# --- XRP Ledger transaction (account_tx entry or subscribe stream message) -------------------------------


def _parse_xrpl_transaction(context: _Context, prefix: str, entry: Mapping[str, object]) -> Observation:
    key = "tx_json" if "tx_json" in entry else "tx"  # API v2 and the stream say tx_json; v1 said tx
    tx = entry[key]
    tx_path = _at(prefix, key)
    if not isinstance(tx, dict):
        raise InvalidPayment(tx_path, "must be a JSON object")
    hash_path = _at(prefix, "hash") if "hash" in entry else _at(tx_path, "hash")
    tx_hash = _read_hash(entry.get("hash", tx.get("hash")), hash_path).upper()
    ref = f"{Network.RIPPLE}:{tx_hash}"

    kind = tx.get("TransactionType")
    if kind != "Payment":
        return Observation(Status.REJECTED, ref, reason=f"transaction type {kind} is not a Payment")
    destination = _read_classic(context, tx.get("Destination"), _at(tx_path, "Destination"))
    tag = validate_tag(tx.get("DestinationTag"), _at(tx_path, "DestinationTag"))
    if not _is_watched(context, destination):
        return Observation(Status.IGNORED, ref, reason=f"account {destination} is not watched")
    if tx.get("Account") == destination:
        return Observation(Status.REJECTED, ref, reason="payment from the account to itself")
    if entry.get("validated") is not True:
        return Observation(Status.PENDING, ref, reason="not yet in a validated ledger")

    meta_path = _at(prefix, "meta")
    meta = _require(entry, "meta", prefix)
    if not isinstance(meta, dict):
        raise InvalidPayment(meta_path, "must be a JSON object")
    result = meta.get("TransactionResult")
    if result != _SUCCESS:
        return Observation(Status.REJECTED, ref, reason=f"transaction result is {result}")
    # Only delivered_amount says what arrived: Amount and DeliverMax are upper bounds that a partial
    # payment need not meet, so they are never read.
    delivered = _require(meta, "delivered_amount", meta_path)
    if delivered == "unavailable":
        return Observation(Status.REJECTED, ref, reason="delivered amount is unavailable (pre-2014 ledger)")
    if isinstance(delivered, dict) and "mpt_issuance_id" in delivered:
        return Observation(Status.REJECTED, ref, reason="multi-purpose tokens are not supported")
    amount, currency, issuer = _read_delivered(context, delivered, _at(meta_path, "delivered_amount"))

    return _credit_xrpl(context, ref, tx_hash, destination, tag, (amount, currency, issuer))


def _read_delivered(context: _Context, delivered: object, path: str) -> tuple[Decimal, str, str | None]:
    if isinstance(delivered, str):
        return parse_drops(delivered, path), "XRP", None
    if not isinstance(delivered, dict):
        raise InvalidPayment(path, "must be a string of drops or a token amount object")
    currency = validate_currency_code(_require(delivered, "currency", path), f"{path}.currency")
    issuer = _read_classic(context, _require(delivered, "issuer", path), f"{path}.issuer")
    return parse_token_value(_require(delivered, "value", path), f"{path}.value"), currency, issuer

"""The payment as a job sees it, and the rule that decides when it is confirmed enough to enqueue."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from service.amounts import format_amount, format_token_value, parse_amount, parse_token_value, to_minor_units
from service.errors import InvalidPayment
from service.networks import Network, network_facts

Source = Literal["webhook", "poller"]
JobArg = dict[str, str | int]

_TXID = re.compile(r"[0-9a-f]{64}")
_TX_HASH = re.compile(r"[0-9A-F]{64}")
# Standard XRP Ledger currency codes are three characters from this set; anything else is 40 hex digits.
_STANDARD_CURRENCY = re.compile(r"[A-Za-z0-9?!@#$%^&*<>(){}\[\]|]{3}")
_HEX_CURRENCY = re.compile(r"[0-9A-Fa-f]{40}")
_MAX_UINT32 = 2**32 - 1

StrictCount = Annotated[int, Field(strict=True, ge=0)]


class Payment(BaseModel):
    """One incoming payment, the single argument of the job payq enqueues for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    network: Network
    txid: str | None = None
    tx_hash: str | None = None
    output_index: Annotated[int, Field(strict=True, ge=0, le=_MAX_UINT32)] | None = None
    address: Annotated[str, Field(min_length=1, max_length=128)]
    destination_tag: Annotated[int, Field(strict=True, ge=0, le=_MAX_UINT32)] | None = None
    amount: str
    currency: str
    issuer: str | None = None
    minor_units: Annotated[int, Field(strict=True, gt=0)] | None = None
    confirmations: StrictCount
    source: Source
    received_at: datetime
    request_id: Annotated[str, Field(max_length=200)] | None = None

    @field_validator("received_at")
    @classmethod
    def _utc_seconds(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must carry a timezone")
        return value.astimezone(UTC).replace(microsecond=0)

    @field_serializer("received_at")
    def _iso_z(self, value: datetime) -> str:
        return value.isoformat().removesuffix("+00:00") + "Z"  # UTC, whole seconds (see _utc_seconds)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        try:
            if network_facts(self.network).utxo:
                self._check_utxo()
            else:
                self._check_xrpl()
        except InvalidPayment as exc:
            raise ValueError(str(exc)) from exc
        if self.id != payment_id(self):
            raise ValueError(f"id must be {payment_id(self)!r}")
        return self

    def _check_utxo(self) -> None:
        facts = network_facts(self.network)
        if self.txid is None or not _TXID.fullmatch(self.txid):
            raise ValueError("txid must be 64 lowercase hex digits")
        if self.output_index is None:
            raise ValueError("output_index is required on UTXO networks")
        if self.tx_hash is not None or self.destination_tag is not None or self.issuer is not None:
            raise ValueError("tx_hash, destination_tag and issuer belong to the XRP Ledger only")
        if self.currency != facts.currency:
            raise ValueError(f"currency must be {facts.currency}")
        self._check_native_amount()

    def _check_xrpl(self) -> None:
        if self.tx_hash is None or not _TX_HASH.fullmatch(self.tx_hash):
            raise ValueError("tx_hash must be 64 uppercase hex digits")
        if self.txid is not None or self.output_index is not None:
            raise ValueError("txid and output_index belong to UTXO networks only")
        if self.currency == network_facts(self.network).currency:
            if self.issuer is not None:
                raise ValueError("XRP has no issuer")
            self._check_native_amount()
            return
        validate_currency_code(self.currency, "currency")
        if self.issuer is None:
            raise ValueError("a token needs its issuer")
        if self.minor_units is not None:
            raise ValueError("tokens have no minor units")
        if format_token_value(parse_token_value(self.amount, "amount")) != self.amount:
            raise ValueError("amount must be a plain decimal without trailing zeros")

    def _check_native_amount(self) -> None:
        amount = parse_amount(self.amount, self.network)
        if format_amount(amount, self.network) != self.amount:
            raise ValueError(f"amount must have exactly {network_facts(self.network).decimals} decimals")
        if self.minor_units != to_minor_units(amount, self.network):
            raise ValueError("minor_units must equal the amount in minor units")

    def to_job_arg(self) -> JobArg:
        """Return the JSON-ready job argument, leaving out fields that do not apply."""
        return self.model_dump(mode="json", exclude_none=True)


def payment_id(payment: Payment) -> str:
    """Return the idempotency key a payment must carry."""
    if payment.tx_hash is not None:
        return f"{payment.network}:{payment.tx_hash}"
    return f"{payment.network}:{payment.txid}:{payment.output_index}"


def validate_currency_code(value: object, field: str) -> str:
    """Return an XRP Ledger token currency code (three characters or 40 hex digits, uppercased)."""
    if isinstance(value, str) and _STANDARD_CURRENCY.fullmatch(value) and value != "XRP":
        return value
    if isinstance(value, str) and _HEX_CURRENCY.fullmatch(value):
        return value.upper()
    raise InvalidPayment(field, "must be a token currency code: three characters other than XRP, or 40 hex digits")


def utxo_payment(
    network: Network,
    *,
    txid: str,
    output_index: int,
    address: str,
    amount: Decimal,
    confirmations: int,
    source: Source,
    received_at: datetime,
    request_id: str | None = None,
) -> Payment:
    """Build a Bitcoin or Dogecoin payment from already validated parts."""
    txid = txid.lower()
    return Payment(
        id=f"{network}:{txid}:{output_index}",
        network=network,
        txid=txid,
        output_index=output_index,
        address=address,
        amount=format_amount(amount, network),
        currency=network_facts(network).currency,
        minor_units=to_minor_units(amount, network),
        confirmations=confirmations,
        source=source,
        received_at=received_at,
        request_id=request_id,
    )


def xrpl_payment(
    *,
    tx_hash: str,
    address: str,
    destination_tag: int | None,
    amount: Decimal,
    currency: str,
    issuer: str | None,
    validated: bool,
    source: Source,
    received_at: datetime,
    request_id: str | None = None,
) -> Payment:
    """Build an XRP Ledger payment (XRP or a token) from already validated parts."""
    tx_hash = tx_hash.upper()
    native = currency == network_facts(Network.RIPPLE).currency
    return Payment(
        id=f"{Network.RIPPLE}:{tx_hash}",
        network=Network.RIPPLE,
        tx_hash=tx_hash,
        address=address,
        destination_tag=destination_tag,
        amount=format_amount(amount, Network.RIPPLE) if native else format_token_value(amount),
        currency=currency,
        issuer=issuer,
        minor_units=to_minor_units(amount, Network.RIPPLE) if native else None,
        # A validated ledger is final on the XRP Ledger; one confirmation stands for it.
        confirmations=1 if validated else 0,
        source=source,
        received_at=received_at,
        request_id=request_id,
    )


@dataclass(frozen=True)
class PaymentPolicy:
    """Confirmations each network needs before a payment is enqueued."""

    bitcoin: int = 1
    dogecoin: int = 6
    ripple: int = 1

    def __post_init__(self) -> None:
        for network in Network:
            required = self.required_confirmations(network)
            if not isinstance(required, int) or isinstance(required, bool) or required < 0:
                raise ValueError(f"{network} confirmations must be a whole number >= 0")
        if self.ripple != 1:
            raise ValueError("ripple confirmations must be 1: a validated ledger is final")

    def required_confirmations(self, network: Network) -> int:
        """Return how many confirmations `network` needs."""
        required: int = getattr(self, network.value)
        return required

    def is_confirmed(self, payment: Payment) -> bool:
        """Tell whether `payment` has enough confirmations to be enqueued."""
        return payment.confirmations >= self.required_confirmations(payment.network)

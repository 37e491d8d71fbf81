"""Exact money: parsing, converting and formatting amounts without ever touching a float."""

import re
from decimal import Decimal

from service.errors import InvalidPayment
from service.networks import Network, network_facts

# A plain decimal in whole units: no sign, no exponent, no leading zeros, no bare dot.
_PLAIN_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
# An XRP Ledger token value: optional sign, digits with an optional fraction, optional exponent.
_TOKEN_VALUE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
_MAX_CHARS = 64
_TOKEN_MAX_DIGITS = 15
# Token values are within 10^-81 .. 10^96 (a mantissa of up to 16 digits with exponent -96..80).
_TOKEN_MIN_EXPONENT = -96
_TOKEN_MAX_EXPONENT = 80


def parse_amount(value: object, network: Network, field: str = "amount") -> Decimal:
    """Parse a positive amount of the network's native currency, given as a plain decimal string."""
    facts = network_facts(network)
    if not isinstance(value, str):
        raise InvalidPayment(field, f"must be a decimal string, not a JSON {_json_kind(value)}")
    if len(value) > _MAX_CHARS or not _PLAIN_DECIMAL.fullmatch(value):
        raise InvalidPayment(field, 'must be a plain decimal such as "0.0015" (no sign, exponent or spaces)')
    amount = Decimal(value)
    _, _, fraction = value.partition(".")
    if len(fraction) > facts.decimals:
        raise InvalidPayment(field, f"has more than {facts.decimals} decimal places for {facts.currency}")
    _check_range(amount, network, field)
    return amount


def parse_minor_units(value: object, network: Network, field: str) -> Decimal:
    """Turn a JSON integer of minor units (satoshi, koinu, drops) into a whole-unit amount."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidPayment(field, f"must be an integer number of minor units, not a JSON {_json_kind(value)}")
    amount = from_minor_units(value, network)
    _check_range(amount, network, field)
    return amount


def parse_drops(value: object, field: str) -> Decimal:
    """Turn an XRP Ledger drops string (e.g. "20000000") into an amount of XRP."""
    if not isinstance(value, str) or len(value) > _MAX_CHARS or not _DIGITS.fullmatch(value):
        raise InvalidPayment(field, "must be a string of digits counting drops")
    amount = from_minor_units(int(value), Network.RIPPLE)
    _check_range(amount, Network.RIPPLE, field)
    return amount


def parse_token_value(value: object, field: str) -> Decimal:
    """Parse a positive XRP Ledger token value string (15 significant digits, exponent allowed)."""
    if not isinstance(value, str):
        raise InvalidPayment(field, f"must be a decimal string, not a JSON {_json_kind(value)}")
    if len(value) > _MAX_CHARS or not _TOKEN_VALUE.fullmatch(value):
        raise InvalidPayment(field, "is not an XRP Ledger token value")
    amount = Decimal(value)
    if amount <= 0:
        raise InvalidPayment(field, "must be greater than zero")
    # Check the magnitude before normalize(), which would trap on absurd exponents.
    if not _TOKEN_MIN_EXPONENT <= amount.adjusted() <= _TOKEN_MAX_EXPONENT:
        raise InvalidPayment(field, "is outside the range of XRP Ledger token values")
    # Count digits on the exact value: normalize() would first round to the context's precision.
    significant = "".join(str(digit) for digit in amount.as_tuple().digits).rstrip("0")
    if len(significant) > _TOKEN_MAX_DIGITS:
        raise InvalidPayment(field, f"has more than {_TOKEN_MAX_DIGITS} significant digits")
    amount = amount.normalize()
    return amount


def to_minor_units(amount: Decimal, network: Network) -> int:
    """Return `amount` in minor units; refuse amounts finer than the network's precision."""
    scaled = amount.scaleb(network_facts(network).decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} is finer than the {network} minor unit")
    return int(scaled)


def from_minor_units(units: int, network: Network) -> Decimal:
    """Return `units` minor units as a whole-unit amount."""
    return Decimal(units).scaleb(-network_facts(network).decimals)


def format_amount(amount: Decimal, network: Network) -> str:
    """Format a native amount with exactly the network's decimal places, e.g. "0.00150000"."""
    places = network_facts(network).decimals
    return f"{amount.quantize(Decimal(1).scaleb(-places)):f}"


def format_token_value(amount: Decimal) -> str:
    """Format a token value as a plain decimal with no exponent and no trailing zeros."""
    return f"{amount.normalize():f}"


def _check_range(amount: Decimal, network: Network, field: str) -> None:
    facts = network_facts(network)
    if amount <= 0:
        raise InvalidPayment(field, "must be greater than zero")
    if amount > facts.max_amount:
        raise InvalidPayment(field, f"exceeds the largest possible {facts.currency} amount")


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__

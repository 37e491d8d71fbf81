"""Address validation for Bitcoin, Dogecoin and the XRP Ledger, checked against network and chain."""

from functools import lru_cache

import base58
from embit import bech32
from xrpl.core import addresscodec

from service.errors import InvalidPayment
from service.networks import Chain, Network

# Base58Check version bytes (P2PKH, P2SH) per network and chain.
_VERSIONS: dict[tuple[Network, Chain], frozenset[int]] = {
    (Network.BITCOIN, Chain.MAIN): frozenset({0x00, 0x05}),
    (Network.BITCOIN, Chain.TEST): frozenset({0x6F, 0xC4}),
    (Network.BITCOIN, Chain.REGTEST): frozenset({0x6F, 0xC4}),
    (Network.DOGECOIN, Chain.MAIN): frozenset({0x1E, 0x16}),
    (Network.DOGECOIN, Chain.TEST): frozenset({0x71, 0xC4}),
    (Network.DOGECOIN, Chain.REGTEST): frozenset({0x6F, 0xC4}),
}

_SEGWIT_HRPS: dict[Chain, str] = {Chain.MAIN: "bc", Chain.TEST: "tb", Chain.REGTEST: "bcrt"}

_MAX_ADDRESS_CHARS = 128
_MAX_TAG = 2**32 - 1
_FIELD = "address"


def validate_address(network: Network, chain: Chain, address: object, *, field: str = _FIELD) -> str:
    """Return `address` normalised (segwit lowercased) if it is valid on this network and chain."""
    if not isinstance(address, str) or not address:
        raise InvalidPayment(field, "must be a non-empty string")
    if len(address) > _MAX_ADDRESS_CHARS or not address.isascii() or not address.isalnum():
        raise InvalidPayment(field, "is not an address")

    try:
        return _checked(network, chain, address)
    except InvalidPayment as exc:
        if field == _FIELD:
            raise
        raise InvalidPayment(field, exc.message) from exc


# The checksums are pure-Python arithmetic (tens of microseconds for a segwit address) and the same
# few addresses receive most payments: remember the valid ones (a failure raises and is not kept).
@lru_cache(maxsize=4096)
def _checked(network: Network, chain: Chain, address: str) -> str:
    if network is Network.RIPPLE:
        return _validate_xrpl(chain, address)
    if network is Network.BITCOIN and _segwit_hrp(address) is not None:
        return _validate_segwit(chain, address)
    return _validate_base58(network, chain, address)


def _segwit_hrp(address: str) -> str | None:
    lowered = address.lower()
    # Longest first: "bcrt1" also starts with "bc".
    for hrp in sorted(_SEGWIT_HRPS.values(), key=len, reverse=True):
        if lowered.startswith(hrp + "1"):
            return hrp
    return None


def _validate_segwit(chain: Chain, address: str) -> str:
    hrp = _SEGWIT_HRPS[chain]
    if _segwit_hrp(address) != hrp:
        raise InvalidPayment(_FIELD, f"is a segwit address for another chain than bitcoin {chain}")
    if address != address.lower() and address != address.upper():
        raise InvalidPayment(_FIELD, "mixes upper and lower case")
    version, program = bech32.decode(hrp, address)
    if version is None or program is None:
        raise InvalidPayment(_FIELD, "is not a valid segwit address (checksum, encoding or program)")
    return address.lower()


def _validate_base58(network: Network, chain: Chain, address: str) -> str:
    try:
        payload = base58.b58decode_check(address)
    except ValueError as exc:
        raise InvalidPayment(_FIELD, "is not valid Base58Check (bad character or checksum)") from exc
    if len(payload) != 21:
        raise InvalidPayment(_FIELD, "has the wrong length for a Base58Check address")
    if payload[0] not in _VERSIONS[(network, chain)]:
        raise InvalidPayment(_FIELD, f"is not a {network} {chain} address (version byte {payload[0]:#04x})")
    return address


def _validate_xrpl(chain: Chain, address: str) -> str:
    if addresscodec.is_valid_classic_address(address):
        return address
    if not addresscodec.is_valid_xaddress(address):
        raise InvalidPayment(_FIELD, "is not an XRP Ledger classic address or X-address")
    _classic, _tag, is_test = addresscodec.xaddress_to_classic_address(address)
    if is_test != (chain is not Chain.MAIN):
        wanted = "a mainnet" if chain is Chain.MAIN else "a test network"
        raise InvalidPayment(_FIELD, f"is an X-address for the wrong network, expected {wanted} X-address")
    return address


def validate_tag(tag: object, field: str = "destination_tag") -> int | None:
    """Return an XRP Ledger destination tag (UInt32) or None; refuse anything else."""
    if tag is None:
        return None
    if not isinstance(tag, int) or isinstance(tag, bool) or not 0 <= tag <= _MAX_TAG:
        raise InvalidPayment(field, f"must be an integer from 0 to {_MAX_TAG}")
    return tag


def split_xrpl_address(address: str, tag: object, *, chain: Chain | None = None) -> tuple[str, int | None]:
    """Split an XRP Ledger address into (classic address, destination tag).

    An X-address carries its own tag; an explicit tag that differs from it is refused. When `chain`
    is given, the address is validated against it first.
    """
    if chain is not None:
        address = validate_address(Network.RIPPLE, chain, address)
    explicit = validate_tag(tag)
    if not addresscodec.is_valid_xaddress(address):
        if not addresscodec.is_valid_classic_address(address):
            raise InvalidPayment(_FIELD, "is not an XRP Ledger classic address or X-address")
        return address, explicit
    classic, embedded, _is_test = addresscodec.xaddress_to_classic_address(address)
    if explicit is not None and explicit != embedded:
        inside = "no tag" if embedded is None else f"the tag {embedded}"
        raise InvalidPayment("destination_tag", f"differs from the X-address, which carries {inside}")
    return classic, embedded

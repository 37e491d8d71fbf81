"""Address validation against the documented vectors (payment-sources §5, FIXTURE ADDR-1)."""

import pytest
from xrpl.core import addresscodec

from service.addresses import split_xrpl_address, validate_address, validate_tag
from service.errors import InvalidPayment
from service.networks import Chain, Network

BTC = Network.BITCOIN
DOGE = Network.DOGECOIN
XRPL = Network.RIPPLE
XRPL_ACCOUNT = "rH3PxjJPrrkvsATddBXkayjAyWR8xigaE8"
XRPL_XADDRESS_TAG_12345 = "XV4aiwKUB38oRMrbnftdW4qmKVoJa24c1kuXVZsT3mxQrfz"


@pytest.mark.parametrize(
    ("network", "chain", "address", "normalised"),
    [
        (BTC, Chain.MAIN, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
        (BTC, Chain.MAIN, "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"),
        (BTC, Chain.TEST, "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"),
        (BTC, Chain.REGTEST, "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"),
        (BTC, Chain.TEST, "2MzQwSSnBHWHqSAqtTVQ6v47XtaisrJa1Vc", "2MzQwSSnBHWHqSAqtTVQ6v47XtaisrJa1Vc"),
        (
            BTC,
            Chain.MAIN,
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        ),
        (
            BTC,
            Chain.MAIN,
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        ),
        (
            BTC,
            Chain.MAIN,
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        ),
        (
            BTC,
            Chain.TEST,
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        ),
        (
            BTC,
            Chain.REGTEST,
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
        ),
        (DOGE, Chain.MAIN, "DH9fPpKHLiP5eaAD3pXxxUZmPktGNGTFp6", "DH9fPpKHLiP5eaAD3pXxxUZmPktGNGTFp6"),
        (DOGE, Chain.MAIN, "DRF7yvmFHR5gMXRtijkbkPzmLYnMfTYMGZ", "DRF7yvmFHR5gMXRtijkbkPzmLYnMfTYMGZ"),
        (DOGE, Chain.REGTEST, "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"),
        (XRPL, Chain.MAIN, XRPL_ACCOUNT, XRPL_ACCOUNT),
        (XRPL, Chain.MAIN, XRPL_XADDRESS_TAG_12345, XRPL_XADDRESS_TAG_12345),
    ],
)
def test_validate_address_accepts_documented_vectors(
    network: Network, chain: Chain, address: str, normalised: str
) -> None:
    assert validate_address(network, chain, address) == normalised


@pytest.mark.parametrize(
    ("network", "chain", "address"),
    [
        # Bad checksums.
        (BTC, Chain.MAIN, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb"),
        (BTC, Chain.MAIN, "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdp"),
        # Bech32 used for v1, Bech32m used for v0.
        (BTC, Chain.MAIN, "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd"),
        (BTC, Chain.MAIN, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh"),
        # v0 program of 16 bytes, mixed case, empty data, unknown HRP.
        (BTC, Chain.MAIN, "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P"),
        (BTC, Chain.TEST, "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq"),
        (BTC, Chain.MAIN, "bc1gmk9yu"),
        (BTC, Chain.TEST, "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut"),
        # Wrong network: a BTC address for DOGE and a DOGE address for BTC.
        (DOGE, Chain.MAIN, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
        (DOGE, Chain.MAIN, "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
        (BTC, Chain.MAIN, "DH9fPpKHLiP5eaAD3pXxxUZmPktGNGTFp6"),
        (XRPL, Chain.MAIN, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
        (BTC, Chain.MAIN, XRPL_ACCOUNT),
        # Wrong chain.
        (BTC, Chain.MAIN, "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"),
        (BTC, Chain.TEST, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
        (BTC, Chain.TEST, "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
        (BTC, Chain.MAIN, "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"),
        (BTC, Chain.TEST, "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"),
        (BTC, Chain.REGTEST, "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"),
        (DOGE, Chain.TEST, "DH9fPpKHLiP5eaAD3pXxxUZmPktGNGTFp6"),
        (DOGE, Chain.TEST, "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"),
        (XRPL, Chain.TEST, XRPL_XADDRESS_TAG_12345),
        # Not addresses at all.
        (XRPL, Chain.MAIN, "rH3PxjJPrrkvsATddBXkayjAyWR8xigaE9"),
        (BTC, Chain.MAIN, ""),
        (BTC, Chain.MAIN, "1A1zP1eP5QGefi2DMPTfTL5SLmv7Div fNa"),
        (BTC, Chain.MAIN, "1" * 200),
    ],
)
def test_validate_address_refuses_invalid_vectors(network: Network, chain: Chain, address: str) -> None:
    with pytest.raises(InvalidPayment) as caught:
        validate_address(network, chain, address)
    assert caught.value.field == "address"


def test_validate_address_refuses_non_string() -> None:
    with pytest.raises(InvalidPayment, match="non-empty string"):
        validate_address(BTC, Chain.MAIN, 12345)


def test_validate_address_names_given_field() -> None:
    with pytest.raises(InvalidPayment) as caught:
        validate_address(BTC, Chain.MAIN, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", field="outputs[0].addresses[0]")
    assert caught.value.field == "outputs[0].addresses[0]"


def test_validate_address_accepts_test_xaddress_on_regtest() -> None:
    xaddress = addresscodec.classic_address_to_xaddress(XRPL_ACCOUNT, 7, True)
    assert validate_address(XRPL, Chain.REGTEST, xaddress) == xaddress


def test_split_xrpl_address_takes_tag_from_xaddress() -> None:
    assert split_xrpl_address(XRPL_XADDRESS_TAG_12345, None) == (XRPL_ACCOUNT, 12345)
    assert split_xrpl_address(XRPL_XADDRESS_TAG_12345, 12345) == (XRPL_ACCOUNT, 12345)


def test_split_xrpl_address_keeps_explicit_tag_of_classic() -> None:
    assert split_xrpl_address(XRPL_ACCOUNT, 42) == (XRPL_ACCOUNT, 42)
    assert split_xrpl_address(XRPL_ACCOUNT, None) == (XRPL_ACCOUNT, None)


def test_split_xrpl_address_refuses_conflicting_tag() -> None:
    with pytest.raises(InvalidPayment) as caught:
        split_xrpl_address(XRPL_XADDRESS_TAG_12345, 42)
    assert caught.value.field == "destination_tag"


def test_split_xrpl_address_refuses_tag_beside_tagless_xaddress() -> None:
    tagless = addresscodec.classic_address_to_xaddress(XRPL_ACCOUNT, None, False)
    assert split_xrpl_address(tagless, None) == (XRPL_ACCOUNT, None)
    with pytest.raises(InvalidPayment) as caught:
        split_xrpl_address(tagless, 1)
    assert caught.value.field == "destination_tag"


def test_split_xrpl_address_checks_chain_when_given() -> None:
    with pytest.raises(InvalidPayment) as caught:
        split_xrpl_address(XRPL_XADDRESS_TAG_12345, None, chain=Chain.TEST)
    assert caught.value.field == "address"


def test_split_xrpl_address_refuses_non_xrpl_address() -> None:
    with pytest.raises(InvalidPayment, match="classic address or X-address"):
        split_xrpl_address("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", None)


@pytest.mark.parametrize("tag", [-1, 2**32, True, "42", 1.0])
def test_validate_tag_refuses_out_of_range_or_wrong_type(tag: object) -> None:
    with pytest.raises(InvalidPayment) as caught:
        validate_tag(tag)
    assert caught.value.field == "destination_tag"


def test_validate_tag_accepts_uint32_bounds() -> None:
    assert validate_tag(0) == 0
    assert validate_tag(2**32 - 1) == 2**32 - 1
    assert validate_tag(None) is None

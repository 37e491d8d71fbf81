"""The networks payq accepts payments on, their chains, and the facts that differ between them."""

from dataclasses import dataclass
from enum import StrEnum


class Network(StrEnum):
    """A payment network; the value is the name used in URLs, queues and payment ids."""

    BITCOIN = "bitcoin"
    DOGECOIN = "dogecoin"
    RIPPLE = "ripple"


class Chain(StrEnum):
    """Which chain of a network payq is configured for."""

    MAIN = "main"
    TEST = "test"
    REGTEST = "regtest"


@dataclass(frozen=True)
class NetworkFacts:
    """What payq needs to know about a network's native currency."""

    currency: str
    decimals: int
    minor_unit: str
    max_amount: int
    utxo: bool


# max_amount bounds a single payment in whole units: the supply cap for BTC, 10^17 drops for XRP, and a
# generous bound above the circulating supply for DOGE, which has no cap.
FACTS: dict[Network, NetworkFacts] = {
    Network.BITCOIN: NetworkFacts("BTC", 8, "satoshi", 21_000_000, utxo=True),
    Network.DOGECOIN: NetworkFacts("DOGE", 8, "koinu", 1_000_000_000_000, utxo=True),
    Network.RIPPLE: NetworkFacts("XRP", 6, "drop", 100_000_000_000, utxo=False),
}


def network_facts(network: Network) -> NetworkFacts:
    """Return the facts for `network`."""
    return FACTS[network]

"""Documented payloads from reference/payment-sources.md, as raw bodies and small typed builders."""

import orjson

RECEIVED_AT_ISO = "2026-12-03T15:40:37Z"

# --- BlockCypher, FIXTURE BCY-HOOK-1 (§3.1) ----------------------------------------------------------------
# The capture comes from BlockCypher's own test chain (bcy1…/C… addresses), is truncated after the first
# output, and its second output is elided. payq validates addresses per chain, so the outputs here keep
# the captured values but pay Bitcoin testnet addresses (BIP-173 and ADDR-1 vectors); the second output
# is the plausible change: the captured total minus the first output (its script is illustrative).
BCY_TXID = "67e5f9555f39280c0ea4d6b008b4f55a88c5c0e245e68106b7f4cdb6144b6bc0"
BCY_FIRST_ADDRESS = "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"
BCY_CHANGE_ADDRESS = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"
BCY_FIRST_VALUE = 100_000
BCY_CHANGE_VALUE = 624_780_000


def blockcypher_tx(
    *,
    confirmations: int | None = 0,
    block_height: int = -1,
    double_spend: bool = False,
    change_value: object = BCY_CHANGE_VALUE,
) -> bytes:
    """Return a BCY-HOOK-1 delivery body; defaults give the captured unconfirmed-tx event."""
    tx: dict[str, object] = {
        "block_height": block_height,
        "block_index": -1 if block_height == -1 else 7,
        "hash": BCY_TXID,
        "addresses": ["CFr99841LyMkyX5ZTGepY58rjXJhyNGXHf", BCY_FIRST_ADDRESS, BCY_CHANGE_ADDRESS],
        "total": 624_880_000,
        "fees": 10_000,
        "size": 222,
        "vsize": 222,
        "preference": "low",
        "relayed_by": "127.0.0.1:59162",
        "received": "2023-02-15T17:39:27.69Z",
        "ver": 1,
        "double_spend": double_spend,
        "vin_sz": 1,
        "vout_sz": 2,
        "inputs": [
            {
                "prev_hash": "98b1d29b6b89818e6db11bc6ab78423df953647b8acc465b5a386730dc34b0f2",
                "output_index": 1,
                "output_value": 624_890_000,
                "sequence": 4_294_967_295,
                "addresses": ["CFr99841LyMkyX5ZTGepY58rjXJhyNGXHf"],
                "script_type": "pay-to-pubkey-hash",
                "age": 677_781,
            }
        ],
        "outputs": [
            {
                "value": BCY_FIRST_VALUE,
                "script": "0014751e76e8199196d454941c45d1b3a323f1433bd6",
                "addresses": [BCY_FIRST_ADDRESS],
                "script_type": "pay-to-witness-pubkey-hash",
            },
            {
                "value": change_value,
                "script": "76a91424f9a3cd7e8e3df5b1d1b0cf0d4b0b1ed6b4d2b788ac",
                "addresses": [BCY_CHANGE_ADDRESS],
                "script_type": "pay-to-pubkey-hash",
            },
        ],
    }
    if confirmations is not None:
        tx["confirmations"] = confirmations
    if block_height != -1:
        tx["block_hash"] = "0000000000000012ff2b8dc3b5e2a0f6e1f0b8bb9c5e0c0de1d6e6ba5f1c0c2a"
        tx["confirmed"] = "2023-02-15T17:45:02Z"
    return orjson.dumps(tx)


# --- XRP Ledger, FIXTURE XRPL-STREAM-1 (§4.3), verbatim but for the shortened TxnSignature -----------------
XRPL_HASH = "6489E52A909208E371ACE82E19CAE59896C7F8BA40E7C36C5B8AA3C451914BED"
XRPL_SENDER = "rH3PxjJPrrkvsATddBXkayjAyWR8xigaE8"
XRPL_ACCOUNT = "rfdGuuVnq9juqWDV4W3LoLiNcW8g2hAXhN"

XRPL_STREAM_1 = b"""{"close_time_iso":"2024-11-01T23:59:01Z","engine_result":"tesSUCCESS","engine_result_code":0,
 "engine_result_message":"The transaction was applied. Only final in a validated ledger.",
 "hash":"6489E52A909208E371ACE82E19CAE59896C7F8BA40E7C36C5B8AA3C451914BED",
 "ledger_hash":"0B6F44849E6D702D0CFB447FDBD7B603C269E9EEECE9176882EF376E0C9DFF6A","ledger_index":1969852,
 "meta":{"AffectedNodes":[
   {"ModifiedNode":{"FinalFields":{"Account":"rH3PxjJPrrkvsATddBXkayjAyWR8xigaE8","Balance":"39999964","Flags":0,
    "OwnerCount":0,"Sequence":1969812},
    "LedgerEntryType":"AccountRoot","LedgerIndex":"EDE60B24659BCC06CCE1EA2804A4A202F1C88155CEAED9C140833C0C39100617",
    "PreviousFields":{"Balance":"59999976","Sequence":1969811},
    "PreviousTxnID":"1DBC93373D47794A684A5013178D0EBE10E6641D7C262BF20151B0E19156FF79","PreviousTxnLgrSeq":1969843}},
   {"ModifiedNode":{"FinalFields":{"Account":"rfdGuuVnq9juqWDV4W3LoLiNcW8g2hAXhN","Balance":"160000000","Flags":0,
    "OwnerCount":0,"Sequence":1969810},
    "LedgerEntryType":"AccountRoot","LedgerIndex":"F7D350FB54C5BBA734AE574EE6BF7A9294E11F9B75413972F98846AFC587C62C",
    "PreviousFields":{"Balance":"140000000"},
    "PreviousTxnID":"1DBC93373D47794A684A5013178D0EBE10E6641D7C262BF20151B0E19156FF79","PreviousTxnLgrSeq":1969843}}],
  "TransactionIndex":4,"TransactionResult":"tesSUCCESS","delivered_amount":"20000000"},
 "status":"closed",
 "tx_json":{"Account":"rH3PxjJPrrkvsATddBXkayjAyWR8xigaE8","DeliverMax":"20000000",
  "Destination":"rfdGuuVnq9juqWDV4W3LoLiNcW8g2hAXhN",
  "Fee":"12","Flags":0,"LastLedgerSequence":1969870,"Sequence":1969811,
  "SigningPubKey":"ED0761CDA5507784F6CEB445DE2343F861DD5EC7A869F75B08C7E8F29A947AD9FC","TransactionType":"Payment",
  "TxnSignature":"20D5447E3390D","date":783820741},
 "type":"transaction","validated":true}"""

# --- XRP Ledger, FIXTURE XRPL-ACCTX-1 (§4.3): the JSON-RPC reply; its one entry carries DestinationTag 42 ----
XRPL_ACCTX_1 = b"""{"result":{"account":"rfdGuuVnq9juqWDV4W3LoLiNcW8g2hAXhN","ledger_index_min":1969800,
 "ledger_index_max":1969900,"limit":200,
 "transactions":[{"tx_json":{"Account":"rH3PxjJPrrkvsATddBXkayjAyWR8xigaE8","DeliverMax":"20000000",
   "Destination":"rfdGuuVnq9juqWDV4W3LoLiNcW8g2hAXhN",
   "DestinationTag":42,"Fee":"12","Flags":0,"Sequence":1969811,"TransactionType":"Payment","ledger_index":1969852,
   "ctid":"C01E0EBC00040000","date":783820741},
  "meta":{"AffectedNodes":[],"TransactionIndex":4,"TransactionResult":"tesSUCCESS","delivered_amount":"20000000"},
  "hash":"6489E52A909208E371ACE82E19CAE59896C7F8BA40E7C36C5B8AA3C451914BED","ledger_index":1969852,
  "ledger_hash":"0B6F44849E6D702D0CFB447FDBD7B603C269E9EEECE9176882EF376E0C9DFF6A",
  "close_time_iso":"2024-11-01T23:59:01Z","validated":true}],
 "validated":true,"marker":{"ledger":1969852,"seq":4},"status":"success"}}"""


def xrpl_acctx_entry(*, api_v1: bool = False) -> bytes:
    """Return the one account_tx entry of XRPL-ACCTX-1, optionally in the API v1 layout (tx, hash inside)."""
    reply = orjson.loads(XRPL_ACCTX_1)
    entry: dict[str, object] = reply["result"]["transactions"][0]
    if api_v1:
        tx = entry.pop("tx_json")
        assert isinstance(tx, dict)
        tx["hash"] = entry.pop("hash")
        tx["Amount"] = tx["DeliverMax"]
        entry["tx"] = tx
    return orjson.dumps(entry)


# --- XRP Ledger, FIXTURE XRPL-PARTIAL-1 (§4.3): must credit 0.01 USD, never 1000 ---------------------------
PARTIAL_HASH = "C3D0A1E5B7F94E2A8D6C1B0F3E5A7D9C2B4E6F8A0C1D3E5F7A9B0C2D4E6F8A1B"
USD_ISSUER = "rf1BiGeXwwQoi8Z2ueFYTEXSwuJYfV2Jpn"
USD_1000: dict[str, str] = {"currency": "USD", "issuer": USD_ISSUER, "value": "1000"}
USD_DELIVERED: dict[str, str] = {"currency": "USD", "issuer": USD_ISSUER, "value": "0.01"}
TF_PARTIAL_PAYMENT = 0x00020000


def xrpl_partial_payment(
    *,
    delivered: object = USD_DELIVERED,
    result: str = "tesSUCCESS",
    validated: bool = True,
    transaction_type: str = "Payment",
    destination: str = XRPL_ACCOUNT,
    destination_tag: object = 7,
) -> bytes:
    """Return an XRPL-PARTIAL-1 stream message; the keyword arguments make its documented variants."""
    tx: dict[str, object] = {
        "Account": XRPL_SENDER,
        "DeliverMax": USD_1000,
        "Amount": USD_1000,
        "SendMax": USD_1000,
        "Destination": destination,
        "DestinationTag": destination_tag,
        "Fee": "12",
        "Flags": TF_PARTIAL_PAYMENT,
        "Sequence": 1969812,
        "TransactionType": transaction_type,
        "date": 783820800,
    }
    meta = {"AffectedNodes": [], "TransactionIndex": 5, "TransactionResult": result, "delivered_amount": delivered}
    return orjson.dumps(
        {
            "engine_result": result,
            "hash": PARTIAL_HASH,
            "ledger_index": 1969853,
            "meta": meta,
            "status": "closed",
            "tx_json": tx,
            "type": "transaction",
            "validated": validated,
        }
    )

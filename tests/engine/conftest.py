"""Signing helpers: real transactions signed by eth-account, recovered by the validation core."""

from __future__ import annotations

import pytest
from eth_account import Account as EthAccount
from eth_utils import to_checksum_address

from alys_fast.chain.spec import DEV_ACCOUNTS, DEV_CHAIN_ID
from alys_fast.validation import Transaction, recover_transaction

KEYS = [key for _, key in DEV_ACCOUNTS]
ADDRS = [bytes.fromhex(a[2:]) for a, _ in DEV_ACCOUNTS]


def sign(key: str, *, chain_id: int = DEV_CHAIN_ID, **fields) -> Transaction:
    """Sign a transfer (type from the fee fields given) and recover it through the core."""
    tx = {"chainId": chain_id, "gas": 21_000, "value": 0, "nonce": 0, **fields}
    if tx.get("to") is None:
        tx.pop("to", None)
    elif isinstance(tx["to"], bytes):
        tx["to"] = to_checksum_address(tx["to"])
    if "maxFeePerGas" not in tx and "gasPrice" not in tx:
        tx["gasPrice"] = 10**9
    raw = EthAccount.sign_transaction(tx, key).raw_transaction
    return recover_transaction(bytes(raw), chain_id)


@pytest.fixture
def signer():
    return sign

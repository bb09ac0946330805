"""The dev accounts' pure part, without a node: a transaction object read and completed by
geth's rules, and every signature compared byte for byte with eth-account's own."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import msgspec
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from alys_fast.chain.spec import DEV_ACCOUNTS
from alys_fast.rpc.accounts import DevAccounts, TxRequest
from alys_fast.rpc.dispatch import INVALID_PARAMS, SERVER_ERROR, RpcError

CHAIN_ID = 121212
GWEI = 10**9
BASE_FEE, TIP = 7 * GWEI, GWEI
SENDER, KEY = DEV_ACCOUNTS[0]
OTHER = DEV_ACCOUNTS[1][0]
KEYS = [bytes.fromhex(key[2:]) for _, key in DEV_ACCOUNTS[:3]]
SLOT = "0x" + "00" * 31 + "01"

# EIP-712's own example (nested struct types, an array-free message).
MAIL: dict[str, Any] = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
            {"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "primaryType": "Mail",
    "domain": {
        "name": "Ether Mail", "version": "1", "chainId": 1,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}


def filled(tx: dict[str, Any], nonce: int = 5, gas: int = 21_000) -> TxRequest:
    """``tx`` read and completed as eth_sendTransaction completes it (nonce and gas given)."""
    request = TxRequest.parse({"from": SENDER, **tx}, CHAIN_ID).with_fees(BASE_FEE, TIP)
    return msgspec.structs.replace(
        request, nonce=request.nonce if request.nonce is not None else nonce,
        gas=request.gas if request.gas is not None else gas)


def refused(tx: Any, code: int, message: str) -> None:
    with pytest.raises(RpcError) as raised:
        TxRequest.parse(tx, CHAIN_ID).with_fees(BASE_FEE, TIP)
    assert (raised.value.code, raised.value.message) == (code, message)


# --- filling, as geth's TransactionArgs.setDefaults -------------------------------------------

def test_fees_default_to_eip1559_with_the_suggested_tip_and_twice_the_base_fee() -> None:
    request = filled({"to": OTHER})
    assert (request.type, request.max_tip, request.max_fee, request.gas_price) == (
        2, TIP, 2 * BASE_FEE + TIP, None)
    # A given tip or cap is kept; the other is filled around it.
    assert filled({"to": OTHER, "maxPriorityFeePerGas": hex(3 * GWEI)}).max_fee == (
        2 * BASE_FEE + 3 * GWEI)
    only_cap = filled({"to": OTHER, "maxFeePerGas": hex(50 * GWEI)})
    assert (only_cap.max_fee, only_cap.max_tip) == (50 * GWEI, TIP)


def test_a_gas_price_makes_it_legacy_or_type_1_with_an_access_list() -> None:
    legacy = filled({"to": OTHER, "gasPrice": hex(9 * GWEI)})
    assert (legacy.type, legacy.gas_price, legacy.max_fee) == (0, 9 * GWEI, None)
    listed = filled({"to": OTHER, "gasPrice": hex(9 * GWEI),
                     "accessList": [{"address": OTHER, "storageKeys": [SLOT]}]})
    assert listed.type == 1
    assert listed.access_list == ((bytes.fromhex(OTHER[2:]), (bytes.fromhex(SLOT[2:]),)),)
    # An access list without a gas price stays EIP-1559.
    assert filled({"to": OTHER, "accessList": []}).type == 2
    # An explicit legacy or type 1 without a price pays eth_gasPrice: next base fee + tip.
    assert filled({"to": OTHER, "type": "0x0"}).gas_price == BASE_FEE + TIP
    assert filled({"to": OTHER, "type": "0x1"}).gas_price == BASE_FEE + TIP


def test_given_fields_are_kept_and_data_may_be_input() -> None:
    request = filled({"to": None, "input": "0x6000", "value": "0x7", "nonce": "0x9",
                      "gas": "0x7530", "chainId": hex(CHAIN_ID)})
    assert (request.to, request.data, request.value, request.nonce, request.gas) == (
        None, b"\x60\x00", 7, 9, 30_000)
    assert filled({"to": OTHER, "data": "0x01", "input": "0x01"}).data == b"\x01"


@pytest.mark.parametrize("tx, code, message", [
    pytest.param([SENDER], INVALID_PARAMS, "the transaction must be an object", id="not-object"),
    pytest.param({"to": OTHER}, INVALID_PARAMS, 'missing "from": the account to send from',
                 id="no-from"),
    pytest.param({"from": SENDER, "to": OTHER, "data": "0x01", "input": "0x02"}, INVALID_PARAMS,
                 'both "data" and "input" are set and not equal. Please use "input" to pass '
                 "transaction call data", id="data-and-input"),
    pytest.param({"from": SENDER, "to": OTHER, "chainId": "0x1"}, SERVER_ERROR,
                 f"chainId does not match node's (have=1, want={CHAIN_ID})", id="chain-id"),
    pytest.param({"from": SENDER}, SERVER_ERROR, "contract creation without any data provided",
                 id="empty-creation"),
    pytest.param({"from": SENDER, "to": OTHER, "gasPrice": "0x1", "maxFeePerGas": "0x2"},
                 INVALID_PARAMS,
                 "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified",
                 id="price-and-cap"),
    pytest.param({"from": SENDER, "to": OTHER, "maxFeePerGas": "0x1",
                  "maxPriorityFeePerGas": "0x2"}, SERVER_ERROR,
                 "maxFeePerGas (1) < maxPriorityFeePerGas (2)", id="cap-below-tip"),
    pytest.param({"from": SENDER, "to": OTHER, "maxFeePerGas": "0x1"}, SERVER_ERROR,
                 f"maxFeePerGas (1) < maxPriorityFeePerGas ({TIP})", id="cap-below-default-tip"),
    pytest.param({"from": SENDER, "to": OTHER, "type": "0x0", "maxFeePerGas": "0x2"},
                 INVALID_PARAMS,
                 "a type 0 transaction takes gasPrice, not maxFeePerGas or maxPriorityFeePerGas",
                 id="legacy-with-cap"),
    pytest.param({"from": SENDER, "to": OTHER, "type": "0x0", "accessList": [
        {"address": OTHER, "storageKeys": []}]}, INVALID_PARAMS,
        "a legacy (type 0) transaction has no access list", id="legacy-with-access-list"),
    pytest.param({"from": SENDER, "to": OTHER, "type": "0x2", "gasPrice": "0x2"}, INVALID_PARAMS,
                 "a type 2 transaction takes maxFeePerGas and maxPriorityFeePerGas, not gasPrice",
                 id="1559-with-price"),
    pytest.param({"from": SENDER, "to": OTHER, "type": "0x3"}, INVALID_PARAMS,
                 "transaction type 3 is not supported here: eth_sendTransaction signs types 0, "
                 "1 and 2", id="blob-type"),
    pytest.param({"from": "0x1234", "to": OTHER}, INVALID_PARAMS,
                 'invalid address "0x1234": hex string has length 4, want 40', id="short-from"),
    pytest.param({"from": SENDER, "to": OTHER, "value": 5}, INVALID_PARAMS,
                 "invalid value 5: not a hex string", id="number-value"),
    pytest.param({"from": SENDER, "to": OTHER, "nonce": "0x" + "f" * 17}, INVALID_PARAMS,
                 'invalid nonce "0xfffffffffffffffff": hex number > 64 bits', id="nonce-width"),
    pytest.param({"from": SENDER, "to": OTHER, "accessList": {}}, INVALID_PARAMS,
                 "accessList must be a list", id="access-list-object"),
])
def test_bad_transactions_are_refused_with_geths_words(tx: Any, code: int, message: str) -> None:
    refused(tx, code, message)


# --- signing: byte for byte eth-account's ------------------------------------------------------

@pytest.fixture(scope="module")
def accounts() -> DevAccounts:
    return DevAccounts(KEYS)


def test_addresses_are_the_keys_accounts_in_order(accounts: DevAccounts) -> None:
    assert accounts.addresses() == [address for address, _ in DEV_ACCOUNTS[:3]]
    assert DevAccounts([]).addresses() == []
    with pytest.raises(RpcError, match="unknown account"):
        accounts.account(bytes.fromhex(DEV_ACCOUNTS[5][0][2:]))


@pytest.mark.parametrize("tx, expected", [
    pytest.param({"to": OTHER, "value": "0x3"}, {
        "type": 2, "to": OTHER, "value": 3, "maxFeePerGas": 2 * BASE_FEE + TIP,
        "maxPriorityFeePerGas": TIP, "accessList": []}, id="1559"),
    pytest.param({"to": OTHER, "gasPrice": hex(9 * GWEI)}, {
        "to": OTHER, "value": 0, "gasPrice": 9 * GWEI}, id="legacy"),
    pytest.param({"to": OTHER, "gasPrice": hex(9 * GWEI),
                  "accessList": [{"address": OTHER, "storageKeys": [SLOT]}]}, {
        "type": 1, "to": OTHER, "value": 0, "gasPrice": 9 * GWEI,
        "accessList": [{"address": OTHER, "storageKeys": [SLOT]}]}, id="type-1"),
    pytest.param({"data": "0x600160005500", "maxFeePerGas": hex(40 * GWEI),
                  "accessList": [{"address": OTHER, "storageKeys": []}]}, {
        "type": 2, "data": b"\x60\x01\x60\x00\x55\x00", "value": 0, "maxFeePerGas": 40 * GWEI,
        "maxPriorityFeePerGas": TIP, "accessList": [{"address": OTHER, "storageKeys": []}]},
        id="creation"),
])
def test_transactions_are_signed_as_eth_account_signs_them(
    accounts: DevAccounts, tx: dict[str, Any], expected: dict[str, Any]
) -> None:
    raw = accounts.sign_transaction(filled(tx, nonce=5, gas=60_000))
    reference = Account.sign_transaction(
        {"chainId": CHAIN_ID, "nonce": 5, "gas": 60_000, **expected}, KEY)
    assert raw == bytes(reference.raw_transaction)


@pytest.mark.parametrize("message", [b"", b"hello", bytes(range(256))])
def test_messages_are_signed_as_eth_account_signs_them(
    accounts: DevAccounts, message: bytes
) -> None:
    reference = Account.sign_message(encode_defunct(primitive=message), KEY).signature
    assert accounts.sign_message(bytes.fromhex(SENDER[2:]), message) == "0x" + reference.hex()


def test_typed_data_is_signed_as_eth_account_signs_it(accounts: DevAccounts) -> None:
    reference = "0x" + Account.sign_message(encode_typed_data(full_message=MAIL), KEY
                                            ).signature.hex()
    who = bytes.fromhex(SENDER[2:])
    assert accounts.sign_typed_data(who, MAIL) == reference
    assert accounts.sign_typed_data(who, json.dumps(MAIL)) == reference  # ethers sends text


@pytest.mark.parametrize("typed, message", [
    ("{not json", "invalid typed data: not JSON"),
    ([MAIL], "invalid typed data: must be an object or its JSON text"),
    ({**MAIL, "types": None}, "invalid typed data: types must be an object"),
    ({**MAIL, "primaryType": 1}, "invalid typed data: primaryType must be a string"),
    ({k: v for k, v in MAIL.items() if k != "message"},
     "invalid typed data: message must be an object"),
    ({**MAIL, "primaryType": "Letter"}, "invalid typed data: "),
    ({**MAIL, "types": {**MAIL["types"], "Mail": [{"name": "from", "type": "Sender"}]}},
     "invalid typed data: "),
    ({**MAIL, "message": {**MAIL["message"], "from": 5}},
     "invalid typed data: a member has the wrong JSON type"),
    ({**MAIL, "message": {**MAIL["message"], "to": {"name": "Bob", "wallet": "0x12"}}},
     "invalid typed data: "),
    ({**MAIL, "types": {**MAIL["types"], "Mail": [{"name": "from"}]}},
     "invalid typed data: type is missing"),
])
def test_malformed_typed_data_is_named(accounts: DevAccounts, typed: Any, message: str) -> None:
    with pytest.raises(RpcError) as raised:
        accounts.sign_typed_data(bytes.fromhex(SENDER[2:]), typed)
    assert raised.value.code == INVALID_PARAMS
    assert raised.value.message.startswith(message), raised.value.message
    assert "Traceback" not in raised.value.message


def test_a_plain_node_does_not_load_eth_account() -> None:
    """`alys-fast run` imports the RPC actor and the CLI; eth-account comes with `dev` only."""
    code = ("import sys, alys_fast.cli, alys_fast.node.cli, alys_fast.rpc.actor, "
            "alys_fast.config; sys.exit('eth_account' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0

"""The call object, state overrides and eth_feeHistory's arguments read as geth v1.17 reads
them (internal/ethapi TransactionArgs.CallDefaults/ToMessage, override.go, core's preCheck,
eth/gasprice): the values kept, and every refusal with its code and geth's words. No actors:
the readers are plain functions."""

from __future__ import annotations

from typing import Any

import pytest

from alys_fast.engine.interface import AccountOverride, CallRequest
from alys_fast.rpc.dispatch import INVALID_PARAMS, RpcError
from alys_fast.rpc.eth import (
    CALL_GAS_CAP,
    call_request,
    check_fees,
    hex_or_decimal,
    reward_percentiles,
    state_overrides,
)

SERVER_ERROR = -32000
CHAIN_ID = 121212
SENDER = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
SENDER_CHECKSUM = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OTHER = "0x" + "11" * 20
WORD = "0x" + "00" * 31 + "01"


def read(call: dict[str, Any], fork: str = "cancun") -> CallRequest:
    return call_request({"from": SENDER, "to": OTHER, **call}, CHAIN_ID, fork)


def refusal(reader: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(RpcError) as raised:
        reader(*args)
    return raised.value.code, raised.value.message


# --- the call object ----------------------------------------------------------------------------


def test_fields_read_and_defaults() -> None:
    request = read({"value": "0x5", "input": "0xab", "gas": "0x5208", "nonce": "0x7",
                    "accessList": [{"address": OTHER, "storageKeys": [WORD]}]})
    assert request == CallRequest(
        sender=bytes.fromhex(SENDER[2:]), to=bytes.fromhex(OTHER[2:]), value=5, data=b"\xab",
        gas=21000, access_list=((bytes.fromhex(OTHER[2:]), (bytes(31) + b"\x01",)),))
    bare = call_request({}, CHAIN_ID, "cancun")
    assert (bare.sender, bare.to, bare.gas, bare.gas_price) == (bytes(20), None, CALL_GAS_CAP,
                                                                 None)
    assert read({"gas": hex(10**9)}).gas == CALL_GAS_CAP  # geth caps, as its RPCGasCap


def test_data_and_input() -> None:
    assert read({"data": "0x01"}).data == b"\x01"
    assert read({"input": "0x02", "data": None}).data == b"\x02"
    assert read({"input": "0xAB", "data": "0xab"}).data == b"\xab"  # the same bytes
    assert refusal(read, {"input": "0x02", "data": "0x01"}) == (
        INVALID_PARAMS, 'both "data" and "input" are set and not equal. Please use "input" to '
        "pass transaction call data")


def test_fees_as_geth_reads_them() -> None:
    legacy = read({"gasPrice": "0x7"})
    assert (legacy.gas_price, legacy.max_priority_fee_per_gas) == (7, None)
    dynamic = read({"maxFeePerGas": "0x9", "maxPriorityFeePerGas": "0x2"})
    assert (dynamic.gas_price, dynamic.max_priority_fee_per_gas) == (9, 2)
    only_tip = read({"maxPriorityFeePerGas": "0x2"})  # geth fills the missing cap with 0
    assert (only_tip.gas_price, only_tip.max_priority_fee_per_gas) == (0, 2)
    # All-zero fees run as no fees (geth: no base fee then), not as a fee cap of 0.
    for zero in ({"gasPrice": "0x0"}, {"maxFeePerGas": "0x0"},
                 {"maxFeePerGas": "0x0", "maxPriorityFeePerGas": "0x0"}):
        assert (read(zero).gas_price, read(zero).max_priority_fee_per_gas) == (None, None)
    both = (SERVER_ERROR, "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified")
    assert refusal(read, {"gasPrice": "0x1", "maxFeePerGas": "0x2"}) == both
    assert refusal(read, {"gasPrice": "0x1", "maxPriorityFeePerGas": "0x0"}) == both


def test_offered_fees_checked_against_the_base_fee() -> None:
    check_fees(read({}), 10**9)  # none offered: none checked
    check_fees(read({"gasPrice": "0x0"}), 10**9)
    check_fees(read({"maxFeePerGas": hex(10**9), "maxPriorityFeePerGas": "0x1"}), 10**9)
    assert refusal(check_fees, read({"maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x2"}),
                   0) == (SERVER_ERROR, "max priority fee per gas higher than max fee per gas: "
                          f"address {SENDER_CHECKSUM}, maxPriorityFeePerGas: 2, maxFeePerGas: 1")
    assert refusal(check_fees, read({"gasPrice": "0x5"}), 7) == (
        SERVER_ERROR, f"max fee per gas less than block base fee: address {SENDER_CHECKSUM}, "
        "maxFeePerGas: 5, baseFee: 7")


def test_chain_id_nonce_and_type() -> None:
    assert read({"chainId": hex(CHAIN_ID), "nonce": "0x0", "type": "0x2"}).to is not None
    assert read({"type": 1}).to is not None  # web3.py sends the type as a number
    assert refusal(read, {"chainId": "0x1"}) == (
        SERVER_ERROR, f"chainId does not match node's (have=1, want={CHAIN_ID})")
    assert refusal(read, {"nonce": hex(2**64)}) == (
        INVALID_PARAMS, f'invalid nonce "{hex(2**64)}": hex number > 64 bits')
    assert refusal(read, {"type": "0x7"}) == (
        INVALID_PARAMS, "invalid type 0x7: not a transaction type (0x0 legacy, 0x1 access list, "
        "0x2 dynamic fee)")
    # Unknown names are ignored, as geth's JSON reading ignores them.
    assert read({"gasLimit": "junk", "hash": 5}).data == b""


@pytest.mark.parametrize("field, value, message", [
    ("blobVersionedHashes", ["0x01" + "00" * 31],
     "blobVersionedHashes: blob transactions are not supported by this node (its chain carries "
     "no blobs)"),
    ("blobs", [], "blobs: blob transactions are not supported by this node"),
    ("type", "0x3", "type 0x3: blob transactions are not supported by this node"),
    ("authorizationList", [],
     "authorizationList: set-code transactions (EIP-7702) need the Prague fork; this chain runs "
     "shanghai"),
    ("type", "0x4", "type 0x4: set-code transactions (EIP-7702) need the Prague fork"),
])
def test_what_this_chain_cannot_run_is_refused(field: str, value: Any, message: str) -> None:
    code, text = refusal(read, {field: value}, "shanghai")
    assert code == INVALID_PARAMS and text.startswith(message), text


@pytest.mark.parametrize("call, message", [
    ("junk", "the call must be an object"),
    ({"from": "0x12"}, 'invalid address "0x12": hex string has length 2, want 40'),
    ({"to": 5}, "invalid address 5: not a hex string"),
    ({"value": "0x01"}, 'invalid value "0x01": hex number with leading zero digits'),
    ({"gas": "12"}, 'invalid gas "12": hex string without 0x prefix'),
    ({"gasPrice": [1]}, "invalid gasPrice [1]: not a hex string"),
    ({"maxFeePerGas": "0xg"}, 'invalid maxFeePerGas "0xg": invalid hex digit'),
    ({"maxPriorityFeePerGas": True}, "invalid maxPriorityFeePerGas true: not a hex string"),
    ({"maxFeePerBlobGas": "1"}, 'invalid maxFeePerBlobGas "1": hex string without 0x prefix'),
    ({"chainId": {}}, "invalid chainId {}: not a hex string"),
    ({"input": "0x1"}, 'invalid input "0x1": hex string of odd length'),
    ({"data": None, "input": 7}, "invalid input 7: not a hex string"),
    ({"accessList": {}}, "accessList must be a list"),
    ({"accessList": [{"address": None}]}, "invalid address null: not a hex string"),
])
def test_malformed_fields_name_the_field(call: Any, message: str) -> None:
    assert refusal(call_request, call, CHAIN_ID, "cancun") == (INVALID_PARAMS, message)


# --- state overrides ----------------------------------------------------------------------------


def test_state_overrides_read() -> None:
    who = bytes.fromhex(OTHER[2:])
    got = state_overrides({OTHER: {"balance": "0x1", "nonce": "0x2", "code": "0x60",
                                   "stateDiff": {WORD: WORD}},
                           SENDER: {"state": {}, "movePrecompileToAddress": None}})
    assert got == {
        who: AccountOverride(balance=1, nonce=2, code=b"\x60", state_diff={1: 1}),
        bytes.fromhex(SENDER[2:]): AccountOverride(state={}),
    }
    assert state_overrides(None) is None
    assert state_overrides({OTHER: None}) == {who: AccountOverride()}  # geth: null is no change


@pytest.mark.parametrize("overrides, code, message", [
    ("junk", INVALID_PARAMS, "state overrides must be an object of account overrides by address"),
    ({OTHER: "junk"}, INVALID_PARAMS, f"the state override of {OTHER} must be an object"),
    ({OTHER: {"state": {}, "stateDiff": {}}}, SERVER_ERROR,
     "account 0x1111111111111111111111111111111111111111 has both 'state' and 'stateDiff'"),
    ({OTHER: {"storage": {}}}, INVALID_PARAMS,
     f'the state override of {OTHER}: unknown field "storage" (known: balance, nonce, code, '
     "state, stateDiff)"),
    ({OTHER: {"movePrecompileToAddress": SENDER}}, INVALID_PARAMS,
     f"the state override of {OTHER}: movePrecompileToAddress is not supported by this node"),
    ({"0x" + "00" * 19 + "0a": {"code": "0x00"}}, INVALID_PARAMS,
     "the state override of 0x000000000000000000000000000000000000000a: overriding a precompile "
     "is not supported by this node"),
    ({OTHER: {"balance": hex(2**256)}}, INVALID_PARAMS,
     f'the state override of {OTHER}: invalid balance "{hex(2**256)}": hex number > 256 bits'),
    ({OTHER: {"state": {WORD: "0x1"}}}, INVALID_PARAMS,
     f'the state override of {OTHER}: invalid state value "0x1": hex string of odd length'),
])
def test_refused_state_overrides(overrides: Any, code: int, message: str) -> None:
    assert refusal(state_overrides, overrides) == (code, message)


# --- eth_feeHistory -----------------------------------------------------------------------------


@pytest.mark.parametrize("value, count", [
    (5, 5), ("0x5", 5), ("0x05", 5), ("5", 5), ("", 0), (0, 0), (str(2**64 - 1), 2**64 - 1),
])
def test_block_count_as_geths_hex_or_decimal(value: Any, count: int) -> None:
    assert hex_or_decimal(value, "blockCount") == count


@pytest.mark.parametrize("value", [-1, 1.5, True, None, "0x", "-1", "1e2", "0x1g", " 1", [1],
                                   2**64, hex(2**64)])
def test_block_counts_geth_refuses(value: Any) -> None:
    code, message = refusal(hex_or_decimal, value, "blockCount")
    assert code == INVALID_PARAMS and message.startswith("invalid blockCount "), message
    assert message.endswith(": not a hex or decimal integer")


def test_reward_percentiles() -> None:
    assert reward_percentiles(None) == reward_percentiles([]) == []
    assert reward_percentiles([0, 50.5, 100]) == [0.0, 50.5, 100.0]
    assert refusal(reward_percentiles, [101]) == (
        SERVER_ERROR, "invalid reward percentile: 101.000000")
    assert refusal(reward_percentiles, [-0.5]) == (
        SERVER_ERROR, "invalid reward percentile: -0.500000")
    assert refusal(reward_percentiles, [10, 10]) == (
        SERVER_ERROR, "invalid reward percentile: #0:10.000000 >= #1:10.000000")
    assert refusal(reward_percentiles, list(range(101))) == (
        SERVER_ERROR, "invalid reward percentile: over the query limit 100")
    assert refusal(reward_percentiles, ["50"]) == (
        INVALID_PARAMS, "invalid rewardPercentiles: want a list of numbers")

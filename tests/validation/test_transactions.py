"""Transaction validation: the shared conformance vectors, then eth-account as a reference."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import rlp as pyrlp
from coincurve import PrivateKey, PublicKey
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from alys_fast._cext.hashing import keccak256
from alys_fast._cext.txcore import recover_address
from alys_fast.validation import (
    Fork,
    InvalidTransaction,
    Transaction,
    ValidationError,
    recover_transaction,
    recover_transactions,
)
from alys_fast.validation.transactions import (
    AccessListTransaction,
    DynamicFeeTransaction,
    LegacyTransaction,
)
from tests.validation.vectors import tx_vector_params, tx_vectors

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# What each vector's expected exception may be reported as. Where a transaction breaks two rules
# the suites and we may check them in different orders; those cases are listed by name below.
EXPECTED_RULES: dict[str, set[str]] = {
    "ADDRESS_TOO_SHORT": {"invalid recipient"},
    "ADDRESS_TOO_LONG": {"invalid recipient"},
    "INTRINSIC_GAS_TOO_LOW": {"intrinsic gas too low"},
    "GASLIMIT_PRICE_PRODUCT_OVERFLOW": {"gas limit times fee exceeds 256 bits"},
    "PRIORITY_OVERFLOW": {"integer too large"},
    "GASPRICE_OVERFLOW": {"integer too large"},
    "PRIORITY_GREATER_THAN_MAX_FEE_PER_GAS_2": {"priority fee above max fee"},
    "RLP_INVALID_ACCESS_LIST_ADDRESS_TOO_LONG": {"invalid access list"},
    "INITCODE_SIZE_EXCEEDED": {"initcode too large"},
    # 0x00ff...: a leading zero is caught before the width.
    "GASLIMIT_OVERFLOW": {"gas limit too high", "non-canonical RLP"},
    "NONCE_OVERFLOW": {"nonce too high"},
    "INVALID_CHAINID": {"invalid chain id"},
    "INVALID_SIGNATURE_VRS": {"invalid signature r", "invalid signature s", "signature s too high"},
    "EC_RECOVERY_FAIL": {"signature recovery failed"},
    "RLP_TOO_FEW_ELEMENTS": {"wrong number of fields"},
    "RLP_TOO_MANY_ELEMENTS": {"wrong number of fields"},
    "TYPE_NOT_SUPPORTED": {"transaction type not supported"},
}
RLP_RULES = {"malformed RLP", "non-canonical RLP"}
BOTH_RULES_BROKEN = {
    "ZeroSigTransaction2": "invalid chain id",  # v = 1 and r = s = 0
    "TRANSCT_rvalue_TooShort": "intrinsic gas too low",  # high s and gas limit 2000
}


@pytest.mark.parametrize("case", tx_vector_params())
def test_conformance_vector(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["txbytes"].removeprefix("0x"))
    fork = Fork[case["fork"].upper()]
    if case["valid"]:
        tx = recover_transaction(raw, 1, fork)
        assert "0x" + tx.hash.hex() == case["hash"]
        assert "0x" + tx.sender.hex() == case["sender"]
        assert tx.intrinsic_gas == int(case["intrinsicGas"], 16)
        assert tx.raw == raw
        return
    with pytest.raises(InvalidTransaction) as caught:
        recover_transaction(raw, 1, fork)
    name = case["name"].split("/")[0]
    expected = case["exception"].removeprefix("TransactionException.")
    allowed = EXPECTED_RULES.get(expected, RLP_RULES if expected.startswith("RLP_") else set())
    if name in BOTH_RULES_BROKEN:
        allowed = allowed | {BOTH_RULES_BROKEN[name]}
    assert caught.value.rule in allowed, (expected, str(caught.value))


def test_batch_matches_single_calls() -> None:
    cases = tx_vectors()
    raws = [bytes.fromhex(c["txbytes"].removeprefix("0x")) for c in cases] * 4
    results = recover_transactions(raws, 1, threads=2)
    assert len(results) == len(raws)
    for raw, result in zip(raws, results, strict=True):
        try:
            single: Transaction | InvalidTransaction = recover_transaction(raw, 1)
        except InvalidTransaction as exc:
            single = exc
        assert type(result) is type(single)
        if isinstance(result, InvalidTransaction):
            assert (result.rule, result.values) == (single.rule, single.values)
        else:
            assert result == single
    assert recover_transactions([], 1) == []


def test_errors_pickle_with_their_values() -> None:
    with pytest.raises(InvalidTransaction) as caught:
        recover_transaction(b"\x05\xc0", 1)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.rule, copy.values, str(copy)) == (
        "transaction type not supported",
        {"type": 5},
        "transaction type not supported (type=5)",
    )
    assert isinstance(copy, ValidationError)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="chain id"):
        recover_transaction(b"\xc0", 0)
    with pytest.raises(TypeError, match="must be bytes"):
        recover_transaction(bytearray(b"\xc0"), 1)  # type: ignore[arg-type]


# --- against eth-account ------------------------------------------------------------------------

KEYS = st.binary(min_size=32, max_size=32).filter(
    lambda k: 0 < int.from_bytes(k, "big") < 2**256 - 2**128
)
ADDRESSES = st.binary(min_size=20, max_size=20)
ACCESS_LISTS = st.lists(
    st.tuples(ADDRESSES, st.lists(st.binary(min_size=32, max_size=32), max_size=3)), max_size=3
)
U256 = st.integers(min_value=0, max_value=2**256 - 1)
FEES = st.integers(min_value=0, max_value=2**64)


def intrinsic_gas(to: bytes | None, data: bytes, access_list: list[Any]) -> int:
    """The Cancun intrinsic gas, spelled out (EIP-2028, EIP-2930, EIP-3860)."""
    gas = 21000
    for byte in data:
        gas += 4 if byte == 0 else 16
    if to is None:
        gas += 32000 + 2 * ((len(data) + 31) // 32)
    for _address, keys in access_list:
        gas += 2400 + 1900 * len(keys)
    return gas


@st.composite
def signed_transactions(draw: st.DrawFn) -> tuple[dict[str, Any], bytes, Any]:
    tx_type = draw(st.sampled_from([0, 1, 2]))
    to = draw(st.none() | ADDRESSES)
    data = draw(st.binary(max_size=200))
    access_list = draw(ACCESS_LISTS) if tx_type else []
    fields: dict[str, Any] = {
        "nonce": draw(st.integers(min_value=0, max_value=2**64 - 2)),
        "gas": 0,
        "value": draw(U256),
        "data": data,
        "chainId": draw(st.integers(min_value=1, max_value=2**32)),
    }
    fields["gas"] = intrinsic_gas(to, data, access_list) + draw(st.integers(0, 10**6))
    if to is not None:
        fields["to"] = to_checksum_address(to)
    if tx_type == 2:
        fee = draw(FEES)
        fields["maxFeePerGas"] = fee
        fields["maxPriorityFeePerGas"] = draw(st.integers(min_value=0, max_value=fee))
    else:
        fields["gasPrice"] = draw(FEES)
    if tx_type:
        fields["type"] = tx_type
        fields["accessList"] = [
            {"address": to_checksum_address(a), "storageKeys": ["0x" + k.hex() for k in keys]}
            for a, keys in access_list
        ]
    elif draw(st.booleans()):
        del fields["chainId"]  # pre-EIP-155
    key = draw(KEYS)
    signed = Account.sign_transaction(fields, key)
    return fields, bytes(signed.raw_transaction), Account.from_key(key)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signed_transactions())
def test_agrees_with_eth_account(case: tuple[dict[str, Any], bytes, Any]) -> None:
    fields, raw, account = case
    chain_id = fields.get("chainId", 1)
    tx = recover_transaction(raw, chain_id)
    assert tx.sender.hex() == account.address.lower()[2:]
    assert tx.sender == bytes.fromhex(Account.recover_transaction(raw)[2:])
    assert tx.hash == bytes(Account.sign_transaction(fields, account.key).hash)
    to = bytes.fromhex(fields["to"][2:]) if "to" in fields else None
    access = [
        (bytes.fromhex(e["address"][2:]), [bytes.fromhex(k[2:]) for k in e["storageKeys"]])
        for e in fields.get("accessList", [])
    ]
    assert tx.intrinsic_gas == intrinsic_gas(to, fields["data"], access)
    assert (tx.nonce, tx.gas_limit, tx.value, tx.data, tx.to) == (
        fields["nonce"],
        fields["gas"],
        fields["value"],
        fields["data"],
        to,
    )
    assert tx.chain_id == fields.get("chainId")
    assert tx.type == fields.get("type", 0)
    if isinstance(tx, DynamicFeeTransaction):
        assert (tx.max_fee_per_gas, tx.max_priority_fee_per_gas) == (
            fields["maxFeePerGas"],
            fields["maxPriorityFeePerGas"],
        )
    else:
        assert isinstance(tx, LegacyTransaction | AccessListTransaction)
        assert tx.gas_price == fields["gasPrice"]
    if not isinstance(tx, LegacyTransaction):
        assert tx.access_list == tuple((a, tuple(keys)) for a, keys in access)
    if "chainId" in fields and chain_id < 2**32:
        with pytest.raises(InvalidTransaction, match="invalid chain id"):
            recover_transaction(raw, chain_id + 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signed_transactions(), st.data())
def test_single_byte_mutations_never_keep_the_sender(
    case: tuple[dict[str, Any], bytes, Any], data: st.DataObject
) -> None:
    fields, raw, _account = case
    chain_id = fields.get("chainId", 1)
    original = recover_transaction(raw, chain_id)
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=255))
    assume(byte != raw[index])
    mutated = raw[:index] + bytes([byte]) + raw[index + 1 :]
    try:
        tx = recover_transaction(mutated, chain_id)
    except InvalidTransaction:
        return
    # Every byte is covered by the signature or is the signature, so a mutation that still
    # decodes must change what was signed or who signed it.
    assert tx.hash != original.hash
    assert tx.sender != original.sender


def test_prague_calldata_floor() -> None:
    # 100 non-zero bytes: standard cost 21000 + 1600, floor 21000 + 100 * 4 * 10 = 25000.
    fields = {
        "to": to_checksum_address(b"\x11" * 20),
        "value": 0,
        "data": b"\x01" * 100,
        "gas": 22600,
        "gasPrice": 1,
        "nonce": 0,
        "chainId": 1,
    }
    raw = bytes(Account.sign_transaction(fields, b"\x01" * 32).raw_transaction)
    assert recover_transaction(raw, 1, Fork.CANCUN).intrinsic_gas == 22600
    with pytest.raises(InvalidTransaction) as caught:
        recover_transaction(raw, 1, Fork.PRAGUE)
    assert caught.value.rule == "gas limit below calldata floor"
    assert caught.value.values == {"floor_gas": 25000, "gas_limit": 22600}
    fields["gas"] = 25000
    raw = bytes(Account.sign_transaction(fields, b"\x01" * 32).raw_transaction)
    assert recover_transaction(raw, 1, Fork.PRAGUE).gas_limit == 25000


def test_initcode_rules_start_at_shanghai() -> None:
    data = b"\x00" * 49153
    fields = {"value": 0, "data": data, "gas": 10**7, "gasPrice": 1, "nonce": 0, "chainId": 1}
    raw = bytes(Account.sign_transaction(fields, b"\x02" * 32).raw_transaction)
    with pytest.raises(InvalidTransaction, match="initcode too large"):
        recover_transaction(raw, 1, Fork.SHANGHAI)
    london = recover_transaction(raw, 1, Fork.LONDON)
    assert london.intrinsic_gas == 21000 + 32000 + 4 * len(data)  # no per-word cost yet


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([b"", b"\x01", b"\x02", b"\x01\xf8", b"\x02\xf8", b"\xf8"]), st.binary())
def test_arbitrary_bytes_never_crash(prefix: bytes, body: bytes) -> None:
    with pytest.raises(InvalidTransaction):
        recover_transaction(prefix + body, 1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signed_transactions(), st.data())
def test_truncated_and_extended_encodings_are_rejected(
    case: tuple[dict[str, Any], bytes, Any], data: st.DataObject
) -> None:
    _fields, raw, _account = case
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    with pytest.raises(InvalidTransaction, match="RLP"):
        recover_transaction(raw[:cut], 1)
    with pytest.raises(InvalidTransaction, match="trailing bytes"):
        recover_transaction(raw + data.draw(st.binary(min_size=1, max_size=3)), 1)


# --- recovery against coincurve -------------------------------------------------------------


def coincurve_address(signature: bytes, msg_hash: bytes) -> bytes:
    public = PublicKey.from_signature_and_message(signature, msg_hash, hasher=None)
    return keccak256(public.format(compressed=False)[1:])[12:]


def signing_hash(tx: Transaction) -> bytes:
    """The signed payload rebuilt with pyrlp from the decoded fields (EIP-155 / EIP-2718)."""
    if tx.type == 0:
        fields = pyrlp.decode(tx.raw)[:6]
        if tx.chain_id is not None:
            fields += [tx.chain_id, 0, 0]
        return keccak256(pyrlp.encode(fields))
    return keccak256(tx.raw[:1] + pyrlp.encode(pyrlp.decode(tx.raw[1:])[:-3]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signed_transactions())
def test_sender_matches_coincurve(case: tuple[dict[str, Any], bytes, Any]) -> None:
    fields, raw, _account = case
    tx = recover_transaction(raw, fields.get("chainId", 1))
    recid = tx.v if tx.type else (tx.v - 27 if tx.chain_id is None else (tx.v - 35) % 2)
    signature = tx.r.to_bytes(32, "big") + tx.s.to_bytes(32, "big") + bytes([recid])
    assert tx.sender == coincurve_address(signature, signing_hash(tx))


@settings(max_examples=200, deadline=None)
@given(KEYS, st.binary(min_size=32, max_size=32))
def test_recover_address_matches_coincurve(key: bytes, msg_hash: bytes) -> None:
    signature = PrivateKey(key).sign_recoverable(msg_hash, hasher=None)
    assert signature[64] in (0, 1)  # libsecp256k1 signs with low s
    assert recover_address(msg_hash, signature) == coincurve_address(signature, msg_hash)
    # The malleated twin (n - s, other parity) recovers the same key but breaks EIP-2.
    s = SECP256K1_N - int.from_bytes(signature[32:64], "big")
    twin = signature[:32] + s.to_bytes(32, "big") + bytes([signature[64] ^ 1])
    assert coincurve_address(twin, msg_hash) == coincurve_address(signature, msg_hash)
    with pytest.raises(ValueError, match="signature s too high"):
        recover_address(msg_hash, twin)


def test_recover_address_rejects_bad_shapes() -> None:
    signature = PrivateKey(b"\x07" * 32).sign_recoverable(b"\x01" * 32, hasher=None)
    with pytest.raises(ValueError, match="32-byte hash and a 65-byte signature"):
        recover_address(b"\x01" * 31, signature)
    with pytest.raises(ValueError, match="recovery id"):
        recover_address(b"\x01" * 32, signature[:64] + b"\x02")
    with pytest.raises(ValueError, match="invalid signature r"):
        recover_address(b"\x01" * 32, bytes(32) + signature[32:])

"""The state test parser: the transaction each ``post.Cancun`` entry selects (needs no engine)."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from alys_fast._cext import require
from alys_fast.cli import main
from alys_fast.engine.interface import AllocAccount
from alys_fast.engine.statetest import (
    StateTestError,
    load_tests,
    parse_tests,
    read_sources,
    sender_of,
)
from alys_fast.validation.transactions import (
    AccessListTransaction,
    BlobTransaction,
    DynamicFeeTransaction,
    LegacyTransaction,
)

_rlp = require("rlp")
ARCHIVE = Path(__file__).resolve().parents[1] / "data" / "state-tests.tar.xz"

# The suite's usual sender: this key's address is a94f5374...
KEY = "0x45a915e4d060149eb4365960e6a7a45f334393093061116b197e3240065ff2d8"
SENDER = bytes.fromhex("a94f5374fce5edbc8e2a8697c15331677e6ebf0b")
TARGET = "0x095e7baea6a6c7c4c2dfeb977efac326af552d87"
ROOT = "0x" + "11" * 32
LOGS = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"


def post(data: int, gas: int, value: int) -> dict:
    return {"hash": ROOT, "logs": LOGS, "indexes": {"data": data, "gas": gas, "value": value}}


def make_test(**transaction) -> dict:
    tx = {
        "data": ["0x", "0x6001"],
        "gasLimit": ["0x5208", "0x0186a0"],
        "value": ["0x00", "0x0a"],
        "nonce": "0x01",
        "secretKey": KEY,
        "sender": "0x" + SENDER.hex(),
        "to": TARGET,
        "gasPrice": "0x0a",
        **transaction,
    }
    return {
        "env": {
            "currentCoinbase": "0x2adc25665018aa1fe0e6bc666dac8fc2697ff9ba",
            "currentGasLimit": "0x1000000000",
            "currentNumber": "0x01",
            "currentTimestamp": "0x03e8",
            "currentBaseFee": "0x07",
            "currentRandom": "0x0000000000000000000000000000000000000000000000000000000000020000",
            "currentExcessBlobGas": "0x20",
            "currentDifficulty": "0x020000",
        },
        "pre": {
            TARGET: {
                "balance": "0x0de0b6b3a7640000",
                "nonce": "0x00",
                "code": "0x60004960005500",
                "storage": {"0x01": "0x02", "0x00": "0xff"},
            }
        },
        "transaction": {k: v for k, v in tx.items() if v is not None},
        "post": {"Shanghai": [post(0, 0, 0)], "Cancun": [post(1, 0, 1), post(0, 1, 0)]},
    }


def parse_one(**transaction):
    (test,) = parse_tests({"t": make_test(**transaction)}, "file.json")
    return test


def test_env_and_pre_state():
    test = parse_one()
    assert test.env.number == 1 and test.env.timestamp == 1000 and test.env.base_fee == 7
    assert test.env.gas_limit == 0x1000000000 and test.env.excess_blob_gas == 0x20
    assert test.env.prev_randao == (0x20000).to_bytes(32, "big")
    assert test.env.fee_recipient.hex() == "2adc25665018aa1fe0e6bc666dac8fc2697ff9ba"
    assert test.pre == {
        bytes.fromhex(TARGET[2:]): AllocAccount(
            balance=10**18, nonce=0, code=bytes.fromhex("60004960005500"), storage={1: 2, 0: 255}
        )
    }


def test_indexes_select_data_gas_and_value():
    first, second = parse_one().cases
    assert (first.index, first.data_index, first.gas_index, first.value_index) == (0, 1, 0, 1)
    assert first.transaction.data == b"\x60\x01"
    assert first.transaction.gas_limit == 21_000 and first.transaction.value == 10
    assert second.transaction.data == b"" and second.transaction.gas_limit == 100_000
    assert second.transaction.value == 0
    assert first.state_root == bytes.fromhex(ROOT[2:]) and first.logs_hash.hex() == LOGS[2:]
    assert first.transaction.hash != second.transaction.hash


def test_legacy_transaction_fields():
    tx = parse_one().cases[0].transaction
    assert isinstance(tx, LegacyTransaction)
    assert tx.chain_id is None and tx.gas_price == 10 and tx.nonce == 1
    assert tx.sender == SENDER and tx.to == bytes.fromhex(TARGET[2:])


def test_only_the_cancun_section_is_read():
    document = {"cancun": make_test(), "old": make_test()}
    del document["old"]["post"]["Cancun"]
    assert [test.name for test in parse_tests(document, "f.json")] == ["cancun"]


def test_empty_to_is_a_creation():
    assert parse_one(to="").cases[0].transaction.to is None


def test_sender_derived_from_the_secret_key():
    assert sender_of(bytes.fromhex(KEY[2:])) == SENDER
    assert parse_one(sender=None).cases[0].transaction.sender == SENDER


def test_access_lists_per_data_index_and_null_means_none():
    entry = {"address": TARGET, "storageKeys": ["0x01", "0x" + "00" * 32]}
    first, second = parse_one(accessLists=[None, [entry]]).cases
    assert isinstance(first.transaction, AccessListTransaction)  # data index 1
    assert first.transaction.chain_id == 1
    assert first.transaction.access_list == (
        (bytes.fromhex(TARGET[2:]), ((1).to_bytes(32, "big"), bytes(32))),
    )
    assert isinstance(second.transaction, LegacyTransaction)  # data index 0: null


def test_dynamic_fee_transaction():
    test = parse_one(gasPrice=None, maxFeePerGas="0x64", maxPriorityFeePerGas="0x02")
    tx = test.cases[1].transaction
    assert isinstance(tx, DynamicFeeTransaction)
    assert (tx.max_fee_per_gas, tx.max_priority_fee_per_gas, tx.access_list) == (100, 2, ())


def test_blob_fields():
    hashes = ["0x01" + "aa" * 31, "0x01" + "bb" * 31]
    test = parse_one(
        gasPrice=None,
        maxFeePerGas="0x64",
        maxPriorityFeePerGas="0x02",
        maxFeePerBlobGas="0x0a",
        blobVersionedHashes=hashes,
        accessLists=[[], []],
    )
    tx = test.cases[0].transaction
    assert isinstance(tx, BlobTransaction)
    assert tx.max_fee_per_blob_gas == 10
    assert tx.blob_versioned_hashes == tuple(bytes.fromhex(h[2:]) for h in hashes)


def test_a_field_too_wide_to_send_is_no_transaction():
    bigint = "0x:bigint 0x10000000000000000000000000000000000000000000000000000000000000001"
    case = parse_one(value=[bigint, bigint]).cases[0]
    assert case.transaction is None and case.unrepresentable.startswith("value 0x1000")
    case = parse_one(gasLimit=["0x" + "ff" * 8, "0x01" + "00" * 8]).cases[1]
    assert case.transaction is None and case.unrepresentable.startswith("gas_limit")
    assert parse_one(nonce="0x" + "ff" * 8).cases[0].transaction.nonce == 2**64 - 1


def test_expect_exception_is_kept():
    test = make_test()
    test["post"]["Cancun"][0]["expectException"] = "TransactionException.INTRINSIC_GAS_TOO_LOW"
    first, second = parse_tests({"t": test}, "f.json")[0].cases
    assert first.expect_exception == "TransactionException.INTRINSIC_GAS_TOO_LOW"
    assert second.expect_exception is None


def test_malformed_tests_name_the_file_and_test():
    test = make_test()
    del test["env"]["currentNumber"]
    message = "f.json: test t: missing field 'currentNumber'"
    with pytest.raises(StateTestError, match=re.escape(message)):
        parse_tests({"t": test}, "f.json")
    with pytest.raises(StateTestError, match=re.escape("bad.json: not JSON")):
        load_tests("bad.json", b"{")


def test_sources_from_directories_and_archives(tmp_path):
    content = json.dumps({"t": make_test()}).encode()
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "sub" / "b.json").write_bytes(content)
    (tmp_path / "dir" / "a.json").write_bytes(content)
    (tmp_path / "dir" / "notes.txt").write_text("not a test")
    archive = tmp_path / "tests.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        info = tarfile.TarInfo("suite/x.json")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    names = [name for name, _ in read_sources([tmp_path / "dir", archive])]
    assert names == [
        str(tmp_path / "dir" / "a.json"),
        str(tmp_path / "dir" / "sub" / "b.json"),
        f"{archive}/suite/x.json",
    ]
    with pytest.raises(FileNotFoundError):
        list(read_sources([tmp_path / "missing"]))


def test_cli_reports_missing_paths_and_empty_selections(tmp_path, capsys):
    assert main(["evm", "statetest", str(tmp_path / "missing")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    (tmp_path / "t.json").write_text(json.dumps({"t": make_test()}))
    assert main(["evm", "statetest", str(tmp_path), "--only", "nothing"]) == 2
    assert "no Cancun state tests with 'nothing' in their name" in capsys.readouterr().err


def _signed_fields(raw: bytes) -> tuple:
    """A signed transaction's fields, in the order ``_parsed_fields`` lists them."""
    if raw[0] >= 0xC0:  # legacy: a bare list
        nonce, price, gas, to, value, data = _rlp.decode_list(raw)[:6]
        return (0, nonce, gas, to, value, data, price)
    items = _rlp.decode_list(raw[1:])
    if raw[0] == 1:
        _chain, nonce, price, gas, to, value, data, access = items[:8]
        return (1, nonce, gas, to, value, data, price, access)
    _chain, nonce, tip, cap, gas, to, value, data, access = items[:9]
    blob = (items[9], items[10]) if raw[0] == 3 else ()
    return (raw[0], nonce, gas, to, value, data, tip, cap, access, *blob)


def _parsed_fields(tx) -> tuple:
    def num(value: int) -> bytes:
        return value.to_bytes((value.bit_length() + 7) // 8, "big")

    fields = (tx.type, num(tx.nonce), num(tx.gas_limit), tx.to or b"", num(tx.value), tx.data)
    access = [[address, list(keys)] for address, keys in getattr(tx, "access_list", ())]
    if tx.type == 0:
        return (*fields, num(tx.gas_price))
    if tx.type == 1:
        return (*fields, num(tx.gas_price), access)
    fees = (num(tx.max_priority_fee_per_gas), num(tx.max_fee_per_gas), access)
    blob = (num(tx.max_fee_per_blob_gas), list(tx.blob_versioned_hashes)) if tx.type == 3 else ()
    return (*fields, *fees, *blob)


def test_every_vendored_case_selects_the_transaction_the_fillers_signed():
    """Each post entry records the signed transaction it ran (``txbytes``): the parser's type,
    index selection and fields must agree with it for all 14,914 cases."""
    cases = mismatched = 0
    for source, content in read_sources([ARCHIVE]):
        document = json.loads(content)
        for test in load_tests(source, content):
            for case, post in zip(test.cases, document[test.name]["post"]["Cancun"], strict=True):
                cases += 1
                if case.transaction is None:  # too wide to sign: the bytes hold no such field
                    continue
                signed = _signed_fields(bytes.fromhex(post["txbytes"][2:]))
                mismatched += signed != _parsed_fields(case.transaction)
    assert (cases, mismatched) == (14_914, 0)

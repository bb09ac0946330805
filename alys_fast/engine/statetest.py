"""Ethereum GeneralStateTests: parse them and run them on the revm engine.

The filled state tests of ethereum/tests are the reference every EVM client checks itself
against: a pre-state, a block environment, one transaction template and, per fork, the state
root and logs hash each variant of the transaction must produce. Running them is how we know the
engine computes what Ethereum computes. The chain runs Cancun rules, so only ``post.Cancun`` is
read. The file format is the one geth's ``evm statetest`` reads; so is the report format, one
JSON object per case (:meth:`CaseResult.to_json`).

Parsing needs no engine; :func:`run_test` imports it when first asked to run something, so the
parser (and the CLI) work in a build without the compiled EVM.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coincurve
import msgspec

from alys_fast._cext import require
from alys_fast.engine.interface import AllocAccount, BlockEnv
from alys_fast.validation.receipts import logs_hash
from alys_fast.validation.transactions import (
    AccessList,
    AccessListTransaction,
    BlobTransaction,
    DynamicFeeTransaction,
    LegacyTransaction,
    Transaction,
)

keccak256 = require("hashing").keccak256

FORK = "Cancun"
EMPTY_LOGS_HASH = logs_hash(())

# Field widths (bits) of a signed transaction: a value past these cannot be sent, so the engine
# is not asked; the case passes iff the test expects the transaction to be rejected.
_WIDTHS = {
    "nonce": 64,
    "gas_limit": 64,
    "value": 256,
    "gas_price": 256,
    "max_priority_fee_per_gas": 256,
    "max_fee_per_gas": 256,
    "max_fee_per_blob_gas": 256,
}


class StateTestError(ValueError):
    """A file that is not a well-formed state test (which file and what is wrong)."""


@dataclass(frozen=True, slots=True)
class StateTestCase:
    """One ``post.Cancun`` entry: a transaction variant and what it must produce.

    ``transaction`` is None when a field does not fit its width (``unrepresentable`` says which);
    ``expect_exception`` is the test's name for the rejection it expects, None for a valid one.
    """

    index: int
    data_index: int
    gas_index: int
    value_index: int
    transaction: Transaction | None
    unrepresentable: str | None
    expect_exception: str | None
    state_root: bytes
    logs_hash: bytes


@dataclass(frozen=True, slots=True)
class StateTest:
    """One named test of a file: the starting state, the block and its Cancun cases."""

    source: str
    name: str
    env: BlockEnv
    pre: dict[bytes, AllocAccount]
    cases: tuple[StateTestCase, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The verdict on one case; ``state_root``/``logs_hash`` are what the engine produced."""

    source: str
    name: str
    index: int
    passed: bool
    state_root: bytes | None
    logs_hash: bytes | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """The report line, in geth's field names (``file`` added: test names repeat)."""
        return {
            "name": self.name,
            "file": self.source,
            "fork": FORK,
            "index": self.index,
            "pass": self.passed,
            "stateRoot": _hex(self.state_root),
            "logsHash": _hex(self.logs_hash),
            "error": self.error,
        }


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def _int(text: str) -> int:
    """A quantity: ``0x``-hex (``0x`` alone is 0) or retesteth's ``0x:bigint 0x...`` spelling."""
    digits = text.removeprefix("0x:bigint ").removeprefix("0x")
    return int(digits, 16) if digits else 0


def _bytes(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def _address(text: str) -> bytes:
    address = _bytes(text)
    if len(address) != 20:
        raise ValueError(f"not a 20-byte address: {text!r}")
    return address


def _word(text: str) -> bytes:
    """A 32-byte key or hash, left-padded (fillers sometimes drop leading zeros)."""
    return _int(text).to_bytes(32, "big")


def sender_of(secret_key: bytes) -> bytes:
    """The address of a secp256k1 key: the last 20 bytes of keccak256 of the public point."""
    point = coincurve.PrivateKey(secret_key).public_key.format(compressed=False)
    return keccak256(point[1:])[12:]


def _env(env: Mapping[str, str]) -> BlockEnv:
    return BlockEnv(
        number=_int(env["currentNumber"]),
        timestamp=_int(env["currentTimestamp"]),
        fee_recipient=_address(env["currentCoinbase"]),
        gas_limit=_int(env["currentGasLimit"]),
        base_fee=_int(env["currentBaseFee"]),
        prev_randao=_word(env.get("currentRandom", "0x")),
        excess_blob_gas=_int(env.get("currentExcessBlobGas", "0x")),
    )


def _pre(pre: Mapping[str, Mapping[str, Any]]) -> dict[bytes, AllocAccount]:
    return {
        _address(address): AllocAccount(
            balance=_int(account["balance"]),
            nonce=_int(account["nonce"]),
            code=_bytes(account["code"]),
            storage={_int(k): _int(v) for k, v in account["storage"].items()},
        )
        for address, account in pre.items()
    }


def _access_list(entries: Iterable[Mapping[str, Any]]) -> AccessList:
    return tuple(
        (_address(entry["address"]), tuple(_word(key) for key in entry["storageKeys"]))
        for entry in entries
    )


def build_transaction(
    tx: Mapping[str, Any], data: int, gas: int, value: int, tx_hash: bytes
) -> tuple[Transaction | None, str | None]:
    """The transaction a case's indexes select from the test's template, as the engine takes it.

    The type follows from the fields present, as in revm's runner: blob hashes make type 3, a
    fee cap type 2, a (non-null) access list for this data index type 1, else legacy. Returns
    ``(None, reason)`` if a field is too wide to be sent at all.
    """
    access_lists = tx.get("accessLists") or []
    entries = access_lists[data] if data < len(access_lists) else None
    access_list = _access_list(entries or ())
    sender = tx.get("sender")
    fields: dict[str, Any] = {
        "raw": b"",
        "hash": tx_hash,
        "sender": _address(sender) if sender else sender_of(_bytes(tx["secretKey"])),
        "intrinsic_gas": 0,
        "chain_id": 1,
        "nonce": _int(tx["nonce"]),
        "gas_limit": _int(tx["gasLimit"][gas]),
        "to": _address(tx["to"]) if tx["to"] else None,
        "value": _int(tx["value"][value]),
        "data": _bytes(tx["data"][data]),
        "v": 0,
        "r": 0,
        "s": 0,
    }
    cls: type[Transaction]
    if "maxFeePerGas" in tx:
        cls = DynamicFeeTransaction
        fields["max_priority_fee_per_gas"] = _int(tx["maxPriorityFeePerGas"])
        fields["max_fee_per_gas"] = _int(tx["maxFeePerGas"])
        fields["access_list"] = access_list
        if "blobVersionedHashes" in tx:
            cls = BlobTransaction
            fields["max_fee_per_blob_gas"] = _int(tx["maxFeePerBlobGas"])
            fields["blob_versioned_hashes"] = tuple(_word(h) for h in tx["blobVersionedHashes"])
    elif entries is not None:
        cls = AccessListTransaction
        fields["gas_price"] = _int(tx["gasPrice"])
        fields["access_list"] = access_list
    else:
        cls = LegacyTransaction
        fields["gas_price"] = _int(tx["gasPrice"])
        fields["chain_id"] = None
    for name, bits in _WIDTHS.items():
        if name in fields and fields[name] >> bits:
            return None, f"{name} {fields[name]:#x} does not fit {bits} bits"
    return cls(**fields), None


def parse_tests(document: Mapping[str, Any], source: str) -> list[StateTest]:
    """The tests of one decoded file that have a Cancun section, in file order.

    Raises StateTestError naming the source and test if a field is missing or malformed.
    """
    tests = []
    for name, test in document.items():
        try:
            if FORK in test["post"]:
                tests.append(_parse_test(test, source, name))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise StateTestError(f"{source}: test {name}: {detail}") from None
    return tests


def _parse_test(test: Mapping[str, Any], source: str, name: str) -> StateTest:
    tx = test["transaction"]
    cases = []
    for index, post in enumerate(test["post"][FORK]):
        indexes = post["indexes"]
        data, gas, value = indexes["data"], indexes["gas"], indexes["value"]
        tx_hash = keccak256(f"{name}/{index}".encode())
        transaction, unrepresentable = build_transaction(tx, data, gas, value, tx_hash)
        cases.append(
            StateTestCase(
                index=index,
                data_index=data,
                gas_index=gas,
                value_index=value,
                transaction=transaction,
                unrepresentable=unrepresentable,
                expect_exception=post.get("expectException"),
                state_root=_word(post["hash"]),
                logs_hash=_word(post["logs"]),
            )
        )
    return StateTest(source, name, _env(test["env"]), _pre(test["pre"]), tuple(cases))


def load_tests(source: str, content: bytes) -> list[StateTest]:
    """:func:`parse_tests` of a file's bytes; raises StateTestError if it is not JSON."""
    try:
        document = msgspec.json.decode(content)
    except msgspec.DecodeError as exc:
        raise StateTestError(f"{source}: not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise StateTestError(f"{source}: not a JSON object of tests")
    return parse_tests(document, source)


def read_sources(paths: Iterable[str | Path]) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of every state test file named: a JSON file, a directory searched
    recursively for ``*.json``, or a ``.tar.xz`` archive of such files (how the suite is
    vendored), each directory and archive in name order.

    Raises FileNotFoundError for a path that does not exist.
    """
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for file in sorted(path.rglob("*.json")):
                yield str(file), file.read_bytes()
        elif path.name.endswith(".tar.xz"):
            with tarfile.open(path, "r:xz") as archive:
                members = [m for m in archive.getmembers() if m.isfile()]
                for member in sorted(members, key=lambda m: m.name):
                    if member.name.endswith(".json"):
                        reader = archive.extractfile(member)
                        assert reader is not None  # a regular file always has contents
                        yield f"{path}/{member.name}", reader.read()
        elif path.exists():
            yield str(path), path.read_bytes()
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")


def block_hash(number: int) -> bytes:
    """BLOCKHASH in state tests: keccak256 of the number in decimal (geth's and revm's rule)."""
    return keccak256(str(number).encode())


def _verdict(case: StateTestCase, skipped: str | None, root: bytes, logs: bytes) -> str | None:
    """Why a case failed (None if it passed), given the engine's outcome."""
    if case.expect_exception is not None and skipped is None:
        return f"expected exception {case.expect_exception}, got none"
    if case.expect_exception is None and skipped is not None:
        return f"unexpected exception: {skipped}"
    if root != case.state_root:
        return f"state root mismatch: expected 0x{case.state_root.hex()}"
    if logs != case.logs_hash:
        return f"logs hash mismatch: expected 0x{case.logs_hash.hex()}"
    return None


def run_test(test: StateTest) -> Iterator[CaseResult]:
    """Run every case of a test, each on a fresh engine built from the pre-state.

    An engine that raises fails that case (the error names the exception) and the run goes on,
    so one engine bug shows as failures rather than ending a conformance run.
    """
    from alys_fast.engine.revm import RevmEngine  # compiled; parsing must work without it

    for case in test.cases:
        root = logs = None
        try:
            engine = RevmEngine.from_alloc(
                test.pre, fork="cancun", chain_id=1, block_hash=block_hash
            )
            if case.transaction is None:
                root, logs = engine.state_root, EMPTY_LOGS_HASH
                skipped: str | None = f"not sendable: {case.unrepresentable}"
            else:
                execution = engine.execute_block(
                    engine.state_root, test.env, [case.transaction], skip_invalid=True
                )
                root = execution.state_root
                skipped = execution.skipped[0][1] if execution.skipped else None
                receipt_logs = () if skipped is not None else execution.receipts[0].logs
                logs = logs_hash(receipt_logs)
            error = _verdict(case, skipped, root, logs)
        except Exception as exc:  # the engine's failure is this case's, not the run's
            error = f"engine raised {type(exc).__name__}: {exc}"
        yield CaseResult(test.source, test.name, case.index, error is None, root, logs, error)


def run_sources(
    sources: Iterable[tuple[str, bytes]], only: str | None = None
) -> Iterator[CaseResult]:
    """Run every Cancun case of the given files (tests whose name contains ``only``, if set)."""
    for source, content in sources:
        for test in load_tests(source, content):
            if only is None or only in test.name:
                yield from run_test(test)

"""Engine figures: ERC-20 and plain transfers per second through the revm binding.

One block of N transactions, one per sender (N senders funded at genesis; for ERC-20 each also
holds tokens of ``tests/data/contracts/Token`` placed in its storage at genesis), executed by
:class:`RevmEngine` — the node's own path: Python conversion in, revm over the engine's state
with the GIL released, the new state root, receipts and the diff out. Against, in the same run:

- ``raw_revm``: the same transactions through plain revm inside the crate (its own CacheDB,
  no overlay, no trie, no Python), timed in Rust: the binding's goal is >= 80% of this. It
  leaves out work a block cannot skip (blooms, the receipts root, the state root: together
  more than revm's own time on this block), so it bounds the binding from far above;
- ``native``: the same block through the crate's own path alone (execution over the engine's
  state with blooms and receipts root, then the new state root), timed in Rust with no Python
  objects: ``binding_vs_native`` is what the Python side (conversion in, receipts and the diff
  out) costs on top;
- ``py_evm``: py-evm, the slow exact Python EVM, when it is installed (a note when not).

Also the state commit of the ERC-20 block: the trie update (``prepare``) and the RocksDB
write of its diff, in ms. Transactions are built as recovered structs (signature recovery is
the validation core's, measured by bench_validation). Prints one JSON object; ``--short``
for CI.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from alys_fast._cext import require
from alys_fast.engine import AllocAccount, BlockEnv, RevmEngine
from alys_fast.engine.revm import env_tuple
from alys_fast.storage import BlockRecord
from alys_fast.storage.store import ChainStore
from alys_fast.validation.transactions import DynamicFeeTransaction

keccak256 = require("hashing").keccak256

ROOT = Path(__file__).resolve().parents[1]
TOKEN = json.loads((ROOT / "tests/data/contracts/Token.json").read_text())
TOKEN_ADDRESS = bytes.fromhex("70" * 20)
TRANSFER = bytes.fromhex(TOKEN["methodIdentifiers"]["transfer(address,uint256)"])
GWEI = 10**9
CHAIN_ID = 1


def sender(i: int) -> bytes:
    return keccak256(b"sender" + i.to_bytes(4, "big"))[12:]


def balance_slot(holder: bytes) -> int:
    """Solidity's slot of ``balanceOf[holder]`` (the mapping is state variable 1)."""
    return int.from_bytes(keccak256(holder.rjust(32, b"\0") + (1).to_bytes(32, "big")), "big")


def alloc(n: int) -> dict[bytes, AllocAccount]:
    accounts = {sender(i): AllocAccount(balance=10**24) for i in range(n)}
    storage = {0: n * 10**18}
    storage.update({balance_slot(sender(i)): 10**18 for i in range(n)})
    accounts[TOKEN_ADDRESS] = AllocAccount(
        code=bytes.fromhex(TOKEN["deployedBytecode"][2:]), storage=storage
    )
    return accounts


def transactions(n: int, erc20: bool) -> list[DynamicFeeTransaction]:
    out = []
    for i in range(n):
        recipient = keccak256(b"recipient" + i.to_bytes(4, "big"))[12:]
        data = TRANSFER + recipient.rjust(32, b"\0") + (10**15).to_bytes(32, "big")
        out.append(DynamicFeeTransaction(
            raw=b"", hash=keccak256(i.to_bytes(8, "big")), sender=sender(i), intrinsic_gas=0,
            chain_id=CHAIN_ID, nonce=0, gas_limit=100_000 if erc20 else 21_000,
            to=TOKEN_ADDRESS if erc20 else recipient, value=0 if erc20 else 1, data=data if erc20
            else b"", v=0, r=0, s=0, max_priority_fee_per_gas=GWEI, max_fee_per_gas=10 * GWEI,
            access_list=(),
        ))
    return out


ENV = BlockEnv(number=1, timestamp=1_700_000_000, fee_recipient=bytes.fromhex("cc" * 20),
               gas_limit=2_000_000_000, base_fee=GWEI)


def measure(n: int, erc20: bool, rounds: int) -> dict[str, float]:
    txs = transactions(n, erc20)
    binding, raw, native, prepare = [], [], [], []
    execution = None
    for _ in range(rounds):
        engine = RevmEngine.from_alloc(alloc(n), chain_id=CHAIN_ID)
        started = time.perf_counter()
        execution = engine.execute_block(engine.state_root, ENV, txs)
        binding.append(time.perf_counter() - started)
        assert len(execution.receipts) == n and all(r.status for r in execution.receipts)
        # The trie part alone, on a fresh run of the same block.
        evm = engine._evm
        run = evm.begin(env_tuple(ENV), txs, False)
        assert evm.execute(run) is None
        started = time.perf_counter()
        assert type(evm.prepare(run)) is bytes
        prepare.append(time.perf_counter() - started)
        raw.append(evm.raw_revm_seconds(run))
        native.append(evm.native_block_seconds(run))
    out = {
        "txs": n,
        "binding_tx_per_s": round(n / min(binding)),
        "raw_revm_tx_per_s": round(n / min(raw)),
        "binding_vs_raw": round(min(raw) / min(binding), 3),
        "native_tx_per_s": round(n / min(native)),
        "binding_vs_native": round(min(native) / min(binding), 3),
        "trie_update_ms": round(1000 * min(prepare), 1),
    }
    if erc20 and execution is not None:
        with tempfile.TemporaryDirectory() as tmp, ChainStore(Path(tmp) / "db") as store:
            store.write_block(BlockRecord(0, b"\1" * 32, bytes(32), b"", ()), (),
                              execution.changes)
            record = BlockRecord(1, b"\2" * 32, b"\1" * 32, b"",
                                 tuple(b"" for _ in execution.receipts),
                                 tuple(tx.sender for tx in execution.transactions))
            started = time.perf_counter()
            store.write_block(record, execution.receipts, execution.changes)
            out["rocksdb_write_ms"] = round(1000 * (time.perf_counter() - started), 1)
    return out


def py_evm_figure(n: int) -> dict[str, object]:
    """ERC-20 transfers/s in py-evm (Cancun) over the same genesis and transactions, or why it
    was not measured. Transactions are spoofed (sender given, no signature), as the engine's
    come in recovered; py-evm is slow, so it runs a smaller block."""
    try:
        from eth.chains.base import MiningChain
        from eth.db.atomic import AtomicDB
        from eth.vm.forks import CancunVM
        from eth.vm.spoof import SpoofTransaction
    except ImportError:
        return {"note": "py-evm is not installed (pip install -e '.[bench]') - not measured"}
    chain_class = MiningChain.configure(
        __name__="BenchChain", vm_configuration=((0, CancunVM),), chain_id=CHAIN_ID)
    genesis = {
        address: {"balance": account.balance, "nonce": account.nonce, "code": account.code,
                  "storage": dict(account.storage)}
        for address, account in alloc(n).items()
    }
    chain = chain_class.from_genesis(AtomicDB(), {
        "difficulty": 0, "gas_limit": ENV.gas_limit, "timestamp": ENV.timestamp,
        "coinbase": ENV.fee_recipient}, genesis)
    vm = chain.get_vm()
    txs = [
        SpoofTransaction(vm.create_unsigned_transaction(
            nonce=tx.nonce, gas_price=tx.max_fee_per_gas, gas=tx.gas_limit, to=tx.to,
            value=tx.value, data=tx.data), from_=tx.sender)
        for tx in transactions(n, True)
    ]
    started = time.perf_counter()
    for tx in txs:
        computation = vm.state.apply_transaction(tx)
        assert not computation.is_error, computation.error
    return {"txs": n, "tx_per_s": round(n / (time.perf_counter() - started))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI mode: small blocks")
    args = parser.parse_args()
    n, rounds = (2_000, 2) if args.short else (10_000, 3)
    out: dict[str, dict] = {
        "bench": "evm",
        "erc20": measure(n, True, rounds),
        "transfer": measure(n, False, rounds),
        "py_evm": py_evm_figure(n // 10),
    }
    py_evm = out["py_evm"]
    if "tx_per_s" in py_evm:
        py_evm["binding_vs_py_evm"] = round(
            out["erc20"]["binding_tx_per_s"] / py_evm["tx_per_s"], 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

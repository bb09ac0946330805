"""The differential driver: the same signed transactions go to anvil and to our engine, one
block at a time, and every block and receipt field the two report is compared.

Anvil is the reference. Each block is mined there first (``evm_mine`` with a chosen
timestamp); our :class:`~alys_fast.engine.BlockEnv` is then built from exactly the header anvil
reports (number, timestamp, miner, gas limit, base fee, mixHash as PREVRANDAO, excess blob
gas), and BLOCKHASH is answered with anvil's block hashes.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from hashlib import sha256
from pathlib import Path
from typing import Any

import rlp
from eth_abi import encode
from eth_account import Account as EthAccount
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

from alys_fast.chain.spec import DEV_ACCOUNTS, ETHER
from alys_fast.engine import AllocAccount, BlockEnv, BlockExecution, RevmEngine
from alys_fast.validation import recover_transaction
from alys_fast.validation.trie import trie_root
from tests.differential.anvil import Anvil

CONTRACTS = Path(__file__).resolve().parents[1] / "data" / "contracts"

KEYS = [key for _, key in DEV_ACCOUNTS]
ADDRS = [bytes.fromhex(address[2:]) for address, _ in DEV_ACCOUNTS]
GWEI = 10**9

DEV_BALANCE_ETHER = 10_000
GENESIS_TIMESTAMP = 1_700_000_000
GAS_LIMIT = 30_000_000
BASE_FEE = GWEI
COINBASE = bytes.fromhex("00000000000000000000000000000000c0ffee01")

# Anvil's default CREATE2 deployer (Arachnid's deterministic-deployment-proxy): calldata is
# salt (32 bytes) ++ init code, it CREATE2s and returns the new address (20 bytes).
CREATE2_DEPLOYER = bytes.fromhex("4e59b44847b379578588920ca78fbf26c0b4956c")
CREATE2_DEPLOYER_CODE = bytes.fromhex(
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035"
    "828234f58015156039578182fd5b8082525050506014600cf3"
)
# Cancun's and Prague's system contracts, which anvil's Cancun genesis does not hold.
BEACON_ROOTS = bytes.fromhex("000f3df6d732807ef1319fb7b8bb8522d0beac02")  # EIP-4788
HISTORY_STORAGE = bytes.fromhex("0000f90827f1c53a10cb7a02335b175320002935")  # EIP-2935


def anvil_args(chain_id: int) -> list[str]:
    """The command line for a deterministic anvil: Cancun, our chain id, the default mnemonic's
    10 accounts with a known balance, mining only on ``evm_mine``, FIFO inclusion (the order
    transactions were sent in), a fixed genesis timestamp, gas limit and base fee."""
    return [
        "--hardfork", "cancun", "--chain-id", str(chain_id), "--no-mining", "--order", "fifo",
        "--accounts", "10", "--balance", str(DEV_BALANCE_ETHER),
        "--timestamp", str(GENESIS_TIMESTAMP), "--gas-limit", str(GAS_LIMIT),
        "--base-fee", str(BASE_FEE),
    ]


def anvil_genesis_alloc() -> dict[bytes, AllocAccount]:
    """What anvil's genesis holds with :func:`anvil_args`: the 10 dev accounts of the default
    mnemonic (the ones in ``DEV_ACCOUNTS``) with 10,000 ether each, and the CREATE2 deployer."""
    alloc = {address: AllocAccount(balance=DEV_BALANCE_ETHER * ETHER) for address in ADDRS}
    alloc[CREATE2_DEPLOYER] = AllocAccount(code=CREATE2_DEPLOYER_CODE)
    return alloc


# ---- contracts --------------------------------------------------------------------------


@cache
def artifact(name: str) -> dict[str, Any]:
    return json.loads((CONTRACTS / f"{name}.json").read_text())


def creation_code(name: str, types: Sequence[str] = (), args: Sequence[Any] = ()) -> bytes:
    return bytes.fromhex(artifact(name)["bytecode"][2:]) + (
        encode(list(types), list(args)) if types else b""
    )


def runtime_code(name: str) -> bytes:
    return bytes.fromhex(artifact(name)["deployedBytecode"][2:])


def calldata(name: str, signature: str, *args: Any) -> bytes:
    """The call of ``signature`` (e.g. ``"transfer(address,uint256)"``) on contract ``name``."""
    selector = bytes.fromhex(artifact(name)["methodIdentifiers"][signature])
    inner = signature[signature.index("(") + 1 : -1]
    return selector + (encode(inner.split(","), list(args)) if inner else b"")


def create_address(sender: bytes, nonce: int) -> bytes:
    return keccak(rlp.encode([sender, nonce]))[12:]


def create2_address(deployer: bytes, salt: bytes, init_code: bytes) -> bytes:
    return keccak(b"\xff" + deployer + salt + keccak(init_code))[12:]


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


# ---- precompile inputs (each a valid call unless named otherwise) -----------------------

BN_P = 21888242871839275222246405745257275088696311157297823662689037894645226208583
# alt_bn128's G2 generator, as the pairing precompile takes it (imaginary part first).
BN_G2 = (
    11559732032986387107991004021392285783925812861821192530917403151452391805634,
    10857046999023057135944570762232829481370756359578518086990519993285655852781,
    4082367875863433681332203403145435568316851327593401208105741076214120093531,
    8495653923123431417604973247489272438418190587263600148770280649306958101930,
)


def bn_g1(x: int, y: int) -> bytes:
    return word(x) + word(y)


def bn_g2() -> bytes:
    return b"".join(word(c) for c in BN_G2)


def bn_pairing_identity() -> bytes:
    """e(G1, G2) * e(-G1, G2) == 1: the precompile answers 1."""
    return bn_g1(1, 2) + bn_g2() + bn_g1(1, BN_P - 2) + bn_g2()


def blake2f_input(rounds: int = 12, final: int = 1) -> bytes:
    """EIP-152's test vector 5 ("abc"); ``final`` other than 0/1 makes it invalid."""
    h = bytes.fromhex(
        "48c9bdf267e6096a3ba7ca8485ae67bb2bf894fe72f36e3cf1361d5f3af54fa5d182e6ad7f520e511f6c3e2b"
        "8c68059b6bbd41fbabd9831f79217e1319cde05b"
    )
    m = b"abc".ljust(128, b"\0")
    t = (3).to_bytes(8, "little") + bytes(8)
    return rounds.to_bytes(4, "big") + h + m + t + bytes([final])


def point_evaluation_input(y: int = 0) -> bytes:
    """The zero polynomial's KZG opening (commitment and proof the point at infinity): valid
    for y == 0 at any z; any other y is an invalid proof."""
    infinity = b"\xc0" + bytes(47)
    versioned = b"\x01" + sha256(infinity).digest()[1:]
    return versioned + word(0x1234) + word(y) + infinity + infinity


def modexp_input(base: int, exponent: int, modulus: int, size: int = 32) -> bytes:
    return (
        word(size) + word(size) + word(size)
        + base.to_bytes(size, "big") + exponent.to_bytes(size, "big")
        + modulus.to_bytes(size, "big")
    )


def ecrecover_args(message: bytes, key_index: int = 0) -> tuple[bytes, int, bytes, bytes]:
    digest = keccak(message)
    signature = keys.PrivateKey(bytes.fromhex(KEYS[key_index][2:])).sign_msg_hash(digest)
    return digest, signature.v + 27, word(signature.r), word(signature.s)


# ---- transactions ---------------------------------------------------------------------


class Wallet:
    """Signs transactions from the dev accounts, keeping each sender's next nonce.

    ``kind`` is the envelope: 0 (legacy, EIP-155), "legacy-unprotected" (legacy without a
    chain id), 1 (EIP-2930 access list) or 2 (EIP-1559).
    """

    def __init__(self, chain_id: int) -> None:
        self.chain_id = chain_id
        self.nonces: dict[int, int] = defaultdict(int)

    def sign(
        self,
        sender: int,
        to: bytes | None,
        *,
        data: bytes = b"",
        value: int = 0,
        gas: int = 21_000,
        kind: int | str = 2,
        gas_price: int = 3 * GWEI,
        max_fee: int = 5 * GWEI,
        tip: int = GWEI,
        access_list: Sequence[tuple[bytes, Sequence[int]]] = (),
    ) -> bytes:
        tx: dict[str, Any] = {
            "nonce": self.nonces[sender], "gas": gas, "value": value, "data": data,
        }
        if to is not None:
            tx["to"] = to_checksum_address(to)
        if kind == "legacy-unprotected":
            tx["gasPrice"] = gas_price
        else:
            tx["chainId"] = self.chain_id
            if kind == 2:
                tx["maxFeePerGas"] = max_fee
                tx["maxPriorityFeePerGas"] = tip
            else:
                tx["gasPrice"] = gas_price
            if kind in (1, 2):
                tx["accessList"] = [
                    {"address": to_checksum_address(a), "storageKeys": ["0x" + word(k).hex()
                                                                        for k in slots]}
                    for a, slots in access_list
                ]
                if kind == 1:
                    tx["type"] = 1
        raw = bytes(EthAccount.sign_transaction(tx, KEYS[sender]).raw_transaction)
        self.nonces[sender] += 1
        return raw

    def next_create_address(self, sender: int) -> bytes:
        """Where ``sender``'s next transaction, if a creation, puts its contract."""
        return create_address(ADDRS[sender], self.nonces[sender])


# ---- comparison ---------------------------------------------------------------------------


def _b(hex_text: str | None) -> bytes:
    return b"" if hex_text is None else bytes.fromhex(hex_text[2:])


def _i(hex_text: str) -> int:
    return int(hex_text, 16)


@dataclass
class BlockOutcome:
    number: int
    header: dict[str, Any]
    anvil_receipts: list[dict[str, Any]]
    execution: BlockExecution
    mismatches: list[str] = field(default_factory=list)
    anvil_deviations: list[str] = field(default_factory=list)


class DifferentialMismatch(AssertionError):
    pass



@dataclass
class AnvilState:
    """Anvil's whole state (``anvil_dumpState``), to tell its state root apart from Ethereum's.

    Anvil (1.7.1) computes its stateRoot over every account of its in-memory database, as
    revm's CacheDB commits them: an account touched and left empty (a zero-value transfer to
    a fresh address, a reverted creation's address, a self-destructed account) stays there
    as an empty leaf, and a storage slot written back to zero stays as a leaf holding
    ``rlp(0)``. Ethereum (EIP-161, and the trie's "a zero slot is absent") has neither.
    ``anvil_root`` recomputes anvil's root from the dump (so the dump is known to be all of
    its state); ``ethereum_root`` is the root of the same state without those leaves.
    """

    accounts: dict[bytes, dict[str, Any]]

    @classmethod
    def dump(cls, anvil: Anvil) -> AnvilState:
        raw = json.loads(gzip.decompress(_b(anvil.call("anvil_dumpState"))))
        return cls({_b(a): v for a, v in raw["accounts"].items()})

    @staticmethod
    def _empty(account: dict[str, Any]) -> bool:
        return (account["nonce"] == 0 and _i(account["balance"]) == 0
                and _b(account["code"]) == b"")

    def _root(self, *, ethereum: bool) -> bytes:
        leaves = {}
        for address, account in self.accounts.items():
            if ethereum and self._empty(account):
                continue
            slots = {keccak(word(_i(k))): rlp.encode(_i(v))
                     for k, v in account["storage"].items() if _i(v) or not ethereum}
            leaves[keccak(address)] = rlp.encode([
                account["nonce"], _i(account["balance"]), trie_root(slots),
                keccak(_b(account["code"])),
            ])
        return trie_root(leaves)

    def anvil_root(self) -> bytes:
        return self._root(ethereum=False)

    def ethereum_root(self) -> bytes:
        return self._root(ethereum=True)

    def deviations(self) -> list[str]:
        notes = [f"empty account {to_checksum_address(a)}"
                 for a, account in self.accounts.items() if self._empty(account)]
        notes += [f"zero slot {to_checksum_address(a)}[{k}]"
                  for a, account in self.accounts.items()
                  for k, v in account["storage"].items() if _i(v) == 0]
        return notes


class Differential:
    """Runs blocks on anvil and on a fresh engine holding anvil's genesis, and compares.

    ``anvil`` must be at its genesis (fresh, or reverted to it); the constructor sets the
    coinbase. A block whose state root differs raises DifferentialMismatch at once (the
    states diverged); other differences (receipt fields) are collected, and
    :meth:`assert_agreed` raises them all, so one test reports every differing field.
    """

    def __init__(self, anvil: Anvil, chain_id: int, *, coinbase: bytes = COINBASE,
                 compare_outputs: bool = True) -> None:
        self.anvil = anvil
        self.chain_id = chain_id
        self.compare_outputs = compare_outputs
        genesis = anvil.call("eth_getBlockByNumber", "latest", False)
        if _i(genesis["number"]) != 0:
            raise RuntimeError(f"anvil is at block {_i(genesis['number'])}, not its genesis")
        if anvil.call("txpool_status") != {"pending": "0x0", "queued": "0x0"}:
            raise RuntimeError("anvil's pool is not empty")
        anvil.call("anvil_setCoinbase", to_checksum_address(coinbase))
        self.hashes: dict[int, bytes] = {0: _b(genesis["hash"])}
        self.timestamp = _i(genesis["timestamp"])
        self.number = 0
        self.engine = RevmEngine.from_alloc(
            anvil_genesis_alloc(), fork="cancun", chain_id=chain_id, block_hash=self._hash
        )
        self.wallet = Wallet(chain_id)
        self.outcomes: list[BlockOutcome] = []
        self.mismatches: list[str] = []

    def _hash(self, number: int) -> bytes:
        return self.hashes[number]

    def block(self, raws: Sequence[bytes], *, dt: int = 12,
              tamper: Callable[[BlockEnv], BlockEnv] | None = None) -> BlockOutcome:
        """Send ``raws`` to anvil, mine one block ``dt`` seconds after the last, run the same
        transactions on the engine with that block's header, compare, commit.

        ``tamper`` changes our environment before the run (for testing the harness itself)."""
        anvil = self.anvil
        sent = [anvil.call("eth_sendRawTransaction", "0x" + raw.hex()) for raw in raws]
        self.timestamp += dt
        anvil.call("evm_mine", {"timestamp": self.timestamp})
        self.number += 1
        header = anvil.call("eth_getBlockByNumber", hex(self.number), False)
        if header["transactions"] != sent:
            raise RuntimeError(
                f"harness: anvil's block {self.number} holds {header['transactions']}, "
                f"not the {len(sent)} transactions sent in order {sent}"
            )
        if _i(header["timestamp"]) != self.timestamp:
            raise RuntimeError(f"harness: anvil mined at {header['timestamp']}, "
                               f"not {self.timestamp}")
        env = BlockEnv(
            number=_i(header["number"]),
            timestamp=_i(header["timestamp"]),
            fee_recipient=_b(header["miner"]),
            gas_limit=_i(header["gasLimit"]),
            base_fee=_i(header["baseFeePerGas"]),
            prev_randao=_b(header["mixHash"]),
            excess_blob_gas=_i(header["excessBlobGas"]),
        )
        if tamper is not None:
            env = tamper(env)
        receipts = [anvil.call("eth_getTransactionReceipt", h) for h in sent]
        txs = [recover_transaction(raw, self.chain_id) for raw in raws]
        execution = self.engine.execute_block(self.engine.state_root, env, txs)
        outcome = BlockOutcome(self.number, header, receipts, execution)
        outcome.mismatches = self._compare(outcome, sent)
        self.engine.commit(execution)
        self.hashes[self.number] = _b(header["hash"])
        self.outcomes.append(outcome)
        if outcome.mismatches:
            self.mismatches.append(
                f"block {self.number} ({len(raws)} transactions) differs from anvil's:\n  "
                + "\n  ".join(outcome.mismatches)
            )
            if any(m.startswith("stateRoot") for m in outcome.mismatches):
                self.assert_agreed()  # the states diverged: later blocks would tell nothing
        return outcome

    def assert_agreed(self) -> None:
        """Raise DifferentialMismatch listing every block that differed so far (once)."""
        found, self.mismatches = self.mismatches, []
        if found:
            raise DifferentialMismatch("\n".join(found))

    def _compare(self, outcome: BlockOutcome, sent: list[str]) -> list[str]:
        header, ex = outcome.header, outcome.execution
        out: list[str] = []

        def check(what: str, ours: Any, theirs: Any) -> None:
            if ours != theirs:
                out.append(f"{what}: ours {_show(ours)}, anvil {_show(theirs)}")

        def check_state_root(ours: bytes, theirs: bytes) -> None:
            if ours == theirs:
                return
            # Anvil's root is over every account its in-memory database holds, empty ones
            # too, with zeroed storage slots kept: see AnvilState. Compare with the Ethereum
            # root of anvil's state, once its own root is reproduced from the dump.
            state = AnvilState.dump(self.anvil)
            if state.anvil_root() != theirs:
                out.append(f"stateRoot: ours {_show(ours)}, anvil {_show(theirs)}; anvil's "
                           f"dump gives {_show(state.anvil_root())}, so it cannot be corrected")
                return
            corrected = state.ethereum_root()
            if corrected == theirs:
                check("stateRoot", ours, theirs)
            else:
                check(f"stateRoot (anvil's {_show(theirs)} without its empty leaves)", ours,
                      corrected)
            if ours == corrected:
                outcome.anvil_deviations.append(
                    f"block {outcome.number}: anvil's stateRoot {_show(theirs)} keeps "
                    + "; ".join(state.deviations())
                )

        check_state_root(ex.state_root, _b(header["stateRoot"]))
        check("receiptsRoot", ex.receipts_root, _b(header["receiptsRoot"]))
        check("logsBloom", ex.logs_bloom, _b(header["logsBloom"]))
        check("gasUsed", ex.gas_used, _i(header["gasUsed"]))
        check("transaction count", len(ex.receipts), len(sent))
        for index, (ours, theirs) in enumerate(zip(ex.receipts, outcome.anvil_receipts,
                                                   strict=False)):
            name = f"tx {index} ({theirs['transactionHash'][:12]}…, {_describe(theirs)})"
            check(f"{name} hash", ours.tx_hash, _b(theirs["transactionHash"]))
            check(f"{name} status", ours.status, _i(theirs["status"]))
            check(f"{name} gasUsed", ours.gas_used, _i(theirs["gasUsed"]))
            check(f"{name} cumulativeGasUsed", ours.cumulative_gas_used,
                  _i(theirs["cumulativeGasUsed"]))
            check(f"{name} effectiveGasPrice", ours.effective_gas_price,
                  _i(theirs["effectiveGasPrice"]))
            check(f"{name} logs", [(g.address, list(g.topics), g.data) for g in ours.logs],
                  [(_b(g["address"]), [_b(t) for t in g["topics"]], _b(g["data"]))
                   for g in theirs["logs"]])
            check(f"{name} logsBloom", ours.logs_bloom, _b(theirs["logsBloom"]))
            check(f"{name} contractAddress", ours.contract_address,
                  _b(theirs["contractAddress"]) or None)
            if self.compare_outputs:
                trace = self.anvil.call(
                    "debug_traceTransaction", theirs["transactionHash"], {"tracer": "callTracer"}
                )
                check(f"{name} output", ours.output, _b(trace.get("output", "0x")))
        if any(m.startswith("stateRoot") for m in out):
            out.extend(self._diagnose(ex))
        return out

    def _diagnose(self, ex: BlockExecution) -> list[str]:
        """When the state roots differ: the accounts (of anvil's state dump, and those our
        block changed) whose nonce, balance or code differ, and our block's storage writes
        that anvil's state does not hold."""
        notes: list[str] = []
        state = AnvilState.dump(self.anvil)
        empty = (0, 0, keccak(b""))
        addresses = [a for a, account in state.accounts.items() if not AnvilState._empty(account)]
        addresses += [a for a in ex.changes.accounts if a not in state.accounts]
        for address in addresses:
            account = state.accounts.get(address)
            theirs = empty if account is None else (
                account["nonce"], _i(account["balance"]), keccak(_b(account["code"])))
            head = ex.changes.accounts.get(address, self.engine.account(address))
            ours = empty if head is None else (head.nonce, head.balance, head.code_hash)
            if ours != theirs:
                notes.append(f"  account {to_checksum_address(address)} (nonce, balance, code "
                             f"hash): ours {_show(ours)}, anvil {_show(theirs)}")
        for diff in ex.changes.storage:
            slots = {_i(k): _i(v) for k, v in
                     state.accounts.get(diff.address, {}).get("storage", {}).items()}
            for slot, new, _old in diff.slots:
                if slots.get(slot, 0) != new:
                    notes.append(f"  storage {to_checksum_address(diff.address)}[{slot:#x}]: "
                                 f"ours {new:#x}, anvil {slots.get(slot, 0):#x}")
        return notes


def _describe(receipt: dict[str, Any]) -> str:
    to = receipt.get("to")
    target = to[:10] + "…" if to else "create"
    return f"type {_i(receipt['type'])} from {receipt['from'][:10]}… to {target}"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex() if len(value) <= 40 else f"0x{value[:40].hex()}…({len(value)} B)"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


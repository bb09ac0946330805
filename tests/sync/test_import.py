"""Synced blocks whose senders the node's recovery processes recover: the client answers as
recovery in this process does (from the processes, or from local threads without them); a
segment's recoveries run at most ``lookahead`` blocks ahead of its import and never for blocks
it already has; a block with a refused signature stops the import at that block, as the block's
fault; and a peer that serves one is banned with nothing of its forgery imported. Bounded: one
or two nodes on 127.0.0.1, three blocks, every wait with a deadline."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest
from eth_account import Account

from alys_fast._cext import require
from alys_fast.actors import ActorRef
from alys_fast.chain.aura import slot_author_index
from alys_fast.chain.spec import DEV_ACCOUNTS, dev_spec
from alys_fast.chain.workflows import import_segment
from alys_fast.consensus import SecretKey
from alys_fast.paths import RECOVERY
from alys_fast.storage.store import ChainStore
from alys_fast.sync.core import Failure, Offence
from alys_fast.sync.service import StoreBlocks
from alys_fast.validation import (
    Block,
    InvalidTransaction,
    decode_block,
    decode_header,
    ordered_trie_root,
    recover_transactions,
    sign_header,
)
from alys_fast.validation.actor import MIN_PART, RecoveryClient
from tests.actors.helpers import eventually, run
from tests.sync.stack import AUTHORITY, SyncNode, build_chain

pytestmark = pytest.mark.timeout(120)

rlp = require("rlp")
SPEC = dev_spec()
KEY = DEV_ACCOUNTS[6][1]
TO = DEV_ACCOUNTS[8][0]
PER_BLOCK = 2 * MIN_PART + 2  # split across both recovery processes
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def signed(nonce: int) -> bytes:
    tx = {"to": TO, "value": 1, "nonce": nonce, "gas": 21_000, "chainId": SPEC.chain_id,
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
    return bytes(Account.sign_transaction(tx, KEY).raw_transaction)


def high_s(raw: bytes) -> bytes:
    """The same signature with s replaced by n - s: it still verifies, but EIP-2 refuses it."""
    fields = rlp.decode_list(raw[1:])
    fields[-1] = SECP256K1_N - int.from_bytes(fields[-1], "big")
    return raw[:1] + rlp.encode(fields)


def with_refused_signature(raw: bytes) -> bytes:
    """Block ``raw`` with its last transaction's signature refused, its transactions root and
    author's approval made again: only the signature is wrong."""
    block = decode_block(raw)
    txs = (*block.transactions[:-1], high_s(block.transactions[-1]))
    header = msgspec.structs.replace(block.header, transactions_root=ordered_trie_root(txs))
    header = sign_header(header, SecretKey.from_bytes(AUTHORITY),
                         slot_author_index(SPEC, header.slot))
    return Block(header, txs).encode()


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> tuple[Path, list[bytes]]:
    """A data dir holding three blocks of transfers, and those blocks encoded as served."""
    directory = tmp_path_factory.mktemp("chain")
    txs = recover_transactions([signed(nonce) for nonce in range(3 * PER_BLOCK)], SPEC.chain_id)
    build_chain(directory, SPEC, (txs[i:i + PER_BLOCK] for i in range(0, len(txs), PER_BLOCK)))
    with ChainStore(directory / "chain") as store:
        records = [store.block(block_hash) for block_hash in store.block_hashes(1, 3)]
    return directory, [Block(decode_header(r.header), r.transactions).encode() for r in records]


def empty_node(directory: Path, bootnodes=()) -> SyncNode:
    return SyncNode.create(directory, SPEC, listen="tcp://127.0.0.1:0", bootnodes=bootnodes)


class Recording:
    """The node's directory, noting which actors were asked."""

    def __init__(self, node: SyncNode) -> None:
        self.node = node
        self.paths: list[str] = []

    def ref(self, path: str) -> ActorRef:
        self.paths.append(path)
        return self.node.ref(path)


def verdicts(results) -> list[object]:
    return [r.rule if isinstance(r, InvalidTransaction) else r for r in results]


def test_the_recovery_client_answers_as_recovery_in_process(chain, tmp_path):
    raws = [*decode_block(chain[1][0]).transactions, high_s(signed(0)), b"\x01\x02"]
    expected = verdicts(recover_transactions(raws, SPEC.chain_id))
    assert isinstance(expected[-2], str) and isinstance(expected[-1], str)

    async def main():
        node = await empty_node(tmp_path / "node").start()
        try:
            asked = Recording(node)
            assert verdicts(await RecoveryClient(asked, SPEC.chain_id).recover(raws)) == expected
            assert sorted(set(asked.paths)) == sorted(RECOVERY)  # split across both
            without = RecoveryClient(node, SPEC.chain_id, paths=("rpc/absent",))
            assert verdicts(await without.recover(raws)) == expected
        finally:
            await node.stop()

    run(main())


def test_a_segment_recovers_ahead_of_its_import_within_the_lookahead(chain, tmp_path):
    _, blocks = chain

    async def main():
        node = await empty_node(tmp_path / "node").start()
        events: list[tuple[str, int]] = []

        def recover(block: Block):  # noted when the recovery is asked for, not when it runs
            events.append(("recover", block.header.number))
            return node.chain._recover(block)

        def workflow_for(parent):
            events.append(("import", parent.number + 1))
            return node.chain._workflow(parent)

        try:
            head = await node.chain.store.head_header()
            report = await import_segment(blocks, head, workflow_for, recover, lookahead=1)
            assert (report.imported, report.head.number, report.block_at_fault) == (3, 3, None)
            # One block ahead: block n + 1's recovery is asked for as block n's import begins.
            assert events == [("recover", 1), ("recover", 2), ("import", 1), ("recover", 3),
                              ("import", 2), ("import", 3)]
            events.clear()
            again = await import_segment(blocks, report.head, workflow_for, recover)
            assert (again.imported, again.head) == (3, report.head)
            assert events == []  # blocks at or below the head: neither recovered nor imported
        finally:
            await node.stop()

    run(main())


def test_a_refused_signature_stops_the_import_at_its_block(chain, tmp_path):
    _, blocks = chain

    async def main():
        node = await empty_node(tmp_path / "node").start()
        try:
            report = await node.chain.import_blocks(
                [blocks[0], with_refused_signature(blocks[1]), blocks[2]])
            assert (report.imported, report.head, report.failure) == (1, 1, Failure.INVALID)
            assert "invalid transaction" in report.reason
            report = await node.chain.import_blocks(blocks[1:])
            assert (report.imported, report.head, report.failure) == (2, 3, None)
            assert node.chain.header is not None
            assert node.chain.header.hash == decode_block(blocks[2]).hash
        finally:
            await node.stop()

    run(main())


class RefusedSignatures(StoreBlocks):
    """Serves its store's blocks with block 2's last signature refused."""

    async def blocks(self, start: int, count: int, budget: int) -> list[bytes]:
        found = await super().blocks(start, count, budget)
        if start <= 2 < start + len(found):
            found[2 - start] = with_refused_signature(found[2 - start])
        return found


def test_a_peer_serving_a_refused_signature_is_banned(chain, tmp_path):
    directory, blocks = chain
    shutil.copytree(directory, tmp_path / "forger")

    async def main():
        forger = empty_node(tmp_path / "forger")
        forger.sync.source = RefusedSignatures(forger.sync.source.store)  # type: ignore[attr-defined]
        await forger.start()
        node = await empty_node(tmp_path / "node", [forger.enode]).start()
        try:
            await eventually(lambda: node.sync.ledger.banned(forger.id), timeout=60)
            assert node.sync.ledger.penalties[Offence.BAD_BLOCK] == 1
            assert node.chain.header is not None
            assert node.chain.header.hash == decode_block(blocks[0]).hash  # block 1 only
        finally:
            await node.stop()
            await forger.stop()

    run(main())

"""Block 0 of a chain, derived from its spec alone, so every node computes the same one.

The genesis header has no parent (zero hash), slot 0, the spec's timestamp, the spec's fee
recipient as its author (as every block's, so eth RPC's ``miner`` is the header's everywhere)
and no approvals (the empty aggregate, as Alys's genesis: nobody signs block 0); its state root
is the Ethereum state root of the spec's ``alloc`` (accounts, code and storage) and its base
fee is the spec's initial base fee. Its hash identifies the chain: a data directory whose
block 0 has another hash belongs to another chain.
"""

from __future__ import annotations

import msgspec

from alys_fast.chain.spec import ChainSpec
from alys_fast.engine import AllocAccount, RevmEngine, StateDiff, StorageDiff
from alys_fast.engine.revm import alloc_contents
from alys_fast.storage.actor import StoreGenesis
from alys_fast.validation import Header, ordered_trie_root


def genesis_alloc(spec: ChainSpec) -> dict[bytes, AllocAccount]:
    """The spec's alloc in the engine's terms (bytes, ints)."""
    return {
        address: AllocAccount(
            balance=g.balance,
            nonce=g.nonce,
            code=bytes.fromhex(g.code[2:]),
            storage={int(k, 16): int(v, 16) for k, v in g.storage.items()},
        )
        for address, g in spec.alloc_bytes().items()
    }


def genesis_diff(spec: ChainSpec) -> StateDiff:
    """The genesis state as a diff on the empty state: what storage writes for block 0."""
    accounts, storage, code = alloc_contents(genesis_alloc(spec))
    return StateDiff(
        accounts=dict(accounts),
        storage=tuple(
            StorageDiff(address, False, tuple((k, v, 0) for k, v in slots))
            for address, slots, _ in storage
        ),
        code=tuple(code),
        previous=dict.fromkeys(dict(accounts)),
    )


def genesis_state_root(spec: ChainSpec) -> bytes:
    """The Ethereum state root of the spec's alloc."""
    return RevmEngine.from_alloc(
        genesis_alloc(spec), fork=spec.fork, chain_id=spec.chain_id
    ).state_root


def genesis_header(spec: ChainSpec) -> Header:
    """The genesis header of ``spec`` (without approvals: nobody authors block 0)."""
    empty_root = ordered_trie_root([])
    return Header(
        parent_hash=bytes(32),
        number=0,
        slot=0,
        timestamp=spec.genesis_timestamp,
        author=spec.fee_recipient_bytes(),
        state_root=genesis_state_root(spec),
        transactions_root=empty_root,
        receipts_root=empty_root,
        logs_bloom=bytes(256),
        gas_limit=spec.gas_limit,
        gas_used=0,
        base_fee_per_gas=spec.fees.initial_base_fee,
    )


def store_genesis(spec: ChainSpec) -> StoreGenesis:
    """What the store checks a data directory against, and writes into an empty one."""
    return StoreGenesis(genesis_header(spec), genesis_diff(spec), msgspec.json.encode(spec))

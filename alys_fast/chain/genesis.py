"""Block 0 of a chain, derived from its spec alone, so every node computes the same one.

The genesis header has no parent (zero hash), slot 0, the spec's timestamp, no author and no
signature; its state root commits to the spec's ``alloc`` and its base fee is the spec's
initial base fee. Its hash identifies the chain: a data directory whose block 0 has another
hash belongs to another chain.
"""

from __future__ import annotations

from alys_fast.chain.spec import ChainSpec
from alys_fast.engine.state import Account, State
from alys_fast.validation import Header, ordered_trie_root


def genesis_accounts(spec: ChainSpec) -> dict[bytes, Account]:
    """The prefunded accounts of ``spec`` as engine accounts (empty ones are left out)."""
    accounts = {
        address: Account(nonce=g.nonce, balance=g.balance)
        for address, g in spec.alloc_bytes().items()
    }
    return {address: a for address, a in accounts.items() if not a.is_empty()}


def genesis_header(spec: ChainSpec) -> Header:
    """The genesis header of ``spec`` (unsigned: nobody authors block 0)."""
    empty_root = ordered_trie_root([])
    return Header(
        parent_hash=bytes(32),
        number=0,
        slot=0,
        timestamp=spec.genesis_timestamp,
        author=bytes(20),
        state_root=State(genesis_accounts(spec)).root,
        transactions_root=empty_root,
        receipts_root=empty_root,
        logs_bloom=bytes(256),
        gas_limit=spec.gas_limit,
        gas_used=0,
        base_fee_per_gas=spec.fees.initial_base_fee,
    )

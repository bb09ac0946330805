"""Genesis from the spec alone, and Aura slot arithmetic."""

from __future__ import annotations

import coincurve
import msgspec
import pytest

from alys_fast.chain.aura import slot_at, slot_author_index, slot_start_ms, slot_timestamp
from alys_fast.chain.genesis import genesis_accounts, genesis_header
from alys_fast.chain.spec import ETHER, GenesisAccount, dev_spec
from alys_fast.chain.workflows import authority_addresses
from alys_fast.engine import EmbeddedEngine
from alys_fast.engine.state import State
from alys_fast.validation import Block, ordered_trie_root, sign_header, validate_block

# --- genesis ----------------------------------------------------------------------------------


def test_dev_genesis_is_deterministic_and_commits_to_the_alloc() -> None:
    spec = dev_spec()
    header = genesis_header(spec)
    assert genesis_header(dev_spec()) == header
    assert genesis_header(dev_spec()).hash == header.hash
    assert header.number == 0 and header.slot == 0
    assert header.parent_hash == bytes(32)
    assert header.timestamp == spec.genesis_timestamp
    assert header.base_fee_per_gas == spec.fees.initial_base_fee
    assert header.gas_limit == spec.gas_limit and header.gas_used == 0
    assert header.transactions_root == header.receipts_root == ordered_trie_root([])
    assert header.author == bytes(20) and header.signature == b""
    accounts = genesis_accounts(spec)
    assert len(accounts) == 10
    assert {a.balance for a in accounts.values()} == {10_000 * ETHER}
    assert header.state_root == State(accounts).root
    # The engine started from the same spec holds the state the header commits to.
    assert header.state_root == EmbeddedEngine.from_spec(spec).state_root


def test_another_alloc_is_another_chain() -> None:
    spec = dev_spec()
    richer = dict(spec.alloc)
    first = next(iter(richer))
    richer[first] = GenesisAccount(balance=richer[first].balance + 1)
    other = msgspec.structs.replace(spec, alloc=richer)
    assert genesis_header(other).state_root != genesis_header(spec).state_root
    assert genesis_header(other).hash != genesis_header(spec).hash


def test_empty_alloc_accounts_are_left_out() -> None:
    spec = dev_spec()
    alloc = {**spec.alloc, "0x" + "ab" * 20: GenesisAccount(balance=0)}
    with_empty = msgspec.structs.replace(spec, alloc=alloc)
    assert genesis_accounts(with_empty) == genesis_accounts(spec)
    assert genesis_header(with_empty) == genesis_header(spec)
    assert EmbeddedEngine.from_spec(with_empty).state_root == genesis_header(spec).state_root


def test_other_spec_fields_change_the_genesis_hash() -> None:
    spec = dev_spec()
    fees = msgspec.structs.replace(spec.fees, initial_base_fee=7)
    for other in (
        msgspec.structs.replace(spec, fees=fees),
        msgspec.structs.replace(spec, gas_limit=spec.gas_limit - 1),
        msgspec.structs.replace(spec, genesis_timestamp=1_700_000_000),
    ):
        assert genesis_header(other).hash != genesis_header(spec).hash


# --- Aura slots -------------------------------------------------------------------------------

KEYS = [bytes([i]) * 32 for i in (1, 2, 3)]


def _three_authorities():
    pubkeys = tuple(
        "0x" + coincurve.PrivateKey(k).public_key.format(compressed=True).hex() for k in KEYS
    )
    return msgspec.structs.replace(dev_spec(), authorities=pubkeys)


@pytest.mark.parametrize(
    ("unix_ms", "slot_ms", "slot"),
    [(0, 1000, 0), (999, 1000, 0), (1000, 1000, 1), (1_700_000_000_123, 2000, 850_000_000),
     (1_249, 250, 4), (1_250, 250, 5)],
)
def test_slot_at_and_its_start(unix_ms: int, slot_ms: int, slot: int) -> None:
    assert slot_at(unix_ms, slot_ms) == slot
    assert slot_start_ms(slot, slot_ms) <= unix_ms < slot_start_ms(slot + 1, slot_ms)


def test_authors_rotate_through_the_authorities() -> None:
    spec = _three_authorities()
    assert [slot_author_index(spec, slot) for slot in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert slot_author_index(dev_spec(), 12_345) == 0  # one authority authors every slot


def test_the_slot_author_is_the_author_validation_expects() -> None:
    spec = _three_authorities()
    parent = genesis_header(spec)
    for slot in range(1, 7):
        header = msgspec.structs.replace(
            parent,
            parent_hash=parent.hash,
            number=parent.number + 1,
            slot=slot,
            timestamp=slot_timestamp(slot, spec.slot_ms),
        )
        block = Block(sign_header(header, KEYS[slot_author_index(spec, slot)]))
        validate_block(
            block, parent, authorities=authority_addresses(spec), chain_id=spec.chain_id
        )
        parent = block.header


@pytest.mark.parametrize(
    ("slot", "slot_ms", "timestamp"),
    [(0, 1000, 0), (3, 2000, 6), (1, 250, 0), (3, 250, 0), (4, 250, 1), (7, 1500, 10)],
)
def test_slot_timestamp_is_the_slot_start_in_seconds(
    slot: int, slot_ms: int, timestamp: int
) -> None:
    assert slot_timestamp(slot, slot_ms) == timestamp
    assert slot_timestamp(slot, slot_ms) == slot_start_ms(slot, slot_ms) // 1000

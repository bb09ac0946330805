"""Genesis from the spec alone, and Aura slot arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from eth_utils import keccak

from alys_fast.chain.aura import slot_at, slot_author_index, slot_start_ms, slot_timestamp
from alys_fast.chain.genesis import genesis_alloc, genesis_diff, genesis_header, genesis_state_root
from alys_fast.chain.spec import ETHER, GenesisAccount, dev_spec
from alys_fast.consensus import SecretKey
from alys_fast.engine import EMPTY_CODE_HASH, EMPTY_ROOT, Account, AllocAccount, RevmEngine
from alys_fast.engine.interface import BlockEnv, CallRequest
from alys_fast.engine.revm import finish
from alys_fast.state import StorageDiff
from alys_fast.validation import (
    Block,
    InvalidBlock,
    header_approvals,
    ordered_trie_root,
    sign_header,
    validate_block,
)
from alys_fast.validation.blocks import NO_APPROVALS
from tests.engine.reference import reference_state_root, reference_storage_root

CONTRACTS = Path(__file__).resolve().parents[1] / "data" / "contracts"
TOKEN = json.loads((CONTRACTS / "Token.json").read_text())
TOKEN_ADDRESS = "0x" + "70" * 20

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
    # The fee recipient, as every block's author; no approvals (the empty aggregate, Alys's).
    assert header.author == spec.fee_recipient_bytes() and header.signature == NO_APPROVALS
    assert header_approvals(header).count == 0
    alloc = genesis_alloc(spec)
    assert len(alloc) == 10
    assert all(a == AllocAccount(balance=10_000 * ETHER) for a in alloc.values())
    # The Ethereum state root of ten funded accounts, computed here without the engine.
    assert header.state_root == genesis_state_root(spec) == reference_state_root(alloc)
    assert header.state_root != EMPTY_ROOT
    # The engine started from the same alloc holds the state the header commits to.
    engine = RevmEngine.from_alloc(alloc, fork=spec.fork, chain_id=spec.chain_id)
    assert engine.state_root == header.state_root
    for address in alloc:
        assert engine.account(address) == Account(0, 10_000 * ETHER)
    # What storage writes for block 0 is the same state.
    diff = genesis_diff(spec)
    assert diff.accounts == {address: Account(0, 10_000 * ETHER) for address in alloc}
    assert diff.previous == dict.fromkeys(alloc)
    assert diff.storage == () and diff.code == ()


def test_another_alloc_is_another_chain() -> None:
    spec = dev_spec()
    richer = dict(spec.alloc)
    first = next(iter(richer))
    richer[first] = GenesisAccount(balance=richer[first].balance + 1)
    other = msgspec.structs.replace(spec, alloc=richer)
    assert genesis_header(other).state_root != genesis_header(spec).state_root
    assert genesis_header(other).hash != genesis_header(spec).hash
    assert genesis_header(other).state_root == reference_state_root(genesis_alloc(other))


def test_empty_alloc_accounts_are_left_out() -> None:
    spec = dev_spec()
    alloc = {**spec.alloc, "0x" + "ab" * 20: GenesisAccount(balance=0)}
    with_empty = msgspec.structs.replace(spec, alloc=alloc)
    assert genesis_diff(with_empty) == genesis_diff(spec)
    assert genesis_header(with_empty) == genesis_header(spec)
    engine = RevmEngine.from_alloc(genesis_alloc(with_empty), chain_id=spec.chain_id)
    assert engine.state_root == genesis_header(spec).state_root


def _token_spec(supply: int):
    """The dev spec plus a Token in the alloc: its runtime code and the storage its
    constructor would leave (totalSupply in slot 0, balanceOf[dev 0] in mapping slot 1)."""
    spec = dev_spec()
    holder = bytes.fromhex(next(iter(spec.alloc))[2:])
    balance_slot = int.from_bytes(keccak(bytes(12) + holder + (1).to_bytes(32, "big")), "big")
    token = GenesisAccount(
        nonce=1,
        code=TOKEN["deployedBytecode"],
        storage={"0x0": hex(supply), hex(balance_slot): hex(supply), "0x5": "0x0"},
    )
    return msgspec.structs.replace(spec, alloc={**spec.alloc, TOKEN_ADDRESS: token}), holder


def test_a_contract_in_the_alloc_is_in_the_state_root_and_runs() -> None:
    supply = 10**24
    spec, holder = _token_spec(supply)
    address = bytes.fromhex(TOKEN_ADDRESS[2:])
    code = bytes.fromhex(TOKEN["deployedBytecode"][2:])
    alloc = genesis_alloc(spec)
    assert alloc[address].code == code and alloc[address].storage[5] == 0
    root = genesis_state_root(spec)
    assert genesis_header(spec).state_root == root == reference_state_root(alloc)
    assert root != genesis_state_root(dev_spec())
    slots = {k: v for k, v in alloc[address].storage.items() if v}
    assert len(slots) == 2
    engine = RevmEngine.from_alloc(alloc, chain_id=spec.chain_id)
    assert engine.account(address) == Account(
        1, 0, keccak(code), reference_storage_root(slots)
    )
    assert engine.account(address).code_hash != EMPTY_CODE_HASH
    # Block 0's diff: the account, its non-zero slots (new values on nothing), its code.
    diff = genesis_diff(spec)
    assert diff.accounts[address] == engine.account(address)
    assert diff.storage == (
        StorageDiff(address, False, tuple((k, v, 0) for k, v in sorted(slots.items()))),
    )
    assert diff.code == (code,)
    # The contract answers from its genesis storage: balanceOf(holder).
    selector = bytes.fromhex(TOKEN["methodIdentifiers"]["balanceOf(address)"])
    env = BlockEnv(number=1, timestamp=1, fee_recipient=bytes(20), gas_limit=spec.gas_limit,
                   base_fee=0)
    request = CallRequest(sender=holder, to=address, data=selector + bytes(12) + holder,
                          gas=100_000)
    result = finish(engine.call_steps(env, request), engine.source)
    assert result.success and result.output == supply.to_bytes(32, "big")


def test_other_spec_fields_change_the_genesis_hash() -> None:
    spec = dev_spec()
    fees = msgspec.structs.replace(spec.fees, initial_base_fee=7)
    for other in (
        msgspec.structs.replace(spec, fees=fees),
        msgspec.structs.replace(spec, gas_limit=spec.gas_limit - 1),
        msgspec.structs.replace(spec, genesis_timestamp=1_700_000_000),
        msgspec.structs.replace(spec, fee_recipient="0x" + "ee" * 20),
    ):
        assert genesis_header(other).hash != genesis_header(spec).hash


# --- Aura slots -------------------------------------------------------------------------------

KEYS = [SecretKey.from_bytes(bytes([i]) * 32) for i in (1, 2, 3)]


def _three_authorities():
    pubkeys = tuple("0x" + k.public_key().to_bytes().hex() for k in KEYS)
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
    """A proposal (its author's signature alone, ``min_approvals=1``) is valid when signed by
    its slot's author and only then."""
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
        author = slot_author_index(spec, slot)
        other = (author + 1) % 3

        def check(index: int, header=header, parent=parent) -> None:
            block = Block(sign_header(header, KEYS[index], index))
            validate_block(block, parent, authorities=spec.authority_keys(),
                           chain_id=spec.chain_id, min_approvals=1)

        check(author)
        with pytest.raises(InvalidBlock, match="not approved by the slot's author"):
            check(other)
        parent = header


@pytest.mark.parametrize(
    ("slot", "slot_ms", "timestamp"),
    [(0, 1000, 0), (3, 2000, 6), (1, 250, 0), (3, 250, 0), (4, 250, 1), (7, 1500, 10)],
)
def test_slot_timestamp_is_the_slot_start_in_seconds(
    slot: int, slot_ms: int, timestamp: int
) -> None:
    assert slot_timestamp(slot, slot_ms) == timestamp
    assert slot_timestamp(slot, slot_ms) == slot_start_ms(slot, slot_ms) // 1000

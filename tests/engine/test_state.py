"""The state commitment: incremental updates agree with a from-scratch reference."""

from __future__ import annotations

import random

import pytest

from alys_fast.engine.state import Account, State, keccak256, reference_root


def test_empty_state_root_is_reference() -> None:
    assert State().root == reference_root({})


def test_incremental_matches_reference_over_random_blocks() -> None:
    rng = random.Random(5)
    addresses = [rng.randbytes(20) for _ in range(3000)]
    # Force bucket collisions: addresses whose keys share the first two bytes.
    by_bucket: dict[bytes, list[bytes]] = {}
    for a in addresses:
        by_bucket.setdefault(keccak256(a)[:2], []).append(a)
    assert any(len(v) > 1 for v in by_bucket.values())
    state = State()
    model: dict[bytes, Account] = {}
    for _ in range(30):
        changes: dict[bytes, Account | None] = {}
        for a in rng.sample(addresses, 200):
            roll = rng.random()
            if roll < 0.15:
                changes[a] = None
            elif roll < 0.25:
                changes[a] = Account()  # empty: deletes (EIP-161)
            else:
                changes[a] = Account(rng.randrange(5), rng.randrange(1, 2**256))
        update = state.prepare(changes)
        for a, acct in changes.items():
            if acct is None or acct.is_empty():
                model.pop(a, None)
            else:
                model[a] = acct
        state.apply(update)
        assert state.root == update.root == reference_root(model)
        assert dict(state.items()) == model


def test_root_depends_on_every_field_and_not_on_order() -> None:
    a, b = b"\x01" * 20, b"\x02" * 20
    base = State({a: Account(1, 5), b: Account(0, 7)}).root
    assert State({b: Account(0, 7), a: Account(1, 5)}).root == base
    assert State({a: Account(2, 5), b: Account(0, 7)}).root != base
    assert State({a: Account(1, 6), b: Account(0, 7)}).root != base
    assert State({a: Account(1, 5, b"\x11" * 32), b: Account(0, 7)}).root != base
    assert State({a: Account(1, 5)}).root != base


def test_prepare_does_not_touch_state_and_stale_update_is_refused() -> None:
    a = b"\x01" * 20
    state = State({a: Account(0, 10)})
    before = state.root
    first = state.prepare({a: Account(1, 9)})
    second = state.prepare({a: Account(1, 8)})
    assert state.root == before and state.get(a) == Account(0, 10)
    state.apply(first)
    with pytest.raises(ValueError, match="prepared on root"):
        state.apply(second)
    assert state.get(a) == Account(1, 9)

"""Trie roots against published vectors, a real Cancun block, and the Yellow Paper spelled out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import rlp as reference_rlp
from Crypto.Hash import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from alys_fast.validation import ordered_trie_root
from alys_fast.validation.trie import EMPTY_TRIE_ROOT, trie_root

DATA = Path(__file__).parent / "data"


def kec(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


# --- the Yellow Paper's appendix D, literally (slow, obvious) -------------------------------


def hp(nibbles: Sequence[int], terminator: bool) -> bytes:
    flag = 2 if terminator else 0
    prefixed = [flag, 0, *nibbles] if len(nibbles) % 2 == 0 else [flag + 1, *nibbles]
    return bytes(16 * prefixed[k] + prefixed[k + 1] for k in range(0, len(prefixed), 2))


def n(items: list[tuple[tuple[int, ...], bytes]], i: int) -> object:
    if not items:
        return b""
    node = c(items, i)
    encoded = reference_rlp.encode(node)
    return node if len(encoded) < 32 else kec(encoded)


def c(items: list[tuple[tuple[int, ...], bytes]], i: int) -> object:
    if len(items) == 1:
        key, value = items[0]
        return [hp(key[i:], True), value]
    j = i
    while all(len(k) > j for k, _ in items) and len({k[j] for k, _ in items}) == 1:
        j += 1
    if j > i:
        return [hp(items[0][0][i:j], False), n(items, j)]
    slots: list[object] = [
        n([(k, v) for k, v in items if len(k) > i and k[i] == x], i + 1) for x in range(16)
    ]
    ending = [v for k, v in items if len(k) == i]
    return [*slots, ending[0] if ending else b""]


def reference_root(mapping: dict[bytes, bytes]) -> bytes:
    items = [(tuple(x for b in k for x in (b >> 4, b & 15)), v) for k, v in mapping.items()]
    if not items:
        return kec(reference_rlp.encode(b""))
    return kec(reference_rlp.encode(c(items, 0)))


# --- tests ----------------------------------------------------------------------------------


def test_empty_root() -> None:
    assert trie_root({}) == ordered_trie_root([]) == EMPTY_TRIE_ROOT
    assert kec(b"\x80") == EMPTY_TRIE_ROOT
    assert EMPTY_TRIE_ROOT.hex() == (
        "56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
    )


def test_published_vectors() -> None:
    # ethereum/tests TrieTests (trieanyorder "dogs" and "singleItem"), also in geth's trie tests.
    dogs = {b"doe": b"reindeer", b"dog": b"puppy", b"dogglesworth": b"cat"}
    assert trie_root(dogs).hex() == (
        "8aad789dff2f538bca5d8ea56e8abe10f4c7ba3a5dea95fea4cd6e7c3a1168d3"
    )
    assert trie_root({b"A": b"a" * 50}).hex() == (
        "d23786fb4a010da3ce639d66d5e904a11dbc02746d1ce25029e53290cabf28ab"
    )


def test_transactions_root_of_a_real_cancun_block() -> None:
    fixture = json.loads((DATA / "eth-block-all-tx-types.json").read_text())
    header, transactions, *_rest = reference_rlp.decode(bytes.fromhex(fixture["block"][2:]))
    raws = [reference_rlp.encode(tx) if isinstance(tx, list) else tx for tx in transactions]
    assert len(raws) == 4
    assert ordered_trie_root(raws) == header[4]


def test_rejects_empty_values() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        trie_root({b"k": b""})


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.binary(max_size=5), st.binary(min_size=1, max_size=40), max_size=25))
def test_matches_yellow_paper_reference(mapping: dict[bytes, bytes]) -> None:
    assert trie_root(mapping) == reference_root(mapping)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=120), max_size=300))
def test_ordered_root_matches_reference(values: list[bytes]) -> None:
    mapping = {reference_rlp.encode(i): v for i, v in enumerate(values)}
    assert ordered_trie_root(values) == reference_root(mapping)

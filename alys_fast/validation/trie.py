"""Root hash of an Ethereum Merkle-Patricia trie built in one pass from all its keys.

Blocks commit to their transactions (and later receipts) with the root of the trie mapping
``rlp(index) -> encoding``; the node needs only the root, never the nodes, so the trie is not
stored. Keys are split into nibbles and sorted; a group of keys becomes

* a leaf ``[hex_prefix(rest, leaf), value]`` when it holds one key,
* an extension ``[hex_prefix(shared), child]`` when all keys share more nibbles,
* else a branch of 16 children (by next nibble) plus the value of a key that ends here.

A child is referenced inline when its RLP is shorter than 32 bytes, else by its Keccak-256; the
root is always hashed (Ethereum Yellow Paper, appendix D).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from alys_fast._cext import require

_rlp = require("rlp")
_hashing = require("hashing")

EMPTY_TRIE_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")

_Node = list  # an RLP structure: [path, value] or 17 slots; children are _Node or 32-byte hashes
_Entry = tuple[bytes, bytes]  # (key as one nibble per byte, value)


def _nibbles(key: bytes) -> bytes:
    return bytes(n for byte in key for n in (byte >> 4, byte & 0x0F))


def _hex_prefix(nibbles: bytes, leaf: bool) -> bytes:
    """Compact encoding of a nibble path; the flag nibble says leaf/extension and odd/even."""
    flag = 2 if leaf else 0
    odd = len(nibbles) % 2
    nibbles = (bytes([flag + 1]) if odd else bytes([flag, 0])) + nibbles
    return bytes(nibbles[i] << 4 | nibbles[i + 1] for i in range(0, len(nibbles), 2))


def _reference(node: _Node) -> _Node | bytes:
    encoded = _rlp.encode(node)
    return node if len(encoded) < 32 else _hashing.keccak256(encoded)


def _shared_prefix(entries: Sequence[_Entry], depth: int) -> int:
    # Sorted keys: the first and last differ earliest, so their common prefix is everyone's.
    first, last = entries[0][0], entries[-1][0]
    limit = min(len(first), len(last))
    n = depth
    while n < limit and first[n] == last[n]:
        n += 1
    return n - depth


def _node(entries: Sequence[_Entry], depth: int) -> _Node:
    """The node for sorted ``entries`` whose keys all share their first ``depth`` nibbles."""
    if len(entries) == 1:
        key, value = entries[0]
        return [_hex_prefix(key[depth:], leaf=True), value]
    shared = _shared_prefix(entries, depth)
    if shared:
        path = entries[0][0][depth : depth + shared]
        return [_hex_prefix(path, leaf=False), _reference(_node(entries, depth + shared))]
    branch: list[_Node | bytes] = [b""] * 17
    start = 0
    if len(entries[0][0]) == depth:  # a key ending here sorts first; it is the branch's value
        branch[16] = entries[0][1]
        start = 1
    while start < len(entries):
        nibble = entries[start][0][depth]
        end = start
        while end < len(entries) and entries[end][0][depth] == nibble:
            end += 1
        branch[nibble] = _reference(_node(entries[start:end], depth + 1))
        start = end
    return branch


def trie_root(items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]]) -> bytes:
    """Root hash of the trie holding ``items`` (key -> value; a repeated key keeps its last value).

    Values must be non-empty: in Ethereum's trie an empty value means the key is absent.
    """
    unique = dict(items.items() if isinstance(items, Mapping) else items)
    if b"" in unique.values():
        raise ValueError("trie values must be non-empty (an empty value is an absent key)")
    entries = sorted((_nibbles(key), value) for key, value in unique.items())
    if not entries:
        return EMPTY_TRIE_ROOT
    return _hashing.keccak256(_rlp.encode(_node(entries, 0)))


def ordered_trie_root(values: Sequence[bytes]) -> bytes:
    """Root of the trie mapping ``rlp(i) -> values[i]``: a block's transactions root."""
    return trie_root((_rlp.encode(i), value) for i, value in enumerate(values))

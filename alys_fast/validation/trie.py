"""Root hash of an Ethereum Merkle-Patricia trie built in one pass from all its keys.

Blocks commit to their transactions (and later receipts) with the root of the trie mapping
``rlp(index) -> encoding``; the node needs only the root, never the nodes, so the trie is not
stored. The nodes are built in C (``cext/trie.pyx``). Keys are split into nibbles and sorted; a
group of keys becomes

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
_trie = require("trie")

EMPTY_TRIE_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")

# "0".."9", "a".."f" -> 0..15: hex text turned into one nibble per byte in C.
_NIBBLE = bytes.maketrans(b"0123456789abcdef", bytes(range(16)))


def _nibbles(key: bytes) -> bytes:
    return key.hex().encode().translate(_NIBBLE)


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
    return _trie.root(entries)


def ordered_trie_root(values: Sequence[bytes]) -> bytes:
    """Root of the trie mapping ``rlp(i) -> values[i]``: a block's transactions root."""
    return trie_root((_rlp.encode(i), value) for i, value in enumerate(values))

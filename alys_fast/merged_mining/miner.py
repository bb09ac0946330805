"""A CPU merged miner's core: build the parent Bitcoin block that proves an Alys ``AuxBlock``.

The proof has the shape of Alys's dev miner (``AuxPow::mine``, ALYS-PROTOCOL §3.3): a parent
coinbase with three outputs whose output 2 is the 44-byte merged-mining commitment
``fabe6d6d || chain root || tree size LE32 || tree nonce LE32`` (AL1; the root's own bytes,
AL3), alone in its parent block (empty coinbase branch), under a parent header of version
``parent_chain_id << 16``. Unlike Alys's miner the coinbase has one (null) input: a Bitcoin
coinbase has one, Bitcoin's decoder needs it to tell a zero-input transaction from a segwit
marker, and the verifier's R5 asks for it. Its scriptSig carries an extra nonce, so a
search past 2**32 header nonces moves on to a new merkle root.

:func:`grind` searches header nonces with the compiled SHA256d; the ``alys-fast miner``
command (``alys_fast.merged_mining.cli``) runs it in several processes against a node's
``createauxblock``/``submitauxblock``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alys_fast.auxpow import AuxPowError, expected_index, sha256d, target_from_bits

MM_HEADER = b"\xfa\xbe\x6d\x6d"
COINBASE_TAG = b"alys-fast"
NONCES = 1 << 32
MAX_CHAIN_BRANCH = 30


class AuxBlockError(ValueError):
    """A ``createauxblock`` answer that does not have Alys's ``AuxBlock`` shape."""


@dataclass(frozen=True, slots=True)
class AuxBlock:
    """Alys's ``createauxblock`` result (§3.1). ``hash`` and ``previous_block_hash`` are the
    bytes the hex spells (Alys's consensus hex: internal order, no reversal)."""

    hash: bytes
    chain_id: int
    previous_block_hash: bytes
    coinbase_value: int
    bits: int
    height: int
    target: int

    @classmethod
    def from_json(cls, data: object) -> AuxBlock:
        """Validate a decoded ``createauxblock`` result; AuxBlockError names the bad field."""
        if not isinstance(data, Mapping):
            raise AuxBlockError("createauxblock did not answer a JSON object")
        block = cls(
            hash=_hash_field(data, "hash"),
            chain_id=_uint_field(data, "chainid", 32),
            previous_block_hash=_hash_field(data, "previousblockhash"),
            coinbase_value=_uint_field(data, "coinbasevalue", 64),
            bits=_bits_field(data),
            height=_uint_field(data, "height", 64),
            target=int.from_bytes(_hex_field(data, "_target", 32), "little"),
        )
        try:
            bits_target = target_from_bits(block.bits)
        except AuxPowError as exc:
            raise AuxBlockError(f"bits: {exc.message}") from None
        if block.target != bits_target:
            raise AuxBlockError(
                f"_target {block.target:#x} is not the target of bits {block.bits:08x}"
            )
        return block


def _field(data: Mapping, name: str) -> object:
    if name not in data:
        raise AuxBlockError(f"createauxblock's answer has no \"{name}\"")
    return data[name]


def _hex_field(data: Mapping, name: str, size: int) -> bytes:
    value = _field(data, name)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise AuxBlockError(f"{name} must be {size} bytes of hex, got {str(value)[:80]}")
    return raw


def _hash_field(data: Mapping, name: str) -> bytes:
    return _hex_field(data, name, 32)


def _uint_field(data: Mapping, name: str, bits: int) -> int:
    value = _field(data, name)
    if type(value) is not int or not 0 <= value < 1 << bits:
        raise AuxBlockError(f"{name} must be an integer in 0..2**{bits}-1, got {value}")
    return value


def _bits_field(data: Mapping) -> int:
    value = _field(data, "bits")
    try:
        bits = int(value, 16) if isinstance(value, str) and len(value) <= 8 else -1
    except ValueError:
        bits = -1
    if bits < 0:
        raise AuxBlockError(f"bits must be the compact target as hex, got {str(value)[:80]}")
    return bits


def _compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def _script_push(data: bytes) -> bytes:
    if len(data) > 75:
        raise ValueError("a coinbase tag push is at most 75 bytes")
    return bytes([len(data)]) + data


def commitment_script(chain_root: bytes, tree_size: int = 1, tree_nonce: int = 0) -> bytes:
    """The 44-byte merged-mining output script (AL1): the root's own bytes (AL3)."""
    size_and_nonce = tree_size.to_bytes(4, "little") + tree_nonce.to_bytes(4, "little")
    return MM_HEADER + chain_root + size_and_nonce


def build_coinbase(commitment: bytes, extra_nonce: int = 0, tag: bytes = COINBASE_TAG) -> bytes:
    """A version-1 coinbase: one null input (scriptSig: ``tag``, ``extra_nonce``), three
    zero-value outputs, the commitment in output 2 as in Alys's ``AuxPow::mine``."""
    script_sig = _script_push(tag) + _script_push(extra_nonce.to_bytes(8, "little"))
    null_input = bytes(32) + b"\xff\xff\xff\xff" + _compact_size(len(script_sig)) + script_sig
    outputs = [b"", b"", commitment]
    return (
        (1).to_bytes(4, "little")
        + b"\x01"
        + null_input
        + b"\xff\xff\xff\xff"
        + _compact_size(len(outputs))
        + b"".join(bytes(8) + _compact_size(len(s)) + s for s in outputs)
        + bytes(4)
    )


def parent_chain_id(chain_id: int) -> int:
    """The parent header's chain id (version >> 16): Alys's miner uses 1; it must differ from
    the proof's chain id (R2, the parent may not carry ours), so chain 1 gets 2."""
    return 2 if chain_id == 1 else 1


def header_prefix(merkle_root: bytes, bits: int, chain_id: int, time: int = 0) -> bytes:
    """The parent header's first 76 bytes (all but the nonce): version ``parent_chain_id << 16``,
    no previous block, the coinbase's txid as merkle root."""
    version = parent_chain_id(chain_id) << 16
    return (
        version.to_bytes(4, "little")
        + bytes(32)
        + merkle_root
        + time.to_bytes(4, "little")
        + bits.to_bytes(4, "little")
    )


def grind(prefix: bytes, target: int, start: int, count: int) -> int | None:
    """The first nonce in ``start .. start+count-1`` whose header's SHA256d, read little-endian,
    is <= ``target`` (Bitcoin's PoW comparison), or None."""
    bound = min(target, 2**256 - 1).to_bytes(32, "little")[::-1]
    hash_ = sha256d
    for nonce in range(start, min(start + count, NONCES)):
        if hash_(prefix + nonce.to_bytes(4, "little"))[::-1] <= bound:
            return nonce
    return None


def txid(coinbase: bytes) -> bytes:
    """A transaction's id (SHA256d of its non-witness encoding; this coinbase has no witness)."""
    return sha256d(coinbase)


def _pair(left: bytes, right: bytes) -> bytes:
    return sha256d(left + right)


def chain_tree(
    aux_hash: bytes, chain_id: int, others: Sequence[bytes] = (), tree_nonce: int = 0
) -> tuple[bytes, tuple[bytes, ...], int]:
    """A merged-mining tree holding ``aux_hash`` at its slot (R10's expected index) among
    ``others`` (the other chains' hashes; the tree has ``2**ceil(log2(len+1))`` leaves, unused
    ones zero). Returns (root, branch from ``aux_hash`` to the root, side mask = slot)."""
    height = 0
    while 1 << height < len(others) + 1:
        height += 1
    if height > MAX_CHAIN_BRANCH:
        raise ValueError(f"a chain tree has at most 2**{MAX_CHAIN_BRANCH} leaves")
    slot = expected_index(tree_nonce, chain_id, height)
    leaves = [bytes(32)] * (1 << height)
    fill = iter(others)
    for i in range(len(leaves)):
        if i != slot:
            leaves[i] = next(fill, bytes(32))
    leaves[slot] = aux_hash
    branch = []
    index = slot
    while len(leaves) > 1:
        branch.append(leaves[index ^ 1])
        leaves = [_pair(leaves[i], leaves[i + 1]) for i in range(0, len(leaves), 2)]
        index >>= 1
    return leaves[0], tuple(branch), slot


def serialize_auxpow(
    coinbase: bytes,
    parent_header: bytes,
    coinbase_branch: Sequence[bytes] = (),
    coinbase_mask: int = 0,
    chain_branch: Sequence[bytes] = (),
    chain_mask: int = 0,
) -> bytes:
    """The namecoin consensus encoding (RULES.md §1): coinbase, a zero legacy block hash, each
    branch as CompactSize count, hashes and u32 LE side mask, then the 80-byte parent."""
    return (
        coinbase
        + bytes(32)
        + _compact_size(len(coinbase_branch))
        + b"".join(coinbase_branch)
        + (coinbase_mask & 0xFFFFFFFF).to_bytes(4, "little")
        + _compact_size(len(chain_branch))
        + b"".join(chain_branch)
        + (chain_mask & 0xFFFFFFFF).to_bytes(4, "little")
        + parent_header
    )


@dataclass(frozen=True, slots=True)
class MiningJob:
    """One piece of work: the proof's parts that do not depend on the header nonce.

    ``others`` are other merged-mined chains' hashes sharing the parent (none for a plain
    Alys miner; the benchmark and tests use them for a non-empty chain branch)."""

    aux_hash: bytes
    chain_id: int
    bits: int
    others: tuple[bytes, ...] = ()
    tree_nonce: int = 0
    time: int = 0

    @classmethod
    def for_block(cls, block: AuxBlock, time: int = 0) -> MiningJob:
        return cls(block.hash, block.chain_id, block.bits, time=time)

    @property
    def target(self) -> int:
        return target_from_bits(self.bits)

    def _tree(self) -> tuple[bytes, tuple[bytes, ...], int]:
        return chain_tree(self.aux_hash, self.chain_id, self.others, self.tree_nonce)

    def coinbase(self, extra_nonce: int) -> bytes:
        root, branch, _slot = self._tree()
        return build_coinbase(
            commitment_script(root, 1 << len(branch), self.tree_nonce), extra_nonce
        )

    def prefix(self, extra_nonce: int) -> bytes:
        """The parent header's 76 bytes before the nonce, for this extra nonce."""
        return header_prefix(txid(self.coinbase(extra_nonce)), self.bits, self.chain_id, self.time)

    def proof(self, extra_nonce: int, nonce: int) -> bytes:
        """The serialized AuxPoW for a nonce :func:`grind` found."""
        _root, branch, slot = self._tree()
        parent = self.prefix(extra_nonce) + nonce.to_bytes(4, "little")
        return serialize_auxpow(self.coinbase(extra_nonce), parent, (), 0, branch, slot)

    def mine(self, extra_nonce: int = 0) -> bytes:
        """Search in this process until a proof is found (dev targets and tests)."""
        while True:
            nonce = grind(self.prefix(extra_nonce), self.target, 0, NONCES)
            if nonce is not None:
                return self.proof(extra_nonce, nonce)
            extra_nonce += 1

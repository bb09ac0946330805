"""A pure-Python AuxPoW verifier written from ``tests/data/auxpow/RULES.md`` alone.

It exists to check the compiled one (``cext/auxpow.pyx``): it shares no code with it (only
hashlib), so the tests can demand that both give the same verdict and the same rule code for
every vector and for random mutations, and the benchmark can show what compiling buys. It is
plain, slow Python; nothing on the node's path uses it.

Rules are checked in the compiled verifier's order, which is Dogecoin's (RULES.md §2 "Check
order"): parsing (``truncated``, ``non-canonical-size``, ``trailing-data``; a count larger
than the bytes left is ``truncated`` at once, as every counted item takes a byte), then R1-R10,
then V6. Profiles: ``namecoin`` (the commitment in the scriptSig, R1 enforced, CheckMerkleBranch
with index -1 giving zero) and ``alys`` (AL1-AL4: the commitment is all of output 2 or else 3, the
serialized indexes are u32 side masks, the script holds the root's own bytes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

HEADER_BYTES = 80
AUXPOW_FLAG = 0x100
MM_MAGIC = bytes.fromhex("fabe6d6d")
MAX_CHAIN_BRANCH = 30


class RuleBroken(ValueError):
    """A refused proof; ``code`` is the RULES.md code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


def double_sha256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def scrypt_pow(header: bytes) -> bytes:
    """Dogecoin's parent PoW hash (V6): scrypt N=1024, r=1, p=1, the header as password and salt."""
    return hashlib.scrypt(header, salt=header, n=1024, r=1, p=1, dklen=32)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def left(self) -> int:
        return len(self.data) - self.at

    def take(self, n: int) -> bytes:
        if n > self.left():
            raise RuleBroken("truncated", f"{n} bytes wanted at {self.at}")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def int32(self) -> int:
        return int.from_bytes(self.take(4), "little", signed=True)

    def varint(self) -> int:
        first = self.uint(1)
        widths = {0xFD: 2, 0xFE: 4, 0xFF: 8}
        if first not in widths:
            return first
        value = self.uint(widths[first])
        smallest = {0xFD: 0xFD, 0xFE: 0x10000, 0xFF: 0x100000000}[first]
        if value < smallest:
            raise RuleBroken("non-canonical-size", f"{value} written with {first:#x}")
        return value

    def count(self) -> int:
        """A CompactSize counting bytes or items that follow: no more than the bytes left."""
        value = self.varint()
        if value > self.left():
            raise RuleBroken("truncated", f"count {value} with {self.left()} bytes left")
        return value

    def hashes(self) -> list[bytes]:
        return [self.take(32) for _ in range(self.count())]


@dataclass
class Proof:
    """The fields of RULES.md §1 (the child header aside)."""

    txid: bytes
    script_sig: bytes | None  # vin[0].scriptSig; None when the coinbase has no input
    output_scripts: list[bytes]
    coinbase_branch: list[bytes]
    coinbase_index: int
    chain_branch: list[bytes]
    chain_index: int
    parent: bytes


def _read_coinbase(r: _Reader) -> tuple[bytes, bytes | None, list[bytes]]:
    """A Bitcoin transaction; returns its txid (witness stripped), scriptSig 0 and outputs."""
    version = r.take(4)
    segwit = r.data[r.at : r.at + 2] == b"\x00\x01"
    if segwit:
        r.take(2)
    body_from = r.at
    script_sig = None
    inputs = r.count()
    for n in range(inputs):
        r.take(36)
        script = r.take(r.count())
        if n == 0:
            script_sig = script
        r.take(4)
    outputs = []
    for _ in range(r.count()):
        r.take(8)
        outputs.append(r.take(r.count()))
    body = r.data[body_from : r.at]
    if segwit:
        for _ in range(inputs):
            for _ in range(r.count()):
                r.take(r.count())
    lock_time = r.take(4)
    return double_sha256(version + body + lock_time), script_sig, outputs


def parse(data: bytes) -> Proof:
    """Read an AuxPoW and demand that nothing follows it."""
    r = _Reader(bytes(data))
    txid, script_sig, outputs = _read_coinbase(r)
    r.take(32)  # hashBlock, read by no rule
    coinbase_branch = r.hashes()
    coinbase_index = r.int32()
    chain_branch = r.hashes()
    chain_index = r.int32()
    parent = r.take(HEADER_BYTES)
    if r.left():
        raise RuleBroken("trailing-data", f"{r.left()} bytes left")
    return Proof(txid, script_sig, outputs, coinbase_branch, coinbase_index, chain_branch,
                 chain_index, parent)


def check_merkle_branch(leaf: bytes, branch: list[bytes], index: int) -> bytes:
    """Namecoin's CheckMerkleBranch: index bit set puts the branch hash on the left."""
    if index == -1:
        return bytes(32)
    node = leaf
    for sibling in branch:
        node = double_sha256(sibling + node) if index & 1 else double_sha256(node + sibling)
        index >>= 1
    return node


def fold_by_side_mask(leaf: bytes, branch: list[bytes], mask: int) -> bytes:
    """Alys's check_merkle_branch: bit n (of the u32 mask; n wraps at 32) picks the side."""
    mask &= 0xFFFFFFFF
    node = leaf
    for n, sibling in enumerate(branch):
        left = (mask >> (n % 32)) & 1
        node = double_sha256(sibling + node) if left else double_sha256(node + sibling)
    return node


def expected_index(nonce: int, chain_id: int, height: int) -> int:
    """getExpectedIndex, the LCG of RULES.md §3."""
    rand = (nonce * 1103515245 + 12345) % 2**32
    rand = ((rand + chain_id) * 1103515245 + 12345) % 2**32
    return rand % (1 << height)


def target_of_bits(bits: int) -> int:
    """SetCompact with DeriveTarget's refusals (negative, overflow, zero)."""
    exponent = bits >> 24
    mantissa = bits & 0x7FFFFF
    shift = 8 * (exponent - 3)
    target = mantissa << shift if shift >= 0 else mantissa >> -shift
    negative = mantissa and bits & 0x800000
    overflow = mantissa and (exponent > 34 or (exponent > 33 and mantissa > 0xFF)
                             or (exponent > 32 and mantissa > 0xFFFF))
    if negative or overflow or not target:
        raise RuleBroken("invalid-target-bits", f"{bits:#x}")
    return target


def _commitment(proof: Proof, root: bytes, profile: str) -> tuple[bytes, int]:
    """The script holding the commitment and the offset of the root in it (R6, R7, AL1)."""
    if profile == "alys":
        for script in proof.output_scripts[2:4]:
            if len(script) == 44 and script[:4] == MM_MAGIC and script[4:36] == root:
                return script, 4
        raise RuleBroken("chain-merkle-root-not-in-coinbase", "not in output 2 or 3")
    script = proof.script_sig or b""
    shown = root[::-1]  # RULES R6: the script holds the root reversed
    at = script.find(shown)
    if at < 0:
        raise RuleBroken("chain-merkle-root-not-in-coinbase")
    magic_at = script.find(MM_MAGIC)
    if magic_at >= 0:
        if script.find(MM_MAGIC, magic_at + 1) >= 0:
            raise RuleBroken("multiple-mm-headers")
        if magic_at + 4 != at:
            raise RuleBroken("mm-header-not-adjacent-to-root")
    elif at > 20:
        raise RuleBroken("root-beyond-first-20-bytes")
    return script, at


def check(
    proof: Proof,
    committed: bytes,
    chain_id: int,
    target: int,
    profile: str = "alys",
    strict_chain_id: bool = True,
    pow_algo: str = "sha256d",
) -> None:
    """R1-R10 then V6; raise RuleBroken with the first broken rule's code."""
    alys = profile == "alys"
    if not alys and proof.coinbase_index != 0:
        raise RuleBroken("nindex-not-zero")
    parent_chain = int.from_bytes(proof.parent[:4], "little") >> 16
    if strict_chain_id and parent_chain == chain_id:
        raise RuleBroken("parent-has-own-chain-id")
    height = len(proof.chain_branch)
    if height > MAX_CHAIN_BRANCH:
        raise RuleBroken("chain-merkle-branch-too-long")
    if alys:
        parent_root = fold_by_side_mask(proof.txid, proof.coinbase_branch, proof.coinbase_index)
    else:
        parent_root = check_merkle_branch(proof.txid, proof.coinbase_branch, 0)
    if parent_root != proof.parent[36:68]:
        raise RuleBroken("coinbase-not-in-parent-merkle-root")
    if proof.script_sig is None:
        raise RuleBroken("coinbase-has-no-inputs")
    if alys:
        root = fold_by_side_mask(committed, proof.chain_branch, proof.chain_index)
    else:
        root = check_merkle_branch(committed, proof.chain_branch, proof.chain_index)
    script, at = _commitment(proof, root, profile)
    tail = script[at + 32 :]
    if len(tail) < 8:
        raise RuleBroken("missing-tree-size-and-nonce")
    size = int.from_bytes(tail[:4], "little")
    nonce = int.from_bytes(tail[4:8], "little")
    if size != 1 << height:
        raise RuleBroken("tree-size-mismatch")
    if proof.chain_index != expected_index(nonce, chain_id, height):
        raise RuleBroken("wrong-chain-index")
    pow_hash = scrypt_pow(proof.parent) if pow_algo == "scrypt" else double_sha256(proof.parent)
    if int.from_bytes(pow_hash, "little") > target:
        raise RuleBroken("parent-pow-above-target")


def check_header(
    data: bytes,
    chain_id: int,
    profile: str = "namecoin",
    strict_chain_id: bool = True,
    chain_id_mask: int = 0xFFFF,
    pow_algo: str = "sha256d",
    bits: int | None = None,
) -> None:
    """A child header with its AuxPoW: V1/V3 (the flag), V2 (own chain id), the proof, V6
    against ``bits`` or the header's own nBits."""
    data = bytes(data)
    if len(data) < HEADER_BYTES:
        raise RuleBroken("truncated")
    header, rest = data[:HEADER_BYTES], data[HEADER_BYTES:]
    version = int.from_bytes(header[:4], "little")
    if not version & AUXPOW_FLAG:
        if rest:
            raise RuleBroken("trailing-data")
        raise ValueError("a header without the auxpow flag has no proof to check")
    if not rest:
        raise RuleBroken("auxpow-flag-without-auxpow")
    proof = parse(rest)
    if strict_chain_id and (version >> 16) & chain_id_mask != chain_id:
        raise RuleBroken("wrong-child-chain-id")
    target = target_of_bits(int.from_bytes(header[72:76], "little") if bits is None else bits)
    check(proof, double_sha256(header), chain_id, target, profile, strict_chain_id, pow_algo)

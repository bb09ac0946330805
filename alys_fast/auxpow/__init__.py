"""AuxPoW (merged mining) proofs: strict parsing and verification, compiled in ``cext/auxpow.pyx``.

Two profiles share one verifier: ``"alys"`` (the commitment is coinbase output 2 or 3, AL1-AL4
of RULES.md) and ``"namecoin"`` (the commitment is in the coinbase scriptSig, as Namecoin and
Dogecoin check it), so the module also serves as a standalone validator for those chains.
Every refusal is an :class:`AuxPowError` carrying RULES.md's rule code.
"""

import hashlib
from dataclasses import dataclass
from typing import Literal

from alys_fast._cext import require

_auxpow = require("auxpow")

AuxPowError = _auxpow.AuxPowError
sha256d = _auxpow.sha256d
expected_index = _auxpow.expected_index
merkle_root = _auxpow.merkle_root

Profile = Literal["alys", "namecoin"]
PowAlgo = Literal["sha256d", "scrypt"]


@dataclass(frozen=True, slots=True)
class AuxPow:
    """A parsed proof (RULES.md §1); hashes in internal byte order, as on the wire."""

    coinbase_tx: bytes
    coinbase_txid: bytes
    script_sig: bytes | None
    output_scripts: tuple[bytes, ...]
    coinbase_branch: tuple[bytes, ...]
    coinbase_index: int
    chain_branch: tuple[bytes, ...]
    chain_index: int
    parent_header: bytes


def parse_auxpow(data: bytes) -> AuxPow:
    """Parse a serialized AuxPoW; refuse truncation and trailing bytes (every byte consumed)."""
    return AuxPow(*_auxpow.parse(bytes(data)))


def parse_header(data: bytes) -> tuple[bytes, AuxPow | None]:
    """Split a block header from its AuxPoW: the flag (0x100) decides whether one follows."""
    header, rest = _auxpow.split_header(bytes(data))
    return header, None if rest is None else parse_auxpow(rest)


def target_from_bits(bits: int) -> int:
    """Bitcoin's SetCompact, refusing negative, overflowing and zero targets (DeriveTarget)."""
    size, word = bits >> 24, bits & 0x007FFFFF
    target = word >> 8 * (3 - size) if size <= 3 else word << 8 * (size - 3)
    negative = word != 0 and bits & 0x00800000
    overflow = word != 0 and (
        size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32)
    )
    if negative or overflow or target == 0:
        raise AuxPowError("invalid-target-bits", f"nBits {bits:#010x} gives no usable target")
    return target


def compact_from_target(target: int) -> int:
    """Bitcoin's GetCompact (Alys's ``target_to_compact_lossy``): keep the top three bytes,
    moving to a larger size when the top bit would read as a sign; 0 gives 0."""
    if not 0 <= target < 2**256:
        raise ValueError(f"a target is a 256-bit unsigned integer, got {target}")
    size = (target.bit_length() + 7) // 8
    word = target << 8 * (3 - size) if size <= 3 else target >> 8 * (size - 3)
    if word & 0x00800000:
        word >>= 8
        size += 1
    return word | size << 24


def parent_pow_hash(parent_header: bytes, pow_algo: PowAlgo = "sha256d") -> bytes:
    """The parent's PoW hash: SHA256d, or Dogecoin's scrypt(N=1024, r=1, p=1) of the header."""
    if pow_algo == "scrypt":
        return hashlib.scrypt(parent_header, salt=parent_header, n=1024, r=1, p=1, dklen=32)
    return sha256d(parent_header)


def verify_auxpow(
    auxpow: AuxPow,
    committed_hash: bytes,
    chain_id: int,
    target: int,
    profile: Profile = "alys",
    *,
    strict_chain_id: bool = True,
    pow_algo: PowAlgo = "sha256d",
) -> None:
    """Check that ``auxpow`` commits to ``committed_hash`` (internal byte order) for ``chain_id``
    and that its parent meets ``target``; raise AuxPowError naming the first broken rule."""
    if profile not in ("alys", "namecoin"):
        raise ValueError(f"unknown profile {profile!r}")
    proof = (
        auxpow.coinbase_tx,
        auxpow.coinbase_txid,
        auxpow.script_sig,
        auxpow.output_scripts,
        auxpow.coinbase_branch,
        auxpow.coinbase_index,
        auxpow.chain_branch,
        auxpow.chain_index,
        auxpow.parent_header,
    )
    pow_hash = parent_pow_hash(auxpow.parent_header, pow_algo)
    bound = min(target, 2**256 - 1).to_bytes(32, "little")
    _auxpow.check(
        proof, bytes(committed_hash), chain_id, profile == "alys", strict_chain_id, pow_hash, bound
    )


def verify_header(
    data: bytes,
    chain_id: int,
    profile: Profile = "namecoin",
    *,
    strict_chain_id: bool = True,
    chain_id_mask: int = 0xFFFF,
    pow_algo: PowAlgo = "sha256d",
    bits: int | None = None,
) -> None:
    """Check a header that carries its AuxPoW: V2 (own chain ID), then the proof against the
    target of ``bits`` (default: the header's nBits). Legacy headers (no flag) are not handled."""
    header, auxpow = parse_header(data)
    version = int.from_bytes(header[:4], "little")
    if auxpow is None:
        raise ValueError("a header without the auxpow flag has no proof to verify")
    if strict_chain_id and (version >> 16) & chain_id_mask != chain_id:
        raise AuxPowError(
            "wrong-child-chain-id", f"chain id {(version >> 16) & chain_id_mask}, not {chain_id}"
        )
    if bits is None:
        bits = int.from_bytes(header[72:76], "little")
    verify_auxpow(
        auxpow,
        sha256d(header),
        chain_id,
        target_from_bits(bits),
        profile,
        strict_chain_id=strict_chain_id,
        pow_algo=pow_algo,
    )

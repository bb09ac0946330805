"""Block approvals: one authority's signature of a block root, and their aggregate (Alys's).

An approval is an authority's BLS signature of the block's 32-byte root (ALYS-PROTOCOL §1.5);
the proposer's own signature is the first approval of its block. A block is *signed* (may be
imported) when an aggregate of approvals from at least :func:`threshold` distinct authorities
verifies: ``(2n + 2) // 3`` of ``n``, i.e. ceil(2n/3) (n=1: 1, 3: 2, 4: 3, 15: 10).

:class:`AggregateApproval` is Alys's ``AggregateApproval``: a bit per authority (at most 15) and
the sum of the set bits' signatures. :meth:`~AggregateApproval.add` *trusts* the signature it is
given: the fork choice verifies every individual approval when it arrives, so a bad one is
charged to the peer that sent it and never poisons an aggregate (with add-then-verify, as Alys
does, one bad share makes the whole aggregate fail with no way to tell whose it was). An index
already set is ignored, as in Alys. Aggregates that arrive whole (a synced block's, a proposal's)
are checked with :func:`verify` / :meth:`~AggregateApproval.signature_valid`.

Wire encodings, fixed-size and strict (decoding raises :class:`ApprovalError`):

- an aggregate, 98 bytes (to become a block header's item 14): the aggregation bits as the SSZ
  ``BitList[15]`` Alys serializes (2 bytes, bit i at byte i // 8, position i % 8, the length
  delimiter at bit 15), then the 96-byte aggregate signature;
- a gossiped :class:`Approval`, 137 bytes: root (32), height (8, big-endian), authority index
  (1), signature (96). The height is not signed (Alys signs the root alone): it only files an
  approval that arrives before its block; a wrong one only loses its sender's approval.

A :class:`Prevote` is ours, not Alys's: an authority's signed *preference* for a block, which
the fork choice gathers before it approves (``forkchoice.py``, rule 3). It is never part of a
certificate, so it signs a different message than an approval (:func:`prevote_message`: a
domain tag, the root and the prevote's round), and one cannot stand for the other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from alys_fast.consensus.bls import (
    SIGNATURE_SIZE,
    BlsError,
    PublicKey,
    SecretKey,
    Signature,
    fast_aggregate_verify,
)
from alys_fast.consensus.bls import (
    verify as bls_verify,
)

__all__ = [
    "AGGREGATE_SIZE",
    "APPROVAL_SIZE",
    "MAX_AUTHORITIES",
    "AggregateApproval",
    "Approval",
    "ApprovalError",
    "Prevote",
    "prevote_message",
    "sign_approval",
    "sign_prevote",
    "threshold",
    "verify",
]

MAX_AUTHORITIES = 15
ROOT_SIZE = 32
_BITS_SIZE = 2
_DELIMITER = 1 << MAX_AUTHORITIES
AGGREGATE_SIZE = _BITS_SIZE + SIGNATURE_SIZE
APPROVAL_SIZE = ROOT_SIZE + 8 + 1 + SIGNATURE_SIZE
_EMPTY = Signature.infinity()
_PREVOTE_TAG = b"alys-fast prevote"


class ApprovalError(ValueError):
    """An approval or aggregate that cannot be decoded; the message says why."""


def threshold(authorities: int) -> int:
    """Approvals a block needs among ``authorities``: ceil(2n/3) (Alys's ``majority_approved``)."""
    if not 1 <= authorities <= MAX_AUTHORITIES:
        raise ValueError(f"an authority set has 1 to {MAX_AUTHORITIES} members, got {authorities}")
    return (2 * authorities + 2) // 3


def _check_index(index: int) -> None:
    if not 0 <= index < MAX_AUTHORITIES:
        raise ApprovalError(f"an authority index is 0 to {MAX_AUTHORITIES - 1}, got {index}")


@dataclass(frozen=True, slots=True)
class AggregateApproval:
    """Approvals of one block root: bit i of ``bits`` is set when authority i's signature is in
    ``signature``. The default is Alys's ``new()``: no bits and the empty (infinity) aggregate."""

    bits: int = 0
    signature: Signature = _EMPTY

    def add(self, index: int, signature: Signature) -> AggregateApproval:
        """This aggregate with authority ``index``'s (already verified) ``signature``; itself
        unchanged if ``index`` is already in."""
        _check_index(index)
        if self.bits >> index & 1:
            return self
        return AggregateApproval(self.bits | 1 << index, self.signature + signature)

    def has(self, index: int) -> bool:
        return bool(self.bits >> index & 1)

    @property
    def count(self) -> int:
        return self.bits.bit_count()

    def indices(self) -> Iterator[int]:
        """The set authority indices, ascending."""
        return (i for i in range(MAX_AUTHORITIES) if self.bits >> i & 1)

    def signature_valid(self, root: bytes, authorities: Sequence[PublicKey]) -> bool:
        """Whether the signature aggregates exactly the set bits' signatures of ``root`` (no bit
        beyond the authority set, at least one bit)."""
        if self.bits >> len(authorities) or not self.bits:
            return False
        keys = [authorities[i] for i in self.indices()]
        return fast_aggregate_verify(keys, root, self.signature)

    def encode(self) -> bytes:
        """The 98-byte wire form (see the module docstring)."""
        return (self.bits | _DELIMITER).to_bytes(_BITS_SIZE, "little") + self.signature.to_bytes()

    @classmethod
    def decode(cls, data: bytes) -> AggregateApproval:
        if not isinstance(data, bytes) or len(data) != AGGREGATE_SIZE:
            size = len(data) if isinstance(data, bytes) else type(data).__name__
            raise ApprovalError(f"an aggregate approval is {AGGREGATE_SIZE} bytes, got {size}")
        bits = int.from_bytes(data[:_BITS_SIZE], "little")
        if not bits & _DELIMITER:
            raise ApprovalError("the aggregation bits lack their length delimiter (bit 15)")
        try:
            signature = Signature.from_bytes(data[_BITS_SIZE:])
        except BlsError as exc:
            raise ApprovalError(f"aggregate signature: {exc}") from None
        return cls(bits & ~_DELIMITER, signature)


def verify(aggregate: AggregateApproval, root: bytes, authorities: Sequence[PublicKey]) -> bool:
    """Whether ``aggregate`` signs ``root`` with at least :func:`threshold` of ``authorities``."""
    if aggregate.count < threshold(len(authorities)):
        return False
    return aggregate.signature_valid(root, authorities)


@dataclass(frozen=True, slots=True)
class Approval:
    """Authority ``index``'s signature of the block ``root`` at ``height`` (gossiped alone)."""

    height: int
    root: bytes
    index: int
    signature: Signature

    def valid(self, authorities: Sequence[PublicKey]) -> bool:
        """Whether ``index`` is an authority and the signature is its signature of ``root``."""
        return self.index < len(authorities) and bls_verify(
            authorities[self.index], self.root, self.signature
        )

    def encode(self) -> bytes:
        """The 137-byte wire form (see the module docstring)."""
        return (
            self.root
            + self.height.to_bytes(8, "big")
            + bytes((self.index,))
            + self.signature.to_bytes()
        )

    @classmethod
    def decode(cls, data: bytes) -> Approval:
        if not isinstance(data, bytes) or len(data) != APPROVAL_SIZE:
            size = len(data) if isinstance(data, bytes) else type(data).__name__
            raise ApprovalError(f"an approval is {APPROVAL_SIZE} bytes, got {size}")
        index = data[ROOT_SIZE + 8]
        _check_index(index)
        try:
            signature = Signature.from_bytes(data[ROOT_SIZE + 9 :])
        except BlsError as exc:
            raise ApprovalError(f"approval signature: {exc}") from None
        height = int.from_bytes(data[ROOT_SIZE : ROOT_SIZE + 8], "big")
        return cls(height, data[:ROOT_SIZE], index, signature)


def sign_approval(secret_key: SecretKey, index: int, height: int, root: bytes) -> Approval:
    """Authority ``index``'s approval of the block ``root`` at ``height``."""
    if len(root) != ROOT_SIZE:
        raise ValueError(f"a block root is {ROOT_SIZE} bytes, got {len(root)}")
    _check_index(index)
    return Approval(height, root, index, secret_key.sign(root))


def prevote_message(root: bytes, round_: int) -> bytes:
    """What a prevote signs: a tag no block root starts with, the root and the round."""
    return _PREVOTE_TAG + root + round_.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class Prevote:
    """Authority ``index`` prefers the block ``root`` at ``height``; ``round`` orders its
    preferences at that height (a later round replaces an earlier one; below 2**63)."""

    height: int
    root: bytes
    index: int
    round: int
    signature: Signature

    def valid(self, authorities: Sequence[PublicKey]) -> bool:
        """Whether ``index`` is an authority and the signature is its prevote of ``root`` in
        ``round``."""
        return self.index < len(authorities) and bls_verify(
            authorities[self.index], prevote_message(self.root, self.round), self.signature
        )


def sign_prevote(
    secret_key: SecretKey, index: int, height: int, root: bytes, round_: int
) -> Prevote:
    """Authority ``index``'s prevote for the block ``root`` at ``height`` in ``round_``."""
    if len(root) != ROOT_SIZE:
        raise ValueError(f"a block root is {ROOT_SIZE} bytes, got {len(root)}")
    _check_index(index)
    signature = secret_key.sign(prevote_message(root, round_))
    return Prevote(height, root, index, round_, signature)

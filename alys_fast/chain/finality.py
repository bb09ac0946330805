"""AuxPoW finality as plain state (no actors, no I/O): Alys's rules, ALYS-PROTOCOL §1.7, §3.2-3.6.

- **The aggregate.** A miner commits to ``SHA256d(h_1 || ... || h_n)`` over the hashes of every
  block after the last finalized one up to the head, oldest first. :class:`UnfinalizedHashes`
  keeps that list and a running SHA-256 over it, so the aggregate costs one hash copy however
  long the list is (``createauxblock`` with 10,000 unfinalized blocks), and dropping a
  finalized prefix rehashes only what is left.
- **A block with an AuxPoW header** is valid only if its range starts right after the last
  finalized block, ends at or before its parent, its ``height`` is the latest PoW block's
  number + 1, its chain id is the spec's, and the proof commits to the aggregate over the range
  with a parent block meeting ``next_work_required`` (compiled verifier, Alys profile).
  Importing it finalizes up to ``range_end`` and makes it the latest PoW block.
- **A block without one** is invalid once it is more than ``max_blocks_without_pow`` blocks
  past the last finalized block (``MissingRequiredPow``), so production halts until a proof
  arrives.

Unlike Alys, which keeps the finalized block in memory only (zero after a restart), the
:class:`FinalityState` is written with the block that changes it, so it survives a restart.
Two rules are stricter than Alys's, which does not check them: the chain id must be the
spec's, and ``height`` must follow the latest PoW block (what every Alys node puts there).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from alys_fast.actors import Refused
from alys_fast.auxpow import AuxPowError, parse_auxpow, target_from_bits, verify_auxpow
from alys_fast.auxpow.retarget import next_work_required
from alys_fast.chain.spec import ChainSpec
from alys_fast.validation.blocks import AuxPowHeader, Header
from alys_fast.validation.errors import InvalidBlock

MISSING_POW = "MissingRequiredPow"


def aggregate_hash(hashes: Iterable[bytes]) -> bytes:
    """``SHA256d(h_1 || ... || h_n)``: what a miner commits to for these blocks."""
    return hashlib.sha256(hashlib.sha256(b"".join(hashes)).digest()).digest()


def verify_commitment(proof: bytes, aggregate: bytes, chain_id: int, bits: int) -> None:
    """Check that ``proof`` commits to ``aggregate`` for ``chain_id`` with a parent block meeting
    ``bits``; AuxPowError names the broken RULES.md rule. The coinbase holds the aggregate's
    bytes as they are, the ``hash`` ``createauxblock`` hands out (Alys's byte order, AL3)."""
    verify_auxpow(parse_auxpow(proof), aggregate, chain_id, target_from_bits(bits), "alys")


class FinalityState(msgspec.Struct, frozen=True, array_like=True):
    """The last finalized block and the latest PoW block (its bits are the next retarget's
    base); persisted with the block that changes it."""

    finalized_number: int
    finalized_hash: bytes
    pow_number: int
    pow_hash: bytes
    pow_bits: int

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self)

    @classmethod
    def decode(cls, raw: bytes) -> FinalityState:
        return msgspec.msgpack.decode(raw, type=cls)

    @classmethod
    def genesis(cls, spec: ChainSpec, genesis_hash: bytes) -> FinalityState:
        """Before any proof: genesis is finalized and the latest PoW block, with the spec's bits."""
        return cls(0, genesis_hash, 0, genesis_hash, spec.bits)


class UnfinalizedHashes:
    """The hashes of the blocks after the last finalized one, oldest first, with a running
    SHA-256 over them (see the module docstring)."""

    def __init__(self, hashes: Iterable[bytes] = ()) -> None:
        self._hashes: list[bytes] = []
        self._position: dict[bytes, int] = {}
        self._running = hashlib.sha256()
        self._offset = 0  # hashes dropped from the front: positions stay valid without a rebuild
        for block_hash in hashes:
            self.append(block_hash)

    def __len__(self) -> int:
        return len(self._hashes)

    def append(self, block_hash: bytes) -> None:
        self._position[block_hash] = self._offset + len(self._hashes)
        self._hashes.append(block_hash)
        self._running.update(block_hash)

    def index(self, block_hash: bytes) -> int | None:
        """Where ``block_hash`` is in the list (0: the first unfinalized block), or None."""
        position = self._position.get(block_hash)
        return None if position is None else position - self._offset

    def first(self) -> bytes | None:
        return self._hashes[0] if self._hashes else None

    def last(self) -> bytes | None:
        return self._hashes[-1] if self._hashes else None

    def aggregate(self) -> bytes:
        """SHA256d over the whole list: one copy of the running hash."""
        return hashlib.sha256(self._running.copy().digest()).digest()

    def aggregate_through(self, index: int) -> bytes:
        """SHA256d over the first ``index + 1`` hashes."""
        if index == len(self._hashes) - 1:
            return self.aggregate()
        return aggregate_hash(self._hashes[: index + 1])

    def drop_through(self, index: int) -> None:
        """Forget the first ``index + 1`` hashes (now finalized)."""
        for block_hash in self._hashes[: index + 1]:
            del self._position[block_hash]
        self._hashes = self._hashes[index + 1:]
        self._offset += index + 1
        self._running = hashlib.sha256(b"".join(self._hashes))


@dataclass(frozen=True, slots=True)
class AuxWork:
    """What ``createauxblock`` hands a miner (Alys's ``AuxBlock``) and what its answer needs."""

    hash: bytes            # the aggregate, internal byte order
    range_start: bytes
    range_end: bytes
    bits: int
    chain_id: int
    previous_pow_hash: bytes
    height: int


class NoWork(Refused):
    """Nothing to mine: no block after the last finalized one, or the queued proof ends at the
    head (the chain actor refuses ``CreateAuxBlock`` with it)."""


class Finality:
    """The chain's finality: state, unfinalized hashes and the queued proof, with the rules of
    the module docstring. The chain actor owns one and feeds it every imported block."""

    def __init__(
        self, spec: ChainSpec, state: FinalityState, hashes: UnfinalizedHashes, head_number: int
    ) -> None:
        self.spec = spec
        self.state = state
        self.hashes = hashes
        self.head_number = head_number
        self.queued: AuxPowHeader | None = None
        if head_number - state.finalized_number != len(hashes):
            raise ValueError(
                f"{len(hashes)} unfinalized hashes for blocks {state.finalized_number + 1}.."
                f"{head_number}"
            )

    def blocks_since_finality(self, number: int | None = None) -> int:
        """How far block ``number`` (default: the head) is past the last finalized block."""
        return (self.head_number if number is None else number) - self.state.finalized_number

    def needs_pow(self, number: int) -> bool:
        """Whether block ``number`` is invalid without an AuxPoW header (§3.6)."""
        return self.blocks_since_finality(number) > self.spec.max_blocks_without_pow

    def required_bits(self) -> int:
        """The compact target a proof submitted now must meet (§3.5)."""
        state = self.state
        return next_work_required(
            state.pow_bits, state.pow_number, self.head_number, self.spec.retarget_params
        )

    def work(self) -> AuxWork:
        """The aggregate over every unfinalized block and how to prove it; NoWork if none."""
        start, end = self.hashes.first(), self.hashes.last()
        if start is None or end is None:
            raise NoWork("every block up to the head is finalized")
        if self.queued is not None and self.queued.range_end == end:
            raise NoWork("the queued proof already covers every block up to the head")
        return AuxWork(
            self.hashes.aggregate(), start, end, self.required_bits(), self.spec.pow_chain_id(),
            self.state.pow_hash, self.state.pow_number + 1,
        )

    def check_proof(self, aux: AuxPowHeader) -> int:
        """Check ``aux`` against the chain up to the head (§3.4 step 3); return the index of
        its range end in the unfinalized list. InvalidBlock names the broken rule; a bad proof
        is ``auxpow <RULES.md code>`` with the AuxPowError as cause."""
        if self.hashes.index(aux.range_start) != 0:
            raise InvalidBlock(
                "auxpow range does not start after the finalized block",
                range_start=aux.range_start, finalized=self.state.finalized_number,
            )
        end = self.hashes.index(aux.range_end)
        if end is None:
            raise InvalidBlock("auxpow range end is not an unfinalized block before this one",
                               range_end=aux.range_end)
        chain_id = self.spec.pow_chain_id()
        if aux.chain_id != chain_id:
            raise InvalidBlock("auxpow chain id is not the spec's", chain_id=aux.chain_id,
                               expected=chain_id)
        if aux.height != self.state.pow_number + 1:
            raise InvalidBlock("auxpow height does not follow the latest PoW block",
                               height=aux.height, expected=self.state.pow_number + 1)
        try:
            verify_commitment(
                aux.auxpow, self.hashes.aggregate_through(end), chain_id, self.required_bits()
            )
        except AuxPowError as exc:
            raise InvalidBlock(f"auxpow {exc.code}", reason=exc.message) from exc
        return end

    def check_block(self, header: Header) -> None:
        """The AuxPoW rules for ``header``, a child of the head; InvalidBlock names the rule."""
        if header.number != self.head_number + 1:
            raise InvalidBlock("block is not a child of the head", number=header.number,
                               head=self.head_number)
        if header.auxpow is not None:
            self.check_proof(header.auxpow)
        elif self.needs_pow(header.number):
            raise InvalidBlock(
                MISSING_POW, number=header.number, finalized=self.state.finalized_number,
                max_blocks_without_pow=self.spec.max_blocks_without_pow,
            )

    def state_after(self, header: Header) -> FinalityState | None:
        """The state importing ``header`` (already checked) leads to; None if unchanged."""
        aux = header.auxpow
        if aux is None:
            return None
        end = self.hashes.index(aux.range_end)
        assert end is not None, "state_after needs a checked header"
        return FinalityState(self.state.finalized_number + end + 1, aux.range_end,
                             header.number, header.hash, aux.bits)

    def advance(self, header: Header) -> None:
        """``header`` was imported on the head: finalize its range, clear the queued proof
        (it is in this block, or no longer starts after the finalized block), append it."""
        state = self.state_after(header)
        if state is not None:
            end = self.hashes.index(state.finalized_hash)
            assert end is not None
            self.hashes.drop_through(end)
            self.state = state
            self.queued = None
        self.hashes.append(header.hash)
        self.head_number = header.number

    def queue(self, aux: AuxPowHeader) -> bool:
        """Check ``aux`` and hold it for the next block this node authors (a proof submitted
        here or, with the network, received from a peer: one path). False if the same range is
        already queued (Alys ignores it)."""
        queued = self.queued
        if queued is not None and (queued.range_start, queued.range_end) == (
            aux.range_start, aux.range_end
        ):
            return False
        self.check_proof(aux)
        self.queued = aux
        return True

    def proof_for_next_block(self) -> AuxPowHeader | None:
        """The queued proof if it is still valid on the head (else dropped: it is stale)."""
        if self.queued is None:
            return None
        try:
            self.check_proof(self.queued)
        except InvalidBlock:
            self.queued = None
            raise
        return self.queued

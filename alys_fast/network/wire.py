"""The wire protocol between alys-fast nodes: msgspec Structs, every field bounded.

A frame is msgpack ``[version, payload]``; the payload is a tagged union (its first array
element is the kind, e.g. ``"approval"``). This is our protocol, not Alys's libp2p one
(ALYS-PROTOCOL §2): the same messages (blocks, approvals, AuxPoW headers, ranges of up to 1,024
blocks), on ZeroMQ instead of gossipsub and eth2 RPC.

Limits, and why:
- :data:`MAX_BLOCK_BYTES` 16 MiB: the largest block a 30M-gas chain can carry is about 7.5 MB
  (all-zero calldata at 4 gas a byte) plus headers; 16 MiB leaves room for a 60M gas limit.
  (The RPC body limit, 5 MiB, bounds one request, not a block.)
- :data:`MAX_FRAME` = one largest block plus 1 MiB: checked before any parsing, so a peer
  cannot make us allocate more; a :class:`BlocksResponse` carries as many blocks as fit
  (:func:`blocks_that_fit`) and the requester asks again from the next height.
- A transaction at most 128 KiB (geth's ``txMaxSize``), a batch at most 1,024 of them and
  :data:`MAX_BATCH_BYTES` in all; an AuxPoW header 64 KiB; a range at most 1,024 blocks
  (Alys's ``MAX_REQUEST_BLOCKS``); an approval's signature 96 bytes (a BLS12-381 G2 point).

:func:`decode` raises only :class:`WireError` (:class:`Oversized`, :class:`Malformed`,
:class:`VersionMismatch`), whatever the bytes. Kinds in :data:`CONSENSUS_KINDS` are accepted
only from federation members; :data:`GOSSIP_KINDS` are flooded (see ``peers.py``).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

# 2: prevotes (fork choice rule 3); a version-1 node would charge a peer for sending them.
PROTOCOL_VERSION = 2

MAX_BLOCK_BYTES = 16 * 1024 * 1024
MAX_FRAME = MAX_BLOCK_BYTES + 1024 * 1024
MAX_TX_BYTES = 128 * 1024
MAX_BATCH_TXS = 1024
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_AUXPOW_BYTES = 64 * 1024
MAX_RANGE = 1024
MAX_TEXT = 256
MAX_AUTHORITIES = 1024

# msgspec bounds must fit an int64: block numbers and chain ids do.
U64 = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Hash32 = Annotated[bytes, Meta(min_length=32, max_length=32)]
Text = Annotated[str, Meta(max_length=MAX_TEXT)]
Block = Annotated[bytes, Meta(max_length=MAX_BLOCK_BYTES)]
RawTx = Annotated[bytes, Meta(min_length=1, max_length=MAX_TX_BYTES)]


class Status(msgspec.Struct, frozen=True, array_like=True, tag="status"):
    """Where a node is: sent in answer to a :class:`Hello` and when its head moves."""

    chain_id: U64
    genesis_hash: Hash32
    head_number: U64
    head_hash: Hash32
    finalized_number: U64
    role: Literal["authority", "full"]
    listen: Text  # its listen address as ``alys://<node key hex>@host:port`` ("": none)


class Hello(Status, frozen=True, array_like=True, tag="hello"):
    """A :class:`Status` that asks for the peer's own in return (the first message on a link)."""


class NewBlock(msgspec.Struct, frozen=True, array_like=True, tag="new_block"):
    """A signed block, encoded as the chain stores it (the network does not parse it)."""

    block: Block


class Approval(msgspec.Struct, frozen=True, array_like=True, tag="approval"):
    """An authority's BLS signature over a block's root; ``height`` (not signed) files one
    that arrives before its block."""

    block_hash: Hash32
    height: U64
    authority_index: Annotated[int, Meta(ge=0, lt=MAX_AUTHORITIES)]
    signature: Annotated[bytes, Meta(min_length=96, max_length=96)]


class Prevote(msgspec.Struct, frozen=True, array_like=True, tag="prevote"):
    """An authority's signed preference for a block, before it approves one (the fork
    choice's rule 3); ``round`` orders one authority's prevotes at a height."""

    block_hash: Hash32
    height: U64
    authority_index: Annotated[int, Meta(ge=0, lt=MAX_AUTHORITIES)]
    round: U64
    signature: Annotated[bytes, Meta(min_length=96, max_length=96)]


class Transactions(msgspec.Struct, frozen=True, array_like=True, tag="transactions"):
    """A batch of raw (EIP-2718) transactions for the authors' pools."""

    raws: Annotated[list[RawTx], Meta(min_length=1, max_length=MAX_BATCH_TXS)]


class QueuedPow(msgspec.Struct, frozen=True, array_like=True, tag="queued_pow"):
    """An AuxPoW header (its RLP encoding) for the next block to carry."""

    header: Annotated[bytes, Meta(min_length=1, max_length=MAX_AUXPOW_BYTES)]


class BlocksRequest(msgspec.Struct, frozen=True, array_like=True, tag="blocks_request"):
    """Blocks ``start .. start + count - 1`` of the sender's canonical chain, please."""

    request_id: U64
    start: U64
    count: Annotated[int, Meta(ge=1, le=MAX_RANGE)]


class BlocksResponse(msgspec.Struct, frozen=True, array_like=True, tag="blocks_response"):
    """Consecutive blocks from ``start`` (fewer than asked when they would not fit a frame)."""

    request_id: U64
    start: U64
    blocks: Annotated[list[Block], Meta(max_length=MAX_RANGE)]


class Ping(msgspec.Struct, frozen=True, array_like=True, tag="ping"):
    nonce: U64


class Pong(msgspec.Struct, frozen=True, array_like=True, tag="pong"):
    nonce: U64


class Goodbye(msgspec.Struct, frozen=True, array_like=True, tag="goodbye"):
    """The sender is closing the link; ``reason`` is for the operator's log."""

    reason: Text


Payload = (
    Hello | Status | NewBlock | Approval | Prevote | Transactions | QueuedPow | BlocksRequest
    | BlocksResponse | Ping | Pong | Goodbye
)
Gossip = NewBlock | Approval | Prevote | Transactions | QueuedPow

#: Kinds only federation members may send.
CONSENSUS_KINDS = frozenset({"new_block", "approval", "prevote", "queued_pow"})
#: Kinds flooded to every peer (once, see ``peers.SeenSet``).
GOSSIP_KINDS = CONSENSUS_KINDS | {"transactions"}
ALL_KINDS = frozenset(
    t.__struct_config__.tag for t in Payload.__args__  # type: ignore[attr-defined]
)


class WireError(Exception):
    """A frame that is not a message of this protocol; the text is for the operator's log."""


class Oversized(WireError):
    """Larger than a limit: the frame, or a field's bound."""


class Malformed(WireError):
    """Not a well-formed message of this protocol."""


class VersionMismatch(WireError):
    """A well-formed frame of another protocol version."""

    def __init__(self, version: int) -> None:
        super().__init__(f"protocol version {version}, this node speaks {PROTOCOL_VERSION}")
        self.version = version


class _Frame(msgspec.Struct, array_like=True):
    version: Annotated[int, Meta(ge=0, le=2**32 - 1)]
    payload: msgspec.Raw


_frame_decoder = msgspec.msgpack.Decoder(_Frame)
_payload_decoder = msgspec.msgpack.Decoder(Payload)
_encoder = msgspec.msgpack.Encoder()


def kind_of(message: Payload) -> str:
    """The message's tag: ``"approval"``, ``"new_block"`` …"""
    return message.__struct_config__.tag  # type: ignore[return-value]


def encode(message: Payload) -> bytes:
    """The frame for ``message`` (never larger than :data:`MAX_FRAME` for a valid message)."""
    return _encoder.encode((PROTOCOL_VERSION, msgspec.Raw(_encoder.encode(message))))


def split(frame: bytes | memoryview) -> memoryview:
    """The payload bytes of a frame (what a gossip message id hashes); :class:`WireError` if the
    frame is too large or not ``[version, payload]`` of this version."""
    if len(frame) > MAX_FRAME:
        raise Oversized(f"frame of {len(frame)} bytes, the limit is {MAX_FRAME}")
    try:
        outer = _frame_decoder.decode(frame)
    except msgspec.MsgspecError as exc:
        raise Malformed(f"not a frame: {exc}") from None
    if outer.version != PROTOCOL_VERSION:
        raise VersionMismatch(outer.version)
    return memoryview(outer.payload)


def decode_payload(payload: bytes | memoryview) -> Payload:
    """The message in a frame's payload (see :func:`split`); only :class:`WireError` escapes."""
    try:
        message = _payload_decoder.decode(payload)
    except msgspec.ValidationError as exc:
        text = str(exc)
        raise (Oversized if "length <=" in text else Malformed)(text) from None
    except msgspec.MsgspecError as exc:
        raise Malformed(str(exc)) from None
    if type(message) is Transactions and sum(map(len, message.raws)) > MAX_BATCH_BYTES:
        raise Oversized(f"a transaction batch over {MAX_BATCH_BYTES} bytes")
    return message


def decode(frame: bytes | memoryview) -> Payload:
    """The message in ``frame``; raises :class:`WireError` and nothing else."""
    return decode_payload(split(frame))


def message_id(payload: bytes | memoryview) -> bytes:
    """A gossip message's id: SHA-256 of its payload (hardware-accelerated here, ~4× keccak's
    speed on a 100 kB block; the id only needs to be collision-resistant, not Ethereum's)."""
    return hashlib.sha256(payload).digest()


def blocks_that_fit(blocks: list[bytes], budget: int = MAX_BLOCK_BYTES) -> int:
    """How many of ``blocks`` (from the first) one :class:`BlocksResponse` may carry: at least
    one (a single block always fits a frame), then as many as keep it under ``budget``."""
    total = 0
    for count, block in enumerate(blocks):
        total += len(block) + 5  # msgpack's bin32 header
        if total > budget and count > 0:
            return count
    return len(blocks)

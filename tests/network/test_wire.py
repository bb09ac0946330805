"""The wire codec: every message round-trips; any other bytes raise WireError and only that."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alys_fast.network import wire
from alys_fast.network.wire import (
    MAX_FRAME,
    Approval,
    BlocksRequest,
    BlocksResponse,
    Goodbye,
    Hello,
    Malformed,
    NewBlock,
    Oversized,
    Ping,
    Pong,
    Prevote,
    QueuedPow,
    Status,
    Transactions,
    VersionMismatch,
    WireError,
)

H1, H2 = b"\x11" * 32, b"\x22" * 32
STATUS = dict(chain_id=212121, genesis_hash=H1, head_number=7, head_hash=H2, finalized_number=3,
              role="authority", listen="alys://" + "ab" * 32 + "@127.0.0.1:30303")
MESSAGES = [
    Hello(**STATUS),
    Status(**STATUS),
    NewBlock(b"\xf9" * 1000),
    Approval(H1, 12, 4, b"\x99" * 96),
    Prevote(H1, 12, 4, 2**63 - 1, b"\x99" * 96),
    Transactions([b"\x02tx1", b"\x02tx2" * 50]),
    QueuedPow(b"\xc0" * 300),
    BlocksRequest(9, 100, 1024),
    BlocksResponse(9, 100, [b"b1", b"b2"]),
    Ping(2**63 - 1),
    Pong(0),
    Goodbye("too many peers"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: wire.kind_of(m))
def test_every_message_round_trips(message):
    decoded = wire.decode(wire.encode(message))
    assert decoded == message
    assert type(decoded) is type(message)  # a Hello stays a Hello, not its Status base


def test_kinds_are_the_tags():
    assert {wire.kind_of(m) for m in MESSAGES} == wire.ALL_KINDS
    assert {"transactions"} == wire.GOSSIP_KINDS - wire.CONSENSUS_KINDS


def frame_of(*payload) -> bytes:
    """A frame of this protocol version around an arbitrary msgpack payload."""
    raw = msgspec.msgpack.encode(list(payload))
    return msgspec.msgpack.encode([wire.PROTOCOL_VERSION, msgspec.Raw(raw)])


@pytest.mark.parametrize(("frame", "error"), [
    (b"\x00" * (MAX_FRAME + 1), Oversized),                            # over the frame cap
    (frame_of("approval", H1, 3, 1, b"\x99" * 97), Oversized),            # a 97-byte signature
    (frame_of("approval", H1, 3, 1, b"\x99" * 95), Malformed),
    (frame_of("approval", b"\x11" * 31, 3, 1, b"\x99" * 96), Malformed),  # a 31-byte hash
    (frame_of("approval", H1, 3, -1, b"\x99" * 96), Malformed),
    (frame_of("blocks_request", 1, 0, 1025), Malformed),               # over 1,024 blocks
    (frame_of("blocks_request", 1, 0, 0), Malformed),
    (frame_of("transactions", [b"\x02"] * 1025), Oversized),
    (frame_of("transactions", [b"\x02" * (128 * 1024 + 1)]), Oversized),
    (frame_of("transactions", [b"\x02" * 100_000] * 42), Oversized),   # over 4 MiB in all
    (frame_of("transactions", []), Malformed),
    (frame_of("queued_pow", b"\x00" * (64 * 1024 + 1)), Oversized),
    (frame_of("goodbye", "x" * 257), Oversized),
    (frame_of("status", 1, H1, 1, H2, 0, "miner", ""), Malformed),     # no such role
    (frame_of("no_such_kind", 1), Malformed),
    (frame_of(), Malformed),
    (msgspec.msgpack.encode([wire.PROTOCOL_VERSION + 1,
                             msgspec.Raw(msgspec.msgpack.encode(["ping", 1]))]), VersionMismatch),
    (msgspec.msgpack.encode([1, msgspec.Raw(msgspec.msgpack.encode(["ping", 1]))]),
     VersionMismatch),                                                 # before prevotes
    (b"", Malformed),
    (b"\x92\x01", Malformed),                                          # truncated
    (wire.encode(Ping(1)) + b"\x00", Malformed),                       # trailing bytes
])
def test_bad_frames_raise_typed_errors(frame, error):
    with pytest.raises(error):
        wire.decode(frame)


def test_error_texts_are_for_people():
    with pytest.raises(WireError) as caught:
        wire.decode(frame_of("approval", H1, 3, 1, b"\x99" * 97))
    assert "b'" not in str(caught.value) and "length <= 96" in str(caught.value)


def test_a_full_block_fits_a_frame():
    frame = wire.encode(NewBlock(b"\x00" * wire.MAX_BLOCK_BYTES))
    assert len(frame) <= MAX_FRAME
    assert len(wire.decode(frame).block) == wire.MAX_BLOCK_BYTES


def test_blocks_that_fit_keeps_responses_under_the_cap():
    big = b"\x00" * (6 * 1024 * 1024)
    assert wire.blocks_that_fit([big] * 5) == 2
    assert wire.blocks_that_fit([b"\x00" * (20 * 1024 * 1024)]) == 1   # one always goes
    assert wire.blocks_that_fit([b"x"] * 1024) == 1024
    response = BlocksResponse(1, 0, [big] * wire.blocks_that_fit([big] * 5))
    assert len(wire.encode(response)) <= MAX_FRAME


def decodes_or_refuses(frame: bytes) -> None:
    """Either a WireError, or a message that survives a round trip; anything else escapes."""
    try:
        message = wire.decode(frame)
    except WireError:
        return
    assert wire.decode(wire.encode(message)) == message


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(data):
    decodes_or_refuses(data)


@FUZZ
@given(st.sampled_from(MESSAGES), st.data())
def test_fuzz_mutated_frames(message, data):
    frame = bytearray(wire.encode(message))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    decodes_or_refuses(bytes(frame[:cut]))


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=40) | st.binary(max_size=200),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=30,
)


@FUZZ
@given(st.sampled_from(sorted(wire.ALL_KINDS)), st.lists(msgpack_values, max_size=8))
def test_fuzz_well_formed_msgpack_of_any_shape(kind, fields):
    decodes_or_refuses(frame_of(kind, *fields))

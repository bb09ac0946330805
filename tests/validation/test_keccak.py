"""The C Keccak-256 against pycryptodome's, across padding and block boundaries."""

from __future__ import annotations

from Crypto.Hash import keccak as reference
from hypothesis import given, settings
from hypothesis import strategies as st

from alys_fast._cext.hashing import keccak256


def expected(data: bytes) -> bytes:
    return reference.new(digest_bits=256, data=data).digest()


def test_known_digests() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    # Keccak, not SHA3-256 (which would start a7ffc6f8).
    assert keccak256(b"abc").hex().startswith("4e03657a")


def test_every_length_around_the_rate() -> None:
    # The rate is 136 bytes: cover lengths where padding spills into a second block.
    for n in range(0, 3 * 136 + 2):
        data = bytes((i * 7 + n) & 0xFF for i in range(n))
        assert keccak256(data) == expected(data), n


def test_large_input_and_buffer_types() -> None:
    data = bytes(range(256)) * 400  # above the no-GIL threshold
    assert keccak256(data) == expected(data)
    assert keccak256(bytearray(data)) == expected(data)
    assert keccak256(memoryview(data)[1:]) == expected(data[1:])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1000))
def test_matches_pycryptodome(data: bytes) -> None:
    assert keccak256(data) == expected(data)

"""The strict RLP codec against the `rlp` package, plus the canonical-form rules one by one."""

from __future__ import annotations

import pytest
import rlp as reference
from hypothesis import given, settings
from hypothesis import strategies as st

from alys_fast._cext import rlp
from alys_fast.validation import InvalidRLP, ValidationError

items = st.recursive(
    st.binary(max_size=80),
    lambda children: st.lists(children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(items)
def test_encode_matches_reference_and_round_trips(item: object) -> None:
    encoded = rlp.encode(item)
    assert encoded == reference.encode(item)
    assert rlp.decode(encoded) == item


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**300))
def test_integers_encode_minimal_big_endian(value: int) -> None:
    assert rlp.encode(value) == reference.encode(value)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=70))
def test_decoding_arbitrary_bytes_agrees_with_reference(data: bytes) -> None:
    # pyrlp's strict decode enforces the same canonical rules, so both must accept the same
    # inputs and agree on the result.
    try:
        want = reference.decode(data, strict=True)
    except reference.exceptions.DecodingError:
        with pytest.raises(InvalidRLP):
            rlp.decode(data, max_depth=10_000)
        return
    assert rlp.decode(data, max_depth=10_000) == _as_lists(want)


def _as_lists(item: object) -> object:
    return [_as_lists(x) for x in item] if isinstance(item, list | tuple) else item


LONG_FORM = "long length form used for a payload under 56 bytes"


@pytest.mark.parametrize(
    ("data", "rule", "reason"),
    [
        (b"", "malformed RLP", "unexpected end of input"),
        (b"\x81\x05", "non-canonical RLP", "single byte below 0x80 wrapped in a string header"),
        (b"\xb8\x05hello", "non-canonical RLP", LONG_FORM),
        (b"\xf8\x01\x80", "non-canonical RLP", LONG_FORM),
        (b"\xb9\x00\x38" + b"a" * 56, "non-canonical RLP", "leading zero byte in a length"),
        (b"\x83ab", "malformed RLP", "item length exceeds the input"),
        (b"\xc2\x01", "malformed RLP", "item length exceeds the input"),
        (b"\xbf" + b"\xff" * 8, "malformed RLP", "item length exceeds the input"),
        (b"\x01\x02", "malformed RLP", "trailing bytes after the item"),
        (b"\xc1\xc0\x00", "malformed RLP", "trailing bytes after the item"),
    ],
)
def test_rejects_non_canonical_and_malformed(data: bytes, rule: str, reason: str) -> None:
    with pytest.raises(InvalidRLP) as caught:
        rlp.decode(data)
    assert caught.value.rule == rule
    assert caught.value.values["reason"] == reason
    assert isinstance(caught.value, ValidationError)
    assert isinstance(caught.value, ValueError)


def test_depth_is_bounded() -> None:
    item: list[object] = []
    for _ in range(100):
        item = [item]
    nested = rlp.encode(item)  # 101 lists deep
    with pytest.raises(InvalidRLP, match="nesting too deep"):
        rlp.decode(nested)
    with pytest.raises(InvalidRLP, match="nesting too deep"):
        rlp.decode(nested, max_depth=100)
    assert rlp.decode(nested, max_depth=101) == item


def test_decode_list_and_encode_inputs() -> None:
    assert rlp.decode_list(b"\xc2\x01\x80") == [b"\x01", b""]
    with pytest.raises(InvalidRLP, match="expected a list"):
        rlp.decode_list(b"\x01")
    assert rlp.encode((0, 127, 128, bytearray(b"x"), memoryview(b"yz"))) == reference.encode(
        [0, 127, 128, b"x", b"yz"]
    )
    with pytest.raises(ValueError, match="negative"):
        rlp.encode(-1)
    with pytest.raises(TypeError, match="cannot encode str"):
        rlp.encode("text")
    with pytest.raises(TypeError, match="cannot encode bool"):
        rlp.encode(True)

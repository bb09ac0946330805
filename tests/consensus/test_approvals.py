"""AggregateApproval, Approval and the threshold: Alys's rules and strict wire forms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alys_fast.consensus.approvals import (
    AGGREGATE_SIZE,
    APPROVAL_SIZE,
    AggregateApproval,
    Approval,
    ApprovalError,
    sign_approval,
    threshold,
    verify,
)
from alys_fast.consensus.bls import SecretKey, Signature

KEYS = [SecretKey.from_bytes((i + 11).to_bytes(32, "big")) for i in range(15)]
PUBLIC = [key.public_key() for key in KEYS]
ROOT = bytes(range(32))
SIGNATURES = [key.sign(ROOT) for key in KEYS]


def _aggregate(indices) -> AggregateApproval:
    aggregate = AggregateApproval()
    for i in indices:
        aggregate = aggregate.add(i, SIGNATURES[i])
    return aggregate


def test_threshold_is_ceil_two_thirds():
    assert [threshold(n) for n in (1, 2, 3, 4, 5, 6, 7, 15)] == [1, 2, 2, 3, 4, 4, 5, 10]
    with pytest.raises(ValueError, match="1 to 15"):
        threshold(16)


def test_add_ignores_duplicates_and_counts():
    aggregate = _aggregate([0, 2])
    assert aggregate.add(2, SIGNATURES[5]) is aggregate  # a second share for a set bit is ignored
    assert list(aggregate.indices()) == [0, 2] and aggregate.count == 2
    assert aggregate.signature_valid(ROOT, PUBLIC[:3])


def test_verify_needs_threshold_and_the_right_keys():
    authorities = PUBLIC[:4]
    assert not verify(_aggregate([0, 1]), ROOT, authorities)  # 2 < 3
    assert verify(_aggregate([0, 1, 3]), ROOT, authorities)
    assert not verify(_aggregate([0, 1, 3]), bytes(32), authorities)  # another root
    wrong = AggregateApproval(0b1011, _aggregate([0, 1, 2]).signature)  # bits lie
    assert not verify(wrong, ROOT, authorities)
    assert not _aggregate([0, 4]).signature_valid(ROOT, authorities)  # bit beyond the set
    assert not AggregateApproval().signature_valid(ROOT, authorities)


@given(st.sets(st.integers(0, 14), max_size=15))
def test_aggregate_wire_round_trip(indices):
    aggregate = _aggregate(sorted(indices))
    data = aggregate.encode()
    assert len(data) == AGGREGATE_SIZE
    assert AggregateApproval.decode(data) == aggregate


def test_empty_aggregate_is_alys_new():
    data = AggregateApproval().encode()
    assert data[:2] == b"\x00\x80"  # SSZ BitList[15]: no bits, delimiter at bit 15
    assert Signature.from_bytes(data[2:]) == Signature.infinity()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00" * 97, "an aggregate approval is 98 bytes, got 97"),
        (b"\x01\x00" + Signature.infinity().to_bytes(), "lack their length delimiter"),
        (b"\x01\x80" + b"\x00" * 96, "aggregate signature: not a BLS signature"),
    ],
)
def test_aggregate_decoding_refuses(data, message):
    with pytest.raises(ApprovalError, match=message):
        AggregateApproval.decode(data)


def test_approval_wire_round_trip_and_checks():
    approval = sign_approval(KEYS[3], 3, 77, ROOT)
    data = approval.encode()
    assert len(data) == APPROVAL_SIZE
    decoded = Approval.decode(data)
    assert decoded == approval and decoded.valid(PUBLIC[:4])
    assert not decoded.valid(PUBLIC[:3])  # index 3 is not an authority of 3
    assert not Approval(77, bytes(32), 3, approval.signature).valid(PUBLIC[:4])
    with pytest.raises(ApprovalError, match="index is 0 to 14, got 15"):
        Approval.decode(data[:40] + b"\x0f" + data[41:])
    with pytest.raises(ApprovalError, match="137 bytes, got 136"):
        Approval.decode(data[:-1])

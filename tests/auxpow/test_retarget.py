"""The AuxPoW retarget against Alys's arithmetic, and compact targets against Bitcoin's.

Expected ``bits`` in TABLE come from Alys's ``get_next_work_required`` arithmetic run with the
crates Alys pins (rust_decimal 1.37.1, uint 0.9.5), including its two direction tests
(PREV_BITS = 505544640, spacing 100,000 blocks, 150,000 and 50,000 blocks since the PoW).
"""

import pytest

from alys_fast.auxpow import AuxPowError, compact_from_target, target_from_bits
from alys_fast.auxpow.retarget import (
    RetargetParams,
    adjustment_percent,
    alys_target_from_compact,
    next_work_required,
)

DEV_BITS = 0x1E25CDF2  # Alys DEV's genesis bits
PREV_BITS = 505544640  # auxpow_miner.rs tests

# (last_bits, last_pow_number, head_number, timespan, spacing, max_adjustment %, expected bits)
TABLE = [
    # Alys's direction tests: 1.5x the spacing -> easier (clamped to +20%), 0.5x -> harder.
    (PREV_BITS, 0, 149_999, 100_000, 100_000, 20, 0x1E28CC7F),
    (PREV_BITS, 0, 49_999, 100_000, 100_000, 20, 0x1E06CCBF),
    # DEV params (interval 60 / 5 = 12): head 12 is a retarget height, 13 blocks / 5 -> +20%.
    (DEV_BITS, 0, 12, 60, 5, 20, 0x1E2D5D88),
    # ...head 11 is not, and 12 blocks is not more than the interval: unchanged.
    (DEV_BITS, 0, 11, 60, 5, 20, DEV_BITS),
    (DEV_BITS, 10, 11, 60, 5, 20, DEV_BITS),
    # 13 blocks since the PoW (> 12) forces a retarget off the schedule.
    (DEV_BITS, 100, 112, 60, 5, 20, 0x1E2D5D88),
    (DEV_BITS, 100, 104, 60, 5, 20, DEV_BITS),
    # Bitcoin's 0x1d00ffff made 20% easier: 0xffff * 1.2 truncated by the /100 first.
    (0x1D00FFFF, 0, 23, 60, 5, 20, 0x1D013331),
    # Saturation: 0x2100ffff * 1.2 overflows 2**256 and saturates back to 0x2100ffff.
    (0x2100FFFF, 0, 24, 60, 5, 20, 0x2100FFFF),
    (0x207FFFFF, 0, 24, 60, 5, 20, 0x21009999),
    # Banker's rounding of the ratio: 1/200 = 0.005 -> 0.00, so the target becomes 0 ...
    (DEV_BITS, 0, 0, 200, 200, 20, 0),
    (DEV_BITS, 0, 4, 1000, 1000, 20, 0),
    # ... 3/200 = 0.015 -> 0.02 and 15/1000 -> 0.02 (the even neighbour, both ways) ...
    (DEV_BITS, 0, 2, 200, 200, 20, 0x1E00C18F),
    (DEV_BITS, 0, 14, 1000, 1000, 20, 0x1E00C18F),
    # ... 10/1000 = 0.01 under a 50% clamp: 1%.
    (DEV_BITS, 0, 9, 1000, 1000, 50, 0x1D60C78A),
    # The widest clamp, 155%: 300 blocks / 100 -> 2.55.
    (DEV_BITS, 0, 299, 100, 100, 155, 0x1E6066C2),
    # max_pow_adjustment 0 clamps every ratio below 1 to 0: the target collapses to 0.
    (DEV_BITS, 0, 49, 100, 100, 0, 0),
    # A negative or tiny target: Alys reads a negative mantissa as 0 (no error).
    (0x00800000, 0, 12, 60, 5, 20, 0),
    (0x03000000, 0, 12, 60, 5, 20, 0),
    (0x01000080, 0, 12, 60, 5, 20, 0),
]


@pytest.mark.parametrize(("last_bits", "last", "head", "timespan", "spacing", "adj", "want"), TABLE)
def test_next_work_required_matches_alys(
    last_bits: int, last: int, head: int, timespan: int, spacing: int, adj: int, want: int
) -> None:
    params = RetargetParams(
        pow_target_timespan=timespan, pow_target_spacing=spacing, max_pow_adjustment=adj
    )
    assert next_work_required(last_bits, last, head, params) == want


def test_direction_of_alys_tests() -> None:
    params = RetargetParams(pow_target_timespan=100_000, pow_target_spacing=100_000)
    previous = target_from_bits(PREV_BITS)
    assert target_from_bits(next_work_required(PREV_BITS, 0, 149_999, params)) > previous
    assert target_from_bits(next_work_required(PREV_BITS, 0, 49_999, params)) < previous


def test_no_retargeting_keeps_the_bits() -> None:
    params = RetargetParams(pow_no_retargeting=True)
    assert next_work_required(DEV_BITS, 0, 12, params) == DEV_BITS
    assert next_work_required(DEV_BITS, 0, 5_000, params) == DEV_BITS


@pytest.mark.parametrize(
    ("blocks", "spacing", "adj", "percent"),
    [
        (5, 5, 20, 100),  # ratio exactly 1: no clamp
        (4, 5, 20, 20),  # 0.8 < 1 -> min(0.8, 0.20): Alys's clamp, five times harder
        (1, 10, 20, 10),  # 0.1 is already below 0.20
        (6, 5, 20, 120),
        (1000, 5, 20, 120),
        (0, 5, 20, 20),  # 0 blocks counts as 1
        (1, 40, 20, 2),  # 0.025 -> 0.02 (half to even)
        (7, 200, 20, 4),  # 0.035 -> 0.04 (half to even, upwards)
    ],
)
def test_adjustment_percent(blocks: int, spacing: int, adj: int, percent: int) -> None:
    params = RetargetParams(
        pow_target_timespan=spacing, pow_target_spacing=spacing, max_pow_adjustment=adj
    )
    assert adjustment_percent(blocks, params) == percent


def test_refuses_a_pow_block_past_the_head() -> None:
    with pytest.raises(ValueError, match="past the head"):
        next_work_required(DEV_BITS, 10, 8, RetargetParams())


def test_params_refuse_an_interval_of_zero() -> None:
    with pytest.raises(ValueError, match="pow_target_timespan must be >= pow_target_spacing"):
        RetargetParams(pow_target_timespan=4, pow_target_spacing=5)


@pytest.mark.parametrize(
    "bits", [0x1D00FFFF, 0x1E25CDF2, 0x207FFFFF, 0x2100FFFF, 0x1B0404CB, 0x02008000, 0x01120000]
)
def test_compact_round_trips_canonical_bits(bits: int) -> None:
    assert compact_from_target(target_from_bits(bits)) == bits


@pytest.mark.parametrize(
    ("target", "bits"),
    [
        (0, 0),
        (0x80, 0x02008000),  # the top bit would read as a sign: one more byte
        (0x12, 0x01120000),
        (0x1234, 0x02123400),
        (0x123456, 0x03123456),
        (0x12345678, 0x04123456),  # lossy: the low byte is dropped
        (2**256 - 1, 0x2100FFFF),
        (0xFFFF << 208, 0x1D00FFFF),
    ],
)
def test_compact_from_target(target: int, bits: int) -> None:
    assert compact_from_target(target) == bits


def test_compact_from_target_refuses_out_of_range() -> None:
    for target in (-1, 2**256):
        with pytest.raises(ValueError, match="256-bit"):
            compact_from_target(target)


def test_alys_compact_decoding_differs_from_bitcoins_only_on_bad_bits() -> None:
    assert alys_target_from_compact(0x1D00FFFF) == target_from_bits(0x1D00FFFF)
    assert alys_target_from_compact(0x04923456) == 0  # negative: 0, where Bitcoin refuses
    with pytest.raises(AuxPowError):
        target_from_bits(0x04923456)
    assert alys_target_from_compact(0x23000001) == 0  # shifted past 256 bits: lost

"""DevMining, the dev chain's timing rules, without actors."""

from __future__ import annotations

import pytest

from alys_fast.chain.mining import DevMining, MiningError

NOW_MS = 1_700_000_000_500


def test_blocks_follow_the_clock_and_never_share_a_slot() -> None:
    dev = DevMining()
    assert dev.next_slot(10, NOW_MS, 1000) == NOW_MS // 1000
    # Made faster than slots tick: one slot after the parent each.
    assert dev.next_slot(NOW_MS // 1000 + 5, NOW_MS, 1000) == NOW_MS // 1000 + 6
    assert dev.increase_time(60) == 60 and dev.increase_time(40) == 100
    assert dev.next_slot(10, NOW_MS, 1000) == NOW_MS // 1000 + 100
    # Quarter-second slots: timestamps are whole seconds of the slot's start.
    assert DevMining().next_slot(0, NOW_MS, 250) == NOW_MS // 250


def test_a_requested_timestamp_picks_its_slot_once_and_moves_the_clock() -> None:
    dev = DevMining()
    parent_slot = NOW_MS // 1000
    dev.set_next_timestamp(parent_slot + 500, parent_slot)
    assert dev.next_slot(parent_slot, NOW_MS, 1000) == parent_slot + 500
    assert dev.next_timestamp is None
    # Later blocks do not go back before it.
    assert dev.next_slot(parent_slot + 500, NOW_MS, 1000) == parent_slot + 501
    assert dev.next_slot(0, NOW_MS, 250, timestamp=parent_slot + 600) == (parent_slot + 600) * 4
    with pytest.raises(MiningError, match="lower than or equal to the previous block's"):
        dev.set_next_timestamp(parent_slot, parent_slot)
    with pytest.raises(MiningError, match="lower than or equal"):
        dev.next_slot(parent_slot + 700, NOW_MS, 1000, timestamp=parent_slot + 700)
    with pytest.raises(MiningError, match="between two slots"):
        dev.next_slot(0, NOW_MS, 2000, timestamp=parent_slot * 2 + 1)
    with pytest.raises(MiningError, match="forward"):
        dev.increase_time(-1)


def test_modes() -> None:
    dev = DevMining()
    dev.set_interval(250)
    assert (dev.mode, dev.interval_ms) == ("interval", 250)
    dev.set_automine(False)  # automine was not on: interval mining goes on
    assert dev.mode == "interval"
    dev.set_interval(0)
    assert dev.mode == "off"
    dev.set_automine(True)
    assert dev.mode == "auto"
    dev.set_interval(0)  # interval mining was not on: automine goes on
    assert dev.mode == "auto"
    with pytest.raises(MiningError):
        DevMining(mode="sometimes")
    with pytest.raises(MiningError):
        dev.set_interval(-1)


def test_snapshots_restore_the_clock_and_are_used_up_with_later_ones() -> None:
    dev = DevMining()
    first = dev.snapshot(5, b"\x05" * 32, ["tx"])
    dev.increase_time(100)
    second = dev.snapshot(6, b"\x06" * 32, [])
    third = dev.snapshot(7, b"\x07" * 32, [])
    assert (first, second, third) == (1, 2, 3)
    snapshot = dev.take_snapshot(second)
    assert snapshot is not None and snapshot.number == 6 and dev.offset_ms == 100_000
    assert dev.take_snapshot(third) is None and dev.take_snapshot(second) is None
    dev.increase_time(5)
    restored = dev.take_snapshot(first)
    assert restored is not None and restored.transactions == ["tx"] and dev.offset_ms == 0
    assert dev.snapshot(5, b"\x05" * 32, []) == 4  # ids are never reused

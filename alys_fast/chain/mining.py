"""Dev-mode block timing: when a development chain makes blocks and which slot each one gets.

A node under ``alys-fast run`` authors in its Aura slots, on the wall clock. A development chain
(``alys-fast dev``) is driven the way anvil and hardhat are:

- ``auto`` (the default, as anvil's and hardhat's): a block as soon as transactions arrive, so
  ``eth_sendRawTransaction`` returns with the receipt already there;
- ``interval``: a block every ``interval_ms`` (``--block-time``), empty or not;
- ``off``: blocks only when asked (``evm_mine``, ``anvil_mine``).

The Aura author still signs every block, and every block still has a slot strictly after its
parent's; its timestamp stays the slot's (``slot * slot_ms // 1000``), so moving time
(``evm_increaseTime``, ``evm_setNextBlockTimestamp``) means choosing a later slot. Blocks made
faster than the slots tick get consecutive slots: timestamps run ahead of the clock, one slot
per block, as anvil's and hardhat's run one second per block.

This class holds the settings and does the arithmetic, and keeps the chain's snapshots
(``evm_snapshot``: the head, the pool and the clock, to go back to with ``evm_revert``); the
chain actor owns one (kept by the node, so an actor restart keeps them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alys_fast.actors import Refused

MODES = ("auto", "interval", "off")
# The latest block timestamp the dev clock may reach (seconds; about the year 36,800): every
# value derived from it (milliseconds, slots) stays within the 64 bits headers and the engine
# hold, so no dev request can make a block that cannot be built.
MAX_TIMESTAMP = 2**40


class MiningError(Refused):
    """A timing request the chain cannot honour; the message is the client's. The chain actor
    refuses with it (the asker gets it, the actor runs on)."""


@dataclass(frozen=True)
class Snapshot:
    """What ``evm_revert`` restores: the head block, the pooled transactions and the clock."""

    number: int
    block_hash: bytes
    transactions: list[Any]
    offset_ms: int
    next_timestamp: int | None


@dataclass
class DevMining:
    """The mining mode and the dev clock of a development chain."""

    mode: str = "auto"
    interval_ms: int = 1000
    offset_ms: int = 0  # evm_increaseTime, accumulated
    next_timestamp: int | None = None  # evm_setNextBlockTimestamp: the next block's, once
    next_base_fee: int | None = None  # anvil_setNextBlockBaseFeePerGas: the next block's
    snapshots: dict[int, Snapshot] = field(default_factory=dict)
    last_snapshot: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise MiningError(f"mining mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.interval_ms <= 0:
            raise MiningError(f"the mining interval must be positive, got {self.interval_ms} ms")

    def set_interval(self, interval_ms: int) -> None:
        """``evm_setIntervalMining``: a block every ``interval_ms``; 0 stops interval mining."""
        if interval_ms < 0:
            raise MiningError(f"the mining interval must not be negative, got {interval_ms}")
        if interval_ms == 0:
            if self.mode == "interval":
                self.mode = "off"
            return
        self.mode, self.interval_ms = "interval", interval_ms

    def set_automine(self, enabled: bool) -> None:
        """``evm_setAutomine``: on, or off (no blocks until asked)."""
        if enabled:
            self.mode = "auto"
        elif self.mode == "auto":
            self.mode = "off"

    def increase_time(self, seconds: int) -> int:
        """``evm_increaseTime``: move the clock forward; returns the total offset in seconds."""
        if seconds < 0:
            raise MiningError(f"time can only move forward, got {seconds} s")
        if self.offset_ms // 1000 + seconds > MAX_TIMESTAMP:
            raise MiningError(f"time cannot move past timestamp {MAX_TIMESTAMP}, got {seconds} s")
        self.offset_ms += seconds * 1000
        return self.offset_ms // 1000

    def set_next_timestamp(self, timestamp: int, parent_timestamp: int) -> None:
        """``evm_setNextBlockTimestamp``: the next block's timestamp, after its parent's."""
        _within_clock(timestamp)
        if timestamp <= parent_timestamp:
            raise MiningError(
                f"timestamp {timestamp} is lower than or equal to the previous block's "
                f"timestamp {parent_timestamp}"
            )
        self.next_timestamp = timestamp

    def next_slot(
        self, parent_slot: int, now_ms: int, slot_ms: int, timestamp: int | None = None
    ) -> int:
        """The slot of the next block: the one whose timestamp was asked for (``timestamp``,
        else a pending ``evm_setNextBlockTimestamp``), else the dev clock's, and never at or
        before the parent's. Consumes the pending timestamp."""
        wanted = timestamp if timestamp is not None else self.next_timestamp
        self.next_timestamp = None
        if wanted is None:
            return max(parent_slot + 1, (now_ms + self.offset_ms) // slot_ms)
        _within_clock(wanted)
        slot = -(-wanted * 1000 // slot_ms)  # the first slot whose timestamp is ``wanted``
        if slot * slot_ms // 1000 != wanted:
            raise MiningError(
                f"timestamp {wanted} falls between two slots of {slot_ms} ms: pick a multiple "
                f"of {slot_ms // 1000} s"
            )
        if slot <= parent_slot:
            raise MiningError(
                f"timestamp {wanted} is lower than or equal to the previous block's timestamp "
                f"{parent_slot * slot_ms // 1000}"
            )
        # Time moves on from the block made: later blocks do not go back before it.
        self.offset_ms = max(self.offset_ms, slot * slot_ms - now_ms)
        return slot

    def snapshot(self, number: int, block_hash: bytes, transactions: list[Any]) -> int:
        """``evm_snapshot``: remember this head, pool and clock; the snapshot's id."""
        self.last_snapshot += 1
        self.snapshots[self.last_snapshot] = Snapshot(
            number, block_hash, transactions, self.offset_ms, self.next_timestamp)
        return self.last_snapshot

    def take_snapshot(self, snapshot_id: int) -> Snapshot | None:
        """``evm_revert``'s target, or None if unknown; it and every later snapshot are
        forgotten (as anvil and hardhat do), and the clock goes back to it."""
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None:
            return None
        for later in [i for i in self.snapshots if i >= snapshot_id]:
            del self.snapshots[later]
        self.offset_ms, self.next_timestamp = snapshot.offset_ms, snapshot.next_timestamp
        return snapshot


def _within_clock(timestamp: int) -> None:
    if timestamp > MAX_TIMESTAMP:
        raise MiningError(f"timestamp {timestamp} is past the last one a dev block may carry, "
                          f"{MAX_TIMESTAMP}")

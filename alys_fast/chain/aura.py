"""Aura slot arithmetic: time is cut into slots and each slot has exactly one author.

``slot = unix_ms // slot_ms`` and its author is ``authorities[slot % len(authorities)]``
(Alys's rule). A slot's block carries the slot's start time, in seconds, as its timestamp.
"""

from __future__ import annotations

from alys_fast.chain.spec import ChainSpec

# /health fails an authority whose head is older than this many of its own slots.
STALL_SLOTS = 3


def slot_at(unix_ms: int, slot_ms: int) -> int:
    """The slot that contains the instant ``unix_ms``."""
    return unix_ms // slot_ms


def slot_start_ms(slot: int, slot_ms: int) -> int:
    """When ``slot`` begins, in Unix milliseconds."""
    return slot * slot_ms


def slot_author_index(spec: ChainSpec, slot: int) -> int:
    """Index in ``spec.authorities`` of the authority that owns ``slot``."""
    return slot % len(spec.authorities)


def slot_timestamp(slot: int, slot_ms: int) -> int:
    """The header timestamp (Unix seconds) of a block made in ``slot``."""
    return slot * slot_ms // 1000

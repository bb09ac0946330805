"""The journal of local transactions: what the pool accepted survives a restart (geth's
``transactions.rlp``).

Every transaction the pool accepts through the RPC is local. The pool actor appends each
accepted batch to ``<data dir>/transactions.rlp`` in one ``write`` (no fsync: a power loss may
lose the last second or so of submissions, as with geth; a ``kill -9`` loses nothing, the bytes
are in the page cache). Periodically (``rejournal``), at a clean stop, and when the file holds
far more records than the pool, the actor rewrites it with only the transactions still pooled
(write a temporary file, fsync, rename). At start it replays the file through normal admission:
included, replaced or otherwise invalid records are refused and counted as skipped.

The format is geth's: a stream of RLP items, a legacy transaction as its RLP list, a typed one
as an RLP string holding its bytes. A record cut short at the end (a crash mid-write) or an
item that is not a transaction's frame ends the readable part: the rest is skipped with a
warning, and the rewrite after the replay drops it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

JOURNAL_FILE = "transactions.rlp"


@dataclass(frozen=True, slots=True)
class JournalSettings:
    """Whether the pool keeps a journal, and how often (seconds) it is rewritten (geth: 1 h)."""

    enabled: bool = True
    rejournal: float = 3600.0

    def __post_init__(self) -> None:
        if self.rejournal <= 0:
            raise ValueError("pool rejournal interval must be positive")


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a journal held: its raw transactions in order, and how many bytes at its end could
    not be read as records (0: none)."""

    raws: list[bytes]
    unreadable: int


def frame(raw: bytes) -> bytes:
    """A raw transaction as a journal record: a legacy one is an RLP list already; a typed one
    (first byte below 0x80) goes in an RLP string."""
    if raw[0] >= 0xC0:
        return raw
    n = len(raw)
    if n < 56:
        return bytes((0x80 + n,)) + raw
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xB7 + len(size),)) + size + raw


def parse(data: bytes) -> Loaded:
    """The records of a journal's bytes, stopping at the first one cut short or malformed."""
    raws = []
    pos, end = 0, len(data)
    while pos < end:
        first = data[pos]
        if first < 0x80:  # a bare byte is no transaction
            break
        is_list = first >= 0xC0
        short = first - (0xC0 if is_list else 0x80)
        if short < 56:
            header, length = 1, short
        else:
            header = 1 + short - 55
            if pos + header > end:
                break
            length = int.from_bytes(data[pos + 1:pos + header], "big")
        stop = pos + header + length
        if length == 0 or stop > end:
            break
        raws.append(data[pos:stop] if is_list else data[pos + header:stop])
        pos = stop
    return Loaded(raws, end - pos)


class TxJournal:
    """One journal file: :meth:`load` it at start, :meth:`append` batches, :meth:`rewrite` it.

    ``appended`` counts the records written since the last rewrite (the owner compacts when it
    far exceeds the pool).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.appended = 0
        self._file: BinaryIO | None = None

    def load(self) -> Loaded:
        """The journal's records (none if there is no file yet); warns about an unreadable end."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Loaded([], 0)
        loaded = parse(data)
        if loaded.unreadable:
            log.warning("transaction journal %s: skipped %d unreadable bytes at offset %d "
                        "(a write cut short by a crash?)", self.path, loaded.unreadable,
                        len(data) - loaded.unreadable)
        return loaded

    def append(self, raws: Sequence[bytes]) -> None:
        """Add a batch of accepted transactions in one write (no fsync: see the module
        docstring)."""
        if not raws:
            return
        if self._file is None:
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open
        self._file.write(b"".join(map(frame, raws)))
        self.appended += len(raws)

    def rewrite(self, raws: Sequence[bytes]) -> None:
        """Replace the journal with exactly ``raws``, atomically (a crash leaves the old one or
        the new one, never a mix)."""
        self.close()
        temporary = self.path.with_name(self.path.name + ".new")
        with open(temporary, "wb") as out:
            out.write(b"".join(map(frame, raws)))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        self.appended = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

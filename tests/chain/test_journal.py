"""The transaction journal's file: geth's RLP stream, torn tails skipped, atomic rewrites."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import rlp

from alys_fast.chain.journal import JournalSettings, Loaded, TxJournal, frame, parse
from tests.chain.test_txpool import sign

LEGACY = sign(0, 0, legacy=True)
TYPED = sign(0, 1)
LONG = sign(1, 0, gas=200_000)  # a typed transaction above 55 bytes: a long string header


def test_records_are_geths_rlp_items() -> None:
    """Legacy: the RLP list itself; typed: an RLP string of its bytes (geth's
    transactions.rlp), so a stream of them decodes as RLP item by item."""
    assert frame(LEGACY) == LEGACY
    assert rlp.decode(frame(TYPED)) == TYPED and rlp.decode(frame(LONG)) == LONG
    short = b"\x02" + b"\xc1\x01"
    assert frame(short) == b"\x83" + short and rlp.decode(frame(short)) == short
    data = b"".join(map(frame, [LEGACY, TYPED, LONG]))
    assert parse(data) == Loaded([LEGACY, TYPED, LONG], 0)


def test_a_record_cut_anywhere_loses_only_itself() -> None:
    raws = [TYPED, LEGACY, LONG]
    data = b"".join(map(frame, raws))
    boundaries = [0]
    for raw in raws:
        boundaries.append(boundaries[-1] + len(frame(raw)))
    for cut in range(len(data)):
        whole = max(i for i, b in enumerate(boundaries) if b <= cut)
        assert parse(data[:cut]) == Loaded(raws[:whole], cut - boundaries[whole]), cut


def test_garbage_ends_the_readable_part() -> None:
    data = frame(TYPED) + b"\x05garbage" + frame(LEGACY)
    assert parse(data) == Loaded([TYPED], len(data) - len(frame(TYPED)))
    assert parse(b"\xc0" + frame(TYPED)).raws == []  # an empty item is no transaction


def test_append_load_rewrite(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "transactions.rlp"
    journal = TxJournal(path)
    assert journal.load() == Loaded([], 0)
    journal.append([TYPED, LEGACY])
    journal.append([])
    journal.append([LONG])
    assert journal.appended == 3
    assert TxJournal(path).load().raws == [TYPED, LEGACY, LONG]  # no close needed: unbuffered

    with path.open("ab") as torn:  # a crash in the middle of the next batch's write
        torn.write(frame(TYPED)[:7])
    with caplog.at_level(logging.WARNING):
        assert TxJournal(path).load() == Loaded([TYPED, LEGACY, LONG], 7)
    assert "skipped 7 unreadable bytes" in caplog.text

    journal.rewrite([LONG])
    assert journal.appended == 0
    assert journal.load() == Loaded([LONG], 0)
    assert [p.name for p in tmp_path.iterdir()] == ["transactions.rlp"]
    journal.append([TYPED])  # appends go to the new file
    assert journal.load().raws == [LONG, TYPED]
    journal.close()


def test_settings_refuse_a_rejournal_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="rejournal"):
        JournalSettings(rejournal=0)

"""Log criteria and polled filters, as geth's ``eth/filters``: pure, no actors, no I/O.

One matching rule serves ``eth_getLogs``, the polled filters (``eth_newFilter`` …
``eth_getFilterChanges``) and the ``logs`` subscriptions: :meth:`LogCriteria.matches`.

- :class:`LogCriteria` — the ``address`` (one or a list, any of) and ``topics`` (by position;
  ``null``, an empty list or a list holding ``null`` match anything there; a list, any of) of
  a filter object. A log with fewer topics than positions given never matches, as in geth.
- :class:`LogQuery` — criteria plus the block range of a filter that follows new blocks
  (``eth_newFilter``, ``eth_subscribe("logs")``): geth's rules, so ``fromBlock``/``toBlock``
  are numbers or ``latest`` (``earliest`` is block 0), ``pending`` is refused, and
  ``blockHash`` is refused (a one-block query is ``eth_getLogs``).
- :class:`BlockLogs` — one block's logs with their positions; each log's JSON object is built
  once, when a first query wants it, and shared by every filter and subscriber that does.
- :class:`FilterRegistry` — the installed filters. Ids are geth's (``0x`` + 16 random bytes,
  as a quantity). A filter not polled for ``timeout`` seconds (geth's ``filterTimeout``, 5
  minutes) is gone: an expired id answers ``filter not found`` even before it is swept, and
  sweeping (on every install and every feed, cheap: filters are kept in poll order) frees
  them. At most ``max_filters`` filters exist node-wide, and each buffers at most
  ``max_changes`` changes: past that the OLDEST are dropped, so a client that polls too rarely
  sees the newest changes (and can recover older logs with ``eth_getFilterLogs``/
  ``eth_getLogs``) while the node's memory stays bounded.

The clock is injected (``clock``, monotonic seconds) so expiry is tested without waiting.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

from alys_fast.rpc.dispatch import (
    InvalidParams,
    ServerError,
    address,
    hash32,
    quantity,
    show,
)
from alys_fast.rpc.formats import hexdata, log_json
from alys_fast.validation.receipts import Log, Receipt

__all__ = [
    "FILTER_TIMEOUT",
    "MAX_CHANGES",
    "MAX_FILTERS",
    "BlockLogs",
    "FilterKind",
    "FilterNotFound",
    "FilterRegistry",
    "LogCriteria",
    "LogQuery",
]

log = logging.getLogger(__name__)

FILTER_TIMEOUT = 300.0  # geth's filterTimeout: 5 minutes without a poll
MAX_FILTERS = 10_000
# Per filter; as eth_getLogs's result cap, so one poll never answers more than a query could.
MAX_CHANGES = 10_000
MAX_TOPICS = 4
MAX_ALTERNATIVES = 1_000  # geth's maxSubTopics


class FilterNotFound(ServerError):
    """geth's answer for an unknown, expired or uninstalled id (-32000)."""

    def __init__(self) -> None:
        super().__init__("filter not found")


class FilterKind(StrEnum):
    LOGS = "logs"
    BLOCKS = "blocks"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class LogCriteria:
    """Which logs a query wants: emitted by one of ``addresses`` (any when empty) with, at each
    position of ``topics``, one of the given topics (any when None)."""

    addresses: frozenset[bytes] = frozenset()
    topics: tuple[frozenset[bytes] | None, ...] = ()

    @classmethod
    def parse(cls, query: Mapping[str, Any]) -> LogCriteria:
        """The ``address`` and ``topics`` members of a filter object, checked as geth does."""
        targets = query.get("address")
        if targets is None:
            addresses: frozenset[bytes] = frozenset()
        elif type(targets) is list:
            addresses = frozenset(address(t) for t in targets)
        else:
            addresses = frozenset((address(targets),))
        topics = query.get("topics")
        if topics is None:
            topics = []
        if type(topics) is not list or len(topics) > MAX_TOPICS:
            raise InvalidParams(f"topics must be a list of at most {MAX_TOPICS} positions")
        return cls(addresses, tuple(_position(t) for t in topics))

    def matches(self, log: Log) -> bool:
        """THE matching rule: eth_getLogs, filters and subscriptions all come here."""
        if self.addresses and log.address not in self.addresses:
            return False
        if len(self.topics) > len(log.topics):
            return False
        return all(want is None or topic in want
                   for want, topic in zip(self.topics, log.topics, strict=False))


def _position(topic: Any) -> frozenset[bytes] | None:
    if topic is None:
        return None
    if type(topic) is not list:
        return frozenset((hash32(topic),))
    if len(topic) > MAX_ALTERNATIVES:
        raise InvalidParams(f"at most {MAX_ALTERNATIVES} topics per position")
    if not topic or any(t is None for t in topic):  # geth: a null alternative matches all
        return None
    return frozenset(hash32(t) for t in topic)


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A log filter that follows new blocks: its criteria and block range (None: unbounded,
    i.e. ``latest``)."""

    criteria: LogCriteria = LogCriteria()
    from_block: int | None = None
    to_block: int | None = None

    @classmethod
    def parse(cls, query: Any = None) -> LogQuery:
        """``eth_newFilter``'s and ``eth_subscribe("logs")``'s object (absent: every log)."""
        if query is None:
            query = {}
        if type(query) is not dict:
            raise InvalidParams("the filter must be an object")
        if query.get("blockHash") is not None:
            raise InvalidParams(
                "blockHash is not allowed in a filter that follows new blocks; "
                "use eth_getLogs for one block")
        first = _bound(query.get("fromBlock"))
        last = _bound(query.get("toBlock"))
        # geth: latest..latest, n..latest or n..m with m >= n; a fixed end after "latest" is not.
        if last is not None and (first is None or last < first):
            raise ServerError("invalid block range params")
        return cls(LogCriteria.parse(query), first, last)

    def covers(self, number: int) -> bool:
        return ((self.from_block is None or number >= self.from_block)
                and (self.to_block is None or number <= self.to_block))


def _bound(value: Any) -> int | None:
    if value is None or value == "latest":
        return None
    if value == "earliest":
        return 0
    if value == "pending":
        raise ServerError("pending logs are not supported")
    if value in ("safe", "finalized"):
        raise ServerError("invalid block range params")
    return quantity(value, "block number", 64)


class BlockLogs:
    """One block's logs in block order, each with its transaction and its index in the block."""

    def __init__(self, block_hash: bytes, number: int, receipts: Sequence[Receipt]) -> None:
        self.hash = block_hash
        self.number = number
        self._receipts = receipts
        self._json: dict[int, dict[str, Any]] = {}

    @cached_property
    def entries(self) -> list[tuple[Log, bytes, int]]:
        """(log, transaction hash, transaction index); the list index is the ``logIndex``."""
        return [(log, receipt.tx_hash, tx_index)
                for tx_index, receipt in enumerate(self._receipts) for log in receipt.logs]

    def log_json(self, index: int) -> dict[str, Any]:
        """The ``index``-th log's JSON object, built once and shared by whoever wants it."""
        out = self._json.get(index)
        if out is None:
            entry, tx_hash, tx_index = self.entries[index]
            out = self._json[index] = log_json(
                entry, block_hash=self.hash, block_number=self.number, tx_hash=tx_hash,
                tx_index=tx_index, log_index=index)
        return out

    def matching(self, criteria: LogCriteria) -> list[dict[str, Any]]:
        return [self.log_json(i) for i, (entry, _, _) in enumerate(self.entries)
                if criteria.matches(entry)]

    def notifications(self, subscriptions: Mapping[str, LogQuery]
                      ) -> Iterator[tuple[dict[str, Any], list[str]]]:
        """For ``logs`` subscribers: each matching log, in block order, with the ids of the
        subscriptions that want it (one notification per log, as geth sends them)."""
        wanted = [(sid, query.criteria) for sid, query in subscriptions.items()
                  if query.covers(self.number)]
        if not wanted:
            return
        for i, (entry, _, _) in enumerate(self.entries):
            sids = [sid for sid, criteria in wanted if criteria.matches(entry)]
            if sids:
                yield self.log_json(i), sids


class _Filter:
    __slots__ = ("changes", "dropped", "id", "kind", "polled", "query")

    def __init__(self, fid: str, kind: FilterKind, query: LogQuery | None, max_changes: int,
                 now: float) -> None:
        self.id = fid
        self.kind = kind
        self.query = query
        self.changes: deque[Any] = deque(maxlen=max_changes)
        self.dropped = 0
        self.polled = now

    def push(self, items: Sequence[Any]) -> None:
        changes = self.changes
        assert changes.maxlen is not None
        overflow = len(changes) + len(items) - changes.maxlen
        if overflow > 0:
            if not self.dropped:
                log.warning("%s filter %s is not polled often enough: dropping its oldest "
                            "changes (at most %d are kept)", self.kind, self.id, changes.maxlen)
            self.dropped += overflow
        changes.extend(items)


class FilterRegistry:
    """The node's polled filters; see the module docstring for expiry and bounds."""

    def __init__(
        self,
        *,
        timeout: float = FILTER_TIMEOUT,
        max_filters: int = MAX_FILTERS,
        max_changes: int = MAX_CHANGES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.max_filters = max_filters
        self.max_changes = max_changes
        self._clock = clock
        # Least recently polled first, so a sweep stops at the first filter still alive.
        self._filters: OrderedDict[str, _Filter] = OrderedDict()
        self._counts = dict.fromkeys(FilterKind, 0)

    def __len__(self) -> int:
        return len(self._filters)

    def wants(self, kind: FilterKind) -> bool:
        """Whether any filter of ``kind`` is installed (the feeder can skip work otherwise)."""
        return self._counts[kind] > 0

    # -- the methods ---------------------------------------------------------------------------

    def install(self, kind: FilterKind, query: LogQuery | None = None) -> str:
        """A new filter's id; ``query`` is required for (and only for) a log filter."""
        if (query is None) != (kind is not FilterKind.LOGS):
            raise ValueError(f"a {kind} filter {'needs' if query is None else 'takes no'} query")
        now = self._clock()
        self._sweep(now)
        if len(self._filters) >= self.max_filters:
            raise ServerError(
                f"too many filters installed (limit {self.max_filters}): uninstall unused ones "
                f"or let them expire ({self.timeout:g} s without a poll)")
        fid = _new_id()
        while fid in self._filters:
            fid = _new_id()
        self._filters[fid] = _Filter(fid, kind, query, self.max_changes, now)
        self._counts[kind] += 1
        return fid

    def changes(self, fid: Any) -> list[Any]:
        """What arrived since the last poll (and the poll keeps the filter alive): log objects,
        or block / transaction hashes. Raises :class:`FilterNotFound`."""
        now = self._clock()
        found = self._live(fid, now)
        found.polled = now
        self._filters.move_to_end(found.id)
        out = list(found.changes)
        found.changes.clear()
        return out

    def log_query(self, fid: Any) -> LogQuery:
        """A log filter's query, for ``eth_getFilterLogs`` (as geth, this is not a poll)."""
        found = self._live(fid, self._clock())
        if found.query is None:
            raise FilterNotFound()
        return found.query

    def uninstall(self, fid: Any) -> bool:
        found = self._filters.get(_checked(fid))
        if found is None:
            return False
        self._remove(found)
        return not self._expired(found, self._clock())

    def sweep(self) -> int:
        """Drop the filters idle past the timeout; how many went."""
        return self._sweep(self._clock())

    # -- feeding -------------------------------------------------------------------------------

    def add_block(self, block: BlockLogs) -> None:
        """A new head: its hash for block filters, its matching logs for log filters."""
        self._sweep(self._clock())
        if not (self._counts[FilterKind.BLOCKS] or self._counts[FilterKind.LOGS]):
            return
        block_hash: str | None = None
        for found in self._filters.values():
            if found.kind is FilterKind.BLOCKS:
                block_hash = block_hash or hexdata(block.hash)
                found.push((block_hash,))
            elif found.kind is FilterKind.LOGS:
                assert found.query is not None
                if found.query.covers(block.number):
                    matched = block.matching(found.query.criteria)
                    if matched:
                        found.push(matched)

    def add_pending(self, tx_hashes: Iterable[bytes]) -> None:
        """Transactions newly in the pool, for pending-transaction filters."""
        self._sweep(self._clock())
        if not self._counts[FilterKind.PENDING]:
            return
        hashes = [hexdata(h) for h in tx_hashes]
        for found in self._filters.values():
            if found.kind is FilterKind.PENDING:
                found.push(hashes)

    # -- internals -----------------------------------------------------------------------------

    def _live(self, fid: Any, now: float) -> _Filter:
        found = self._filters.get(_checked(fid))
        if found is None:
            raise FilterNotFound()
        if self._expired(found, now):
            self._remove(found)
            raise FilterNotFound()
        return found

    def _expired(self, found: _Filter, now: float) -> bool:
        return now - found.polled > self.timeout

    def _remove(self, found: _Filter) -> None:
        del self._filters[found.id]
        self._counts[found.kind] -= 1

    def _sweep(self, now: float) -> int:
        removed = 0
        while self._filters:
            oldest = next(iter(self._filters.values()))
            if not self._expired(oldest, now):
                break
            self._remove(oldest)
            removed += 1
        return removed


def _new_id() -> str:
    """geth's rpc.NewID: 16 random bytes, hex, as a quantity (no leading zeros)."""
    return hex(int.from_bytes(secrets.token_bytes(16), "big"))


def _checked(fid: Any) -> str:
    if type(fid) is not str:
        raise InvalidParams(f"invalid filter id {show(fid)}: not a string")
    return fid

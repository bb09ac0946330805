"""The transaction pool: what the node accepted and has not yet included, ready for the builder.

Semantics, one sentence each (geth's legacy pool, with every limit in :class:`TxPoolLimits`):

- **Admission** runs the validation core (encoding, signature, chain id, intrinsic gas), then
  pool policy against the head state: EIP-155 protection (unless allowed), the block gas limit,
  duplicates, the account nonce, the balance, replacement, limits.
- **Pending / queued**: a sender's *pending* (executable) run is its nonces ``nonce, nonce + 1,
  …`` contiguous from its account nonce, as far as the balance covers them together (``gas
  limit × fee cap + value`` each, as geth counts) and at most ``max_executable_per_sender``;
  every other pooled transaction of the sender is *queued*. Queued transactions join the run,
  without copying, as soon as it reaches them (a gap fills, a block moves the nonce, funds
  arrive).
- **Balance**: a newcomer that joins (or replaces one of) the pending run is admitted if the
  balance covers the run with it; a queued one if the balance covers it alone, the rule that
  keeps it queued after a block (the run's check comes when the run reaches it). Queued
  transactions are never counted against the run, so they never make the next nonce
  unaffordable.
- **Per-sender limits** (``account limit exceeded``): the next executable nonce is refused only
  when the run already holds ``max_executable_per_sender``; a queued newcomer is refused when
  the sender has ``max_queued_per_sender`` queued. A full queue never blocks the nonce that
  fills the gap.
- **Pool limits**: ``max_txs`` in all and ``max_queued`` queued in all. A newcomer that needs
  room takes it from the queue first: an executable one evicts the cheapest queued
  transaction (a sender's highest nonce, lowest effective tip at the pool's base fee, then the
  oldest) whatever it pays; a queued one only a cheaper queued one of another sender. With
  nothing queued, an executable newcomer that pays a higher effective tip evicts the cheapest
  *last* pending transaction of another sender (so eviction never strands later nonces); a
  queued newcomer never evicts a pending one. Otherwise: ``txpool is full``.
- **Replacement**: a transaction with the same sender and nonce as a pooled one replaces it only
  if both its fee cap and its tip are at least ``100 + price_bump`` percent of the old ones.
- **Expiry** (:meth:`TxPool.expire`): a sender's queued transactions are dropped when it has had
  no transaction admitted for ``queue_lifetime`` seconds (geth's heartbeat); pending ones never
  expire. The pool actor runs it on every new head and on a timer.
- **Block building** (:meth:`TxPool.best`) is geth's price-and-nonce order: a heap holds each
  sender's next pending transaction keyed by effective tip at the block's base fee (first seen
  wins ties); taking one exposes the sender's next nonce. A transaction whose fee cap is below
  the base fee, or whose gas limit no longer fits, ends its sender's run for this block.
- **After a block** (:meth:`TxPool.remove_included`): included and now-stale transactions go,
  the senders' nonces and balances are re-read and their runs re-found; the transaction a
  run's balance stops at (one admission would now refuse) and queued transactions whose own
  cost exceeds the balance are dropped, later nonces wait queued, then the per-sender and
  overall queue limits are restored by dropping highest nonces, cheapest first (``dropped``).
- **Restart**: :meth:`TxPool.replay_order` lists the pool in an order whose replay through
  admission rebuilds it (per sender its queued transactions, then its run); the journal
  (:mod:`alys_fast.chain.journal`) stores it.

Errors are :class:`TxPoolError` with geth's exact message (what wallets and libraries match on),
the offending values in ``detail``, and the JSON-RPC code to answer with. Counters of accepted,
departed-by-rule and rejected-by-reason transactions are plain dicts for the metrics layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from heapq import heapify, heappop, heappush, heapreplace
from itertools import count
from typing import TYPE_CHECKING

from alys_fast._cext import require
from alys_fast.engine.fees import fee_caps
from alys_fast.validation import (
    Fork,
    InvalidTransaction,
    Transaction,
    recover_transaction,
    recover_transactions,
)

if TYPE_CHECKING:
    from alys_fast.engine.revm import RevmEngine

keccak256 = require("hashing").keccak256

StateReader = Callable[[bytes], tuple[int, int]]
"""``address -> (nonce, balance)`` at the head state."""

# The cheapest transaction there is (a plain transfer): below this much gas left, stop building.
TX_GAS = 21_000

# JSON-RPC code geth answers every rejected transaction with (EIP-1474's "server error" range).
RPC_TX_REJECTED = -32000

# geth's messages (core/error.go, core/txpool/errors.go, internal/ethapi), verbatim.
ALREADY_KNOWN = "already known"
NONCE_TOO_LOW = "nonce too low"
NONCE_MAX = "nonce has max value"
INSUFFICIENT_FUNDS = "insufficient funds for gas * price + value"
REPLACE_UNDERPRICED = "replacement transaction underpriced"
INTRINSIC_GAS = "intrinsic gas too low"
FLOOR_DATA_GAS = "insufficient gas for floor data gas cost"
INVALID_SENDER = "invalid sender"
GAS_LIMIT = "exceeds block gas limit"
# A wrong chain id is a sender geth's signer cannot recover: "invalid sender: invalid chain id
# for signer: have 1 want 121212".
INVALID_CHAIN_ID = "invalid chain id for signer"
INVALID_SIGNATURE = "invalid transaction v, r, s values"
TYPE_NOT_SUPPORTED = "transaction type not supported"
TIP_ABOVE_FEE_CAP = "max priority fee per gas higher than max fee per gas"
INITCODE_TOO_LARGE = "max initcode size exceeded"
ACCOUNT_LIMIT = "account limit exceeded"
POOL_FULL = "txpool is full"
UNPROTECTED = "only replay-protected (EIP-155) transactions allowed over RPC"

# Validation-core rules (InvalidTransaction.rule) to geth's message; any other rule is a
# decoding fault, which geth reports as "rlp: ...".
_RULE_MESSAGES = {
    "transaction type not supported": TYPE_NOT_SUPPORTED,
    "nonce too high": NONCE_MAX,
    "invalid chain id": INVALID_SENDER,
    "invalid signature y parity": INVALID_SENDER,
    "invalid signature r": INVALID_SENDER,
    "invalid signature s": INVALID_SENDER,
    "signature s too high": INVALID_SENDER,
    "signature recovery failed": INVALID_SENDER,
    "priority fee above max fee": TIP_ABOVE_FEE_CAP,
    # gas × fee cap ≥ 2^256 exceeds any possible balance; geth finds it in the balance check.
    "gas limit times fee exceeds 256 bits": INSUFFICIENT_FUNDS,
    "initcode too large": INITCODE_TOO_LARGE,
    "intrinsic gas too low": INTRINSIC_GAS,
    "gas limit below calldata floor": FLOOR_DATA_GAS,
}


class TxPoolError(Exception):
    """A transaction the pool refused.

    ``message`` is geth's exact text (clients match on it; it is also the counter key),
    ``detail`` the offending values, ``code`` the JSON-RPC error code to answer with.
    """

    def __init__(self, code: int, message: str, detail: str = "") -> None:
        self.code = code
        self.message = message
        self.detail = detail
        super().__init__(f"{message}: {detail}" if detail else message)


def _reject(message: str, detail: str = "") -> TxPoolError:
    return TxPoolError(RPC_TX_REJECTED, message, detail)


def _wrong_chain(have: int, want: int) -> TxPoolError:
    return _reject(INVALID_SENDER, f"{INVALID_CHAIN_ID}: have {have} want {want}")


def _from_invalid(exc: InvalidTransaction) -> TxPoolError:
    """geth's message for a validation-core refusal, with geth's detail where clients parse it
    (chain id, intrinsic and floor gas), else the validator's values."""
    values = exc.values
    if exc.rule == "invalid chain id":
        have = values.get("chain_id")
        if have is None and values["v"] >= 35:  # EIP-155: v = 35 + 2 * chain id + parity
            have = (values["v"] - 35) // 2
        if have is None:  # a legacy v no signer takes
            return _reject(INVALID_SENDER, f"{INVALID_SIGNATURE} (v={values['v']})")
        return _wrong_chain(have, values["expected_chain_id"])
    message = _RULE_MESSAGES.get(exc.rule) or f"rlp: {exc.rule}"
    if message in (INTRINSIC_GAS, FLOOR_DATA_GAS):
        needed = values["intrinsic_gas" if message == INTRINSIC_GAS else "floor_gas"]
        return _reject(message, f"gas {values['gas_limit']}, minimum needed {needed}")
    # The detail adds the validator's rule only where geth's message does not already say it.
    shown = ", ".join(f"{key}={_show(value)}" for key, value in values.items())
    return _reject(message, shown if exc.rule == message else str(exc))


@dataclass(frozen=True, slots=True)
class TxPoolLimits:
    """Pool capacity, replacement and expiry policy, defined once (the node's ``[pool]``).

    ``max_txs`` counts pending and queued together; ``price_bump`` is the percentage by which a
    replacement must raise both the fee cap and the tip (geth's default, 10); ``queue_lifetime``
    is in seconds (geth's default, 3 h). Queued limits are geth's defaults; the executable
    ones are sized for a node that sustains 10,000 tx/s.
    """

    max_txs: int = 65_536
    max_executable_per_sender: int = 1_024
    max_queued_per_sender: int = 64
    max_queued: int = 1_024
    price_bump: int = 10
    queue_lifetime: float = 3 * 3600.0

    def __post_init__(self) -> None:
        for name in ("max_txs", "max_executable_per_sender", "max_queued_per_sender",
                     "max_queued"):
            if getattr(self, name) < 1:
                raise ValueError(f"pool limit {name} must be at least 1")
        if self.price_bump < 0 or self.queue_lifetime <= 0:
            raise ValueError("pool price_bump must be 0 or more and queue_lifetime positive")


def state_reader(engine: RevmEngine) -> StateReader:
    """A :data:`StateReader` over an engine's head, which moves as the engine commits."""
    account = engine.account

    def read(address: bytes) -> tuple[int, int]:
        found = account(address)
        return found.nonce, found.balance

    return read


def _hex(address: bytes) -> str:
    return "0x" + address.hex()


def _show(value: object) -> str:
    return _hex(value) if isinstance(value, bytes) else str(value)


class _Entry:
    """A pooled transaction with the numbers ordering and accounting need, computed once."""

    __slots__ = ("added", "cost", "fee_cap", "seq", "tip_cap", "tx")

    def __init__(self, tx: Transaction, seq: int, added: float) -> None:
        self.tx = tx
        self.added = added
        self.fee_cap, self.tip_cap = fee_caps(tx)
        self.cost = tx.gas_limit * self.fee_cap + tx.value
        self.seq = seq

    def tip(self, base_fee: int) -> int:
        """Effective tip per gas at ``base_fee`` (negative if the fee cap is below it)."""
        return min(self.tip_cap, self.fee_cap - base_fee)


class _Sender:
    """One sender's pooled transactions: nonces ``[nonce, end)`` are pending, the rest queued.

    ``pending_cost`` is the pending run's worst-case cost; ``beat`` when the sender last had a
    transaction admitted (its queued ones expire ``queue_lifetime`` after it).
    """

    __slots__ = ("address", "balance", "beat", "end", "nonce", "pending_cost", "tail", "txs")

    def __init__(self, address: bytes, nonce: int, balance: int, now: float) -> None:
        self.address = address
        self.nonce = nonce
        self.balance = balance
        self.beat = now
        self.end = nonce  # first nonce that is not pending
        self.pending_cost = 0
        self.tail = -1  # highest pooled nonce (-1: none)
        self.txs: dict[int, _Entry] = {}

    def queued(self) -> int:
        return len(self.txs) - (self.end - self.nonce)


class TxPool:
    """Pending and queued transactions by sender and nonce; see the module docstring.

    ``clock`` (seconds, monotonic) stamps admissions and drives expiry; tests inject their own.
    """

    def __init__(
        self,
        chain_id: int,
        block_gas_limit: int,
        state_reader: StateReader,
        limits: TxPoolLimits | None = None,
        *,
        base_fee: int = 0,
        fork: Fork = Fork.CANCUN,
        allow_unprotected: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chain_id = chain_id
        self.block_gas_limit = block_gas_limit
        self.limits = limits or TxPoolLimits()
        self.base_fee = base_fee  # prices eviction; moved by remove_included
        self.fork = fork
        self.allow_unprotected = allow_unprotected
        self.clock = clock
        self._read = state_reader
        self._by_hash: dict[bytes, _Entry] = {}
        self._senders: dict[bytes, _Sender] = {}
        # Senders with queued transactions (at most max_queued of them, so scans stay short),
        # and how many queued transactions there are in all.
        self._queued_senders: dict[bytes, _Sender] = {}
        self._queued = 0
        self._seq = count()
        # Eviction candidates: (effective tip, seq, entry, sender) of senders' last transactions,
        # lazily pruned; rebuilt from scratch when the base fee moves (tips change).
        self._tails: list[tuple[int, int, _Entry, _Sender]] = []
        self._tails_fresh = True
        # What happened to transactions, for the metrics layer: admissions and departures here,
        # refusals by geth message in ``rejected``.
        self.counters: dict[str, int] = dict.fromkeys(
            ("accepted", "replaced", "evicted", "included", "dropped", "expired"), 0
        )
        self.rejected: dict[str, int] = {}

    # --- queries ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> Transaction | None:
        """The pooled transaction with this hash, if any."""
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.tx

    def pooled_by_raw(self, raws: Iterable[bytes]) -> dict[bytes, Transaction]:
        """The pooled transactions among these encodings, by encoding: a peer's block reuses
        the signatures admission already recovered instead of recovering them again."""
        by_hash = self._by_hash
        found: dict[bytes, Transaction] = {}
        for raw in raws:
            entry = by_hash.get(keccak256(raw))
            if entry is not None and entry.tx.raw == raw:
                found[raw] = entry.tx
        return found

    def pending_nonce(self, address: bytes) -> int:
        """The nonce the sender's next transaction should use (``eth_getTransactionCount``
        with ``pending``): the end of its pending run, or its account nonce."""
        sender = self._senders.get(address)
        return self._read(address)[0] if sender is None else sender.end

    def status(self) -> dict[str, int]:
        """Pending and queued counts (``txpool_status``)."""
        return {"pending": len(self._by_hash) - self._queued, "queued": self._queued}

    def oldest_pending(self) -> float | None:
        """When (on the pool's clock) the longest-waiting pending transaction was admitted, or
        None. ``_by_hash`` is in admission order, so this stops at the first pending one; queued
        ones (behind a nonce gap) are passed over: they may wait for good reason."""
        for entry in self._by_hash.values():
            if entry.tx.nonce < self._senders[entry.tx.sender].end:
                return entry.added
        return None

    def content(self) -> dict[str, dict[bytes, dict[int, Transaction]]]:
        """``txpool_content``: pending and queued transactions by sender, then nonce (sorted)."""
        out: dict[str, dict[bytes, dict[int, Transaction]]] = {"pending": {}, "queued": {}}
        for address, sender in self._senders.items():
            for nonce in sorted(sender.txs):
                kind = "pending" if nonce < sender.end else "queued"
                out[kind].setdefault(address, {})[nonce] = sender.txs[nonce].tx
        return out

    def replay_order(self) -> list[bytes]:
        """Every pooled transaction's raw encoding, in an order whose admission into an empty
        pool at the same head rebuilds this one: per sender its queued transactions, then its
        pending run, by nonce (queued first so that none meets a larger pending cost in the
        balance check than it did when admitted)."""
        out = []
        for sender in self._senders.values():
            txs = sender.txs
            ordered = sorted(txs)
            split = sender.end - sender.nonce
            out += [txs[n].tx.raw for n in ordered[split:]]
            out += [txs[n].tx.raw for n in ordered[:split]]
        return out

    # --- admission --------------------------------------------------------------------------

    def add(self, tx: bytes | Transaction) -> Transaction:
        """Admit a raw transaction (consensus encoding) or one already recovered.

        Returns the pooled Transaction; raises TxPoolError with geth's message otherwise.
        """
        try:
            if not isinstance(tx, Transaction):
                if keccak256(tx) in self._by_hash:  # skip signature recovery for a resend
                    raise _reject(ALREADY_KNOWN, _hex(keccak256(tx)))
                try:
                    tx = recover_transaction(tx, self.chain_id, self.fork)
                except InvalidTransaction as exc:
                    raise _from_invalid(exc) from None
            self._admit(tx)
        except TxPoolError as exc:
            self.rejected[exc.message] = self.rejected.get(exc.message, 0) + 1
            raise
        return tx

    def add_many(self, raws: Sequence[bytes]) -> list[Transaction | TxPoolError]:
        """Admit a batch, one result per input in order (a TxPoolError in a refused slot).

        Signatures are recovered in parallel (:func:`recover_transactions`); resends of pooled
        transactions are answered before recovery. Admission itself runs in input order.
        """
        hashes = [keccak256(raw) for raw in raws]
        resent = [h in self._by_hash for h in hashes]
        recovered = iter(
            recover_transactions(
                [raw for raw, known in zip(raws, resent, strict=True) if not known],
                self.chain_id,
                self.fork,
            )
        )
        return self.admit_many(
            [
                _reject(ALREADY_KNOWN, _hex(tx_hash)) if known else next(recovered)
                for tx_hash, known in zip(hashes, resent, strict=True)
            ]
        )

    def admit_many(
        self, items: Sequence[Transaction | InvalidTransaction | TxPoolError]
    ) -> list[Transaction | TxPoolError]:
        """Admit transactions already through :func:`recover_transactions`, in order.

        What a caller that recovers signatures elsewhere (the RPC, off the pool's loop) hands
        over; refusals (including the InvalidTransaction results) come back as TxPoolError and
        are counted like any other.
        """
        out: list[Transaction | TxPoolError] = []
        for item in items:
            if isinstance(item, InvalidTransaction):
                item = _from_invalid(item)
            if isinstance(item, Transaction):
                try:
                    self._admit(item)
                except TxPoolError as exc:
                    item = exc
            if isinstance(item, TxPoolError):
                self.rejected[item.message] = self.rejected.get(item.message, 0) + 1
            out.append(item)
        return out

    def senders(self) -> list[bytes]:
        """Addresses with pooled transactions."""
        return list(self._senders)

    def has_sender(self, address: bytes) -> bool:
        """Whether ``address`` has pooled transactions."""
        return address in self._senders

    def resync(self, addresses: Iterable[bytes], state_reader: StateReader) -> None:
        """Re-read these senders at the head (after a head change the pool did not see)."""
        self._read = state_reader
        for address in addresses:
            sender = self._senders.get(address)
            if sender is not None:
                self._resync(sender, *state_reader(address))
        self._trim_queue()

    def _admit(self, tx: Transaction) -> None:
        """Pool policy for a recovered transaction; raises TxPoolError or inserts it."""
        if tx.chain_id is None:
            if not self.allow_unprotected:
                raise _reject(UNPROTECTED, _hex(tx.hash))
        elif tx.chain_id != self.chain_id:  # only a pre-recovered transaction gets here
            raise _wrong_chain(tx.chain_id, self.chain_id)
        if tx.gas_limit > self.block_gas_limit:
            raise _reject(GAS_LIMIT, f"tx gas {tx.gas_limit}, block gas {self.block_gas_limit}")
        if tx.hash in self._by_hash:
            raise _reject(ALREADY_KNOWN, _hex(tx.hash))
        address = tx.sender
        nonce, balance = self._read(address)
        now = self.clock()
        sender = self._senders.get(address)
        if sender is None:
            sender = _Sender(address, nonce, balance, now)
        elif sender.nonce != nonce or sender.balance != balance:
            self._resync(sender, nonce, balance)  # a head we were not told about: catch up
            self._trim_queue()
        if tx.nonce < nonce:
            raise _reject(NONCE_TOO_LOW, f"address {_hex(address)}, tx: {tx.nonce} state: {nonce}")
        entry = _Entry(tx, next(self._seq), now)
        old = sender.txs.get(tx.nonce)
        limits = self.limits
        executable = tx.nonce <= sender.end
        if old is not None:
            bump = 100 + limits.price_bump
            if entry.fee_cap * 100 < old.fee_cap * bump or entry.tip_cap * 100 < old.tip_cap * bump:
                raise _reject(
                    REPLACE_UNDERPRICED,
                    f"old fee cap {old.fee_cap} tip {old.tip_cap}, new fee cap {entry.fee_cap} "
                    f"tip {entry.tip_cap}, need +{limits.price_bump}%",
                )
        elif executable:
            if sender.end - sender.nonce >= limits.max_executable_per_sender:
                raise _reject(ACCOUNT_LIMIT, f"address {_hex(address)} has "
                              f"{sender.end - sender.nonce} executable transactions, the limit")
        elif sender.queued() >= limits.max_queued_per_sender:
            raise _reject(ACCOUNT_LIMIT, f"address {_hex(address)} has {sender.queued()} "
                          f"queued transactions, the limit; send nonce {sender.end} first")
        if old is not None and tx.nonce < sender.end:  # replaces one of the run
            need = sender.pending_cost - old.cost + entry.cost
        elif executable:  # joins the run
            need = sender.pending_cost + entry.cost
        else:  # queued: the run's check comes when it reaches this nonce
            need = entry.cost
        if balance < need:
            raise _reject(INSUFFICIENT_FUNDS, f"address {_hex(address)} have {balance} want {need}")
        if old is None and (
            len(self._by_hash) >= limits.max_txs
            or (not executable and self._queued >= limits.max_queued)
        ):
            self._make_room(entry, sender, executable)
        if old is not None:
            self._remove(sender, old)
            self.counters["replaced"] += 1
        sender.beat = now
        self._insert(sender, entry)
        self.counters["accepted"] += 1

    # --- structure --------------------------------------------------------------------------

    def _insert(self, sender: _Sender, entry: _Entry) -> None:
        nonce = entry.tx.nonce
        if not sender.txs:
            self._senders[sender.address] = sender
        txs = sender.txs
        txs[nonce] = entry
        self._by_hash[entry.tx.hash] = entry
        if nonce != sender.end:
            self._queued += 1
        elif nonce + 1 not in txs:  # the run's new last; _admit checked the limit and funds
            sender.end = nonce + 1
            sender.pending_cost += entry.cost
        else:
            self._queued += 1
            self._promote(sender)
        if nonce > sender.tail:
            sender.tail = nonce
            self._push_tail(sender)
        self._track(sender)

    def drop(self, tx_hashes: Iterable[bytes]) -> int:
        """Forget transactions the block builder could not include (a reason that holds at
        the head: funds, code at the sender, intrinsic gas...), so none waits forever; later
        nonces of their senders become queued (within the queue limits). -> how many were
        pooled."""
        dropped = 0
        touched = []
        for tx_hash in tx_hashes:
            entry = self._by_hash.get(tx_hash)
            if entry is not None:
                sender = self._senders[entry.tx.sender]
                self._remove(sender, entry)
                touched.append(sender)
                dropped += 1
        self.counters["dropped"] += dropped
        for sender in touched:
            self._trim_sender_queue(sender)
        self._trim_queue()
        return dropped

    def expire(self, now: float | None = None) -> int:
        """Drop the queued transactions of senders with nothing admitted for
        ``queue_lifetime`` seconds (``now`` on the pool's clock). -> how many."""
        cutoff = (self.clock() if now is None else now) - self.limits.queue_lifetime
        expired = 0
        for sender in [s for s in self._queued_senders.values() if s.beat < cutoff]:
            expired += self._drop_queued(sender, 0)
        self.counters["expired"] += expired
        return expired

    def _remove(self, sender: _Sender, entry: _Entry) -> None:
        """Take one transaction out; later nonces of its sender become queued."""
        nonce = entry.tx.nonce
        if nonce < sender.end:
            self._demote(sender, nonce)
        del sender.txs[nonce]
        del self._by_hash[entry.tx.hash]
        self._queued -= 1
        if not sender.txs:
            sender.tail = -1
            del self._senders[sender.address]
            self._queued_senders.pop(sender.address, None)
            return
        if nonce == sender.tail:
            sender.tail = max(sender.txs)
            self._push_tail(sender)
        self._track(sender)

    def _promote(self, sender: _Sender) -> None:
        """Extend the pending run over the contiguous queued nonces the balance covers, up to
        the per-sender executable limit."""
        txs, end, cost, balance = sender.txs, sender.end, sender.pending_cost, sender.balance
        stop = sender.nonce + self.limits.max_executable_per_sender
        while end < stop:
            entry = txs.get(end)
            if entry is None or cost + entry.cost > balance:
                break
            cost += entry.cost
            end += 1
        self._queued -= end - sender.end
        sender.end, sender.pending_cost = end, cost

    def _demote(self, sender: _Sender, nonce: int) -> None:
        """End the pending run before ``nonce``: the pending transactions from it on are queued."""
        txs, end = sender.txs, sender.end
        if nonce == end - 1:  # the run's last (an eviction, a one-transaction run)
            sender.pending_cost -= txs[nonce].cost
        else:
            sender.pending_cost -= sum(txs[n].cost for n in range(nonce, end))
        self._queued += end - nonce
        sender.end = nonce

    def _track(self, sender: _Sender) -> None:
        if len(sender.txs) > sender.end - sender.nonce:
            self._queued_senders[sender.address] = sender
        else:
            self._queued_senders.pop(sender.address, None)

    def _push_tail(self, sender: _Sender) -> None:
        if self._tails_fresh:
            if len(self._tails) > 2 * len(self._senders) + 64:
                # Mostly stale entries (included or replaced): drop them all and let the next
                # eviction rebuild, so a pool that is never full does not keep every tx alive.
                self._tails_fresh = False
                self._tails.clear()
                return
            entry = sender.txs[sender.tail]
            heappush(self._tails, (entry.tip(self.base_fee), entry.seq, entry, sender))

    def _cheapest_queued(self, other_than: _Sender | None) -> _Entry | None:
        """The queued transaction eviction takes first: among senders' highest queued nonces
        (``other_than``'s excepted), the lowest effective tip, then the oldest."""
        base_fee = self.base_fee
        best: tuple[int, int] | None = None
        victim = None
        for sender in self._queued_senders.values():
            if sender is not other_than:
                entry = sender.txs[sender.tail]
                key = (entry.tip(base_fee), entry.seq)
                if best is None or key < best:
                    best, victim = key, entry
        return victim

    def _make_room(self, newcomer: _Entry, own: _Sender, executable: bool) -> None:
        """One slot for a newcomer (see the module docstring's pool limits), or raise
        ``txpool is full``."""
        victim = self._cheapest_queued(None if executable else own)
        if victim is not None and (
            executable or victim.tip(self.base_fee) < newcomer.tip(self.base_fee)
        ):
            self._remove(self._senders[victim.tx.sender], victim)
            self.counters["evicted"] += 1
        elif executable:
            self._evict_pending_for(newcomer, own)
        else:
            raise _reject(POOL_FULL, f"{self._queued} queued of {len(self._by_hash)} "
                          f"transactions, tip {newcomer.tip(self.base_fee)} too low to queue")

    def _evict_pending_for(self, newcomer: _Entry, own: _Sender) -> None:
        """Make room by evicting the cheapest last transaction of another sender, if the
        newcomer pays a higher effective tip; else raise ``txpool is full``. Only called with
        nothing queued, so every sender's last transaction is pending."""
        tails = self._tails
        if not self._tails_fresh or len(tails) > 2 * len(self._senders) + 64:
            tails[:] = [
                (e.tip(self.base_fee), e.seq, e, s)
                for s in self._senders.values()
                for e in (s.txs[s.tail],)
            ]
            heapify(tails)
            self._tails_fresh = True
        held = None
        victim = None
        while tails:
            item = heappop(tails)
            entry, sender = item[2], item[3]
            if self._by_hash.get(entry.tx.hash) is not entry or sender.tail != entry.tx.nonce:
                continue  # stale: removed, replaced, or no longer the sender's last
            if sender is own:
                held = item
                continue
            victim = item
            break
        if held is not None:
            heappush(tails, held)
        tip = newcomer.tip(self.base_fee)
        if victim is None or victim[0] >= tip:
            if victim is not None:
                heappush(tails, victim)
            raise _reject(POOL_FULL, f"{len(self._by_hash)} transactions, tip {tip} too low")
        self._remove(victim[3], victim[2])
        self.counters["evicted"] += 1

    def _resync(self, sender: _Sender, nonce: int, balance: int) -> None:
        """Move a sender to a new account nonce and balance: drop what is now stale, re-find
        its run, drop the transaction the balance stopped it at and queued ones the balance
        could never pay, then restore its queue limit."""
        self._demote(sender, sender.nonce)  # all queued while the run is re-found
        for stale in sorted(n for n in sender.txs if n < nonce):
            self._remove(sender, sender.txs[stale])
            self.counters["dropped"] += 1
        sender.nonce = sender.end = nonce
        sender.balance = balance
        self._promote(sender)
        stopped_at = sender.txs.get(sender.end)
        if stopped_at is not None and sender.end - nonce < self.limits.max_executable_per_sender:
            # Admission would refuse it now (insufficient funds), so a replay of the journal
            # would too: drop it rather than keep what a restart loses.
            self._remove(sender, stopped_at)
            self.counters["dropped"] += 1
        self._track(sender)
        self.counters["dropped"] += self._drop_queued(
            sender, self.limits.max_queued_per_sender, lambda entry: entry.cost > balance)

    def _drop_queued(self, sender: _Sender, keep: int,
                     doomed: Callable[[_Entry], bool] | None = None) -> int:
        """Drop, highest nonce first, the queued transactions of ``sender`` beyond its lowest
        ``keep`` queued ones, and those ``doomed``. -> how many."""
        queued = sorted((n for n in sender.txs if n >= sender.end), reverse=True)
        dropped = 0
        for rank, nonce in enumerate(queued):
            entry = sender.txs[nonce]
            if len(queued) - rank > keep or (doomed is not None and doomed(entry)):
                self._remove(sender, entry)
                dropped += 1
        return dropped

    def _trim_sender_queue(self, sender: _Sender) -> None:
        if sender.queued() > self.limits.max_queued_per_sender:
            self.counters["dropped"] += self._drop_queued(
                sender, self.limits.max_queued_per_sender)

    def _trim_queue(self) -> None:
        """Back within ``max_queued``: drop the cheapest queued transactions (as eviction picks
        them)."""
        while self._queued > self.limits.max_queued:
            victim = self._cheapest_queued(None)
            assert victim is not None
            self._remove(self._senders[victim.tx.sender], victim)
            self.counters["dropped"] += 1

    # --- block building ---------------------------------------------------------------------

    def best(self, gas_limit: int, base_fee: int) -> list[Transaction]:
        """Transactions for the next block, in the order to execute them.

        Per sender by nonce; across senders by effective tip at ``base_fee`` (then first seen);
        a sender whose next transaction cannot pay the base fee or does not fit the gas left
        is done for this block. The sum of gas limits never exceeds ``gas_limit``.
        """
        heap = []
        for sender in self._senders.values():
            if sender.end > sender.nonce:
                e = sender.txs[sender.nonce]
                if e.fee_cap >= base_fee:
                    heap.append((-min(e.tip_cap, e.fee_cap - base_fee), e.seq, e, sender))
        heapify(heap)
        out: list[Transaction] = []
        gas_left = gas_limit
        while heap and gas_left >= TX_GAS:
            _, _, e, sender = heap[0]
            tx = e.tx
            if tx.gas_limit > gas_left:
                heappop(heap)
                continue
            out.append(tx)
            gas_left -= tx.gas_limit
            following = tx.nonce + 1
            if following < sender.end:
                e = sender.txs[following]
                if e.fee_cap >= base_fee:
                    heapreplace(heap, (-min(e.tip_cap, e.fee_cap - base_fee), e.seq, e, sender))
                    continue
            heappop(heap)
        return out

    def remove_included(
        self,
        txs: Iterable[Transaction],
        state_reader: StateReader,
        *,
        base_fee: int | None = None,
        changed: Iterable[bytes] = (),
    ) -> None:
        """Forget a new block's transactions and bring their senders up to the new head.

        ``state_reader`` reads the new head (it replaces the pool's reader); ``base_fee`` is the
        next block's, for pricing evictions. Only the block's senders can have a new nonce or a
        lower balance, so they are re-read, with the ``changed`` accounts (say, funds received)
        that are senders here: a run the balance held back may now grow.
        """
        self._read = state_reader
        if base_fee is not None and base_fee != self.base_fee:
            self.base_fee = base_fee
            self._tails_fresh = False
            self._tails.clear()
        senders = self._senders
        touched = {address for address in changed if address in senders}
        for tx in txs:
            touched.add(tx.sender)
            entry = self._by_hash.get(tx.hash)
            if entry is not None:
                self._remove(self._senders[tx.sender], entry)
                self.counters["included"] += 1
        self.resync(touched, state_reader)

"""An external execution client (geth) behind the chain's engine seam, over the Engine API.

The engine actor drives an :class:`ExternalEngine` where it would drive the embedded revm
engine, so the chain, its workflows and the supervision tree do not know which one runs:

- building (``execute(..., skip_invalid=True)``): ``engine_forkchoiceUpdated`` on the head with
  payload attributes (the block's timestamp, our fee recipient, PREVRANDAO 0), a wait while geth
  fills the payload from *its* pool, ``engine_getPayload``; the payload is normalized to our
  header (:func:`~alys_fast.engine.payload.normalized`) and validated like an import. The wait
  adapts as in Alys's builder: doubled (up to :data:`MAX_BUILD_WAIT`) after a payload that left
  pending transactions out while it had gas for them, shrunk by a tenth after one that took all;
- importing (``execute(..., header=...)``): the payload is rebuilt from our header and its
  transactions on the parent's EL hash (:func:`~alys_fast.engine.payload.payload_of`), then
  ``engine_newPayload``; INVALID is refused with geth's reason (nothing is stored); the receipts
  come from ``eth_getBlockReceipts``. geth gives no state diff: the node keeps no state of its own;
- committing: ``engine_forkchoiceUpdated`` with the block as head, and as safe/finalized the EL
  hash of the chain's last AuxPoW-finalized block (the ``finalized`` number the engine actor
  passes in).

Every request goes through one :class:`~alys_fast.actors.breaker.CircuitBreaker`: consecutive
failures or timeouts open it, and while it is open every build and import fails at once with
:class:`EngineUnavailable` saying why (the chain skips the slot; nothing is stored). A commit
that does not reach geth does not fail: the block is stored, so the adapter only notes that
geth's head is unknown. Before the next build or import, or on a probe, it :meth:`sync`-s:
forkchoiceUpdated to our head; if geth lacks it (restarted empty, or lost its last blocks) the
stored payloads from the last block geth has are replayed through ``engine_newPayload``
(:func:`~alys_fast.engine.engine_api.replay`). So no block is lost, skipped or imported twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import msgspec

from alys_fast.actors.breaker import CircuitBreaker
from alys_fast.engine.engine_api import (
    ZERO_HASH,
    EngineApi,
    EngineApiError,
    EngineRpcError,
    EngineUnavailable,
    EthRpc,
    ExecutionPayload,
    Fork,
    ForkchoiceState,
    PayloadAttributes,
    PayloadNotValidated,
    PayloadRefused,
    replay,
)
from alys_fast.engine.errors import EngineError
from alys_fast.engine.interface import BlockEnv, BlockExecution
from alys_fast.engine.payload import (
    el_genesis_hash,
    el_hash_key,
    normalized,
    payload_of,
    receipt_of,
)
from alys_fast.metrics.histogram import Histogram
from alys_fast.state import StateDiff
from alys_fast.validation import Header, Transaction, decode_header, recover_transactions

if TYPE_CHECKING:
    from alys_fast.storage.actor import StoreClient

log = logging.getLogger(__name__)

FIRST_BUILD_WAIT = 0.05
MAX_BUILD_WAIT = 1.0
# Payloads replayed per forkchoiceUpdated when bringing a geth back to the head.
REPLAY_CHUNK = 256
# Gas a payload must still have had for a left-out transaction to count as left out.
TRANSFER_GAS = 21_000


class ExecutionSettings(msgspec.Struct, frozen=True):
    """Where the external execution client is (``[execution]`` in a node config, or
    ``--engine-url``/``--jwt-secret``/``--engine-rpc-url``), and the breaker's limits.

    ``rpc_url`` is geth's public JSON-RPC, where the node forwards state and transaction
    methods; without it they go through the Engine API port (which serves ``eth_`` too)."""

    engine_url: str
    jwt_secret_file: str
    rpc_url: str | None = None
    timeout: float = 8.0
    failure_threshold: int = 3
    base_backoff: float = 0.5
    max_backoff: float = 30.0

    def jwt_secret(self) -> bytes:
        """The 32-byte secret, as geth reads the file (hex, ``0x`` optional)."""
        path = Path(self.jwt_secret_file)
        try:
            text = path.read_text().strip().removeprefix("0x")
            secret = bytes.fromhex(text)
        except (OSError, ValueError) as exc:
            raise EngineError(f"JWT secret {path}: {getattr(exc, 'strerror', None) or exc}"
                              ) from None
        if len(secret) != 32:
            raise EngineError(f"JWT secret {path}: expected 32 bytes as 64 hex digits")
        return secret


class AuthenticatedRpc(EthRpc):
    """geth's JSON-RPC through its Engine API port, a fresh JWT on every request: where the
    node forwards when no public RPC URL is given."""

    def __init__(self, url: str, jwt_secret: bytes, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.jwt_secret = jwt_secret

    def headers(self) -> dict[str, str]:
        token = jwt.encode({"iat": int(time.time())}, self.jwt_secret, algorithm="HS256")
        return {"Authorization": f"Bearer {token}"}


def open_forwarder(settings: ExecutionSettings) -> EthRpc:
    """The client the node's JSON-RPC forwards geth's methods to."""
    if settings.rpc_url is not None:
        return EthRpc(settings.rpc_url, timeout=settings.timeout)
    return AuthenticatedRpc(settings.engine_url, settings.jwt_secret(), timeout=settings.timeout)


class EngineStats:
    """What ``/health`` and ``/metrics`` show of the external engine: the breaker, whether
    geth is at our head, and the latency of each Engine API method."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.synced = False
        self.replayed = 0
        self.latency: dict[str, Histogram] = {}

    def observe(self, method: str, seconds: float) -> None:
        histogram = self.latency.get(method)
        if histogram is None:
            histogram = self.latency[method] = Histogram()
        histogram.observe(seconds)


class ExternalEngine:
    """The chain's engine over geth's Engine API; see the module docstring."""

    def __init__(self, settings: ExecutionSettings, fork: Fork | str, chain_id: int,
                 store: StoreClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.fork = Fork(fork)
        self.chain_id = chain_id
        self.store = store
        breaker = CircuitBreaker(failure_threshold=settings.failure_threshold,
                                 base_backoff=settings.base_backoff,
                                 max_backoff=settings.max_backoff, clock=clock)
        self.api = EngineApi(settings.engine_url, settings.jwt_secret(), self.fork,
                             timeout=settings.timeout, breaker=breaker)
        self.stats = EngineStats(breaker)
        self.api.observe_latency = self.stats.observe
        # geth's public RPC, for its pool's size (the Engine API port serves no txpool_).
        self.pool_rpc = None if settings.rpc_url is None else EthRpc(settings.rpc_url,
                                                                     timeout=settings.timeout)
        self.build_wait = FIRST_BUILD_WAIT
        self.genesis_el = ZERO_HASH
        # Our head: number, hash, state root, and the EL hash of the same block.
        self.head_number = 0
        self.head_hash = ZERO_HASH
        self.head_state_root = ZERO_HASH
        self.head_el = ZERO_HASH
        self.finalized = 0  # the chain's last finalized block number (safe and finalized)
        # EL hashes of recent blocks by number (the head's parent lookups, finality).
        self._el_hashes: dict[int, bytes] = {}

    async def load(self, genesis: Header, head: Header) -> bytes:
        """Take the stored head (at start, or after the store moved: a dev chain's revert);
        geth is not asked now, its head is checked before the next block."""
        self.genesis_el = el_genesis_hash(genesis, self.fork)
        self._el_hashes = {0: self.genesis_el}
        self.head_number, self.head_hash = head.number, head.hash
        self.head_state_root = head.state_root
        self.head_el = await self.el_hash(head.number)
        self.stats.synced = False
        return head.state_root

    async def el_hash(self, number: int) -> bytes:
        """The stored EL hash of our block ``number``."""
        known = self._el_hashes.get(number)
        if known is not None:
            return known
        stored = await self.store.meta(el_hash_key(number))
        if stored is None:
            raise EngineError(
                f"block {number} has no stored execution payload hash: this data dir was "
                "written by the embedded engine and cannot run on an external one")
        self._remember(number, stored)
        return stored

    def _remember(self, number: int, el_hash: bytes) -> None:
        self._el_hashes[number] = el_hash
        if len(self._el_hashes) > 4 * REPLAY_CHUNK:
            for old in sorted(self._el_hashes)[:REPLAY_CHUNK]:
                if old:
                    del self._el_hashes[old]

    def _forkchoice(self, head_el: bytes) -> ForkchoiceState:
        final = self._el_hashes.get(self.finalized, ZERO_HASH)
        return ForkchoiceState(head_el, final, final)

    # --- the seam -----------------------------------------------------------------------------

    async def execute(self, env: BlockEnv, txs: Sequence[Transaction], *, skip_invalid: bool,
                      header: Header) -> BlockExecution:
        """Build (``skip_invalid``: geth fills the block from its pool, ``txs`` unused) or
        import the block ``header`` heads on our head; the head does not move."""
        if header.parent_hash != self.head_hash:
            raise EngineError(f"the external engine executes on its head {self.head_number} "
                              f"only, not on 0x{header.parent_hash.hex()}")
        try:
            return await self._execute(env, txs, skip_invalid, header)
        except (EngineUnavailable, PayloadNotValidated):
            # geth went away, or came back without our head: what it kept is checked next.
            self.stats.synced = False
            raise

    async def _execute(self, env: BlockEnv, txs: Sequence[Transaction], skip_invalid: bool,
                       header: Header) -> BlockExecution:
        await self.sync()
        if skip_invalid:
            payload = await self._build(env, header)
        else:
            raws = [tx.raw for tx in txs]
            payload = payload_of(header, raws, self.head_el, self.fork)
        try:
            status = await self.api.new_payload(payload)
        except PayloadRefused as exc:
            log.warning("geth refused block %d (nothing is stored): %s", header.number, exc)
            raise
        if not status.valid:
            self.stats.synced = False
            raise PayloadNotValidated(self.api.new_payload_method, status)
        if skip_invalid:
            txs = tuple(recover_transactions(list(payload.transactions), self.chain_id))
            refused = [tx for tx in txs if not isinstance(tx, Transaction)]
            if refused:
                raise EngineError(f"geth built a block with an invalid transaction: {refused[0]}")
        raw_receipts = await self.api.call("eth_getBlockReceipts",
                                           ["0x" + payload.block_hash.hex()])
        try:
            receipts = tuple(receipt_of(r) for r in raw_receipts or ())
        except ValueError as exc:
            raise EngineRpcError("eth_getBlockReceipts", -32603, f"malformed answer: {exc}"
                                 ) from None
        if len(receipts) != len(payload.transactions):
            raise EngineRpcError("eth_getBlockReceipts", -32603,
                                 f"{len(receipts)} receipts for {len(payload.transactions)} "
                                 "transactions")
        return BlockExecution(
            parent_state_root=self.head_state_root, env=env, state_root=payload.state_root,
            gas_used=payload.gas_used, burned=payload.gas_used * payload.base_fee_per_gas,
            transactions=tuple(txs), receipts=receipts, receipts_root=payload.receipts_root,
            logs_bloom=payload.logs_bloom, skipped=(), changes=StateDiff(accounts={}),
            el_block_hash=payload.block_hash,
        )

    async def _build(self, env: BlockEnv, header: Header) -> ExecutionPayload:
        attributes = PayloadAttributes(timestamp=env.timestamp, prev_randao=env.prev_randao,
                                       suggested_fee_recipient=env.fee_recipient)
        pending = await self._pending()
        built = await self.api.build(self._forkchoice(self.head_el), attributes,
                                     wait=self.build_wait)
        payload = normalized(built.execution_payload, header.extra_data)
        for field, theirs, ours in (("number", payload.block_number, env.number),
                                    ("gas limit", payload.gas_limit, env.gas_limit),
                                    ("base fee", payload.base_fee_per_gas, env.base_fee)):
            if theirs != ours:
                raise EngineError(f"geth built a block with {field} {theirs}, the chain's "
                                  f"is {ours} (is geth's --miner.gaslimit the spec's?)")
        room = payload.gas_limit - payload.gas_used >= TRANSFER_GAS
        if len(payload.transactions) < pending and room:
            self.build_wait = min(MAX_BUILD_WAIT, self.build_wait * 2)
        else:
            self.build_wait = max(FIRST_BUILD_WAIT / 10, self.build_wait * 0.9)
        return payload

    async def _pending(self) -> int:
        """How many executable transactions geth's pool holds (0 when it cannot be asked: the
        build wait then stays as it is)."""
        if self.pool_rpc is None:
            return 0
        try:
            return int((await self.pool_rpc.call("txpool_status", []))["pending"], 16)
        except (EngineApiError, TypeError, KeyError, ValueError):
            return 0

    async def commit(self, execution: BlockExecution, block_hash: bytes, finalized: int
                     ) -> None:
        """Make the block geth's head; our head moves whether or not geth hears it (the block
        is stored: :meth:`sync` tells geth later). ``finalized``: the chain's last finalized
        block number."""
        assert execution.el_block_hash is not None
        number = execution.env.number
        self.head_number, self.head_hash = number, block_hash
        self.head_state_root = execution.state_root
        self.head_el = execution.el_block_hash
        self._remember(number, self.head_el)
        self.finalized = finalized
        try:
            updated = await self.api.forkchoice_updated(self._forkchoice(self.head_el))
            self.stats.synced = updated.payload_status.valid
        except EngineApiError as exc:
            self.stats.synced = False
            log.warning("geth did not take head %d (it is stored; geth is told when it is "
                        "back): %s", number, exc)

    # --- keeping geth at our head -------------------------------------------------------------

    async def sync(self) -> None:
        """Bring geth to our head if it may not be there; EngineApiError if it cannot."""
        if self.stats.synced:
            return
        head = self.head_number
        if self.finalized not in self._el_hashes and self.finalized <= head:
            await self.el_hash(self.finalized)
        updated = await self.api.forkchoice_updated(self._forkchoice(self.head_el))
        if not updated.payload_status.valid:
            have = await self._last_shared_block(head)
            log.warning("geth lacks blocks %d..%d: replaying them through newPayload",
                        have + 1, head)
            for first in range(have + 1, head + 1, REPLAY_CHUNK):
                last = min(head, first + REPLAY_CHUNK - 1)
                payloads = [await self._stored_payload(n) for n in range(first, last + 1)]
                fork_state = self._forkchoice(payloads[-1].block_hash)
                await replay(self.api, payloads, safe=fork_state.safe_block_hash,
                             finalized=fork_state.finalized_block_hash)
                self.stats.replayed += len(payloads)
            log.info("geth is back at head %d", head)
        self.stats.synced = True

    async def _last_shared_block(self, head: int) -> int:
        """The highest of our blocks geth holds (0 if only the genesis); EngineError if geth
        is not on this chain's genesis."""
        top = min(head, int(await self.api.call("eth_blockNumber", []), 16))
        for number in range(top, -1, -1):
            block = await self.api.call("eth_getBlockByNumber", [hex(number), False])
            theirs = None if block is None else bytes.fromhex(block["hash"][2:])
            if theirs == await self.el_hash(number):
                return number
        raise EngineError(
            f"geth's genesis is not this chain's (expected 0x{self.genesis_el.hex()}): it was "
            "initialised with another genesis (write it with the chain spec: el_genesis)")

    async def _stored_payload(self, number: int) -> ExecutionPayload:
        record = await self.store.block(number=number)
        if record is None:
            raise EngineError(f"block {number} is not stored")
        payload = payload_of(decode_header(record.header), record.transactions,
                             await self.el_hash(number - 1), self.fork)
        if payload.block_hash != await self.el_hash(number):
            raise EngineError(f"block {number}'s payload does not hash to its stored EL hash")
        return payload

    async def probe(self) -> bool:
        """When the breaker lets a call through: whether geth answers and is at our head."""
        try:
            await self.api.exchange_capabilities()
            await self.sync()
        except EngineApiError as exc:
            log.info("geth probe failed: %s", exc)
            return False
        return True

    async def close(self) -> None:
        await self.api.close()
        if self.pool_rpc is not None:
            await self.pool_rpc.close()


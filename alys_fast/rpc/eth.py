"""The ``eth_``, ``net_``, ``web3_`` and ``txpool_`` methods, answered from the node's actors.

Each method reads what it needs by asking the actor that owns it: blocks, receipts and the
transaction index from storage, accounts from the engine, pending nonces and pooled
transactions from the pool. The head (``latest``) is what the chain last published to the RPC
actor, so a block is never reported before it is stored.

What this node does not keep, it says so rather than guessing:

- State is kept for the head only: account reads at an older block fail with a -32000 error.
- The engine runs value transfers only (see ``engine.embedded``), so there is no contract code
  (``eth_getCode`` is ``0x``), no logs (``eth_getLogs`` validates its filter and finds none),
  and ``eth_call`` / ``eth_estimateGas`` of a contract creation fail with a clear error.
- ``safe`` and ``finalized`` are the head: with one authority and no merged mining yet, no
  other chain can replace it. (AuxPoW finality changes this when it lands.)
"""

from __future__ import annotations

import asyncio
import sys
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from alys_fast import __version__
from alys_fast._cext import require
from alys_fast.actors import ActorError
from alys_fast.chain.pool_actor import PoolClient
from alys_fast.chain.spec import ChainSpec
from alys_fast.chain.txpool import TxPoolError
from alys_fast.chain.workflows import child_base_fee
from alys_fast.engine.actor import EngineClient
from alys_fast.node.context import RECOVERY, NodeContext
from alys_fast.rpc.dispatch import (
    InvalidParams,
    Methods,
    RpcError,
    ServerError,
    address,
    block_id,
    boolean,
    data,
    hash32,
    quantity,
)
from alys_fast.rpc.formats import block_json, hexdata, receipt_json, transaction_json
from alys_fast.storage.actor import StoreClient
from alys_fast.storage.store import BlockRecord
from alys_fast.validation import (
    Block,
    Header,
    InvalidTransaction,
    Transaction,
    decode_header,
    intrinsic_gas,
    recover_transaction,
    recover_transactions,
    with_sender,
)
from alys_fast.validation.actor import Recover, Refusal
from alys_fast.validation.transactions import usable_cores

_keccak256 = require("hashing").keccak256

# The tip eth_maxPriorityFeePerGas suggests (anvil's and hardhat's default, 1 gwei).
SUGGESTED_TIP = 1_000_000_000
MAX_FEE_HISTORY_BLOCKS = 1024
MAX_REWARD_PERCENTILES = 100
_HASH_CACHE_BLOCKS = 64
_RECOVERY_TIMEOUT = 5.0
# Below this many transactions, recovering inline is cheaper than a hop to a worker thread.
_INLINE_RECOVERY = 16

CLIENT_VERSION = (
    f"alys-fast/v{__version__}/python{sys.version_info.major}.{sys.version_info.minor}"
)


class EthApi:
    """The method table over one node's actors; ``head`` is kept current by the RPC actor."""

    def __init__(self, ctx: NodeContext, head: Header) -> None:
        self.ctx = ctx
        self.spec: ChainSpec = ctx.spec
        self.miner = ctx.spec.fee_recipient_bytes()
        self.head = head
        self.store = StoreClient(ctx)
        self.engine = EngineClient(ctx)
        self.pool = PoolClient(ctx)
        # Called with the hashes of newly pooled transactions (newPendingTransactions).
        self.on_pending: Callable[[list[bytes]], None] | None = None
        self.stats = ctx.stats.setdefault("rpc", {"received": 0})
        self._tx_hashes: OrderedDict[bytes, tuple[bytes, ...]] = OrderedDict()
        self._turn = 0

    def methods(self) -> Methods:
        chain_id = hex(self.spec.chain_id)
        table = Methods({
            "web3_clientVersion": lambda: CLIENT_VERSION,
            "net_version": lambda: str(self.spec.chain_id),
            "net_listening": lambda: True,
            "net_peerCount": lambda: "0x0",
            "eth_chainId": lambda: chain_id,
            "eth_syncing": lambda: False,
            "eth_accounts": lambda: [],
            "eth_blockNumber": lambda: hex(self.head.number),
            "eth_gasPrice": lambda: hex(self._next_base_fee() + SUGGESTED_TIP),
            "eth_maxPriorityFeePerGas": lambda: hex(SUGGESTED_TIP),
            "eth_getBalance": self.get_balance,
            "eth_getTransactionCount": self.get_transaction_count,
            "eth_getCode": self.get_code,
            "eth_getStorageAt": self.get_storage_at,
            "eth_feeHistory": self.fee_history,
            "eth_estimateGas": self.estimate_gas,
            "eth_call": self.call,
            "eth_getTransactionByHash": self.get_transaction_by_hash,
            "eth_getTransactionReceipt": self.get_transaction_receipt,
            "eth_getBlockByNumber": self.get_block,
            "eth_getBlockByHash": self.get_block_by_hash,
            "eth_getBlockTransactionCountByNumber": self.get_block_transaction_count,
            "eth_getBlockTransactionCountByHash": self.get_block_transaction_count_by_hash,
            "eth_getLogs": self.get_logs,
            "txpool_status": self.txpool_status,
        })
        table.add(
            "eth_sendRawTransaction", self.send_raw_transaction, batch=self.send_raw_transactions
        )
        return table

    # --- transactions in ----------------------------------------------------------------------

    async def send_raw_transaction(self, raw: Any) -> str:
        (result,) = await self.send_raw_transactions([[raw]])
        if isinstance(result, RpcError):
            raise result
        return result

    async def send_raw_transactions(self, calls: list[Any]) -> list[str | RpcError]:
        """Every ``eth_sendRawTransaction`` of a JSON-RPC batch, validated and pooled at once.

        Signatures are recovered off the event loop (worker threads, the GIL released), so the
        node keeps serving while a large batch is checked; the pool then admits them in order.
        """
        out: list[str | RpcError | None] = [None] * len(calls)
        raws: list[bytes] = []
        slots: list[int] = []
        for i, params in enumerate(calls):
            try:
                if type(params) is not list or len(params) != 1:
                    raise InvalidParams("eth_sendRawTransaction takes one argument, the raw tx")
                raws.append(data(params[0], "raw transaction"))
                slots.append(i)
            except RpcError as exc:
                out[i] = exc
        self.stats["received"] += len(calls)
        if raws:
            items = await self._recover(raws)
            try:
                results = await self.pool.submit(items)
            except ActorError as exc:
                raise ServerError(f"transaction pool unavailable: {exc}") from None
            accepted = []
            for i, result in zip(slots, results, strict=True):
                if isinstance(result, TxPoolError):
                    out[i] = RpcError(result.code, str(result))
                else:
                    out[i] = hexdata(result.hash)
                    accepted.append(result.hash)
            if accepted and self.on_pending is not None:
                self.on_pending(accepted)
        return out  # type: ignore[return-value]

    async def _recover(self, raws: list[bytes]) -> list[Transaction | InvalidTransaction]:
        """Recover the senders: inline for a few, else in the recovery process (rebuilt here
        with :func:`with_sender`), or on local threads while that process is unavailable."""
        chain_id = self.spec.chain_id
        if len(raws) < _INLINE_RECOVERY:
            return recover_transactions(raws, chain_id)
        try:
            self._turn += 1
            path = RECOVERY[self._turn % len(RECOVERY)]
            answers = await self.ctx.ref(path).ask(Recover(raws), _RECOVERY_TIMEOUT)
        except (ActorError, KeyError):
            return await asyncio.get_running_loop().run_in_executor(
                _recovery_pool(), recover_transactions, raws, chain_id
            )
        items: list[Transaction | InvalidTransaction] = []
        for raw, answer in zip(raws, answers, strict=True):
            if isinstance(answer, Refusal):
                items.append(answer.error())
                continue
            try:
                items.append(with_sender(raw, answer, chain_id))
            except InvalidTransaction as exc:
                items.append(exc)
        return items

    # --- state --------------------------------------------------------------------------------

    async def _at_head(self, block: Any) -> None:
        """Refuse a state read at any block but the head (the only state this node keeps)."""
        ident = block_id(block)
        head = self.head
        if isinstance(ident, str):
            if ident != "earliest" or head.number == 0:
                return
            ident = 0
        if ident in (head.number, head.hash):
            return
        shown = f"0x{ident.hex()}" if isinstance(ident, bytes) else str(ident)
        raise ServerError(
            f"state at block {shown} is not available: this node keeps the head's state only "
            f"(block {head.number})"
        )

    async def get_balance(self, account: Any, block: Any = "latest") -> str:
        who = address(account)
        await self._at_head(block)
        return hex((await self.engine.account(who)).balance)

    async def get_transaction_count(self, account: Any, block: Any = "latest") -> str:
        who = address(account)
        if block == "pending":
            return hex(await self.pool.pending_nonce(who))
        await self._at_head(block)
        return hex((await self.engine.account(who)).nonce)

    async def get_code(self, account: Any, block: Any = "latest") -> str:
        address(account)
        await self._at_head(block)
        return "0x"

    async def get_storage_at(self, account: Any, slot: Any, block: Any = "latest") -> str:
        address(account)
        quantity(slot, "storage slot")
        await self._at_head(block)
        return "0x" + "00" * 32

    def _next_base_fee(self) -> int:
        return child_base_fee(self.spec, self.head)

    # --- calls and estimates ------------------------------------------------------------------

    async def _check_call(self, call: Any) -> tuple[bytes, tuple]:
        """Validate a call object; return its calldata and access list."""
        if type(call) is not dict:
            raise InvalidParams("the call must be an object")
        if "data" in call and "input" in call and call["data"] != call["input"]:
            raise InvalidParams('both "data" and "input" are set and not equal')
        payload = call.get("input", call.get("data"))
        calldata = b"" if payload is None else data(payload, "input")
        sender = address(call["from"]) if call.get("from") is not None else None
        value = quantity(call["value"], "value") if call.get("value") is not None else 0
        gas = quantity(call["gas"], "gas", 64) if call.get("gas") is not None else None
        price = 0
        for key in ("gasPrice", "maxFeePerGas"):
            if call.get(key) is not None:
                price = quantity(call[key], key)
        access = tuple(_access_list(call.get("accessList") or []))
        if call.get("to") is None:
            raise ServerError(
                "contract creation is not supported: this node's engine runs value transfers"
            )
        address(call["to"])
        if sender is not None and (value or (gas and price)):
            balance = (await self.engine.account(sender)).balance
            if balance < value:
                raise ServerError("insufficient funds for transfer")
            if gas and balance < value + gas * price:
                raise ServerError("insufficient funds for gas * price + value")
        if gas is not None:
            need = intrinsic_gas(calldata, access)
            if gas < need:
                raise ServerError(f"intrinsic gas too low: gas {gas}, minimum needed {need}")
        return calldata, access

    async def call(self, call: Any, block: Any = "latest", overrides: Any = None) -> str:
        await self._at_head(block)
        await self._check_call(call)
        return "0x"  # no account has code: a call runs nothing and returns nothing

    async def estimate_gas(self, call: Any, block: Any = "latest", overrides: Any = None) -> str:
        await self._at_head(block)
        calldata, access = await self._check_call(call)
        return hex(intrinsic_gas(calldata, access))

    async def fee_history(
        self, block_count: Any, newest: Any, percentiles: Any = None
    ) -> dict[str, Any]:
        count = block_count if type(block_count) is int else quantity(block_count, "blockCount")
        if count < 1:
            raise InvalidParams("blockCount must be at least 1")
        wanted: list[float] = []
        if percentiles is not None:
            if type(percentiles) is not list or len(percentiles) > MAX_REWARD_PERCENTILES:
                raise InvalidParams(
                    f"rewardPercentiles must be a list of at most {MAX_REWARD_PERCENTILES}")
            for p in percentiles:
                if type(p) not in (int, float) or not 0 <= p <= 100 or (wanted and p < wanted[-1]):
                    raise InvalidParams(f"invalid reward percentile {p!r}")
                wanted.append(float(p))
        last = await self._resolve_number(newest)
        if last is None:
            raise ServerError("requested block is beyond the head")
        count = min(count, MAX_FEE_HISTORY_BLOCKS, last + 1)
        first = last - count + 1
        base_fees, ratios, rewards = [], [], []
        header = self.head
        for number in range(first, last + 1):
            header, record = await self._header(number=number)
            base_fees.append(hex(header.base_fee_per_gas))
            ratios.append(header.gas_used / header.gas_limit)
            if wanted:
                receipts = await self.store.receipts(record.hash) or ()
                rewards.append(_rewards(receipts, header, wanted))
        base_fees.append(hex(child_base_fee(self.spec, header)))
        out: dict[str, Any] = {
            "oldestBlock": hex(first), "baseFeePerGas": base_fees, "gasUsedRatio": ratios
        }
        if wanted:  # geth: no "reward" member unless percentiles were asked for (web3 sends [])
            out["reward"] = rewards
        return out

    # --- blocks and transactions --------------------------------------------------------------

    async def _resolve_number(self, block: Any) -> int | None:
        ident = block_id(block)
        if isinstance(ident, str):
            return 0 if ident == "earliest" else self.head.number
        if isinstance(ident, bytes):
            record = await self.store.block(hash=ident)
            return None if record is None else record.number
        return ident if ident <= self.head.number else None

    async def _header(self, *, number: int | None = None, hash: bytes | None = None
                      ) -> tuple[Header, BlockRecord]:
        record = await self.store.block(number=number, hash=hash)
        if record is None:
            raise ServerError("block not found")
        return decode_header(record.header), record

    async def _record(self, block: Any) -> BlockRecord | None:
        number = await self._resolve_number(block)
        return None if number is None else await self.store.block(number=number)

    async def _block_json(self, record: BlockRecord | None, full: Any) -> dict[str, Any] | None:
        want_full = boolean(full, "fullTransactions")
        if record is None:
            return None
        header = decode_header(record.header)
        size = len(Block(header, record.transactions).encode())
        if not want_full:
            return block_json(header, size, self.miner, [hexdata(h) for h in self._hashes(record)])
        txs = recover_transactions(record.transactions, self.spec.chain_id)
        return block_json(header, size, self.miner, [
            transaction_json(
                _valid(tx), block_hash=record.hash, block_number=record.number, index=i,
                base_fee=header.base_fee_per_gas,
            )
            for i, tx in enumerate(txs)
        ])

    def _hashes(self, record: BlockRecord) -> tuple[bytes, ...]:
        """A block's transaction hashes, cached for the newest blocks clients keep polling."""
        cache = self._tx_hashes
        hashes = cache.get(record.hash)
        if hashes is None:
            hashes = cache[record.hash] = _hashes(record)
            if len(cache) > _HASH_CACHE_BLOCKS:
                cache.popitem(last=False)
        return hashes

    async def get_block(self, block: Any, full: Any = False) -> dict[str, Any] | None:
        return await self._block_json(await self._record(block), full)

    async def get_block_by_hash(self, block_hash: Any, full: Any = False
                                ) -> dict[str, Any] | None:
        return await self._block_json(await self.store.block(hash=hash32(block_hash)), full)

    async def get_block_transaction_count(self, block: Any) -> str | None:
        record = await self._record(block)
        return None if record is None else hex(len(record.transactions))

    async def get_block_transaction_count_by_hash(self, block_hash: Any) -> str | None:
        record = await self.store.block(hash=hash32(block_hash))
        return None if record is None else hex(len(record.transactions))

    async def _included(self, tx_hash: bytes) -> tuple[BlockRecord, int, Transaction] | None:
        location = await self.store.tx_location(tx_hash)
        if location is None:
            return None
        record = await self.store.block(hash=location.block_hash)
        if record is None:
            return None
        raw = record.transactions[location.index]
        return record, location.index, recover_transaction(raw, self.spec.chain_id)

    async def get_transaction_by_hash(self, tx_hash: Any) -> dict[str, Any] | None:
        wanted = hash32(tx_hash)
        included = await self._included(wanted)
        if included is not None:
            record, index, tx = included
            header = decode_header(record.header)
            return transaction_json(
                tx, block_hash=record.hash, block_number=record.number, index=index,
                base_fee=header.base_fee_per_gas,
            )
        pooled = await self.pool.pooled(wanted)
        return None if pooled is None else transaction_json(pooled)

    async def get_transaction_receipt(self, tx_hash: Any) -> dict[str, Any] | None:
        included = await self._included(hash32(tx_hash))
        if included is None:
            return None
        record, index, tx = included
        receipts = await self.store.receipts(record.hash)
        if receipts is None:
            return None
        return receipt_json(
            receipts[index], tx, block_hash=record.hash, block_number=record.number, index=index
        )

    async def get_logs(self, query: Any) -> list[Any]:
        """Validate the filter as geth does; no transaction of this engine emits logs."""
        if type(query) is not dict:
            raise InvalidParams("the filter must be an object")
        if query.get("blockHash") is not None:
            if query.get("fromBlock") is not None or query.get("toBlock") is not None:
                raise InvalidParams("cannot specify both BlockHash and FromBlock/ToBlock")
            if await self.store.block(hash=hash32(query["blockHash"])) is None:
                raise ServerError("unknown block")
        else:
            low = await self._resolve_number(query.get("fromBlock") or "latest")
            high = await self._resolve_number(query.get("toBlock") or "latest")
            if low is not None and high is not None and low > high:
                raise ServerError("invalid block range params")
        targets = query.get("address")
        for target in targets if type(targets) is list else [] if targets is None else [targets]:
            address(target)
        topics = query.get("topics") or []
        if type(topics) is not list:
            raise InvalidParams("topics must be a list")
        for topic in topics:
            for item in topic if type(topic) is list else [topic]:
                if item is not None:
                    hash32(item)
        return []

    async def txpool_status(self) -> dict[str, str]:
        stats = await self.pool.stats()
        return {"pending": hex(stats["pending"]), "queued": hex(stats["queued"])}


@cache
def _recovery_pool() -> ThreadPoolExecutor:
    """Threads for signature recovery, one per usable core: more would only take turns on the
    same cores (and the GIL) with the event loop. Not validation's own pool: a large batch
    recovered there would wait on jobs queued behind itself."""
    return ThreadPoolExecutor(usable_cores(), thread_name_prefix="rpc-recover")


def _hashes(record: BlockRecord) -> tuple[bytes, ...]:
    return tuple(_keccak256(raw) for raw in record.transactions)


def _valid(tx: Transaction | InvalidTransaction) -> Transaction:
    if isinstance(tx, InvalidTransaction):  # stored blocks were validated on import
        raise ServerError(f"stored transaction does not decode: {tx}")
    return tx


def _access_list(items: Any) -> list[tuple[bytes, tuple[bytes, ...]]]:
    if type(items) is not list:
        raise InvalidParams("accessList must be a list")
    out = []
    for item in items:
        if type(item) is not dict:
            raise InvalidParams("accessList entries must be objects")
        keys = item.get("storageKeys") or []
        if type(keys) is not list:
            raise InvalidParams("storageKeys must be a list")
        out.append((address(item.get("address")), tuple(hash32(k) for k in keys)))
    return out


def _rewards(receipts: Any, header: Header, percentiles: list[float]) -> list[str]:
    """geth's fee-history rewards: tips at gas-weighted percentiles of the block's gas used."""
    if not receipts:
        return ["0x0"] * len(percentiles)
    base_fee = header.base_fee_per_gas
    tips = sorted((r.effective_gas_price - base_fee, r.gas_used) for r in receipts)
    out, index, cumulative = [], 0, tips[0][1]
    for p in percentiles:
        threshold = header.gas_used * p / 100
        while cumulative < threshold and index < len(tips) - 1:
            index += 1
            cumulative += tips[index][1]
        out.append(hex(tips[index][0]))
    return out

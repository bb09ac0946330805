"""The ``eth_``, ``net_``, ``web3_`` and ``txpool_`` methods, answered from the node's actors.

Each method reads what it needs by asking the actor that owns it: blocks, receipts and the
transaction index from storage, accounts from the engine, pending nonces and pooled
transactions from the pool. The head (``latest``) is what the chain last published to the RPC
actor, so a block is never reported before it is stored.

What this node does not keep, it says so rather than guessing:

- State reads and calls are answered at the head and at the last 128 blocks (every block on
  an archive node); at an older block they fail with a -32000 error naming the oldest block
  whose state is kept. Proofs are served at the head only.
- ``safe`` and ``finalized`` are the head: with one authority and no merged mining yet, no
  other chain can replace it. (AuxPoW finality changes this when it lands.)

Calls run on the engine exactly as a transaction would (revm), with geth's eth_call rules;
a revert answers geth's error 3, ``execution reverted: <reason>`` with the revert data.
``eth_call``, ``eth_estimateGas`` and ``eth_createAccessList`` take geth's state overrides
(third parameter), applied on a throwaway view of the state, never on the head.
Logs come from the stored receipts; ``eth_getLogs`` scans at most :data:`MAX_LOG_RANGE`
blocks per query. Polled filters (``eth_newFilter`` … ``eth_uninstallFilter``) live in a
:class:`FilterRegistry` (expiry and bounds: :mod:`alys_fast.rpc.filters`) that the RPC actor
feeds with new heads and :attr:`EthApi.on_pending`'s transactions; one matching rule,
:meth:`LogCriteria.matches`, serves eth_getLogs, filters and ``logs`` subscriptions.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, TypeVar

import msgspec

from alys_fast import __version__
from alys_fast._cext import require
from alys_fast.actors import ActorError
from alys_fast.chain.pool_actor import PoolClient
from alys_fast.chain.spec import ChainSpec
from alys_fast.chain.txpool import TxPoolError
from alys_fast.chain.workflows import block_env, child_base_fee
from alys_fast.engine.actor import EngineClient
from alys_fast.engine.errors import TransactionRejected
from alys_fast.engine.interface import (
    AccountOverride,
    BlockEnv,
    CallRequest,
    CallResult,
    StateOverrides,
)
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
    show,
)
from alys_fast.rpc.filters import BlockLogs, FilterKind, FilterRegistry, LogCriteria, LogQuery
from alys_fast.rpc.formats import (
    block_json,
    checksum_address,
    hexdata,
    receipt_json,
    transaction_json,
)
from alys_fast.storage.actor import StoreClient
from alys_fast.storage.store import BlockRecord, StorageError
from alys_fast.validation import (
    Block,
    Header,
    InvalidTransaction,
    Transaction,
    decode_header,
    recover_transactions,
    with_sender,
)
from alys_fast.validation.actor import Recover, Refusal
from alys_fast.validation.transactions import usable_cores

_keccak256 = require("hashing").keccak256
T = TypeVar("T")
log = logging.getLogger(__name__)

# The tip eth_maxPriorityFeePerGas suggests (anvil's and hardhat's default, 1 gwei).
SUGGESTED_TIP = 1_000_000_000
MAX_LOG_RANGE = 10_000
MAX_LOGS = 10_000
# eth_call's gas when none is given (geth's RPCGasCap default).
CALL_GAS_CAP = 50_000_000
REVERTED = 3  # geth's JSON-RPC code for a reverted call
_ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
_PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
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
        # Awaited once transactions were pooled, before the senders hear back (a dev chain's
        # automine: the receipt is there when eth_sendRawTransaction answers).
        self.after_pooled: Callable[[], Awaitable[object]] | None = None
        self.filters = FilterRegistry()
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
            "eth_createAccessList": self.create_access_list,
            "eth_getTransactionByHash": self.get_transaction_by_hash,
            "eth_getTransactionReceipt": self.get_transaction_receipt,
            "eth_getBlockByNumber": self.get_block,
            "eth_getBlockByHash": self.get_block_by_hash,
            "eth_getBlockTransactionCountByNumber": self.get_block_transaction_count,
            "eth_getBlockTransactionCountByHash": self.get_block_transaction_count_by_hash,
            "eth_getLogs": self.get_logs,
            "eth_newFilter": self.new_filter,
            "eth_newBlockFilter": self.new_block_filter,
            "eth_newPendingTransactionFilter": self.new_pending_transaction_filter,
            "eth_getFilterChanges": self.filters.changes,
            "eth_getFilterLogs": self.get_filter_logs,
            "eth_uninstallFilter": self.filters.uninstall,
            "eth_getBlockReceipts": self.get_block_receipts,
            "eth_getProof": self.get_proof,
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
            results = await self.submit(await self._recover(raws))
            for i, result in zip(slots, results, strict=True):
                out[i] = result
        return out  # type: ignore[return-value]

    async def submit(self, items: list[Transaction | InvalidTransaction]
                     ) -> list[str | RpcError]:
        """Pool transactions whose senders are known: each one's hash, or the error refusing
        it; subscribers hear of the accepted ones, and a dev chain mines them before this
        answers (``after_pooled``)."""
        try:
            results = await self.pool.submit(items)
        except ActorError as exc:
            raise pool_unavailable("eth_sendRawTransaction", exc) from None
        out: list[str | RpcError] = []
        accepted = []
        for result in results:
            if isinstance(result, TxPoolError):
                out.append(RpcError(result.code, str(result)))
            else:
                out.append(hexdata(result.hash))
                accepted.append(result.hash)
        if accepted and self.on_pending is not None:
            self.on_pending(accepted)
        if accepted and self.after_pooled is not None:
            await self.after_pooled()
        return out

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

    async def _state_at(self, block: Any) -> int | None:
        """The block whose state a read names: None for the head (``latest``, ``pending``,
        ``safe``, ``finalized``), else its number (a block not on the chain is an error). A
        number stays a number even at the head: the engine may have moved on since."""
        ident = block_id(block)
        if isinstance(ident, str):
            return 0 if ident == "earliest" else None
        if isinstance(ident, bytes):
            record = await self.store.block(hash=ident)
            if record is None:
                raise ServerError(f"header for hash 0x{ident.hex()} not found")
            return record.number
        if ident > self.head.number:
            raise ServerError("header not found")
        return ident

    async def _read(self, read: Awaitable[T]) -> T:
        """An engine read or call; a state the node does not keep, or a call that cannot start,
        is the client's error."""
        try:
            return await read
        except (StorageError, TransactionRejected) as exc:
            raise ServerError(str(exc)) from None

    async def get_balance(self, account: Any, block: Any = "latest") -> str:
        who = address(account)
        at = await self._state_at(block)
        return hex((await self._read(self.engine.account(who, at))).balance)

    async def get_transaction_count(self, account: Any, block: Any = "latest") -> str:
        who = address(account)
        if block == "pending":
            return hex(await self.pool.pending_nonce(who))
        at = await self._state_at(block)
        return hex((await self._read(self.engine.account(who, at))).nonce)

    async def get_code(self, account: Any, block: Any = "latest") -> str:
        who = address(account)
        at = await self._state_at(block)
        return hexdata(await self._read(self.engine.code(who, at)))

    async def get_storage_at(self, account: Any, slot: Any, block: Any = "latest") -> str:
        who = address(account)
        key = storage_word(slot)
        at = await self._state_at(block)
        value = await self._read(self.engine.storage(who, key, at))
        return "0x" + value.to_bytes(32, "big").hex()

    async def get_proof(self, account: Any, slots: Any, block: Any = "latest") -> dict[str, Any]:
        """EIP-1186: the account and storage proofs against the head's state root (the tries
        of older blocks are not kept: a proof at one is refused)."""
        who = address(account)
        if type(slots) is not list:
            raise InvalidParams("storageKeys must be a list")
        keys = [storage_word(k) for k in slots]
        at = await self._state_at(block)
        account_proof, storage = await self._read(self.engine.proof(who, keys, at))
        state = await self._read(self.engine.account(who, at))
        return {
            "address": hexdata(who),
            "accountProof": [hexdata(n) for n in account_proof],
            "balance": hex(state.balance),
            "codeHash": hexdata(state.code_hash),
            "nonce": hex(state.nonce),
            "storageHash": hexdata(state.storage_root),
            "storageProof": [
                {"key": hex(k), "value": hex(v), "proof": [hexdata(n) for n in nodes]}
                for k, v, nodes in storage
            ],
        }

    def _next_base_fee(self) -> int:
        return child_base_fee(self.spec, self.head)

    # --- calls and estimates ------------------------------------------------------------------

    def _call_request(self, call: Any) -> CallRequest:
        """Validate a call object as geth reads it."""
        if type(call) is not dict:
            raise InvalidParams("the call must be an object")
        if "data" in call and "input" in call and call["data"] != call["input"]:
            raise InvalidParams('both "data" and "input" are set and not equal')
        payload = call.get("input", call.get("data"))
        price = tip = None
        if call.get("gasPrice") is not None:
            if call.get("maxFeePerGas") is not None or call.get("maxPriorityFeePerGas") is not None:
                raise InvalidParams("both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) "
                                    "specified")
            price = quantity(call["gasPrice"], "gasPrice")
        elif call.get("maxFeePerGas") is not None or call.get("maxPriorityFeePerGas") is not None:
            price = quantity(call.get("maxFeePerGas") or "0x0", "maxFeePerGas")
            tip = quantity(call.get("maxPriorityFeePerGas") or "0x0", "maxPriorityFeePerGas")
            if tip > price:
                raise ServerError("max priority fee per gas higher than max fee per gas")
        gas = quantity(call["gas"], "gas", 64) if call.get("gas") is not None else None
        return CallRequest(
            sender=address(call["from"]) if call.get("from") is not None else bytes(20),
            to=address(call["to"]) if call.get("to") is not None else None,
            value=quantity(call["value"], "value") if call.get("value") is not None else 0,
            data=b"" if payload is None else data(payload, "input"),
            gas=min(gas, CALL_GAS_CAP) if gas is not None else CALL_GAS_CAP,
            gas_price=price,
            max_priority_fee_per_gas=tip,
            access_list=tuple(access_list(call.get("accessList") or [])),
        )

    async def _call_at(self, block: Any) -> tuple[int | None, BlockEnv]:
        """The state a call runs on and its environment: at a tag (``latest``, ...) the next
        block's, as anvil's and hardhat's pending; at a block named by number or hash, that
        block's own, as geth's eth_call at it."""
        at = await self._state_at(block)
        if at is None:
            head = self.head
            return None, BlockEnv(
                number=head.number + 1,
                timestamp=max(head.timestamp + 1, int(time.time())),
                fee_recipient=self.miner,
                gas_limit=head.gas_limit,
                base_fee=self._next_base_fee(),
            )
        header, _ = await self._header(number=at)
        return at, block_env(self.spec, header)

    async def call(self, call: Any, block: Any = "latest", overrides: Any = None) -> str:
        request = self._call_request(call)
        changes = state_overrides(overrides)
        at, env = await self._call_at(block)
        result = await self._read(self.engine.call(env, request, at, changes))
        if not result.success:
            raise _call_error(result)
        return hexdata(result.output)

    async def estimate_gas(self, call: Any, block: Any = "latest", overrides: Any = None) -> str:
        """geth's estimate: run at the cap, then binary-search the least gas that succeeds."""
        request = self._call_request(call)
        changes = state_overrides(overrides)
        at, env = await self._call_at(block)
        cap = min(request.gas, env.gas_limit) if call.get("gas") else env.gas_limit

        async def run(gas: int) -> CallResult:
            attempt = msgspec.structs.replace(request, gas=gas)
            return await self._read(self.engine.call(env, attempt, at, changes))

        result = await run(cap)
        if not result.success:
            if result.error == "out of gas":
                raise ServerError(f"gas required exceeds allowance ({cap})")
            raise _call_error(result)
        low, high = result.gas_used - 1, cap
        # geth's shortcut: refunds aside, gas used x 64/63 almost always suffices.
        guess = min(result.gas_used * 64 // 63 + 2300, high)
        if (await run(guess)).success:
            high = guess
        while high - low > 1:
            middle = (low + high) // 2
            if (await run(middle)).success:
                high = middle
            else:
                low = middle
        return hex(high)

    async def create_access_list(self, call: Any, block: Any = "latest", overrides: Any = None
                                 ) -> dict[str, Any]:
        """geth's eth_createAccessList: the addresses and slots the call touches (not the
        sender's, the recipient's or the precompiles' addresses, though their slots count),
        found by rerunning it with what it touched until that settles; gasUsed is the call's
        with that list, error its failure if it failed."""
        request = self._call_request(call)
        changes = state_overrides(overrides)
        at, env = await self._call_at(block)
        found, result = await self._read(
            self.engine.create_access_list(env, request, at, changes))
        out: dict[str, Any] = {"accessList": [
            {"address": hexdata(a), "storageKeys": [hexdata(k) for k in keys]}
            for a, keys in found
        ]}
        if not result.success:
            out["error"] = result.error
        out["gasUsed"] = hex(result.gas_used)
        return out

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
                    raise InvalidParams(f"invalid reward percentile {show(p)}")
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
        return block_json(header, size, self.miner, [
            transaction_json(
                tx, block_hash=record.hash, block_number=record.number, index=i,
                base_fee=header.base_fee_per_gas,
            )
            for i, tx in enumerate(self._stored(record))
        ])

    def _stored(self, record: BlockRecord, index: int | None = None) -> list[Transaction]:
        """A stored block's transactions (or the one at ``index``), rebuilt from the senders
        stored beside them: no key recovery (they were validated on import)."""
        chain_id = self.spec.chain_id
        pairs = zip(record.transactions, record.senders, strict=True)
        if index is not None:
            pairs = iter([(record.transactions[index], record.senders[index])])
        try:
            return [with_sender(raw, sender, chain_id) for raw, sender in pairs]
        except InvalidTransaction as exc:
            raise ServerError(f"stored transaction does not decode: {exc}") from None

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
        return record, location.index, self._stored(record, location.index)[0]

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
        first = sum(len(r.logs) for r in receipts[:index])
        return receipt_json(
            receipts[index], tx, block_hash=record.hash, block_number=record.number, index=index,
            first_log_index=first,
        )

    async def get_block_receipts(self, block: Any) -> list[dict[str, Any]] | None:
        record = await self._record(block)
        if record is None:
            return None
        receipts = await self.store.receipts(record.hash) or ()
        out, first = [], 0
        for index, (receipt, tx) in enumerate(zip(receipts, self._stored(record), strict=True)):
            out.append(receipt_json(
                receipt, tx, block_hash=record.hash, block_number=record.number,
                index=index, first_log_index=first,
            ))
            first += len(receipt.logs)
        return out

    async def get_logs(self, query: Any) -> list[Any]:
        """geth's filter: one block by hash or a range, addresses (any of), topics by position
        (None: any; a list: any of)."""
        if type(query) is not dict:
            raise InvalidParams("the filter must be an object")
        if query.get("blockHash") is not None:
            if query.get("fromBlock") is not None or query.get("toBlock") is not None:
                raise InvalidParams("cannot specify both BlockHash and FromBlock/ToBlock")
            record = await self.store.block(hash=hash32(query["blockHash"]))
            if record is None:
                raise ServerError("unknown block")
            return await self._logs(record.number, record.number, LogCriteria.parse(query))
        low = await self._resolve_number(query.get("fromBlock") or "latest")
        high = await self._resolve_number(query.get("toBlock") or "latest")
        return await self._logs_between(low, high, LogCriteria.parse(query))

    async def _logs_between(self, low: int | None, high: int | None, criteria: LogCriteria
                            ) -> list[Any]:
        """A range query's logs; ``low``/``high`` None: beyond the head."""
        if low is None:
            return []
        high = self.head.number if high is None else high
        if low > high:
            raise ServerError("invalid block range params")
        if high - low >= MAX_LOG_RANGE:
            raise ServerError(f"query exceeds max block range {MAX_LOG_RANGE}")
        return await self._logs(low, high, criteria)

    async def _logs(self, low: int, high: int, criteria: LogCriteria) -> list[Any]:
        out: list[Any] = []
        for number in range(low, high + 1):
            record = await self.store.block(number=number)
            if record is None:
                break
            receipts = await self.store.receipts(record.hash) or ()
            out += BlockLogs(record.hash, number, receipts).matching(criteria)
            if len(out) > MAX_LOGS:
                raise ServerError(f"query returned more than {MAX_LOGS} results")
        return out

    # --- filters ------------------------------------------------------------------------------

    def new_filter(self, query: Any) -> str:
        return self.filters.install(FilterKind.LOGS, LogQuery.parse(query))

    def new_block_filter(self) -> str:
        return self.filters.install(FilterKind.BLOCKS)

    def new_pending_transaction_filter(self, full_transactions: Any = None) -> str:
        """geth's optional ``fullTx`` flag is accepted when false: only hashes are buffered."""
        if full_transactions is not None and boolean(full_transactions, "fullTx"):
            raise InvalidParams("pending transaction filters return hashes only on this node")
        return self.filters.install(FilterKind.PENDING)

    async def get_filter_logs(self, filter_id: Any) -> list[Any]:
        """A log filter's whole range, as eth_getLogs answers it (``latest`` read now)."""
        query = self.filters.log_query(filter_id)
        head = self.head.number

        def resolved(number: int | None) -> int | None:
            return head if number is None else number if number <= head else None

        return await self._logs_between(
            resolved(query.from_block), resolved(query.to_block), query.criteria)

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


def pool_unavailable(method: str, exc: ActorError) -> ServerError:
    """The client's answer when the pool actor does not (restarting, overloaded): the actor's
    own error is the log's, not the client's."""
    log.warning("%s: the pool did not answer: %s", method, exc)
    return ServerError("transaction pool unavailable, retry")


def storage_word(value: Any) -> int:
    """A storage slot (or value) as geth takes it: a quantity or a 32-byte hex word."""
    if type(value) is str and len(value) == 66:
        return int.from_bytes(hash32(value), "big")
    return quantity(value, "storage slot")


def _call_error(result: CallResult) -> RpcError:
    """geth's answer to a failed call: code 3 with the revert data when there is some, else
    -32000 with the halt reason (or a bare "execution reverted")."""
    if result.error != "execution reverted" or not result.output:
        return ServerError(result.error or "execution failed")
    reason = revert_reason(result.output)
    message = "execution reverted" if reason is None else f"execution reverted: {reason}"
    return RpcError(REVERTED, message, hexdata(result.output))


# Solidity's panic codes, in geth's words (accounts/abi: panicReasons).
_PANIC_REASONS = {
    0x00: "generic panic",
    0x01: "assert(false)",
    0x11: "arithmetic underflow or overflow",
    0x12: "division or modulo by zero",
    0x21: "enum overflow",
    0x22: "invalid encoded storage byte array accessed",
    0x31: "out-of-bounds array access; popping on an empty array",
    0x32: "out-of-bounds access of an array or bytesSlice",
    0x41: "out of memory",
    0x51: "uninitialized function",
}


def revert_reason(output: bytes) -> str | None:
    """The reason an ``Error(string)`` or ``Panic(uint256)`` revert gives, as geth's
    abi.UnpackRevert words it; None for other (custom error) data or malformed ABI."""
    body = output[4:]
    if output[:4] == _PANIC_SELECTOR and len(body) >= 32:
        code = int.from_bytes(body[:32], "big")
        return _PANIC_REASONS.get(code, f"unknown panic code: {code:#x}")
    if output[:4] != _ERROR_SELECTOR or len(body) < 64:
        return None
    offset = int.from_bytes(body[:32], "big")
    if offset + 32 > len(body):
        return None
    length = int.from_bytes(body[offset:offset + 32], "big")
    text = body[offset + 32:offset + 32 + length]
    if len(text) < length:
        return None
    return text.decode(errors="replace")  # Go's string() keeps invalid UTF-8; JSON replaces it


def access_list(items: Any) -> list[tuple[bytes, tuple[bytes, ...]]]:
    """An ``accessList`` as geth reads it (calls, estimates, eth_sendTransaction)."""
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


_OVERRIDE_FIELDS = {"balance", "nonce", "code", "state", "stateDiff"}


def state_overrides(value: Any) -> StateOverrides | None:
    """geth's state overrides: an object of account overrides by address (None: none)."""
    if value is None:
        return None
    if type(value) is not dict:
        raise InvalidParams("state overrides must be an object of account overrides by address")
    out: StateOverrides = {}
    for who, change in value.items():
        account = address(who)
        out[account] = _account_override(account, change)
    return out


def _account_override(who: bytes, change: Any) -> AccountOverride:
    name = hexdata(who)
    if type(change) is not dict:
        raise InvalidParams(f"the state override of {name} must be an object")
    for field in sorted(change.keys() - _OVERRIDE_FIELDS):
        if field == "movePrecompileToAddress":
            raise InvalidParams(f"the state override of {name}: movePrecompileToAddress is "
                                "not supported by this node")
        raise InvalidParams(
            f"the state override of {name}: unknown field {msgspec.json.encode(field).decode()}"
            " (known: balance, nonce, code, state, stateDiff)")
    try:
        override = AccountOverride(
            balance=_given(change, "balance", quantity),
            nonce=_given(change, "nonce", lambda v, what: quantity(v, what, 64)),
            code=_given(change, "code", data),
            state=_given(change, "state", _slots),
            state_diff=_given(change, "stateDiff", _slots),
        )
    except InvalidParams as exc:
        raise InvalidParams(f"the state override of {name}: {exc.message}") from None
    if override.state is not None and override.state_diff is not None:
        # geth's words and code (its Apply fails after the arguments were read).
        raise ServerError(f"account {checksum_address(who)} has both 'state' and 'stateDiff'")
    return override


def _given(change: dict[str, Any], field: str, read: Callable[[Any, str], T]) -> T | None:
    """``change[field]`` read by ``read``; None if it is missing or null (as geth's)."""
    value = change.get(field)
    return None if value is None else read(value, field)


def _slots(value: Any, what: str) -> dict[int, int]:
    """Storage slots as geth takes them in overrides: 32-byte keys to 32-byte values."""
    if type(value) is not dict:
        raise InvalidParams(f"{what} must be an object of 32-byte slots to 32-byte values")
    return {int.from_bytes(data(k, f"{what} slot", 32), "big"):
            int.from_bytes(data(v, f"{what} value", 32), "big") for k, v in value.items()}


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

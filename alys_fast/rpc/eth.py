"""The ``eth_``, ``net_``, ``web3_`` and ``txpool_`` methods, answered from the node's actors.

Each method reads what it needs by asking the actor that owns it: blocks, receipts and the
transaction index from storage, accounts from the engine, pending nonces and pooled
transactions from the pool. The head (``latest``) is what the chain last published to the RPC
actor, so a block is never reported before it is stored.

What this node does not keep, it says so rather than guessing:

- State reads and calls are answered at the head and at the last 128 blocks (every block on
  an archive node); at an older block they fail with a -32000 error naming the oldest block
  whose state is kept. Proofs are served at the head only.
- ``safe`` and ``finalized`` are the last block finalized by merged mining (AuxPoW, see
  :mod:`alys_fast.chain.finality`): the chain announces it with every head.

With an external execution client (``execution``: geth over the Engine API), as in Alys,
transactions go to geth's pool and state is geth's: :data:`FORWARDED` methods are passed to
geth's JSON-RPC as they are and its answer (or error) is the client's; blocks, receipts, logs,
filters, fees and the node's own namespaces are still answered here. A block named by hash
(EIP-1898) in a forwarded call is geth's hash, not ours: name blocks by number there.

Calls run on the engine exactly as a transaction would (revm), with geth's eth_call rules;
a revert answers geth's error 3, ``execution reverted: <reason>`` with the revert data.
``eth_call``, ``eth_estimateGas`` and ``eth_createAccessList`` take geth's state overrides
(third parameter), applied on a throwaway view of the state, never on the head. Their call
object is read as geth reads it (:func:`call_request`, :func:`check_fees`: its errors in its
words); what geth would run but this chain cannot (blobs, EIP-7702 authorizations, overridden
precompiles) is refused with -32602 rather than silently dropped. ``eth_feeHistory`` reads
``blockCount`` as geth does, hex or decimal (:func:`hex_or_decimal`; 0 answers no blocks).
Logs come from the stored receipts; ``eth_getLogs`` scans at most :data:`MAX_LOG_RANGE`
blocks per query. Polled filters (``eth_newFilter`` … ``eth_uninstallFilter``) live in a
:class:`FilterRegistry` (expiry and bounds: :mod:`alys_fast.rpc.filters`) that the RPC actor
feeds with new heads and :attr:`EthApi.on_pending`'s transactions; one matching rule,
:meth:`LogCriteria.matches`, serves eth_getLogs, filters and ``logs`` subscriptions.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from alys_fast import __version__
from alys_fast._cext import require
from alys_fast.actors import ActorError, Directory
from alys_fast.chain.pool_actor import PoolClient
from alys_fast.chain.spec import ChainSpec
from alys_fast.chain.txpool import TxPoolError
from alys_fast.chain.workflows import block_env, child_base_fee
from alys_fast.engine.actor import EngineClient
from alys_fast.engine.engine_api import EngineApiError
from alys_fast.engine.errors import TransactionRejected
from alys_fast.engine.external import ExecutionSettings, open_forwarder
from alys_fast.engine.interface import (
    AccountOverride,
    BlockEnv,
    CallRequest,
    CallResult,
    StateOverrides,
)
from alys_fast.metrics.stats import NodeStats
from alys_fast.rpc.dispatch import (
    SERVER_ERROR,
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
    with_sender,
)
from alys_fast.validation.actor import RecoveryClient

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

CLIENT_VERSION = (
    f"alys-fast/v{__version__}/python{sys.version_info.major}.{sys.version_info.minor}"
)


# What a node with an external execution client forwards to it (see the module docstring).
FORWARDED = (
    "eth_sendRawTransaction", "eth_getBalance", "eth_getTransactionCount", "eth_getCode",
    "eth_getStorageAt", "eth_getProof", "eth_call", "eth_estimateGas", "eth_createAccessList",
    "txpool_status", "txpool_content", "txpool_inspect",
)


class EthApi:
    """The method table over one node's actors; ``head`` is kept current by the RPC actor."""

    def __init__(self, spec: ChainSpec, head: Header, directory: Directory, stats: NodeStats,
                 execution: ExecutionSettings | None = None) -> None:
        """``stats``: the node's, where the RPC's counters live (``"rpc"``); ``execution``: an
        external execution client to forward to (None: the embedded engine answers)."""
        self.directory = directory
        self.spec = spec
        self.miner = spec.fee_recipient_bytes()
        self.head = head
        self.finalized = 0  # the last block finalized by AuxPoW (``safe``, ``finalized``)
        self.store = StoreClient(directory)
        self.engine = EngineClient(directory)
        self.pool = PoolClient(directory)
        self.recovery = RecoveryClient(directory, spec.chain_id)
        # Called with the hashes of newly pooled transactions (newPendingTransactions).
        self.on_pending: Callable[[list[bytes]], None] | None = None
        # Awaited once transactions were pooled, before the senders hear back (a dev chain's
        # automine: the receipt is there when eth_sendRawTransaction answers).
        self.after_pooled: Callable[[], Awaitable[object]] | None = None
        self.filters = FilterRegistry()
        self.stats = stats.setdefault("rpc", {"received": 0})
        self._tx_hashes: OrderedDict[bytes, tuple[bytes, ...]] = OrderedDict()
        self.forwarder = None if execution is None else open_forwarder(execution)

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
        if self.forwarder is not None:
            for name in FORWARDED:
                table.add(name, self._forwarding(name))
        return table

    def _forwarding(self, method: str) -> Callable[..., Awaitable[Any]]:
        """``method`` answered by the external execution client (geth), its errors as geth's."""
        forwarder = self.forwarder
        assert forwarder is not None

        async def forward(*params: Any) -> Any:
            request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
            try:
                answer = msgspec.json.decode(await forwarder.forward(msgspec.json.encode(request)))
            except EngineApiError as exc:
                raise ServerError(f"the execution client did not answer: {exc}") from None
            except msgspec.DecodeError:
                raise ServerError("the execution client's answer is not JSON") from None
            error = answer.get("error") if type(answer) is dict else None
            if type(error) is dict:
                raise RpcError(error.get("code", SERVER_ERROR), str(error.get("message", "")),
                               error.get("data"))
            if type(answer) is not dict or "result" not in answer:
                raise ServerError("the execution client's answer has no result")
            return answer["result"]

        return forward

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
            results = await self.submit(await self.recovery.recover(raws))
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

    # --- state --------------------------------------------------------------------------------

    async def _state_at(self, block: Any) -> int | None:
        """The block whose state a read names: None for the head (``latest``, ``pending``),
        else its number (a block not on the chain is an error). A number stays a number even
        at the head: the engine may have moved on since."""
        ident = block_id(block)
        if isinstance(ident, str):
            return self._tag_number(ident)
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

    async def _prepare_call(self, call: Any, block: Any, overrides: Any
                            ) -> tuple[CallRequest, StateOverrides | None, int | None, BlockEnv]:
        """A call's request, state overrides, state and environment, checked as geth checks
        them before it runs one (eth_call, eth_estimateGas, eth_createAccessList,
        debug_traceCall)."""
        request = call_request(call, self.spec.chain_id, self.spec.fork)
        changes = state_overrides(overrides)
        at, env = await self._call_at(block)
        check_fees(request, env.base_fee)
        return request, changes, at, env

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
        request, changes, at, env = await self._prepare_call(call, block, overrides)
        result = await self._read(self.engine.call(env, request, at, changes))
        if not result.success:
            raise _call_error(result)
        return hexdata(result.output)

    async def estimate_gas(self, call: Any, block: Any = "latest", overrides: Any = None) -> str:
        """geth's estimate: run at the cap, then binary-search the least gas that succeeds."""
        request, changes, at, env = await self._prepare_call(call, block, overrides)
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
        request, changes, at, env = await self._prepare_call(call, block, overrides)
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
        """geth's eth_feeHistory: ``blockCount`` as geth reads it (a hex or decimal integer,
        quoted or not; 0 answers no blocks), at most :data:`MAX_FEE_HISTORY_BLOCKS` of them;
        the percentiles increasing within [0, 100]."""
        count = hex_or_decimal(block_count, "blockCount")
        wanted = reward_percentiles(percentiles)
        last = await self._resolve_number(newest)
        if count == 0:  # geth: no blocks and no error ("no retrievable blocks")
            return {"oldestBlock": "0x0", "gasUsedRatio": None}
        if last is None:  # a number past the head, or a hash not on the chain
            ident = block_id(newest)
            requested = ident if type(ident) is int else hexdata(ident)  # type: ignore[arg-type]
            raise ServerError(
                f"request beyond head block: requested {requested}, head {self.head.number}")
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

    def _tag_number(self, tag: str) -> int | None:
        """The number a block tag names; None for the head (``latest``, ``pending``)."""
        if tag == "earliest":
            return 0
        return self.finalized if tag in ("safe", "finalized") else None

    async def _resolve_number(self, block: Any) -> int | None:
        ident = block_id(block)
        if isinstance(ident, str):
            number = self._tag_number(ident)
            return self.head.number if number is None else number
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
        keys = [] if item.get("storageKeys") is None else item["storageKeys"]
        if type(keys) is not list:
            raise InvalidParams("storageKeys must be a list")
        out.append((address(item.get("address")), tuple(hash32(k) for k in keys)))
    return out


def call_request(call: Any, chain_id: int, fork: str) -> CallRequest:
    """Read a call object as geth's TransactionArgs for a call (its ``CallDefaults``): each
    field geth knows is checked, ``nonce`` only for its form (geth skips a call's nonce
    check); names geth does not know are ignored as it ignores them. What this chain
    cannot run (blobs, EIP-7702 authorizations) is refused rather than dropped."""
    if type(call) is not dict:
        raise InvalidParams("the call must be an object")

    def number(key: str, bits: int = 256) -> int | None:
        value = call.get(key)
        return None if value is None else quantity(value, key, bits)

    # geth ignores "type"; clients send it as a number (web3.py) or hex: both are read.
    kind = None if call.get("type") is None else hex_or_decimal(call["type"], "type")
    _refuse_unsupported(call, kind, fork)
    number("nonce", 64)
    number("maxFeePerBlobGas")  # geth reads it; without blob hashes it has no effect
    payload = call_input(call)
    price = number("gasPrice")
    cap, tip = number("maxFeePerGas"), number("maxPriorityFeePerGas")
    if price is not None and (cap is not None or tip is not None):
        raise ServerError(
            "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified")
    check_chain_id(call, chain_id)
    if cap is not None or tip is not None:
        price, tip = cap or 0, tip or 0
    if not price and not tip:  # geth: zero fees run without a base fee, as none given
        price = tip = None
    gas = number("gas", 64)
    return CallRequest(
        sender=address(call["from"]) if call.get("from") is not None else bytes(20),
        to=address(call["to"]) if call.get("to") is not None else None,
        value=number("value") or 0,
        data=payload,
        gas=min(gas, CALL_GAS_CAP) if gas is not None else CALL_GAS_CAP,
        gas_price=price,
        max_priority_fee_per_gas=tip,
        access_list=tuple(access_list(call["accessList"]))
        if call.get("accessList") is not None else (),
    )


def call_input(fields: dict[str, Any]) -> bytes:
    """A transaction object's call data: ``input``, or ``data`` as older clients name it;
    both given and different is refused in geth's words (its setDefaults)."""
    given = {key: data(fields[key], key) for key in ("input", "data")
             if fields.get(key) is not None}
    if len(set(given.values())) > 1:
        raise InvalidParams('both "data" and "input" are set and not equal. Please use "input" '
                            "to pass transaction call data")
    return next(iter(given.values()), b"")


def check_chain_id(fields: dict[str, Any], chain_id: int) -> None:
    """A transaction object's ``chainId``, if given, must be the node's (geth's words)."""
    if fields.get("chainId") is None:
        return
    have = quantity(fields["chainId"], "chainId")
    if have != chain_id:
        raise ServerError(f"chainId does not match node's (have={have}, want={chain_id})")


# What a call on this chain cannot take: blobs (the chain carries none) and set-code
# authorizations (EIP-7702, Prague; the engine runs Cancun at most). geth would run both.
_BLOB_FIELDS = ("blobVersionedHashes", "blobs", "commitments", "proofs")
_BLOB_TYPE, _SET_CODE_TYPE = 3, 4


def _refuse_unsupported(call: dict[str, Any], kind: int | None, fork: str) -> None:
    """-32602 for the fields (and ``type``) of transactions this chain cannot run."""
    for field in _BLOB_FIELDS:
        if call.get(field) is not None or kind == _BLOB_TYPE:
            name = field if call.get(field) is not None else "type 0x3"
            raise InvalidParams(f"{name}: blob transactions are not supported by this node "
                                "(its chain carries no blobs)")
    if call.get("authorizationList") is not None or kind == _SET_CODE_TYPE:
        name = "authorizationList" if call.get("authorizationList") is not None else "type 0x4"
        raise InvalidParams(f"{name}: set-code transactions (EIP-7702) need the Prague fork; "
                            f"this chain runs {fork}")
    if kind is not None and kind > _SET_CODE_TYPE:
        raise InvalidParams(f"invalid type {hex(kind)}: not a transaction type "
                            "(0x0 legacy, 0x1 access list, 0x2 dynamic fee)")


def check_fees(request: CallRequest, base_fee: int) -> None:
    """geth's checks of the fees a call offers (core's preCheck; none offered: none made),
    in its words."""
    cap, tip = request.gas_price, request.max_priority_fee_per_gas
    if cap is None:
        return
    who = checksum_address(request.sender)
    if tip is not None and tip > cap:
        raise ServerError(f"max priority fee per gas higher than max fee per gas: address {who}, "
                          f"maxPriorityFeePerGas: {tip}, maxFeePerGas: {cap}")
    if cap < base_fee:
        raise ServerError(f"max fee per gas less than block base fee: address {who}, "
                          f"maxFeePerGas: {cap}, baseFee: {base_fee}")


_OVERRIDE_FIELDS = {"balance", "nonce", "code", "state", "stateDiff"}
# Cancun's precompiles, 0x01 to 0x0a: geth drops a precompile whose account is overridden (so
# that code put there runs); the engine keeps it, so such an override is refused, not ignored.
_PRECOMPILES = range(1, 11)


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
    if change is None:  # geth: null overrides nothing
        return AccountOverride()
    if type(change) is not dict:
        raise InvalidParams(f"the state override of {name} must be an object")
    if int.from_bytes(who, "big") in _PRECOMPILES:
        raise InvalidParams(f"the state override of {name}: overriding a precompile is not "
                            "supported by this node")
    for field in sorted(change.keys() - _OVERRIDE_FIELDS):
        if field == "movePrecompileToAddress" and change[field] is None:
            continue  # geth: null moves nothing
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


_DIGITS = {10: frozenset("0123456789"), 16: frozenset("0123456789abcdefABCDEF")}


def hex_or_decimal(value: Any, what: str) -> int:
    """A 64-bit count as geth's math.HexOrDecimal64 reads it: a JSON integer, or a string of
    hex (``0x``, leading zeros allowed) or decimal digits ("" is 0)."""
    text = str(value) if type(value) is int else value if type(value) is str else "-"
    digits, base = (text[2:], 16) if text[:2] in ("0x", "0X") else (text, 10)
    if ((base == 16 and not digits) or not _DIGITS[base].issuperset(digits)
            or int(digits or "0", base) >= 2**64):
        raise InvalidParams(f"invalid {what} {show(value)}: not a hex or decimal integer")
    return int(digits or "0", base)


def reward_percentiles(value: Any) -> list[float]:
    """eth_feeHistory's ``rewardPercentiles``: at most :data:`MAX_REWARD_PERCENTILES`
    numbers, increasing within [0, 100]; refusals in geth's words (None: none asked)."""
    if value is None:
        return []
    if type(value) is not list or any(type(p) not in (int, float) for p in value):
        raise InvalidParams("invalid rewardPercentiles: want a list of numbers")
    if len(value) > MAX_REWARD_PERCENTILES:
        raise ServerError(
            f"invalid reward percentile: over the query limit {MAX_REWARD_PERCENTILES}")
    for i, p in enumerate(value):
        if not 0 <= p <= 100:
            raise ServerError(f"invalid reward percentile: {p:f}")
        if i and p <= value[i - 1]:
            raise ServerError(
                f"invalid reward percentile: #{i - 1}:{value[i - 1]:f} >= #{i}:{p:f}")
    return [float(p) for p in value]


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

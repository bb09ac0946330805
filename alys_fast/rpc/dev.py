"""The development chain's methods (``alys-fast dev`` only): mining, the clock, snapshots.

Names are anvil's, with hardhat's aliases, and take the same parameters; a node under
``alys-fast run`` does not register them, so there they are -32601 like any unknown method.
Everything is asked of the chain actor (:class:`ChainClient`), which owns the mining mode, the
dev clock and the snapshots (:mod:`alys_fast.chain.mining`).
"""

from __future__ import annotations

import logging
from typing import Any

from alys_fast.actors import ActorError, Directory
from alys_fast.chain.actor import ChainClient
from alys_fast.chain.mining import MiningError
from alys_fast.chain.pool_actor import PoolClient
from alys_fast.engine.interface import AccountOverride
from alys_fast.rpc.dispatch import (
    InvalidParams,
    Methods,
    ServerError,
    address,
    boolean,
    data,
    hash32,
    quantity,
)
from alys_fast.rpc.eth import EthApi, storage_word
from alys_fast.rpc.formats import hexdata

log = logging.getLogger(__name__)


class DevApi:
    """The dev method table; it also makes the eth API automine after each submission."""

    def __init__(self, directory: Directory, eth: EthApi) -> None:
        self.chain = ChainClient(directory)
        self.pool = PoolClient(directory)
        eth.after_pooled = self._automine

    def register(self, methods: Methods) -> None:
        """Add the dev methods to ``methods``."""
        table = {
            "evm_mine": self.evm_mine,
            "anvil_mine": self.mine,
            "hardhat_mine": self.mine,
            "evm_setAutomine": self.set_automine,
            "anvil_setAutomine": self.set_automine,
            "anvil_getAutomine": self.get_automine,
            "hardhat_getAutomine": self.get_automine,
            "evm_setIntervalMining": self.set_interval_ms,
            "anvil_setIntervalMining": self.set_interval_s,
            "evm_increaseTime": self.increase_time,
            "anvil_increaseTime": self.increase_time,
            "evm_setNextBlockTimestamp": self.set_next_block_timestamp,
            "anvil_setNextBlockTimestamp": self.set_next_block_timestamp,
            "evm_snapshot": self.snapshot,
            "anvil_snapshot": self.snapshot,
            "evm_revert": self.revert,
            "anvil_revert": self.revert,
            "anvil_setBalance": self.set_balance,
            "hardhat_setBalance": self.set_balance,
            "anvil_setNonce": self.set_nonce,
            "hardhat_setNonce": self.set_nonce,
            "anvil_setCode": self.set_code,
            "hardhat_setCode": self.set_code,
            "anvil_setStorageAt": self.set_storage_at,
            "hardhat_setStorageAt": self.set_storage_at,
            "anvil_setNextBlockBaseFeePerGas": self.set_next_block_base_fee,
            "hardhat_setNextBlockBaseFeePerGas": self.set_next_block_base_fee,
            "anvil_dropTransaction": self.drop_transaction,
            "hardhat_dropTransaction": self.drop_transaction,
        }
        for name, fn in table.items():
            methods.add(name, fn)

    async def _ask(self, ask: Any) -> Any:
        try:
            return await ask
        except MiningError as exc:
            raise ServerError(str(exc)) from None
        except ActorError as exc:
            log.warning("dev method: the chain did not answer: %s", exc)
            raise ServerError("the chain is unavailable, retry") from None

    async def _automine(self) -> None:
        """Mine what was just pooled if the chain automines; a failure leaves the
        transactions pooled (the next block takes them) and is logged, not the sender's."""
        try:
            await self.chain.automine()
        except (MiningError, ActorError) as exc:
            log.warning("automine failed, transactions stay pooled: %s", exc)

    async def evm_mine(self, options: Any = None) -> str:
        """One block (hardhat: an optional timestamp; anvil: ``{timestamp, blocks}``)."""
        count, timestamp = 1, None
        if type(options) is dict:
            unknown = set(options) - {"timestamp", "blocks"}
            if unknown:
                raise InvalidParams(f"unknown evm_mine options: {', '.join(sorted(unknown))}")
            if options.get("blocks") is not None:
                count = _count(options["blocks"], "blocks")
            if options.get("timestamp") is not None:
                timestamp = _count(options["timestamp"], "timestamp")
        elif options is not None:
            timestamp = _count(options, "timestamp")
        await self._ask(self.chain.mine(count, timestamp))
        return "0x0"

    async def mine(self, count: Any = None, interval: Any = None) -> None:
        """``count`` blocks (default 1), ``interval`` seconds apart if given."""
        blocks = 1 if count is None else _count(count, "block count")
        spacing = None if interval is None else _count(interval, "interval")
        await self._ask(self.chain.mine(blocks, None, spacing))

    async def set_automine(self, enabled: Any) -> None:
        await self._ask(self.chain.set_mining(automine=boolean(enabled, "automine")))

    async def get_automine(self) -> bool:
        mode, _, _ = await self._ask(self.chain.mining())
        return mode == "auto"

    async def set_interval_ms(self, interval: Any) -> None:
        """hardhat's ``evm_setIntervalMining``: milliseconds, 0 to stop."""
        await self._ask(self.chain.set_mining(interval_ms=_count(interval, "interval")))

    async def set_interval_s(self, interval: Any) -> None:
        """anvil's ``anvil_setIntervalMining``: seconds, 0 to stop."""
        seconds = _count(interval, "interval")
        await self._ask(self.chain.set_mining(interval_ms=seconds * 1000))

    async def increase_time(self, seconds: Any) -> str:
        """Move the clock forward; the total offset in seconds."""
        total = await self._ask(self.chain.move_time(increase=_count(seconds, "seconds")))
        return hex(total)

    async def set_next_block_timestamp(self, timestamp: Any) -> None:
        await self._ask(self.chain.move_time(next_timestamp=_count(timestamp, "timestamp")))

    async def snapshot(self) -> str:
        return hex(await self._ask(self.chain.snapshot()))

    async def revert(self, snapshot_id: Any) -> bool:
        return await self._ask(self.chain.revert(quantity(snapshot_id, "snapshot id", 64)))

    async def _edit(self, account: Any, change: AccountOverride) -> bool:
        await self._ask(self.chain.edit_state({address(account): change}))
        return True

    async def set_balance(self, account: Any, balance: Any) -> bool:
        return await self._edit(account, AccountOverride(balance=quantity(balance, "balance")))

    async def set_nonce(self, account: Any, nonce: Any) -> bool:
        return await self._edit(account, AccountOverride(nonce=quantity(nonce, "nonce", 64)))

    async def set_code(self, account: Any, code: Any) -> bool:
        return await self._edit(account, AccountOverride(code=data(code, "code")))

    async def set_storage_at(self, account: Any, slot: Any, value: Any) -> bool:
        """One slot; both as 32-byte words or quantities (hardhat sends a quantity slot)."""
        change = AccountOverride(state_diff={storage_word(slot): storage_word(value)})
        return await self._edit(account, change)

    async def set_next_block_base_fee(self, base_fee: Any) -> None:
        await self._ask(self.chain.set_next_base_fee(_count(base_fee, "base fee")))

    async def drop_transaction(self, tx_hash: Any) -> str | None:
        """Take a transaction out of the pool: its hash, or null if it was not pooled."""
        wanted = hash32(tx_hash)
        return hexdata(wanted) if await self._ask(self.pool.drop([wanted])) else None


def _count(value: Any, what: str) -> int:
    """A count (seconds, ms, blocks) as the tools send it: a JSON number or a hex quantity,
    64 bits at most."""
    if type(value) is int:
        if not 0 <= value < 2**64:
            raise InvalidParams(f"{what} must be from 0 to 2^64 - 1, got {value}")
        return value
    return quantity(value, what, 64)

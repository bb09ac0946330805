"""The embedded execution engine: value transfers between accounts, executed in process.

Per transaction, in the order geth checks them: the sender has no code (EIP-3607), the nonce
equals the account's, the fee cap covers the block's base fee, the gas limit fits in the block's
remaining gas, and the balance covers gas limit x fee cap + value. Then the sender's nonce goes
up by one and it pays value + gas used x effective price; the recipient gets the value, the fee
recipient the tip (effective price - base fee) x gas used, and the base fee part is burned.

A transfer to an account without code runs no EVM code, so its gas used is exactly its
intrinsic gas (21,000 + calldata + access list) and it always succeeds (status 1). Contract
creation, and calls to accounts with code, are rejected with :data:`NOT_SUPPORTED`: see the note
in issue 5 for pyrevm's measurements.
"""

from __future__ import annotations

from collections.abc import Sequence

from alys_fast.chain.spec import ChainSpec
from alys_fast.engine.errors import NOT_SUPPORTED, TransactionRejected, UnknownParentState
from alys_fast.engine.fees import effective_gas_price, fee_caps
from alys_fast.engine.interface import BlockEnv, BlockExecution, Receipt
from alys_fast.engine.receipts import logs_bloom, receipts_root_steps
from alys_fast.engine.state import EMPTY_CODE_HASH, Account, State, StateUpdate
from alys_fast.engine.steps import Steps, finish
from alys_fast.validation import Transaction

# Transactions executed between two pauses of execute_steps (about half a millisecond's worth).
EXECUTION_CHUNK = 128
# Blocks executed on the head but not committed (a builder's attempts); the oldest go first.
_MAX_PREPARED = 8


def _hex(address: bytes) -> str:
    return "0x" + address.hex()


class EmbeddedEngine:
    """An :class:`~alys_fast.engine.interface.ExecutionEngine` over an in-memory :class:`State`.

    It holds the head state only: it executes on that state root and refuses any other parent.
    """

    def __init__(self, state: State) -> None:
        self._state = state
        # Executed-but-uncommitted updates by new state root; dropped when the head moves.
        self._prepared: dict[bytes, StateUpdate] = {}

    @classmethod
    def from_spec(cls, spec: ChainSpec) -> EmbeddedEngine:
        """An engine at the genesis state of ``spec`` (its ``alloc``)."""
        accounts = {
            address: Account(nonce=g.nonce, balance=g.balance)
            for address, g in spec.alloc_bytes().items()
        }
        return cls(State(accounts))

    @property
    def state(self) -> State:
        """The head state (read it; change it only through :meth:`commit`)."""
        return self._state

    @property
    def state_root(self) -> bytes:
        return self._state.root

    def execute_block(
        self,
        parent_state_root: bytes,
        env: BlockEnv,
        txs: Sequence[Transaction],
        *,
        skip_invalid: bool = False,
    ) -> BlockExecution:
        return finish(self.execute_steps(parent_state_root, env, txs, skip_invalid=skip_invalid))

    def execute_steps(
        self,
        parent_state_root: bytes,
        env: BlockEnv,
        txs: Sequence[Transaction],
        *,
        skip_invalid: bool = False,
        chunk: int = EXECUTION_CHUNK,
    ) -> Steps[BlockExecution]:
        """:meth:`execute_block` in resumable pieces: pauses (yields) after every ``chunk``
        transactions and returns the BlockExecution, so an actor can answer other work between
        pieces of a large block instead of holding its event loop for the whole block. The
        caller must not commit or execute anything else until the generator is done."""
        if parent_state_root != self._state.root:
            raise UnknownParentState(
                f"parent state root {parent_state_root.hex()} is not the engine's head "
                f"{self._state.root.hex()}"
            )
        written: dict[bytes, Account] = {}
        state = self._state

        def load(address: bytes) -> Account:
            account = written.get(address)
            return state.get(address) if account is None else account

        included: list[Transaction] = []
        receipts: list[Receipt] = []
        skipped: list[tuple[Transaction, str]] = []
        gas_used = burned = 0
        base_fee = env.base_fee
        for position, tx in enumerate(txs, 1):
            if position % chunk == 0:
                yield
            try:
                sender = load(tx.sender)
                _check(tx, sender, base_fee, env.gas_limit - gas_used, len(included))
                if tx.to is None:
                    raise TransactionRejected(NOT_SUPPORTED, "contract creation", len(included))
                recipient_address: bytes = tx.to
                if load(recipient_address).code_hash != EMPTY_CODE_HASH:
                    raise TransactionRejected(
                        NOT_SUPPORTED, f"call to contract {_hex(recipient_address)}", len(included)
                    )
            except TransactionRejected as exc:
                if not skip_invalid:
                    raise
                skipped.append((tx, exc.reason))
                continue
            price = effective_gas_price(tx, base_fee)
            used = tx.intrinsic_gas
            written[tx.sender] = Account(
                sender.nonce + 1, sender.balance - used * price - tx.value, sender.code_hash
            )
            recipient = load(recipient_address)
            written[recipient_address] = Account(
                recipient.nonce, recipient.balance + tx.value, recipient.code_hash
            )
            tip = (price - base_fee) * used
            if tip:
                coinbase = load(env.fee_recipient)
                written[env.fee_recipient] = Account(
                    coinbase.nonce, coinbase.balance + tip, coinbase.code_hash
                )
            burned += base_fee * used
            gas_used += used
            included.append(tx)
            receipts.append(Receipt(tx.hash, tx.type, 1, used, gas_used, price))
        # A zero-value transfer to a fresh address leaves it empty: State.prepare drops it
        # (EIP-161), so it is never created.
        update = yield from state.prepare_steps(written)
        root_of_receipts = yield from receipts_root_steps(receipts)
        if len(self._prepared) >= _MAX_PREPARED:
            self._prepared.pop(next(iter(self._prepared)))
        self._prepared[update.root] = update
        return BlockExecution(
            parent_state_root=parent_state_root,
            env=env,
            state_root=update.root,
            gas_used=gas_used,
            burned=burned,
            transactions=tuple(included),
            receipts=tuple(receipts),
            receipts_root=root_of_receipts,
            logs_bloom=logs_bloom(receipts),
            skipped=tuple(skipped),
            changes=update.changes,
        )

    def commit(self, execution: BlockExecution) -> None:
        update = self._prepared.get(execution.state_root)
        if update is None or update.base_root != self._state.root:
            raise UnknownParentState(
                f"no executed block on the head state {self._state.root.hex()} leads to "
                f"{execution.state_root.hex()}"
            )
        self._state.apply(update)
        self._prepared.clear()


def _check(tx: Transaction, sender: Account, base_fee: int, gas_left: int, index: int) -> None:
    """Raise TransactionRejected with geth's reason if ``tx`` cannot apply to ``sender``."""
    who = _hex(tx.sender)
    if sender.code_hash != EMPTY_CODE_HASH:
        raise TransactionRejected("sender not an eoa", f"address {who}", index)
    if tx.nonce < sender.nonce:
        raise TransactionRejected(
            "nonce too low", f"address {who}, tx: {tx.nonce} state: {sender.nonce}", index
        )
    if tx.nonce > sender.nonce:
        raise TransactionRejected(
            "nonce too high", f"address {who}, tx: {tx.nonce} state: {sender.nonce}", index
        )
    max_fee, _ = fee_caps(tx)
    if max_fee < base_fee:
        raise TransactionRejected(
            "max fee per gas less than block base fee",
            f"address {who}, maxFeePerGas: {max_fee}, baseFee: {base_fee}",
            index,
        )
    if tx.gas_limit > gas_left:
        raise TransactionRejected(
            "gas limit reached", f"tx gas {tx.gas_limit}, block gas left {gas_left}", index
        )
    want = tx.gas_limit * max_fee + tx.value
    if sender.balance < want:
        raise TransactionRejected(
            "insufficient funds for gas * price + value",
            f"address {who} have {sender.balance} want {want}",
            index,
        )

"""EIP-1559 fee arithmetic, shared by the engine, the pool and (later) RPC fee estimates."""

from __future__ import annotations

from alys_fast.validation import Transaction


def next_base_fee(
    parent_base_fee: int,
    parent_gas_used: int,
    parent_gas_limit: int,
    elasticity_multiplier: int = 2,
    max_change_denominator: int = 8,
) -> int:
    """The base fee of the child block (EIP-1559's rule, integer division as specified).

    Above the gas target (limit / elasticity) the fee rises by at least 1 wei, below it falls,
    at the target it stays; each step is at most 1/denominator of the parent's fee.
    """
    target = parent_gas_limit // elasticity_multiplier
    if target == 0 or parent_gas_used == target:
        return parent_base_fee
    if parent_gas_used > target:
        delta = parent_base_fee * (parent_gas_used - target) // target // max_change_denominator
        return parent_base_fee + max(delta, 1)
    delta = parent_base_fee * (target - parent_gas_used) // target // max_change_denominator
    return parent_base_fee - delta


def fee_caps(tx: Transaction) -> tuple[int, int]:
    """(max fee per gas, max priority fee per gas); a legacy/2930 gas price is both."""
    price = getattr(tx, "gas_price", None)
    if price is not None:
        return price, price
    return tx.max_fee_per_gas, tx.max_priority_fee_per_gas  # type: ignore[attr-defined]


def effective_gas_price(tx: Transaction, base_fee: int) -> int:
    """What the sender pays per gas: min(max fee, base fee + tip); assumes max fee >= base fee."""
    max_fee, tip = fee_caps(tx)
    return min(max_fee, base_fee + tip)

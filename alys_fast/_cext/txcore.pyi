from alys_fast.validation.errors import InvalidTransaction
from alys_fast.validation.transactions import Transaction

def bind(types: dict[int, type[Transaction]]) -> None:
    """Register the result classes, one per transaction type."""

def recover(raw: bytes, chain_id: int, fork: int) -> Transaction:
    """Validate one raw transaction; return its result object or raise InvalidTransaction."""

def recover_into(
    raws: list[bytes],
    out: list[Transaction | InvalidTransaction],
    start: int,
    step: int,
    chain_id: int,
    fork: int,
) -> None:
    """Validate ``raws[start::step]`` into the same slots of ``out`` (result or error)."""

def recover_address(msg_hash: bytes, signature: bytes) -> bytes:
    """Address that produced the 65-byte ``r || s || recid`` signature over a 32-byte hash."""
def intrinsic_gas(
    data: bytes, access_addresses: int, access_keys: int, create: bool, fork: int
) -> int: ...

def with_sender(raw: bytes, sender: bytes, chain_id: int, fork: int) -> Transaction:
    """The result of a transaction whose sender was recovered elsewhere (no key recovery)."""

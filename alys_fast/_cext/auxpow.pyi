class AuxPowError(ValueError):
    """A refused proof; ``code`` is the rule's code in RULES.md, so callers can match on it."""

    code: str
    message: str
    def __init__(self, code: str, message: str) -> None: ...

def sha256d(data: bytes) -> bytes:
    """SHA256d, the hash of every AuxPoW rule."""

def parse(
    data: bytes,
) -> tuple[
    bytes,
    bytes,
    bytes | None,
    tuple[bytes, ...],
    tuple[bytes, ...],
    int,
    tuple[bytes, ...],
    int,
    bytes,
]:
    """Parse an AuxPoW alone (RULES.md §1 without the child header); every byte must be used."""

def split_header(data: bytes) -> tuple[bytes, bytes | None]:
    """Split an 80-byte header and its AuxPoW bytes (None when the flag is clear: V3, V4)."""

def merkle_root(leaf: bytes, branch: tuple[bytes, ...], index: int) -> bytes:
    """CheckMerkleBranch (R4, R6): index bit i says the branch hash goes left; -1 gives zero."""

def expected_index(nonce: int, chain_id: int, h: int) -> int:
    """getExpectedIndex: the slot a chain must take in the merged-mining tree (R10)."""

def check(
    proof: tuple[object, ...],
    committed_hash: bytes,
    chain_id: int,
    alys: bool,
    strict_chain_id: bool,
    pow_hash: bytes,
    target: bytes,
) -> None:
    """The structural rules R1-R10 in Dogecoin's order, then V6 (``pow_hash`` <= ``target``)."""

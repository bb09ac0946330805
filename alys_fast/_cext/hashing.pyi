from collections.abc import Buffer

def keccak256(data: Buffer) -> bytes:
    """Return the 32-byte Keccak-256 digest of ``data`` (bytes or any contiguous buffer)."""

"""Mine AuxPoW proofs for tests, the way Alys's dev miner builds them (ALYS-PROTOCOL §3.3): a
parent coinbase whose output 2 is the 44-byte commitment ``fabe6d6d || hash || size || nonce``,
alone in its parent block, whose nonce is ground until the header meets the target."""

from alys_fast.auxpow import sha256d, target_from_bits

MM_HEADER = bytes.fromhex("fabe6d6d")


def coinbase(committed: bytes) -> bytes:
    """A one-input coinbase: outputs 0 and 1 empty, output 2 the commitment (tree size 1)."""
    commitment = MM_HEADER + committed + (1).to_bytes(4, "little") + bytes(4)
    outputs = [b"", b"", commitment]
    body = (
        (1).to_bytes(4, "little")
        + b"\x01" + bytes(32) + b"\xff" * 4 + b"\x02\x51\x00" + b"\xff" * 4
        + bytes([len(outputs)])
        + b"".join(bytes(8) + bytes([len(script)]) + script for script in outputs)
        + bytes(4)
    )
    return body


def mine(committed: bytes, bits: int, parent_chain_id: int = 1) -> bytes:
    """A proof committing to ``committed`` whose parent header meets ``bits``."""
    tx = coinbase(committed)
    target = target_from_bits(bits)
    prefix = (parent_chain_id << 16).to_bytes(4, "little") + bytes(32) + sha256d(tx)
    prefix += bytes(4) + bits.to_bytes(4, "little")
    for nonce in range(2**32):
        parent = prefix + nonce.to_bytes(4, "little")
        if int.from_bytes(sha256d(parent), "little") <= target:
            return tx + bytes(32) + b"\x00" + bytes(4) + b"\x00" + bytes(4) + parent
    raise AssertionError("no nonce meets the target")

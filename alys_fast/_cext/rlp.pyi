from collections.abc import Buffer, Sequence

DEFAULT_MAX_DEPTH: int

RLPItem = bytes | list[RLPItem]
Encodable = Buffer | int | Sequence[Encodable]

def decode(data: Buffer, *, max_depth: int = ...) -> RLPItem:
    """Decode one canonical RLP item that spans all of ``data``; raise InvalidRLP otherwise."""

def decode_list(data: Buffer, *, max_depth: int = ...) -> list[RLPItem]:
    """Like :func:`decode` but the top-level item must be a list."""

def encode(obj: Encodable) -> bytes:
    """Encode bytes, non-negative ints and (nested) lists/tuples of them as canonical RLP."""

"""BLS12-381 signatures as Alys's authorities use them: Ethereum's proof-of-possession ciphersuite.

A thin typed face over ``blspy`` (Chia's bindings to supranational/blst), chosen by
``benches/bench_consensus.py`` against ``milagro-bls-binding``, ``pyblst`` and ``py_ecc``:

- public keys are 48-byte compressed G1 points, signatures 96-byte compressed G2 points;
- messages are signed raw, with the DST ``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`` and no
  domain mixed in (ALYS-PROTOCOL §1.5: lighthouse's ``SecretKey::sign(signing_root)``);
- a secret key is the 32-byte big-endian scalar, ``0 < sk < r`` (Alys's ``--aura-secret-key``).

Decoding is strict, as Ethereum's (bls12-381-tests ``deserialization_G1/G2``): wrong length,
flags, a coordinate at or above the field modulus, a point off the curve or outside its
prime-order subgroup all raise :class:`BlsError`. A public key may not be the point at
infinity (``KeyValidate``: the identity would let anyone forge a share of an aggregate); a
signature may be (it is the empty aggregate), but it never verifies.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

import blspy

__all__ = [
    "DST",
    "PUBLIC_KEY_SIZE",
    "SECRET_KEY_SIZE",
    "SIGNATURE_SIZE",
    "BlsError",
    "PublicKey",
    "SecretKey",
    "Signature",
    "aggregate",
    "fast_aggregate_verify",
    "sign",
    "verify",
]

DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
SECRET_KEY_SIZE = 32
PUBLIC_KEY_SIZE = 48
SIGNATURE_SIZE = 96
# The order of G1 and G2: secret keys are scalars below it.
CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

_scheme = blspy.PopSchemeMPL
_G1_IDENTITY = blspy.G1Element()


class BlsError(ValueError):
    """A key or signature that is not a valid encoding; the message says what is wrong."""


def _check_size(what: str, data: bytes, size: int) -> None:
    if not isinstance(data, bytes) or len(data) != size:
        got = f"{len(data)} bytes" if isinstance(data, bytes) else type(data).__name__
        raise BlsError(f"a BLS {what} is {size} bytes, got {got}")


class SecretKey:
    """An authority's signing key (keep it secret: no repr shows it)."""

    __slots__ = ("_key",)

    def __init__(self, key: blspy.PrivateKey) -> None:
        self._key = key

    @classmethod
    def from_bytes(cls, data: bytes) -> SecretKey:
        """The key whose scalar is ``data`` (32 bytes, big-endian, 0 < value < r)."""
        _check_size("secret key", data, SECRET_KEY_SIZE)
        if not 0 < int.from_bytes(data, "big") < CURVE_ORDER:
            raise BlsError("a BLS secret key must be above 0 and below the curve order")
        return cls(blspy.PrivateKey.from_bytes(data))

    @classmethod
    def random(cls) -> SecretKey:
        """A fresh key from the operating system's randomness."""
        scalar = 1 + secrets.randbelow(CURVE_ORDER - 1)
        return cls.from_bytes(scalar.to_bytes(SECRET_KEY_SIZE, "big"))

    def to_bytes(self) -> bytes:
        return bytes(self._key)

    def public_key(self) -> PublicKey:
        return PublicKey(self._key.get_g1())

    def sign(self, message: bytes) -> Signature:
        return Signature(_scheme.sign(self._key, message))

    def __repr__(self) -> str:
        return "SecretKey(<hidden>)"


class PublicKey:
    """A validated public key: in G1's prime-order subgroup and not the identity."""

    __slots__ = ("_bytes", "_point")

    def __init__(self, point: blspy.G1Element) -> None:
        self._point = point
        self._bytes = bytes(point)

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        _check_size("public key", data, PUBLIC_KEY_SIZE)
        try:
            point = blspy.G1Element.from_bytes(data)
        except (ValueError, RuntimeError) as exc:
            raise BlsError(f"not a BLS public key: {exc}") from None
        if point == _G1_IDENTITY:
            raise BlsError("a BLS public key may not be the point at infinity")
        return cls(point)

    def to_bytes(self) -> bytes:
        return self._bytes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __repr__(self) -> str:
        return f"PublicKey(0x{self._bytes.hex()})"


class Signature:
    """A signature or an aggregate of signatures: a point in G2's prime-order subgroup."""

    __slots__ = ("_bytes", "_point")

    def __init__(self, point: blspy.G2Element) -> None:
        self._point = point
        self._bytes = bytes(point)

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        _check_size("signature", data, SIGNATURE_SIZE)
        try:
            return cls(blspy.G2Element.from_bytes(data))
        except (ValueError, RuntimeError) as exc:
            raise BlsError(f"not a BLS signature: {exc}") from None

    @classmethod
    def infinity(cls) -> Signature:
        """The empty aggregate (the identity of G2)."""
        return cls(blspy.G2Element())

    def to_bytes(self) -> bytes:
        return self._bytes

    def __add__(self, other: Signature) -> Signature:
        return Signature(self._point + other._point)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __repr__(self) -> str:
        return f"Signature(0x{self._bytes.hex()})"



def sign(secret_key: SecretKey, message: bytes) -> Signature:
    """``secret_key``'s signature of ``message`` (a block's 32-byte root, in Alys)."""
    return secret_key.sign(message)


def verify(public_key: PublicKey, message: bytes, signature: Signature) -> bool:
    """Whether ``signature`` is ``public_key``'s signature of ``message``."""
    return bool(_scheme.verify(public_key._point, message, signature._point))


def aggregate(signatures: Iterable[Signature]) -> Signature:
    """The sum of ``signatures``; BlsError for none (Ethereum's ``Aggregate([])`` is invalid)."""
    points = [signature._point for signature in signatures]
    if not points:
        raise BlsError("there are no signatures to aggregate")
    return Signature(_scheme.aggregate(points))


def fast_aggregate_verify(
    public_keys: Sequence[PublicKey], message: bytes, signature: Signature
) -> bool:
    """Whether ``signature`` aggregates one signature of ``message`` by each of ``public_keys``
    (False for no keys, as Ethereum's ``eth_fast_aggregate_verify`` outside its infinity case)."""
    if not public_keys:
        return False
    points = [key._point for key in public_keys]
    return bool(_scheme.fast_aggregate_verify(points, message, signature._point))

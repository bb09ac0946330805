"""Transactions the differential tests send, by what they do: transfers, the test contracts'
calls (``tests/data/contracts``), precompile inputs, failing creations. Each returns the signed
raw transaction; :class:`Actions` remembers the deployed contracts' addresses."""

from __future__ import annotations

from typing import Any

from alys_fast.chain.spec import ETHER
from tests.differential.driver import (
    BN_P,
    CREATE2_DEPLOYER,
    Differential,
    blake2f_input,
    bn_g1,
    bn_pairing_identity,
    calldata,
    create2_address,
    creation_code,
    ecrecover_args,
    modexp_input,
    point_evaluation_input,
    word,
)

CALL_GAS = 500_000
DEPLOY_GAS = 3_000_000
TOKEN_SUPPLY = 1_000_000 * ETHER

# Init code that reverts at once (PUSH1 0 PUSH1 0 REVERT).
REVERTING_INIT = bytes.fromhex("60006000fd")
# Init code returning one 0xEF byte: refused by EIP-3541, so the creation fails, all gas spent.
EF_INIT = bytes.fromhex("60ef60005360016000f3")
# Init code running INVALID (0xfe).
INVALID_INIT = bytes.fromhex("fe")
# Init code returning a 10-byte runtime that answers 42 (any call).
ANSWER_INIT = bytes.fromhex("600a600c600039600a6000f3602a60005260206000f3")

PRECOMPILES = [bytes(19) + bytes([n]) for n in range(1, 11)]
FRESH = bytes.fromhex("00000000000000000000000000000000deadbeef")


class Actions:
    """Builds transactions on a :class:`Differential`'s wallet."""

    def __init__(self, diff: Differential) -> None:
        self.diff = diff
        self.wallet = diff.wallet
        self.token: bytes | None = None
        self.probe: bytes | None = None
        self.children: dict[bytes, bytes] = {}  # CREATE2 salt -> Child address

    # ---- plain ------------------------------------------------------------------------

    def transfer(self, sender: int, to: bytes, value: int = 10**15, kind: int | str = 2,
                 **fees: Any) -> bytes:
        return self.wallet.sign(sender, to, value=value, kind=kind, **fees)

    def create(self, sender: int, init: bytes, *, gas: int = 200_000, value: int = 0,
               kind: int | str = 2) -> bytes:
        return self.wallet.sign(sender, None, data=init, gas=gas, value=value, kind=kind)

    # ---- contracts ----------------------------------------------------------------------

    def deploy_token(self, sender: int = 0, supply: int = TOKEN_SUPPLY, *, kind: int | str = 2,
                     gas: int = DEPLOY_GAS) -> bytes:
        self.token = self.wallet.next_create_address(sender)
        return self.create(sender, creation_code("Token", ["uint256"], [supply]), gas=gas,
                           kind=kind)

    def deploy_probe(self, sender: int = 0, *, kind: int | str = 2) -> bytes:
        self.probe = self.wallet.next_create_address(sender)
        return self.create(sender, creation_code("Probe"), gas=DEPLOY_GAS, kind=kind)

    def token_call(self, sender: int, signature: str, *args: Any, gas: int = CALL_GAS,
                   kind: int | str = 2) -> bytes:
        assert self.token is not None, "deploy the token first"
        return self.wallet.sign(sender, self.token, data=calldata("Token", signature, *args),
                                gas=gas, kind=kind)

    def probe_call(self, sender: int, signature: str, *args: Any, gas: int = CALL_GAS,
                   value: int = 0, kind: int | str = 2, **extra: Any) -> bytes:
        assert self.probe is not None, "deploy the probe first"
        return self.wallet.sign(sender, self.probe, data=calldata("Probe", signature, *args),
                                gas=gas, value=value, kind=kind, **extra)

    def child_call(self, sender: int, child: bytes, signature: str, *args: Any,
                   gas: int = CALL_GAS, kind: int | str = 2) -> bytes:
        return self.wallet.sign(sender, child, data=calldata("Child", signature, *args),
                                gas=gas, kind=kind)

    def create2_child(self, sender: int, salt: bytes, **kw: Any) -> bytes:
        assert self.probe is not None
        self.children[salt] = create2_address(self.probe, salt, creation_code("Child"))
        return self.probe_call(sender, "create2Child(bytes32)", salt, **kw)

    def deployer_create2(self, sender: int, salt: bytes, init: bytes = ANSWER_INIT,
                         gas: int = 300_000) -> tuple[bytes, bytes]:
        """A creation through anvil's predeployed CREATE2 deployer: (raw tx, new address)."""
        raw = self.wallet.sign(sender, CREATE2_DEPLOYER, data=salt + init, gas=gas)
        return raw, create2_address(CREATE2_DEPLOYER, salt, init)

    # ---- precompiles through the probe ----------------------------------------------------

    def precompile_calls(self, sender: int) -> list[bytes]:
        """Each precompile the probe reaches, with valid and invalid input."""
        return [self.probe_call(sender, sig, *args) for sig, args in precompile_specs()]

    def direct_precompile_calls(self, sender: int) -> list[bytes]:
        """Transactions straight to precompile addresses (some with value)."""
        digest, v, r, s = ecrecover_args(b"direct", key_index=sender)
        sign = self.wallet.sign
        return [
            sign(sender, PRECOMPILES[0], data=digest + word(v) + r + s, gas=60_000),
            sign(sender, PRECOMPILES[1], data=b"x" * 100, gas=60_000, value=1),
            sign(sender, PRECOMPILES[3], data=b"identity", gas=60_000, value=5),
            sign(sender, PRECOMPILES[6], data=bn_g1(1, 2) + word(3), gas=60_000),
            sign(sender, PRECOMPILES[8], data=blake2f_input(final=7), gas=60_000),  # fails
            sign(sender, PRECOMPILES[9], data=point_evaluation_input(0), gas=100_000),
            sign(sender, PRECOMPILES[9], data=b"", gas=100_000),  # fails, all gas spent
        ]


def precompile_specs() -> list[tuple[str, tuple[Any, ...]]]:
    """(Probe function, arguments) for each precompile, with valid and invalid inputs."""
    digest, v, r, s = ecrecover_args(b"differential")
    g1 = bn_g1(1, 2)
    ecrecover = "ecrecoverCall(bytes32,uint8,bytes32,bytes32)"
    raw = "rawStaticcall(address,bytes)"
    return [
        (ecrecover, (digest, v, r, s)),
        (ecrecover, (digest, 29, r, s)),  # bad v: address(0)
        ("sha256Call(bytes)", (b"abc" * 50,)),
        ("ripemdCall(bytes)", (b"abc",)),
        ("identityCall(bytes)", (bytes(range(256)) * 3,)),
        ("modexpCall(bytes)", (modexp_input(3, 2**255 - 19, 2**256 - 189),)),
        ("modexpCall(bytes)", (modexp_input(7, 0, 0),)),
        # A 512-bit exponent (EIP-2565 pricing) with 1-byte base and modulus.
        ("modexpCall(bytes)", (word(1) + word(64) + word(1) + b"\x05" + b"\xff" * 64 + b"\x0d",)),
        ("bn256Add(bytes)", (g1 + g1,)),
        ("bn256Add(bytes)", (g1 + bn_g1(1, 3),)),  # not on the curve: fails
        ("bn256Mul(bytes)", (g1 + word(2**200 + 12345),)),
        ("bn256Mul(bytes)", (bn_g1(BN_P, 0) + word(2),)),  # coordinate >= p: fails
        ("bn256Pairing(bytes)", (b"",)),
        ("bn256Pairing(bytes)", (bn_pairing_identity(),)),
        ("bn256Pairing(bytes)", (bn_pairing_identity()[:191],)),  # bad length: fails
        ("blake2fCall(bytes)", (blake2f_input(),)),
        ("blake2fCall(bytes)", (blake2f_input(rounds=1000),)),
        ("blake2fCall(bytes)", (blake2f_input(final=2),)),  # bad flag: fails
        ("pointEvaluation(bytes)", (point_evaluation_input(0),)),
        ("pointEvaluation(bytes)", (point_evaluation_input(1),)),  # wrong y: fails
        ("pointEvaluation(bytes)", (b"\x01" * 10,)),  # bad length: fails
        # Not precompiles in Cancun: BLS12-381 G1ADD (Prague's 0x0b), P256VERIFY (0x100).
        (raw, (bytes(19) + b"\x0b", bytes(256))),
        (raw, (bytes(18) + b"\x01\x00", bytes(160))),
        # Into the CREATE2 deployer: its CREATE2 fails in a static context.
        (raw, (CREATE2_DEPLOYER, bytes(32) + ANSWER_INIT)),
    ]

"""The chain spec: everything two nodes must agree on before block 0.

A spec is a frozen msgspec Struct, read from TOML or JSON (:func:`load_spec`) or taken built-in
(:func:`dev_spec`). Loading validates every field and reports the first problem with its path
(``alloc.0x…balance: Expected int >= 0``) as a :class:`SpecError`, so a typo in a genesis file
fails at start, not at block 1.

Field meanings:

- ``chain_id``: the EIP-155 chain id signed into every transaction (dev: 121212, as Alys's dev
  spec).
- ``slot_ms``: Aura slot length; ``slot = unix_ms // slot_ms`` and the slot's author is
  ``authorities[slot % len(authorities)]``.
- ``authorities``: the BLS12-381 public keys (48 bytes, hex: compressed G1 points, as Alys's
  ``authorities``) of the block authors, in rotation order, 1 to 15 of them (Alys's approval
  bit list has 15 bits). An authority's index is its position here.
- ``node_keys``: the network keys of the federation's nodes (their CURVE public keys: 64 hex
  digits, as in an ``alys://<key>@host:port`` address, or the 40-character z85 form), listed by
  convention in the order of ``authorities``. Only these nodes may send consensus messages
  (blocks, approvals, AuxPoW proofs); any node may sync and send transactions. Empty (the
  default, and every spec written before the network): a chain of one node, which talks to
  no one. :meth:`ChainSpec.member_ids` gives them as node ids (hex).
- ``gas_limit``: the per-block gas limit (constant; no voting).
- ``fees``: EIP-1559 parameters: genesis base fee, elasticity multiplier and max change
  denominator (London's defaults: 1 gwei, 2, 8).
- ``fee_recipient``: where priority fees go (base fees are burned): every block's ``author``
  field (the EVM's ``COINBASE``, eth RPC's ``miner``).
- ``fork``: the EVM rules, ``cancun`` by default; ``shanghai`` is Alys's own genesis fork.
- ``alloc``: the genesis accounts, address -> balance (wei), nonce, and for contracts their
  code (hex) and storage (hex slot -> hex value).

AuxPoW (merged mining) fields, Alys's camelCase JSON names in brackets; defaults are Alys's DEV
values (a spec without them loads as Alys fills missing fields):

- ``bits`` (``bits``): the genesis PoW target, compact (default 0x1e25cdf2, about 450,000
  SHA256d hashes per proof). The built-in dev spec uses 0x207fffff (Bitcoin regtest's limit:
  every second hash meets it), so one CPU miner process finalizes in microseconds.
- ``auxpow_chain_id`` (``chainId``): the AuxPoW chain id (u32) in the proof's chain-merkle slot;
  unset, it is ``chain_id``, as Alys uses one ``chainId`` for both (:meth:`ChainSpec.pow_chain_id`).
  The dev spec pins it to 121212 (Alys DEV's) whatever its ``chain_id``.
- ``max_blocks_without_pow`` (``maxBlocksWithoutPow``): a block more than this many blocks past
  the last finalized one needs an AuxPoW (default 50,000).
- ``retarget_params`` (``retargetParams``): :class:`alys_fast.auxpow.retarget.RetargetParams`,
  the same fields in snake_case (``pow_target_timespan``, ``pow_target_spacing``,
  ``max_pow_adjustment``, ``pow_no_retargeting``, ``pow_limit``, ``pow_lower_limit``). The dev
  spec sets ``pow_no_retargeting`` (as Alys's chain-dev.json): a CPU miner proving every block
  would otherwise cut the target to a fifth at each interval.

Addresses and keys are ``0x`` hex strings in files and in the Struct; :meth:`ChainSpec.alloc_bytes`
gives the 20-byte addresses the engine works with and :meth:`ChainSpec.authority_keys` the decoded
public keys (decoded once per authority list: a decode checks the point, about 0.1 ms a key).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta
from zmq.utils import z85

from alys_fast.auxpow import AuxPowError, target_from_bits
from alys_fast.auxpow.retarget import U32, RetargetParams
from alys_fast.consensus.approvals import MAX_AUTHORITIES
from alys_fast.consensus.bls import BlsError, PublicKey
from alys_fast.validation.transactions import MAX_CHAIN_ID

Address = Annotated[str, Meta(pattern=r"^0x[0-9a-fA-F]{40}$")]
BlsPublicKeyHex = Annotated[str, Meta(pattern=r"^0x[0-9a-fA-F]{96}$")]
HexBytes = Annotated[str, Meta(pattern=r"^0x([0-9a-fA-F]{2})*$")]
HexWord = Annotated[str, Meta(pattern=r"^0x[0-9a-fA-F]{1,64}$")]
# A node's CURVE public key: 64 hex digits (0x optional) or 40 z85 characters.
_Z85 = r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]"
NodeKeyText = Annotated[str, Meta(pattern=rf"^(0x)?[0-9a-fA-F]{{64}}$|^{_Z85}{{40}}$")]
# The forks the engine runs (alys_fast.engine.revm.FORKS); checked here so a bad spec fails at
# load with the field's name.
FORKS = ("shanghai", "cancun", "prague")
# msgspec bounds must fit in an int64, so upper limits beyond that are checked in __post_init__.
U64 = Annotated[int, Meta(ge=0)]
U256 = Annotated[int, Meta(ge=0)]
Positive = Annotated[int, Meta(ge=1)]


def _check_width(name: str, value: int, bits: int) -> None:
    if value >= 1 << bits:
        raise ValueError(f"{name} must be < 2**{bits}, got {value}")

ZERO_ADDRESS = "0x" + "00" * 20
ETHER = 10**18


class SpecError(ValueError):
    """A chain spec that cannot be read or breaks a rule; the message names the field."""


class GenesisAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A genesis account: balance in wei, starting nonce, and a contract's code and storage."""

    balance: U256 = 0
    nonce: U64 = 0
    code: HexBytes = "0x"
    storage: dict[HexWord, HexWord] = {}

    def __post_init__(self) -> None:
        _check_width("balance", self.balance, 256)
        _check_width("nonce", self.nonce, 64)


class FeeRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """EIP-1559 base fee parameters (London's values by default)."""

    initial_base_fee: U256 = 1_000_000_000
    elasticity_multiplier: Positive = 2
    max_change_denominator: Positive = 8

    def __post_init__(self) -> None:
        _check_width("initial_base_fee", self.initial_base_fee, 256)
        _check_width("elasticity_multiplier", self.elasticity_multiplier, 64)
        _check_width("max_change_denominator", self.max_change_denominator, 64)


class ChainSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A chain's genesis and consensus parameters (see the module docstring for each field)."""

    name: str
    chain_id: Annotated[int, Meta(ge=1, le=MAX_CHAIN_ID)]
    slot_ms: Positive
    authorities: Annotated[
        tuple[BlsPublicKeyHex, ...], Meta(min_length=1, max_length=MAX_AUTHORITIES)
    ]
    gas_limit: Annotated[int, Meta(ge=21_000, le=2**63 - 1)]
    node_keys: Annotated[tuple[NodeKeyText, ...], Meta(max_length=MAX_AUTHORITIES)] = ()
    fees: FeeRules = FeeRules()
    fee_recipient: Address = ZERO_ADDRESS
    genesis_timestamp: U64 = 0
    fork: str = "cancun"
    alloc: dict[Address, GenesisAccount] = {}
    bits: U32 = 0x1E25CDF2
    auxpow_chain_id: U32 | None = None
    max_blocks_without_pow: U64 = 50_000
    retarget_params: RetargetParams = RetargetParams()

    def __post_init__(self) -> None:
        if self.fork not in FORKS:
            raise ValueError(f"fork must be one of {', '.join(FORKS)}, got {self.fork!r}")
        try:
            target_from_bits(self.bits)
        except AuxPowError as exc:
            raise ValueError(f"bits: {exc}") from None
        _check_width("max_blocks_without_pow", self.max_blocks_without_pow, 64)
        if self.auxpow_chain_id is None and self.chain_id >= 1 << 32:
            raise ValueError(f"chain_id {self.chain_id} does not fit the u32 AuxPoW chain id; "
                             "set auxpow_chain_id")
        _check_width("slot_ms", self.slot_ms, 64)
        _check_width("genesis_timestamp", self.genesis_timestamp, 64)
        # Hex case must not let one account appear twice (0xAB… and 0xab… are one address).
        seen: set[str] = set()
        for address in self.alloc:
            low = address.lower()
            if low in seen:
                raise ValueError(f"alloc lists address {address} twice (hex case differs)")
            seen.add(low)
        keys = self.authority_keys()
        if len(set(keys)) != len(keys):
            raise ValueError("authorities lists a key twice")
        members = self.member_ids()
        if len(members) != len(self.node_keys):
            raise ValueError("node_keys lists a key twice")

    def alloc_bytes(self) -> dict[bytes, GenesisAccount]:
        """The alloc keyed by 20-byte addresses, as the engine and storage key accounts."""
        return {bytes.fromhex(a[2:]): acct for a, acct in self.alloc.items()}

    def authority_keys(self) -> tuple[PublicKey, ...]:
        """The authorities' BLS public keys, in rotation order (decoded once, then cached)."""
        return _decode_authorities(self.authorities)

    def member_ids(self) -> frozenset[str]:
        """The federation's node ids (``node_keys`` as 64 lower-case hex digits)."""
        return frozenset(node_id(key) for key in self.node_keys)

    def fee_recipient_bytes(self) -> bytes:
        """The 20-byte fee recipient."""
        return bytes.fromhex(self.fee_recipient[2:])

    def pow_chain_id(self) -> int:
        """The AuxPoW chain id: ``auxpow_chain_id``, else ``chain_id`` (Alys's single chainId)."""
        return self.chain_id if self.auxpow_chain_id is None else self.auxpow_chain_id


@lru_cache(maxsize=16)
def _decode_authorities(authorities: tuple[str, ...]) -> tuple[PublicKey, ...]:
    keys = []
    for key in authorities:
        try:
            keys.append(PublicKey.from_bytes(bytes.fromhex(key[2:])))
        except BlsError as exc:
            raise ValueError(f"authority {key}: {exc}") from None
    return tuple(keys)


def node_id(key: str) -> str:
    """A node key as written in a spec (hex, ``0x`` optional, or z85) as its node id (hex)."""
    if len(key) == 40:
        return z85.decode(key.encode()).hex()
    return key.removeprefix("0x").lower()


def spec_from_dict(data: object, *, source: str = "spec") -> ChainSpec:
    """Validate already-parsed TOML/JSON data as a ChainSpec; SpecError names the bad field."""
    try:
        return msgspec.convert(data, ChainSpec, strict=True)
    except msgspec.ValidationError as exc:
        raise SpecError(f"{source}: {exc}") from None


def load_spec(path: str | Path) -> ChainSpec:
    """Read a spec from a ``.toml`` or ``.json`` file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the chain spec: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            data: object = tomllib.loads(raw.decode())
        elif path.suffix == ".json":
            data = msgspec.json.decode(raw)
        else:
            raise SpecError(f"{path}: a chain spec must be a .toml or .json file")
    except (tomllib.TOMLDecodeError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    return spec_from_dict(data, source=str(path))


DEV_MNEMONIC = "test test test test test test test test test test test junk"

# The accounts m/44'/60'/0'/0/0..9 of DEV_MNEMONIC (anvil's and hardhat's), as (address, key).
# Constants so that dev_spec() (a config's ``chain = "dev"``, the tests) derives nothing;
# tests/chain/test_spec.py checks them against dev_accounts().
DEV_ACCOUNTS: tuple[tuple[str, str], ...] = (
    ("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
     "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
    ("0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
     "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"),
    ("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
     "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"),
    ("0x90F79bf6EB2c4f870365E785982E1f101E93b906",
     "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"),
    ("0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
     "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a"),
    ("0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
     "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"),
    ("0x976EA74026E726554dB657fA54763abd0C3a0aa9",
     "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e"),
    ("0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
     "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356"),
    ("0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
     "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97"),
    ("0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
     "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"),
)

# The dev authority's BLS secret is Alys's dev key, sk = 1 (``DEV_SECRET_KEY``, public, dev use
# only), so a dev spec lists the same authority as Alys's: the generator of G1.
DEV_AUTHORITY_KEY = "0x" + "00" * 31 + "01"
DEV_AUTHORITY_PUBKEY = (
    "0x97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
)
DEV_CHAIN_ID = 121212
# Bitcoin regtest's PoW limit: half of all hashes meet it (see the module docstring).
DEV_BITS = 0x207FFFFF


def dev_accounts(mnemonic: str = DEV_MNEMONIC, count: int = 10) -> tuple[tuple[str, str], ...]:
    """The accounts m/44'/60'/0'/0/0..count-1 of a BIP-39 ``mnemonic``, as (address, key), the
    way anvil and hardhat derive theirs. eth-account is imported here, not at the top: only
    ``alys-fast dev`` derives keys."""
    from eth_account import Account
    from eth_utils import ValidationError

    Account.enable_unaudited_hdwallet_features()
    out = []
    for i in range(count):
        try:
            account = Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}")
        except ValidationError as exc:
            raise SpecError(f"not a BIP-39 mnemonic: {exc}") from None
        out.append((account.address, "0x" + bytes(account.key).hex()))
    return tuple(out)


def dev_spec(
    *,
    slot_ms: int = 1000,
    accounts: Iterable[str] = tuple(address for address, _ in DEV_ACCOUNTS),
    balance: int = 10_000 * ETHER,
    chain_id: int = DEV_CHAIN_ID,
) -> ChainSpec:
    """The built-in ``dev`` spec: one authority, 30M gas, ``accounts`` (default the 10 dev
    accounts) funded with ``balance`` wei (default 10,000 ETH) each."""
    if not 1 <= slot_ms < 2**63:
        raise SpecError(f"dev spec: slot_ms must be >= 1, got {slot_ms}")
    return ChainSpec(
        name="dev",
        chain_id=chain_id,
        slot_ms=slot_ms,
        authorities=(DEV_AUTHORITY_PUBKEY,),
        gas_limit=30_000_000,
        alloc={address: GenesisAccount(balance=balance) for address in accounts},
        bits=DEV_BITS,
        auxpow_chain_id=DEV_CHAIN_ID,
        retarget_params=RetargetParams(pow_no_retargeting=True),
    )

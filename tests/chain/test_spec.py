"""Chain spec: the dev spec's constants, loading TOML/JSON, and the errors bad files get."""

from __future__ import annotations

import json

import msgspec
import pytest
from eth_account import Account

from alys_fast.chain.spec import (
    DEV_ACCOUNTS,
    DEV_AUTHORITY_KEY,
    DEV_AUTHORITY_PUBKEY,
    DEV_MNEMONIC,
    ETHER,
    ChainSpec,
    GenesisAccount,
    SpecError,
    dev_accounts,
    dev_spec,
    load_spec,
    spec_from_dict,
)
from alys_fast.consensus import PublicKey, SecretKey

# A public key off the curve (x = 1 has no y on G1) and the point at infinity, both well-formed
# 48-byte hex.
OFF_CURVE = "0x8" + "0" * 94 + "1"
INFINITY = "0xc" + "0" * 95


def test_dev_accounts_are_the_mnemonic_accounts() -> None:
    Account.enable_unaudited_hdwallet_features()
    for i, (address, key) in enumerate(DEV_ACCOUNTS):
        derived = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        assert derived.address == address
        assert derived.key.hex().removeprefix("0x") == key.removeprefix("0x")
    assert dev_accounts() == DEV_ACCOUNTS
    assert dev_accounts(count=3) == DEV_ACCOUNTS[:3]
    assert dev_accounts(count=0) == ()


def test_dev_accounts_of_another_mnemonic() -> None:
    words = "abandon " * 11 + "about"  # BIP-39's all-zero entropy test phrase
    Account.enable_unaudited_hdwallet_features()
    accounts = dev_accounts(words, 12)
    assert len(accounts) == 12 and not set(accounts) & set(DEV_ACCOUNTS)
    for i, (address, key) in enumerate(accounts):
        derived = Account.from_mnemonic(words, account_path=f"m/44'/60'/0'/0/{i}")
        assert (address, key) == (derived.address, "0x" + derived.key.hex().removeprefix("0x"))
    for bad in ("abandon " * 12, "not a mnemonic at all", ""):
        with pytest.raises(SpecError, match="not a BIP-39 mnemonic"):
            dev_accounts(bad.strip(), 1)


def test_dev_authority_is_alys_dev_key() -> None:
    """sk = 1 (Alys's DEV_SECRET_KEY); its public key is the one Alys's ``should_find_authority``
    test and dev spec list (ALYS-PROTOCOL §1.1): 0x97f1d3a7...c6bb, the generator of G1."""
    key = SecretKey.from_bytes(bytes.fromhex(DEV_AUTHORITY_KEY[2:]))
    assert int.from_bytes(key.to_bytes(), "big") == 1
    assert "0x" + key.public_key().to_bytes().hex() == DEV_AUTHORITY_PUBKEY
    assert DEV_AUTHORITY_PUBKEY.startswith("0x97f1d3a7") and DEV_AUTHORITY_PUBKEY.endswith("c6bb")
    assert dev_spec().authority_keys() == (key.public_key(),)


def test_authority_keys_are_decoded_once() -> None:
    keys = tuple(SecretKey.from_bytes(bytes([i]) * 32).public_key() for i in (1, 2, 3))
    spec = msgspec.structs.replace(
        dev_spec(), authorities=tuple("0x" + k.to_bytes().hex() for k in keys))
    assert spec.authority_keys() == keys
    assert all(isinstance(k, PublicKey) for k in spec.authority_keys())
    # The same list (any spec holding it) answers from the cache: the very same objects.
    assert spec.authority_keys() is msgspec.structs.replace(spec, name="again").authority_keys()


def test_dev_spec_values() -> None:
    spec = dev_spec()
    assert spec.chain_id == 121212
    assert spec.slot_ms == 1000
    assert spec.gas_limit == 30_000_000
    assert len(spec.authorities) == 1
    assert spec.fees.elasticity_multiplier == 2
    assert spec.fees.max_change_denominator == 8
    alloc = spec.alloc_bytes()
    assert len(alloc) == 10
    assert all(a.balance == 10_000 * ETHER and a.nonce == 0 for a in alloc.values())
    assert bytes.fromhex(DEV_ACCOUNTS[0][0][2:]) in alloc
    assert dev_spec(slot_ms=250).slot_ms == 250
    custom = dev_spec(accounts=[DEV_ACCOUNTS[4][0]], balance=5, chain_id=1337)
    assert custom.chain_id == 1337
    assert custom.alloc == {DEV_ACCOUNTS[4][0]: GenesisAccount(balance=5)}
    with pytest.raises(SpecError, match="slot_ms"):
        dev_spec(slot_ms=0)


def _as_dict(spec: ChainSpec) -> dict:
    return msgspec.to_builtins(spec)


def test_json_round_trip(tmp_path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_as_dict(dev_spec())))
    assert load_spec(path) == dev_spec()


def test_toml(tmp_path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(
        f"""
name = "test"
chain_id = 7
slot_ms = 2000
authorities = ["{DEV_AUTHORITY_PUBKEY}"]
gas_limit = 15000000

[fees]
initial_base_fee = 7

[alloc."{DEV_ACCOUNTS[1][0]}"]
balance = 100000000000000000000000
nonce = 3
"""
    )
    spec = load_spec(path)
    assert spec.chain_id == 7 and spec.fees.initial_base_fee == 7
    assert spec.fees.max_change_denominator == 8  # default kept
    (acct,) = spec.alloc_bytes().values()
    assert acct.balance == 10**23 and acct.nonce == 3


def _base() -> dict:
    return _as_dict(dev_spec())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(chain_id=0), r"\$\.chain_id"),
        (lambda d: d.update(slot_ms=-5), r"\$\.slot_ms"),
        (lambda d: d.update(authorities=[]), r"\$\.authorities"),
        (lambda d: d.update(authorities=["0x02" + "00" * 32]), r"\$\.authorities\[0\]"),
        (lambda d: d.update(authorities=[OFF_CURVE]), "not a BLS public key"),
        (lambda d: d.update(authorities=[INFINITY]), "point at infinity"),
        (lambda d: d.update(authorities=[DEV_AUTHORITY_PUBKEY] * 2), "twice"),
        (lambda d: d.update(authorities=[DEV_AUTHORITY_PUBKEY, DEV_AUTHORITY_PUBKEY.upper()
                                         .replace("0X", "0x")]), "twice"),
        (lambda d: d.update(authorities=["0x" + SecretKey.from_bytes(bytes([i]) * 32)
                                         .public_key().to_bytes().hex() for i in range(1, 17)]),
         r"\$\.authorities"),
        (lambda d: d.update(gas_limit=100), r"\$\.gas_limit"),
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d.pop("chain_id"), "chain_id"),
        (lambda d: d["alloc"].update({"0x1234": {"balance": 1}}), r"\$\.alloc"),
        (lambda d: d["alloc"].update({"0x" + "ab" * 20: {"balance": -1}}), "balance"),
        (lambda d: d["alloc"].update({"0x" + "ab" * 20: {"balance": "1"}}), "balance"),
        (
            lambda d: d["alloc"].update(
                {"0x" + "ab" * 20: {"balance": 1}, "0x" + "AB" * 20: {"balance": 2}}
            ),
            "twice",
        ),
        (lambda d: d["fees"].update(max_change_denominator=0), "max_change_denominator"),
        (lambda d: d.update(bits=0x04923456), "bits: invalid-target-bits"),
        (lambda d: d.update(bits=2**32), r"\$\.bits"),
        (lambda d: d.update(auxpow_chain_id=-1), r"\$\.auxpow_chain_id"),
        (lambda d: d.update(auxpow_chain_id=None, chain_id=2**40), "set auxpow_chain_id"),
        (lambda d: d.update(max_blocks_without_pow=-1), r"\$\.max_blocks_without_pow"),
        (lambda d: d["retarget_params"].update(pow_target_spacing=0), "pow_target_spacing"),
        (lambda d: d["retarget_params"].update(pow_target_timespan=4), "retarget interval"),
        (lambda d: d["retarget_params"].update(max_pow_adjustment=156), "max_pow_adjustment"),
        (lambda d: d["retarget_params"].update(powLimit=1), "powLimit"),
    ],
)
def test_bad_specs_name_the_field(mutate, message) -> None:
    data = _base()
    mutate(data)
    with pytest.raises(SpecError, match=message):
        spec_from_dict(data)


def test_bad_files(tmp_path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("chain_id = = 3")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    yaml = tmp_path / "spec.yaml"
    yaml.write_text("{}")
    with pytest.raises(SpecError, match=r"\.toml or \.json"):
        load_spec(yaml)


def test_auxpow_fields_default_to_alys_dev(tmp_path) -> None:
    """A spec without the AuxPoW fields loads with Alys DEV's values (Alys's serde defaults)."""
    data = _base()
    for key in ("bits", "auxpow_chain_id", "max_blocks_without_pow", "retarget_params"):
        data.pop(key)
    spec = spec_from_dict(data)
    assert spec.bits == 505794034 and spec.max_blocks_without_pow == 50_000
    assert spec.pow_chain_id() == spec.chain_id == 121212
    params = spec.retarget_params
    assert (params.pow_target_timespan, params.pow_target_spacing) == (60, 5)
    assert (params.max_pow_adjustment, params.pow_no_retargeting) == (20, False)
    assert (params.pow_limit, params.pow_lower_limit) == (553713663, 439495319)


def test_dev_spec_auxpow_values() -> None:
    spec = dev_spec(chain_id=2**40)
    assert spec.bits == 0x207FFFFF and spec.retarget_params.pow_no_retargeting
    assert spec.pow_chain_id() == 121212  # pinned, whatever the EIP-155 chain id


def test_auxpow_fields_from_toml(tmp_path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(
        f"""
name = "pow"
chain_id = 5
slot_ms = 1000
gas_limit = 30_000_000
authorities = ["{DEV_AUTHORITY_PUBKEY}"]
bits = 0x1d00ffff
auxpow_chain_id = 727272
max_blocks_without_pow = 20

[retarget_params]
pow_target_timespan = 12000
pow_target_spacing = 1000
pow_no_retargeting = true
"""
    )
    spec = load_spec(path)
    assert spec.bits == 0x1D00FFFF and spec.pow_chain_id() == 727272
    assert spec.max_blocks_without_pow == 20
    assert spec.retarget_params.adjustment_interval == 12
    assert spec.retarget_params.pow_no_retargeting and spec.retarget_params.max_pow_adjustment == 20

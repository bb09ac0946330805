"""The chain: its spec and genesis, and (as it lands) the transaction pool."""

from alys_fast.chain.spec import (
    DEV_ACCOUNTS,
    DEV_CHAIN_ID,
    ChainSpec,
    FeeRules,
    GenesisAccount,
    SpecError,
    dev_spec,
    load_spec,
    spec_from_dict,
)

__all__ = [
    "DEV_ACCOUNTS",
    "DEV_CHAIN_ID",
    "ChainSpec",
    "FeeRules",
    "GenesisAccount",
    "SpecError",
    "dev_spec",
    "load_spec",
    "spec_from_dict",
]

"""Node configuration: what an operator sets (the chain spec is what the network agrees on)."""

from alys_fast.config.node import ConfigError, NodeConfig, RpcConfig, load_config

__all__ = ["ConfigError", "NodeConfig", "RpcConfig", "load_config"]

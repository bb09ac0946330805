"""Where each service lives in the node's supervision tree (:mod:`alys_fast.system.tree`).

At the bottom of the import layers, so any package can name a peer by path without importing
the node that wires them together.
"""

STORAGE = "storage/storage"
METRICS = "storage/metrics"
ENGINE = "chain/engine"
TXPOOL = "chain/txpool"
CHAIN = "chain/chain"
AUXPOW = "chain/auxpow"
GOSSIP = "network/gossip"
RPC = "rpc/rpc"
RECOVERY = ("rpc/recovery-0", "rpc/recovery-1")  # taken in turn

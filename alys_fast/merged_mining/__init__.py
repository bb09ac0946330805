"""Merged mining, above the chain: Alys's consensus RPC for miners and its actor
(``service.py``), the CPU miner (``miner.py``) and the ``auxpow``/``miner`` commands
(``cli.py``). The proof format they build on is :mod:`alys_fast.auxpow`; the chain's range
finality, :mod:`alys_fast.chain.finality`."""

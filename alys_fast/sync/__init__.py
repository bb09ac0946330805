"""Range sync between alys-fast nodes (issue 12): a node that is behind fetches ranges of
blocks from its peers and imports them through the chain's import workflow; every node serves
ranges from its store.

- ``core.py``: the pure state machine (its docstring states the rules): peers' heads, ranges
  in flight, the ordered import buffer, penalties; the serving token buckets.
- ``service.py``: the sync actor, its messages, client and metrics collector; what it needs of
  the chain (:class:`~alys_fast.sync.service.ChainLink`).
"""

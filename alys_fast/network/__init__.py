"""The network between alys-fast nodes: ZeroMQ CURVE links, gossip, peers and their scores.

- ``wire.py``: the protocol messages (msgspec Structs, every field bounded) and their codec.
- ``peers.py``: the pure peer book: dialing and backoff, scores and bans, send queues,
  traffic counters, gossip dedupe.
- ``transport.py``: the node key and the ZeroMQ CURVE transport.
- ``faults.py``: an in-process transport whose links drop, delay, duplicate, reorder and
  partition, for tests.
- ``service.py``: the network actor, its messages, client and metrics collector.
"""

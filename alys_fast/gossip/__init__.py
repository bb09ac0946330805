"""The chain's side of the network (issue 12): what the chain actor and the pool publish goes
to peers, and what peers gossip comes to the chain and the pool. ``core`` is pure (transaction
batches, message conversions); ``service`` is the gossip actor and sync's link to the chain."""

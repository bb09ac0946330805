"""The node's supervision tree (declared in :mod:`alys_fast.system.tree`) and its commands."""

"""Assembling one node: its context, its supervision tree, its start and stop."""

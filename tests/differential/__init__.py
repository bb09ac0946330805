"""Differential tests: our engine against a reference node (anvil), block by block."""

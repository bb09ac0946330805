"""Errors every layer may raise: at the bottom of the import layers, so a package's commands
need not import the command line that wires them (:mod:`alys_fast.cli`)."""


class CliError(Exception):
    """An error the user can fix: printed as one line, exit status 2."""
